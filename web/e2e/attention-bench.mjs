// Attention benchmark in headless Chromium against a running `viscnn serve` with a fresh store (see
// benchmarks/attention.py): the time from a click on a node until its own render and its dataset examples are
// on screen, either with nothing else to do ("alone") or with other panels' work queued and running
// ("queued": another node's panel with its render and incoming-edge renders, and an edge panel's render).
// In both, the dataset examples (one job for every node, which the other panel asks for first) are computed
// before the click, so both time the same work: the node's render, and its stored examples.
// usage: node e2e/attention-bench.mjs URL MODE NODE OTHER_NODE   (MODE alone|queued; nodes as LAYER:C)
// Prints one JSON line.
import { launch } from "./browser.mjs";

const [base, mode, node, other] = process.argv.slice(2);
if (!base || !["alone", "queued"].includes(mode) || !node || !other) {
  console.error("usage: node e2e/attention-bench.mjs URL alone|queued NODE OTHER_NODE");
  process.exit(2);
}
const split = (id) => { const i = id.lastIndexOf(":"); return [id.slice(0, i), Number(id.slice(i + 1))]; };
const { context, close } = await launch({ width: 1500, height: 1000 });
const page = context.pages()[0] ?? (await context.newPage());
const errors = [];
page.on("pageerror", (e) => errors.push(e.message));
context.setDefaultTimeout(3_600_000);
const jobs = () => page.evaluate(async () => (await fetch("/api/jobs", { cache: "no-store" })).json());
const idle = async () => {
  for (;;) {
    if (!(await jobs()).some((j) => j.state === "queued" || j.state === "running")) return;
    await page.waitForTimeout(250);
  }
};
const click = async (id) => {
  const [layer, channel] = split(id);
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.waitForTimeout(50);
  const [x, y] = await page.evaluate(([l, c]) => window.viscnn.nodeOnScreen(l, c), [layer, channel]);
  const box = await page.locator("#graph canvas").boundingBox();
  await page.mouse.click(box.x + x, box.y + y);
};

await page.goto(base);
await page.waitForSelector("body[data-ready='1']");
await page.waitForSelector("#q-took, #q-ask"); // the page's own query first (not part of the figures)
await idle();
const before = [];
if (mode === "alone") {
  // the dataset examples (one job for every node) computed first, as the queued run's other panel does
  await page.evaluate(async (id) => {
    const [layer, channel] = [id.slice(0, id.lastIndexOf(":")), id.slice(id.lastIndexOf(":") + 1)];
    await fetch(`/api/nodes/${encodeURIComponent(layer)}/${channel}/examples`);
  }, other);
  await idle();
} else {
  // another node's panel (its examples and render, then its incoming-edge renders) and an edge panel's render
  await click(other);
  await page.waitForSelector("#node-panel .edges-table tr.edge-row");
  await page.click("#node-panel tr.edge-row >> nth=0");
  await page.waitForSelector("#edge-panel .slot.vis .status, #edge-panel .slot.vis img");
  // until the examples are done and a render runs, so the click below meets started work, not only queued
  for (;;) {
    const now = await jobs();
    if (now.some((j) => j.kind === "examples" && j.state === "done") && now.some((j) => j.kind === "render" && j.state === "running" && j.done > 0)) {
      before.push(...now.filter((j) => j.state === "queued" || j.state === "running").map((j) => `${j.description} (${j.state}, priority ${j.priority})`));
      break;
    }
    await page.waitForTimeout(100);
  }
}
const t0 = Date.now();
await click(node);
const [layer, channel] = split(node);
await page.waitForFunction((id) => document.querySelector("#node-panel h2 .id")?.textContent === id, node);
const clickToPanel = Date.now() - t0;
const seen = await page.evaluate(() => new Promise((resolve) => {
  const start = performance.now();
  const at = {};
  const check = () => {
    const now = performance.now() - start;
    if (at.render === undefined && document.querySelector("#node-panel .vis img.render")) at.render = now;
    if (at.examples === undefined && document.querySelector("#node-panel .examples img.examples-img")) at.examples = now;
    if (at.render !== undefined && at.examples !== undefined) resolve(at);
    else requestAnimationFrame(check);
  };
  check();
}));
const after = (await jobs()).filter((j) => j.description === `render ${layer}:${channel}` || j.kind === "examples");
await close();
console.log(JSON.stringify({
  mode, node, render_ms: seen.render + clickToPanel, examples_ms: seen.examples + clickToPanel,
  both_ms: Math.max(seen.render, seen.examples) + clickToPanel, queued_before: before,
  work: after.map((j) => ({ what: j.description, seconds: j.seconds, state: j.state })), errors,
}));
