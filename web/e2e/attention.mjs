// End-to-end walk of the page following the user's attention, against a running `viscnn serve` (fmnist-convnet,
// renders slow enough to queue: --render-steps 200): a node's own examples and render come first and its
// incoming-edge renders only for the top few and the rows scrolled into view; clicking another node cancels the
// first one's queued work at once (and nothing is queued again by itself); the header's job count opens a list
// with cancel buttons; progress says steps and time left; "use as output" asks before a query that is not
// computed; a sampled query says so; Back and Forward restore the query's graph and scores; an image's label
// survives a reload. Screenshots go to the given folder (attention-*.png).
// usage: node e2e/attention.mjs URL SCREENSHOT_DIR
import { join } from "node:path";
import { expect, startWalk } from "./walk.mjs";

const walk = await startWalk("attention", "attention-failure.png");
const { url, shots, page, problems, steps, t0, close, step, until } = walk;
const serverJobs = () => page.evaluate(async () => (await fetch("/api/jobs", { cache: "no-store" })).json());
walk.onFailure = async () => console.error(`server jobs: ${JSON.stringify(await serverJobs()).slice(0, 4000)}`);
const clickNode = async (layer, channel) => {
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.waitForTimeout(100);
  const [x, y] = await page.evaluate(([l, c]) => window.viscnn.nodeOnScreen(l, c), [layer, channel]);
  const box = await page.locator("#graph canvas").boundingBox();
  await page.mouse.click(box.x + x, box.y + y);
  await page.waitForFunction((id) => document.querySelector("#node-panel h2 .id")?.textContent === id, `${layer}:${channel}`);
};
const objective = (job) => job.description.replace(/^render /, "");

try {
  await step("load the page: the URL's small query runs by itself", async () => {
    await page.goto(url);
    await page.waitForSelector("body[data-ready='1']");
    await page.waitForSelector("#q-took");
  });

  await step("a node's own examples and render come first, its incoming-edge renders lazily", async () => {
    await clickNode("features.6", 5);
    await page.waitForSelector("#node-panel .edges-table tr.edge-row");
    const rows = await page.locator("#node-panel tr.edge-row").count();
    const lazy = await page.locator("#node-panel .lazy-hint").count();
    expect(rows >= 10 && lazy > 0, `${rows} incoming rows, ${lazy} waiting to be scrolled into view: every source render was queued at once`);
    const jobs = (await serverJobs()).filter((j) => j.kind === "render" && j.panel === "node");
    const own = jobs.find((j) => objective(j) === "features.6:5");
    expect(own && Math.round(own.priority) === 1, `the node's own render: ${JSON.stringify(own)}`);
    const inputs = jobs.filter((j) => j !== own);
    expect(inputs.length <= rows - lazy && inputs.every((j) => j.priority > 2.9), `input renders: ${JSON.stringify(inputs.map((j) => [objective(j), j.priority]))}`);
    // its progress says the steps done and the time left
    await page.waitForFunction(() => /\d+\/200 steps/.test(document.querySelector("#node-panel .vis .progress-status")?.textContent ?? ""), null, { polling: 50 });
    // scrolling the table into view queues the rest, in rank order after the node's own work
    await page.locator("#node-panel").scrollIntoViewIfNeeded();
    await page.locator("#node-panel .node-grid").screenshot({ path: join(shots, "attention-progress.png") });
    await page.locator("#node-panel tr.edge-row >> nth=-1").scrollIntoViewIfNeeded();
    await until(async () => (await serverJobs()).filter((j) => j.kind === "render" && j.panel === "node").length > jobs.length, "renders queued once scrolled into view");
    await page.waitForSelector("#node-panel .vis img.render");
    await page.waitForSelector("#node-panel .examples img");
    const done = (await serverJobs()).filter((j) => j.kind === "examples" || (j.kind === "render" && objective(j) === "features.6:5"));
    const examples = done.find((j) => j.kind === "examples"), render = done.find((j) => j.kind === "render");
    expect(examples.finished <= render.finished, `the render (${render.finished}) ended before the examples (${examples.finished})`);
  });

  await step("clicking another node cancels the first one's queued work at once, and nothing comes back", async () => {
    const first = (await serverJobs()).filter((j) => j.kind === "render" && j.panel === "node" && j.state === "queued").map((j) => j.id);
    expect(first.length > 0, "no render of the first node is waiting");
    const t = Date.now();
    await clickNode("features.8", 3);
    await until(async () => {
      const jobs = await serverJobs();
      return first.every((id) => jobs.find((j) => j.id === id)?.state === "cancelled");
    }, "the first node's queued renders cancelled");
    const waited = (Date.now() - t) / 1000;
    expect(waited < 8, `the first node's work was cancelled after ${waited} s (the grace for work nobody follows is 10 s)`);
    const jobs = await serverJobs();
    const said = jobs.filter((j) => first.includes(j.id)).map((j) => j.message);
    expect(said.every((m) => /panel that asked for it was closed/.test(m)), `cancelled as: ${JSON.stringify(jobs.filter((j) => first.includes(j.id)).map((j) => [j.id, j.state, j.message]))}`);
    const objectives = new Set(jobs.filter((j) => first.includes(j.id)).map(objective));
    await page.waitForTimeout(1500);
    const again = (await serverJobs()).filter((j) => j.kind === "render" && !first.includes(j.id) && objectives.has(objective(j)) && j.panel !== "node");
    expect(again.length === 0, `cancelled work queued again: ${JSON.stringify(again)}`);
  });

  await step("the jobs count opens a list of every job with its steps and a cancel button", async () => {
    // work that is surely still running when the list opens (the last node's may all be done on a fast machine):
    // a node not shown yet, its incoming-edge renders queued by scrolling through them
    await clickNode("features.10", 7);
    await page.waitForSelector("#node-panel .edges-table tr.edge-row");
    await page.locator("#node-panel tr.edge-row >> nth=-1").scrollIntoViewIfNeeded();
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.waitForFunction(() => Number(document.getElementById("jobs").dataset.count) > 0, null);
    await page.click("#jobs-toggle");
    await page.waitForSelector("#jobs-menu:not([hidden]) .job-full");
    const rows = await page.locator("#jobs-menu .job-full").count();
    expect(rows > 0, "the jobs list is empty while jobs run");
    await page.waitForTimeout(400);
    await page.screenshot({ path: join(shots, "attention-jobs.png"), clip: { x: 700, y: 0, width: 800, height: 420 } });
    const id = await page.getAttribute("#jobs-menu .job-full >> nth=-1", "data-job");
    await page.click(`#jobs-menu .job-full[data-job='${id}'] button[title='cancel']`);
    await until(async () => ["cancelled", "done"].includes((await serverJobs()).find((j) => j.id === id)?.state), `job ${id} cancelled`);
    await page.click("#jobs-toggle");
    expect(await page.isHidden("#jobs-menu"), "the jobs list did not close");
    await clickNode("features.8", 3); // back to the node the next steps use
  });

  await step("faithfulness counts its circuits and the time left", async () => {
    await page.fill("#q-target", "features.8:3");
    await page.dispatchEvent("#q-target", "change");
    await page.click("#btn-faithfulness");
    await page.waitForFunction(() => /\d+\/12 circuits/.test(document.querySelector("#analysis-out")?.textContent ?? ""), null, { polling: 50 });
    await page.locator("#analysis-panel").screenshot({ path: join(shots, "attention-faithfulness-progress.png") });
    await page.waitForSelector("#analysis-out svg.chart polyline");
  });

  await step("\"use as output\" asks before a query that is not computed, and runs it on the click", async () => {
    await page.evaluate(() => window.scrollTo(0, 0));
    const before = (await serverJobs()).filter((j) => j.kind === "query").length;
    const key = await page.getAttribute("body", "data-query");
    await page.click("#node-panel button:text('use as output')");
    await page.waitForSelector("#q-ask-run");
    expect((await page.inputValue("#q-target")) === "features.8:3", "the output was not set");
    await page.waitForTimeout(500);
    expect((await serverJobs()).filter((j) => j.kind === "query").length === before, "a query started without being asked for");
    await page.locator("#query-panel").screenshot({ path: join(shots, "attention-ask.png") });
    await page.click("#q-ask-run");
    await page.waitForFunction((k) => document.body.dataset.query !== k, key);
  });

  await step("a sample of the images, said on the page", async () => {
    await page.fill("#q-images", "overall");
    await page.dispatchEvent("#q-images", "change");
    await page.fill("#q-target", "loss");
    await page.dispatchEvent("#q-target", "change");
    await page.fill("#q-sample", "50");
    await page.dispatchEvent("#q-sample", "change");
    expect(/sample=50/.test(page.url()), `sample not in the URL: ${page.url()}`);
    const key = await page.getAttribute("body", "data-query");
    await page.click("#q-run");
    await page.waitForFunction((k) => document.body.dataset.query !== k, key);
    const said = await page.textContent("#q-sampled");
    expect(/overall: sampled 50 of 200/.test(said), `the page says '${said}'`);
    await page.locator("#query-panel").screenshot({ path: join(shots, "attention-sample.png") });
  });

  await step("Back and Forward restore each query's graph and scores, not only its fields", async () => {
    const keyA = await page.getAttribute("body", "data-query");
    const keptA = await page.getAttribute("body", "data-kept");
    await page.fill("#q-images", "sandal - overall");
    await page.dispatchEvent("#q-images", "change");
    await page.selectOption("#q-criterion", "gradient");
    await page.click("#q-run");
    await page.waitForFunction((k) => document.body.dataset.query !== k, keyA);
    const keyB = await page.getAttribute("body", "data-query");
    const keptB = await page.getAttribute("body", "data-kept");
    await page.goBack();
    await page.waitForFunction((k) => document.body.dataset.query === k, keyA);
    expect((await page.inputValue("#q-images")) === "overall" && (await page.inputValue("#q-criterion")) === "taylor", "Back did not restore the fields");
    expect(await page.isVisible("#q-restored"), "the restored query does not say so");
    expect((await page.getAttribute("body", "data-kept")) === keptA, "Back left another query's nodes on screen");
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.waitForTimeout(300);
    await page.screenshot({ path: join(shots, "attention-history.png"), clip: { x: 0, y: 0, width: 1500, height: 760 } });
    await page.goForward();
    await page.waitForFunction((k) => document.body.dataset.query === k, keyB);
    expect((await page.inputValue("#q-images")) === "sandal - overall" && (await page.getAttribute("body", "data-kept")) === keptB, "Forward did not restore the second query");
  });

  await step("an image's name and label are readable after a reload", async () => {
    await page.click("#img-thumbs img >> nth=2");
    const title = await page.getAttribute("#img-thumbs img >> nth=2", "title");
    const label = /\((.+)\)$/.exec(title)[1];
    await page.reload();
    await page.waitForSelector("body[data-ready='1']");
    await page.waitForFunction((label) => document.querySelector(".current-image .muted")?.textContent.includes(` · ${label}`), label);
  });

  expect(problems.length === 0, problems.join("\n"));
} catch (error) {
  console.error(`e2e failed: ${error.message}`);
  await close();
  process.exit(1);
}
console.log(JSON.stringify({ ok: true, seconds: (Date.now() - t0) / 1000, steps }));
await close();
