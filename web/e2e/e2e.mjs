// End-to-end walk through the page against a running `viscnn serve` (fmnist-convnet):
// load, query, see highlighted nodes, click a node, its panel, click a unit -> receptive-field box,
// Back through selections and a view switch, extract a circuit -> 2D diagram, jobs come and go without
// moving the graph, reload, cancel a job from the jobs view and one from its own progress line.
// Screenshots go to the given folder. Exits non-zero on the first failure (or when VISCNN_E2E_SECONDS pass).
// usage: node e2e/e2e.mjs URL SCREENSHOT_DIR
import { join } from "node:path";
import { expect, startWalk } from "./walk.mjs";

const walk = await startWalk("e2e", "failure.png");
const { url, shots, context, page, problems, steps, t0, close, step } = walk;
// What the page did last (clicks, history steps), printed when a step fails: a missed click or a lost
// history entry shows here.
await context.addInitScript(() => {
  const log = (window.e2eLog = []);
  const note = (text) => log.push(`${Math.round(performance.now())} ms: ${text}`) > 40 && log.shift();
  for (const type of ["mousedown", "click"]) {
    addEventListener(type, (e) => {
      const t = e.target;
      note(`${type} at ${Math.round(e.clientX)},${Math.round(e.clientY)} (scroll ${Math.round(scrollY)}) on ${t.tagName}.${t.className?.baseVal ?? t.className}`);
    }, true);
  }
  for (const name of ["pushState", "replaceState"]) {
    const original = history[name].bind(history);
    history[name] = (state, unused, url) => {
      note(`${name} ${decodeURIComponent(String(url)).replace(/^[^?]*/, "")}`);
      return original(state, unused, url);
    };
  }
  addEventListener("popstate", () => note(`popstate to ${decodeURIComponent(location.search)}`));
});
walk.onFailure = async () => console.error(`the page's last events:\n${await page.evaluate(() => window.e2eLog.join("\n"))}`);
const post = (path, body) => page.evaluate(async ([path, body]) => {
  const response = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  return response.json();
}, [path, body]);
const serverJob = (id) => page.evaluate(async (id) => (await fetch(`/api/jobs/${id}`)).json(), id);

try {
  await step("load the page", async () => {
    await page.goto(url);
    await page.waitForSelector("body[data-ready='1']");
    expect((await page.textContent("#model-name")) === "fmnist-convnet", "model name not shown");
  });

  await step("type an image-set expression with suggestions", async () => {
    await page.fill("#q-images", "");
    await page.type("#q-images", "sand");
    await page.waitForSelector(".suggest li[data-name='sandal']");
    await page.keyboard.press("Tab");
    await page.type("#q-images", " - over");
    await page.keyboard.press("Tab");
    const value = await page.inputValue("#q-images");
    expect(value === "sandal - overall", `autocomplete gave '${value}'`);
  });

  await step("run a query and see highlighted nodes", async () => {
    await page.selectOption("#q-criterion", "taylor");
    await page.click("#q-run");
    await page.waitForSelector("#q-took");
    const kept = Number(await page.getAttribute("body", "data-kept"));
    expect(kept > 0, "no node kept by the query");
    const drawn = await page.evaluate(() => window.viscnn.segments());
    expect(drawn > 0, "no edge drawn");
    expect(/in=sandal/.test(page.url()), `state not in the URL: ${page.url()}`);
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.waitForTimeout(300);
    await page.screenshot({ path: join(shots, "query.png") });
  });

  await step("hover and click a node, see its panel", async () => {
    const [x, y] = await page.evaluate(() => window.viscnn.nodeOnScreen("features.6", 5));
    const box = await page.locator("#graph canvas").boundingBox();
    await page.mouse.move(box.x + x, box.y + y);
    await page.waitForSelector("#tooltip:not([hidden])");
    const tip = await page.textContent("#tooltip");
    expect(tip.startsWith("features.6:5"), `tooltip says '${tip}'`);
    await page.mouse.click(box.x + x, box.y + y);
    await page.waitForSelector("#node-panel h2 .id");
    expect((await page.textContent("#node-panel h2 .id")) === "features.6:5", "node panel shows another node");
    await page.waitForSelector("#node-panel .edges-table tr.edge-row");
    expect(/node=features\.6%3A5|node=features.6:5/.test(page.url()), "selection not in the URL");
  });

  await step("choose an input image, click a unit, see its receptive field", async () => {
    await page.click("#img-thumbs img >> nth=3");
    await page.waitForSelector("#node-panel canvas.heatmap");
    const map = page.locator("#node-panel canvas.heatmap");
    const b = await map.boundingBox();
    await map.click({ position: { x: b.width * 0.5, y: b.height * 0.3 } });
    await page.waitForSelector("#node-panel .rf-box:not([hidden])");
    const rf = await page.locator("#node-panel .rf-box").boundingBox();
    const img = await page.locator("#node-panel .input-image").boundingBox();
    expect(rf.width > 4 && rf.width <= img.width + 1 && rf.x >= img.x - 1, "receptive-field box not inside the image");
    expect(/unit=\d+%2C\d+|unit=\d+,\d+/.test(page.url()), "unit not in the URL");
    await page.locator("#node-panel").scrollIntoViewIfNeeded();
    await page.waitForTimeout(300);
    await page.screenshot({ path: join(shots, "node.png"), fullPage: true });
    await page.click("#node-panel [data-mode='neuron']");
    await page.waitForSelector("#node-panel .vis img[alt$='neuron']");
    expect(/mode=neuron/.test(page.url()), "neuron mode not in the URL");
    await page.click("#node-panel [data-mode='channel']");
  });

  await step("see the node's feature visualization (rendered on demand)", async () => {
    await page.waitForSelector("#node-panel .vis img.render");
    await page.waitForSelector("#node-panel .examples img");
    await page.locator("#node-panel").scrollIntoViewIfNeeded();
    await page.waitForTimeout(300);
    await page.screenshot({ path: join(shots, "node.png"), fullPage: true });
    await page.click("#node-panel [data-mode='neuron']");
    await page.waitForSelector("#node-panel .vis img[alt$='neuron']");
    expect(/mode=neuron/.test(page.url()), "neuron mode not in the URL");
    await page.click("#node-panel [data-mode='channel']");
  });

  await step("open a dataset example at the unit where the node peaks", async () => {
    await page.waitForSelector("#node-panel .example-links button");
    const title = await page.getAttribute("#node-panel .example-links button >> nth=0", "title");
    const [, id, y, x] = /open (\S+) at unit \((\d+),(\d+)\)/.exec(title);
    await page.click("#node-panel .example-links button >> nth=0");
    await page.waitForFunction(([id, y, x]) => location.search.includes(`img=${id}`) && location.search.includes(`unit=${y}%2C${x}`), [id, y, x]);
    await page.waitForSelector("#node-panel .rf-box:not([hidden])");
  });

  await step("click an edge in the 3D graph", async () => {
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.waitForTimeout(100);
    const spot = await page.evaluate(() => window.viscnn.edgeSpot());
    expect(spot, "no clickable edge found");
    const box = await page.locator("#graph canvas").boundingBox();
    await page.mouse.click(box.x + spot.x, box.y + spot.y);
    await page.waitForFunction((id) => new URLSearchParams(location.search).get("edge") === id, spot.edge);
    await page.waitForSelector("#edge-panel canvas.heatmap");
  });

  await step("open an incoming edge", async () => {
    await page.click("#node-panel tr.edge-row >> nth=0");
    await page.waitForSelector("#edge-panel canvas.heatmap");
  });

  await step("Back undoes a view switch, then an edge, then a node selection", async () => {
    // Selecting a node or an edge and switching views push history entries; Back returns to each one.
    const params = () => new URL(page.url()).searchParams;
    const edgeText = (edge) => { const [, layer, out, inp] = /^(.+):(\d+)<-(\d+)$/.exec(edge); return `${layer} ${inp}→${out}`; };
    const shows = (panel, id) => page.waitForFunction(([panel, id]) => document.querySelector(`#${panel} h2 .id`)?.textContent === id, [panel, id]);
    const back = async () => {
      await page.goBack();
      expect(page.url().startsWith(url), `Back left the page for ${page.url()}: no history step was pushed`);
    };
    const start = page.url();
    const edge0 = params().get("edge");
    expect(params().get("node") === "features.6:5" && edge0, `unexpected state before: ${page.url()}`);
    await shows("edge-panel", edgeText(edge0));
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.waitForTimeout(100);
    const [x, y] = await page.evaluate(() => window.viscnn.nodeOnScreen("features.8", 3));
    const box = await page.locator("#graph canvas").boundingBox();
    await page.mouse.click(box.x + x, box.y + y);
    await shows("node-panel", "features.8:3");
    await page.waitForSelector("#node-panel .edges-table tr.edge-row");
    const edge1 = await page.getAttribute("#node-panel tr.edge-row >> nth=0", "data-edge");
    expect(edge1 !== edge0, "the second node's first incoming edge is the edge already shown");
    await page.click("#node-panel tr.edge-row >> nth=0");
    await shows("edge-panel", edgeText(edge1));
    const selected = page.url();
    expect(params().get("node") === "features.8:3" && params().get("edge") === edge1, `selection not in the URL: ${selected}`);
    await page.click("[data-view='circuit']");
    await page.waitForSelector("#circuit-view:not([hidden])");
    expect(params().get("view") === "circuit", "circuit view not in the URL");

    await back();
    await page.waitForFunction(() => document.getElementById("circuit-view").hidden, null);
    expect(page.url() === selected, `Back after the view switch gave ${page.url()}, not ${selected}`);
    expect(await page.isVisible("#graph") && await page.locator("[data-view='graph'].on").count() === 1, "3D view not back");
    await back();
    await shows("edge-panel", edgeText(edge0));
    expect(params().get("edge") === edge0 && params().get("node") === "features.8:3", `Back after the edge gave ${page.url()}`);
    expect((await page.textContent("#node-panel h2 .id")) === "features.8:3", "Back over an edge changed the node panel");
    await back();
    await shows("node-panel", "features.6:5");
    expect(page.url() === start, `Back after the node gave ${page.url()}, not ${start}`);
    await shows("edge-panel", edgeText(edge0));
  });

  await step("extract a circuit and see the 2D diagram", async () => {
    // A circuit is extracted over images (a sum of sets), not a contrast.
    await page.fill("#q-images", "sandal");
    await page.fill("#q-target", "features.8:7");
    await page.fill("#q-keep", "0.05");
    await page.dispatchEvent("#q-keep", "change");
    await page.click("#q-circuit");
    await page.waitForSelector("#circuit svg .node");
    const nodes = await page.locator("#circuit svg .node").count();
    const edges = await page.locator("#circuit svg path.edge").count();
    expect(nodes > 2 && edges > 1, `circuit diagram has ${nodes} nodes and ${edges} edges`);
    expect(await page.locator("#circuit svg .node.target").count() === 1, "target not marked in the circuit");
    expect(/view=circuit/.test(page.url()) && /circuit=1/.test(page.url()), "circuit view not in the URL");
    // every circuit edge carries its kernel's sign: none is drawn dashed
    expect(await page.locator("#circuit svg path.edge[stroke-dasharray]").count() === 0, "dashed edges left");
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.waitForTimeout(200);
    await page.screenshot({ path: join(shots, "circuit.png") });
    await page.check("#circuit-3d");
    await page.click("[data-view='graph']");
    await page.waitForFunction(() => window.viscnn.segments() > 0 && window.viscnn.segments() < 600, null);
    await page.waitForTimeout(300);
    await page.locator("section.view").screenshot({ path: join(shots, "circuit3d.png") });
    await page.uncheck("#circuit-3d");
    await page.click("[data-view='circuit']");
  });

  await step("compose the selected unit on the image, and chart the target's circuits' faithfulness", async () => {
    await page.click("#btn-composition");
    await page.waitForSelector("#analysis-out .comp-tree a");
    const root = await page.textContent("#analysis-out .comp-tree a");
    expect(root.startsWith("features.6:5:"), `composition root is '${root}'`);
    await page.click("#btn-faithfulness");
    await page.waitForSelector("#analysis-out svg.chart polyline");
    await page.locator("#analysis-panel").screenshot({ path: join(shots, "faithfulness.png") });
    // One output area, the latest request owns it: a faithfulness evaluation asked first and ending later
    // (another method: not stored yet) must not replace the composition asked after it.
    const method = await page.inputValue("#q-method");
    await page.selectOption("#q-method", method === "snip" ? "actgrad" : "snip");
    await page.click("#btn-faithfulness");
    await page.waitForSelector("#analysis-out .job-line[data-job^='faithfulness-']");
    const evaluation = await page.getAttribute("#analysis-out .job-line", "data-job");
    await page.click("#btn-composition");
    await page.waitForSelector("#analysis-out .comp-tree a");
    await page.waitForFunction(async (id) => ["done", "error"].includes((await (await fetch(`/api/jobs/${id}`)).json()).state), evaluation, { polling: 200 });
    await page.waitForTimeout(300); // the page hears the end at once; give it a moment to (wrongly) draw
    expect(await page.isVisible("#analysis-out .comp-tree") && !(await page.isVisible("#analysis-out svg.chart")),
      "the evaluation that ended later replaced the composition asked after it");
    await page.selectOption("#q-method", method);
  });

  await step("jobs come and go without moving the graph", async () => {
    await page.click("[data-view='graph']");
    await page.evaluate(() => window.scrollTo(0, 0));
    // The canvas's box, sampled every frame while jobs start, queue behind each other and end: circuits asked
    // of the API (only the jobs view shows them; a learned one over every image first, which runs ~10 s) and a
    // query from the panel. The jobs view must not move the page.
    await page.evaluate(() => {
      const canvas = document.querySelector("#graph canvas");
      const seen = (window.e2eBoxes = { boxes: new Set(), most: 0, on: true });
      const sample = () => {
        const r = canvas.getBoundingClientRect();
        seen.boxes.add(`${r.x},${r.y} ${r.width}x${r.height}`);
        seen.most = Math.max(seen.most, document.querySelectorAll("#jobs .job").length);
        if (seen.on) requestAnimationFrame(sample);
      };
      sample();
    });
    const circuits = [];
    for (const [method, images] of [["learned", "overall"], ["actgrad", "sandal"], ["magnitude", "sandal"]]) {
      circuits.push(await post("/api/circuit", { images, target: "features.8:7", method, keep: 0.02 }));
    }
    expect(circuits.every((answer) => answer.job), `circuits answered without jobs: ${JSON.stringify(circuits.map((a) => a.state))}`);
    const before = await page.getAttribute("body", "data-query");
    await page.selectOption("#q-criterion", "activation");
    await page.click("#q-run");
    await page.waitForFunction(() => document.querySelectorAll("#jobs .job").length >= 3, null);
    await page.locator("header").screenshot({ path: join(shots, "jobs.png") });
    for (const answer of circuits) await page.evaluate((id) => fetch(`/api/jobs/${id}`, { method: "DELETE" }), answer.job);
    await page.waitForFunction((key) => document.body.dataset.query !== key, before);
    await page.waitForFunction(() => document.querySelectorAll("#jobs .job").length === 0, null);
    const seen = await page.evaluate(() => {
      window.e2eBoxes.on = false;
      return { boxes: [...window.e2eBoxes.boxes], most: window.e2eBoxes.most };
    });
    expect(seen.boxes.length === 1, `the graph canvas moved while jobs came and went (${seen.most} at most): ${seen.boxes.join(" -> ")}`);
  });

  await step("pick the output by clicking a node", async () => {
    await page.click("#q-pick");
    const [x, y] = await page.evaluate(() => window.viscnn.nodeOnScreen("features.8", 3));
    const box = await page.locator("#graph canvas").boundingBox();
    const before = await page.getAttribute("body", "data-query");
    await page.mouse.click(box.x + x, box.y + y);
    expect((await page.inputValue("#q-target")) === "features.8:3", "picking did not set the output");
    // a query not computed yet never starts by itself: the page asks, and runs it on the click
    await page.waitForSelector("#q-ask-run");
    await page.click("#q-ask-run");
    await page.waitForFunction((key) => document.body.dataset.query !== key, before);
  });

  await step("upload an input image", async () => {
    await page.setInputFiles("#img-upload", join(shots, "query.png"));
    await page.waitForSelector(".current-image img[alt^='u']");
    expect(/img=u/.test(page.url()), "uploaded image not in the URL");
  });

  await step("reload the bookmarked URL and get the same view", async () => {
    const bookmarked = page.url();
    await page.goto(bookmarked);
    await page.waitForSelector("body[data-ready='1']");
    await page.click("[data-view='circuit']");
    await page.waitForSelector("#circuit svg .node");
    expect((await page.inputValue("#q-images")) === "sandal", "expression lost on reload");
    expect((await page.inputValue("#q-target")) === "features.8:3", "target lost on reload");
    expect((await page.textContent("#node-panel h2 .id")) === "features.6:5", "selection lost on reload");
  });

  await step("cancel a circuit from the jobs view, then run a query", async () => {
    // A learned circuit over every image takes ~10 s here: cancelled at once, it must end as "cancelled".
    await page.fill("#q-images", "overall");
    await page.selectOption("#q-method", "learned");
    await page.click("#q-circuit");
    // Jobs the reload started run first; once they have left the jobs view, the circuit's row stays in place.
    const running = page.locator("#jobs .job:first-child[data-job^='circuit-']", { hasText: "extracting the learned circuit" });
    await running.waitFor();
    const id = await running.getAttribute("data-job");
    await page.click(`#jobs .job[data-job='${id}'] button[title='cancel']`);
    await page.waitForFunction(() => document.querySelector("#circuit .status")?.textContent === "cancelled", null);
    expect(!(await page.isDisabled("#q-circuit")), "Extract circuit still disabled after the cancel");
    await page.waitForSelector(`#jobs .job[data-job='${id}']`, { state: "detached" });
    const [job, listed] = await page.evaluate(async (id) => [await (await fetch(`/api/jobs/${id}`)).json(), await (await fetch("/api/jobs")).json()], id);
    expect(job.state === "cancelled" && job.seconds < 8, `server says job ${id} is ${job.state} after ${job.seconds} s`);
    expect(listed.some((j) => j.id === id && j.state === "cancelled"), `job ${id} not cancelled in the jobs list`);
    // The page (and the server's worker) is free again: a query that has to be computed runs and is drawn.
    const before = await page.getAttribute("body", "data-query");
    await page.fill("#q-images", "sandal");
    await page.selectOption("#q-criterion", "gradient");
    await page.click("#q-run");
    await page.waitForFunction((key) => document.body.dataset.query !== key, before);
    expect(/computed/.test(await page.textContent("#q-time")), `query not computed: ${await page.textContent("#q-time")}`);
    expect(Number(await page.getAttribute("body", "data-kept")) > 0 && (await page.evaluate(() => window.viscnn.segments())) > 0, "query after the cancel drew nothing");
  });

  await step("cancel a circuit from its own progress line; a later query runs on", async () => {
    // The learned circuit over every image again (cancelled before, so not stored), then a query that has to be
    // computed, each with a cancel button in its own panel.
    await page.fill("#q-images", "overall");
    await page.click("#q-circuit");
    const circuitLine = page.locator("#circuit .job-line[data-job^='circuit-']");
    await circuitLine.waitFor();
    const circuitId = await circuitLine.getAttribute("data-job");
    const before = await page.getAttribute("body", "data-query");
    const queriesBefore = await page.evaluate(async () => (await (await fetch("/api/jobs")).json()).filter((j) => j.kind === "query").map((j) => j.id));
    await page.selectOption("#q-criterion", "taylor_signed");
    await page.click("#q-run");
    // Cancel the circuit at once, while it runs and the query is submitted behind it (a query runs before
    // queued work but waits for a running job): the circuit's own button must cancel the circuit.
    await page.click(`#circuit .job-line[data-job='${circuitId}'] button`);
    // The panel says "cancelled", neutrally, and the jobs view has dropped the circuit by then (no poll needed).
    const cancelled = await page.waitForFunction((id) => {
      const line = document.querySelector("#circuit .status");
      return line?.textContent === "cancelled" && { className: line.className, row: !!document.querySelector(`#jobs .job[data-job='${id}']`) };
    }, circuitId).then((handle) => handle.jsonValue());
    expect(/status-cancelled/.test(cancelled.className) && !/status-error/.test(cancelled.className), `a cancel is shown as '${cancelled.className}'`);
    expect(!cancelled.row, `the jobs view still lists ${circuitId} after the page saw it end`);
    // The query was not the one cancelled: it runs, is drawn, and leaves the jobs view when the page sees it end.
    await page.waitForFunction((key) => document.body.dataset.query !== key, before);
    const queryId = await page.evaluate(async (old) => (await (await fetch("/api/jobs")).json())
      .filter((j) => j.kind === "query" && !old.includes(j.id)).map((j) => j.id).pop(), queriesBefore);
    expect(queryId, "the query was answered without a job: it was cached, so nothing waited behind the circuit");
    const drawn = await page.evaluate((id) => ({ row: !!document.querySelector(`#jobs .job[data-job='${id}']`) }), queryId);
    expect(!drawn.row, `the jobs view still lists ${queryId} after the page saw it end`);
    expect(/computed/.test(await page.textContent("#q-time")), `query not computed: ${await page.textContent("#q-time")}`);
    const [circuit, query] = [await serverJob(circuitId), await serverJob(queryId)];
    expect(circuit.state === "cancelled" && circuit.seconds < 8, `server says circuit ${circuitId} is ${circuit.state} after ${circuit.seconds} s`);
    expect(query.state === "done", `server says query ${queryId} is ${query.state}`);
    expect(!(await page.isDisabled("#q-circuit")), "Extract circuit still disabled after the cancel");
  });

  expect(problems.length === 0, problems.join("\n"));
} catch (error) {
  console.error(`e2e failed: ${error.message}`);
  await close();
  process.exit(1);
}
console.log(JSON.stringify({ ok: true, seconds: (Date.now() - t0) / 1000, steps }));
await close();
