// End-to-end walk through the page's views against a running `viscnn serve` (fmnist-convnet):
// a kernel budget that tells queries apart, ranked lists and "go to node", maps with colour bars and values on
// hover, inhibiting examples, two queries overlaid (Fig 5a), a circuit exported (SVG, JSON) and a node
// revisualised through it (Fig 9), composition, faithfulness best/random/worst (Fig 8), sub-features (Fig 10),
// a layer's renders in a grid, scores exported, and the page served under a notebook proxy's path.
// Screenshots (views-*.png) go to the given folder. Exits non-zero on the first failure.
// usage: node e2e/views.mjs URL SCREENSHOT_DIR
import { readFileSync } from "node:fs";
import http from "node:http";
import { join } from "node:path";
import { expect, startWalk } from "./walk.mjs";

const walk = await startWalk("views", "views-failure.png");
const { url, shots, page, problems, steps, close, step } = walk;
let proxy = null;
const sockets = new Set(); // the proxy's connections: an event stream would keep this process alive
const stopProxy = () => {
  for (const socket of sockets) socket.destroy();
  proxy?.close();
  proxy = null;
};
walk.onFailure = async () => stopProxy();
const ranked = () => page.$$eval("#ranked-nodes li[data-node]", (rows) => rows.map((r) => r.dataset.node));
const runQuery = async (images, target = "loss") => {
  await page.waitForSelector("#q-took");
  await page.evaluate(() => (document.getElementById("q-took").dataset.old = "1")); // the next answer replaces it
  await page.fill("#q-images", images);
  await page.fill("#q-target", target);
  await page.click("#q-run");
  await page.waitForSelector("#q-took:not([data-old])");
  await page.waitForSelector("#ranked-nodes li[data-node]");
};
// Moves the pointer onto a map until its readout shows a value (the panel may redraw the map meanwhile).
const hover = async (canvas, readout, pattern, at) => {
  for (let attempt = 0; attempt < 20; attempt++) {
    await page.waitForSelector(canvas);
    await page.locator(canvas).scrollIntoViewIfNeeded();
    await page.mouse.move(0, 0);
    const box = await page.locator(canvas).boundingBox();
    if (box) await page.mouse.move(box.x + box.width * at, box.y + box.height * at, { steps: 3 });
    const text = await page.textContent(readout).catch(() => "");
    if (pattern.test(text ?? "")) return text;
    await page.waitForTimeout(250);
  }
  return null;
};
const shot = async (selector, name) => {
  await page.locator(selector).scrollIntoViewIfNeeded();
  await page.waitForTimeout(250);
  await page.locator(selector).screenshot({ path: join(shots, name) });
};

try {
  await step("load with the default kernel budget", async () => {
    await page.goto(url);
    await page.waitForSelector("body[data-ready='1']");
    expect(await page.inputValue("#q-max") === "1500", "the default is not a kernel budget of 1,500");
    await page.waitForSelector("#ranked-nodes li[data-node]");
  });

  await step("a budget tells overall, a class and a contrast apart", async () => {
    // The kernels drawn (1,500 at most) for the whole set's loss and for one class's logit differ, and so do those
    // of a contrast of activations (the preprint's "tiger - overall") and of the whole set's activations.
    const drawn = {};
    const runs = [["overall", "loss", "taylor"], ["overall", "class:Sandal", "taylor"], ["overall", "loss", "activation"], ["sandal - overall", "loss", "activation"]];
    for (const [images, target, criterion] of runs) {
      await page.selectOption("#q-criterion", criterion);
      await runQuery(images, target);
      drawn[`${images}|${target}|${criterion}`] = new Set(await page.evaluate(() => window.viscnnViews.drawnKernels()));
    }
    const sets = Object.values(drawn);
    expect(sets.every((s) => s.size > 0 && s.size <= 1500 * 2), `drawn kernels not within the budget: ${sets.map((s) => s.size)}`);
    const jaccard = (a, b) => [...a].filter((k) => b.has(k)).length / new Set([...a, ...b]).size;
    const [loss, sandal, activation, contrast] = sets;
    expect(jaccard(loss, sandal) < 0.6 && jaccard(activation, contrast) < 0.6,
      `queries draw much the same kernels: loss/class ${jaccard(loss, sandal).toFixed(2)}, activation/contrast ${jaccard(activation, contrast).toFixed(2)}`);
    const kept = Number(await page.getAttribute("body", "data-kept"));
    expect(kept > 0 && kept < 352, `lit nodes: ${kept} of 352`);
    expect(await page.inputValue("#ranked-order") === "high", "a contrast does not rank its most positive nodes first");
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.waitForTimeout(300);
    await page.screenshot({ path: join(shots, "views-query.png"), clip: { x: 0, y: 0, width: 1500, height: 1010 } });
    await page.selectOption("#q-criterion", "taylor");
  });

  await step("click a ranked node, then a ranked kernel", async () => {
    const first = (await ranked())[0];
    await page.click(`#ranked-nodes li[data-node='${first}']`);
    await page.waitForFunction((id) => document.querySelector("#node-panel h2 .id")?.textContent === id, first);
    expect(new URL(page.url()).searchParams.get("node") === first, "the ranked node is not the URL's");
    expect(await page.locator(`#ranked-nodes li.on[data-node='${first}']`).count() === 1, "the selected node is not marked in the list");
    const edge = await page.getAttribute("#ranked-edges li[data-edge] >> nth=0", "data-edge");
    await page.click("#ranked-edges li[data-edge] >> nth=0");
    await page.waitForFunction((id) => new URLSearchParams(location.search).get("edge") === id, edge);
  });

  await step("go to a node by typing it, with completion", async () => {
    await page.fill("#goto", "");
    await page.type("#goto", "features.6:");
    await page.waitForSelector(".goto .suggest li[data-name='features.6:0']");
    await page.type("#goto", "3");
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => document.querySelector("#node-panel h2 .id")?.textContent === "features.6:3");
    await page.fill("#goto", "features.6:999");
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => /channels 0\.\.\d+/.test(document.querySelector(".goto-message")?.textContent ?? ""));
    await page.fill("#goto", "");
  });

  await step("maps with colour bars, values on hover, the right scale; inhibiting examples below 0", async () => {
    await page.click("#img-thumbs img >> nth=2");
    await page.waitForSelector("#node-panel canvas.heatmap");
    await page.waitForSelector("#node-panel .map-view .cbar");
    const read = await hover("#node-panel canvas.heatmap", "#node-panel .activation .map-readout", /^\(\d+,\d+\) activation = /, 0.5);
    expect(read, "no value under the pointer on the activation map");
    // the scale follows the values: diverging (a 0 on the bar) only when the map has both signs
    const values = await page.evaluate(async () => {
      const s = new URLSearchParams(location.search);
      const r = await fetch(`api/activation?image=${s.get("img")}&layer=features.6&channel=3`);
      return (await r.json()).values.flat();
    });
    const signed = Math.min(...values) < 0 && Math.max(...values) > 0;
    const zero = await page.locator("#node-panel .activation .cbar-ends span", { hasText: /^0$/ }).count();
    expect(signed === (zero === 1), `the bar's scale does not follow the map's signs (signed ${signed})`);
    await page.waitForSelector("#node-panel .example-links .row");
    const inhibit = await page.textContent("#node-panel .example-links");
    expect(/most inhibiting \(below 0\)|no image inhibits it/.test(inhibit), `inhibit row says '${inhibit}'`);
    await page.waitForSelector("#node-panel .edges-table canvas.thumb-map");
    await page.waitForSelector("#node-panel .vis img.render");
    await page.waitForFunction(() => document.querySelector("#node-panel .vis")?.dataset.spread !== undefined);
    await page.waitForSelector("#node-panel .examples img");
    await shot("#node-panel", "views-node.png");
  });

  await step("an edge: kernel values on hover, its maps with their bars, its render measured for flatness", async () => {
    await page.click("#node-panel tr.edge-row >> nth=0");
    await page.waitForSelector("#edge-panel .kernel canvas.heatmap");
    const read = await hover("#edge-panel .kernel canvas.heatmap", "#edge-panel .kernel .map-readout", /weight = /, 0.3);
    expect(read, "no kernel value under the pointer");
    expect(await page.locator("#edge-panel .cbar").count() >= 3, "kernel, input and output maps need a colour bar each");
    await page.waitForSelector("#edge-panel .vis img.render");
    await page.waitForFunction(() => document.querySelector("#edge-panel .vis")?.dataset.spread !== undefined);
    const [spread, flagged] = await page.evaluate(() => [Number(document.querySelector("#edge-panel .vis").dataset.spread),
      !!document.querySelector("#edge-panel .vis .flag")]);
    expect((spread < 2) === flagged, `a render of spread ${spread} is ${flagged ? "" : "not "}flagged`);
    const captions = await page.$$eval("#edge-panel figcaption", (all) => all.map((c) => c.textContent));
    expect(captions.every((c) => c.length > 20), `unlabelled pictures: ${JSON.stringify(captions)}`);
    await shot("#edge-panel", "views-edge.png");
  });

  await step("overlay a second input on the graph (Fig 5a)", async () => {
    await page.fill("#q-max", "300"); // fewer kernels each: where the two inputs part shows
    await page.dispatchEvent("#q-max", "change");
    await runQuery("sandal", "loss");
    await page.fill("#overlay-images", "trouser");
    await page.click("#overlay-run");
    await page.waitForSelector("body[data-overlay]");
    const keys = await page.$$eval(".overlay-key", (all) => all.map((k) => k.textContent));
    expect(keys.length === 3 && keys[0].startsWith("sandal only") && keys[1].startsWith("trouser only"), `overlay legend: ${JSON.stringify(keys)}`);
    await page.click("#fit-view");
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.waitForTimeout(300);
    await page.locator("section.view").screenshot({ path: join(shots, "views-overlay.png") });
    await page.click("#overlay-clear");
    await page.waitForFunction(() => !document.body.dataset.overlay);
    await page.fill("#q-max", "1500");
    await page.dispatchEvent("#q-max", "change");
    await runQuery("sandal", "loss");
  });

  await step("export the scores as JSON", async () => {
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("#export-scores")]);
    const data = JSON.parse(readFileSync(await download.path(), "utf8"));
    expect(data.format === "viscnn.scores/1" && data.images === "sandal" && data.nodes["features.6"].length === 96, "scores file wrong");
  });

  await step("extract a circuit, export it as SVG and JSON, revisualise a node through it (Fig 9)", async () => {
    await page.fill("#q-target", "features.8:7");
    await page.fill("#q-keep", "0.05");
    await page.dispatchEvent("#q-keep", "change");
    await page.click("#q-circuit");
    await page.waitForSelector("#circuit svg .node.target");
    await page.waitForSelector("#export-svg");
    const [svg] = await Promise.all([page.waitForEvent("download"), page.click("#export-svg")]);
    const text = readFileSync(await svg.path(), "utf8");
    expect(text.startsWith("<?xml") && text.includes("<svg") && text.includes("<style>") && text.includes("path"), "SVG export is not a standalone SVG");
    const [json] = await Promise.all([page.waitForEvent("download"), page.click("#export-circuit")]);
    const circuit = JSON.parse(readFileSync(await json.path(), "utf8"));
    const drawn = await page.locator("#circuit svg path.edge").count();
    expect(circuit.format === "viscnn.circuit/1" && circuit.edges.length > 0 && circuit.target.text === "features.8:7",
      `circuit export: ${JSON.stringify(circuit).slice(0, 200)}; ${drawn} drawn`);
    await page.click("#circuit svg .node.target");
    await page.waitForFunction(() => document.querySelector("#node-panel h2 .id")?.textContent === "features.8:7");
    await page.click("#btn-through");
    await page.waitForSelector("#node-panel .through img.render");
    await page.waitForSelector("#node-panel .vis:not(.through) img.render");
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.waitForTimeout(300);
    await page.screenshot({ path: join(shots, "views-circuit.png"), clip: { x: 0, y: 0, width: 1500, height: 1010 } });
    await shot("#node-panel .node-grid", "views-through.png");
  });

  await step("compose a unit, roomy, with a render per unit", async () => {
    await page.click("#btn-composition");
    await page.waitForSelector("#analysis-out .comp-card");
    const root = await page.textContent("#analysis-out .comp-tree a");
    expect(root.startsWith("features.8:7:"), `composition root is '${root}'`);
    const rows = await page.locator("#analysis-out .comp-level").count();
    expect(rows >= 3, `only ${rows} rows of the composition`);
    await page.waitForFunction(() => document.querySelectorAll("#analysis-out .comp-render img.render").length >= 3);
    const second = page.locator("#analysis-out .comp-level >> nth=1").locator(".comp-card >> nth=1");
    const unit = await second.getAttribute("data-unit");
    await second.click();
    await page.waitForSelector(`#analysis-out .comp-card.on[data-unit='${unit}']`);
    await page.waitForFunction(() => [...document.querySelectorAll("#analysis-out .comp-render")].every((r) => r.querySelector("img.render, .status-error, .status-unavailable")));
    await shot("#analysis-panel", "views-composition.png");
  });

  await step("faithfulness as best / random / worst against size (Fig 8)", async () => {
    await page.click("#btn-faithfulness");
    await page.waitForSelector("#analysis-out svg.chart polyline");
    const methods = await page.$$eval("#analysis-out svg.chart polyline", (lines) => lines.map((l) => l.dataset.method));
    const method = await page.inputValue("#q-method");
    expect(JSON.stringify(methods) === JSON.stringify([method, "random", "worst"]), `Fig 8 lines: ${JSON.stringify(methods)}`);
    const legend = await page.$$eval("#analysis-out svg.chart text.legend", (all) => all.map((t) => t.textContent));
    expect(legend[0].startsWith(`best (${method})`), `legend: ${JSON.stringify(legend)}`);
    await shot("#analysis-panel", "views-faithfulness.png");
  });

  await step("sub-feature circuits of the selected node (Fig 10)", async () => {
    await page.click("#btn-subfeatures");
    await page.waitForSelector("#analysis-out .subfeatures");
    await page.fill("#sf-min", "6"); // 200 patches of features.8:7: clusters of 6 or more
    await page.click("#sf-run");
    await page.waitForSelector("#analysis-out .subfeatures .sf-cluster");
    const clusters = await page.locator("#analysis-out .sf-cluster").count();
    const points = await page.locator("#analysis-out svg.scatter circle").count();
    expect(points > 0, "no patches in the projection");
    if (clusters) {
      await page.waitForSelector("#analysis-out .sf-cluster img.sf-patches");
      await page.waitForFunction(() => [...document.querySelectorAll("#analysis-out .sf-cluster .vis")].every((v) => v.querySelector("img.render, .status-error")));
    } else {
      expect(await page.locator("#analysis-out .subfeatures .status").count() === 1, "no clusters and no message");
    }
    await shot("#analysis-panel", "views-subfeatures.png");
  });

  await step("browse a layer's renders in a grid", async () => {
    await page.click("#btn-layer-grid");
    await page.waitForSelector("#layer-grid .grid-cell");
    await page.selectOption("#grid-layer", "features.3");
    await page.waitForFunction(() => document.querySelectorAll("#layer-grid .grid-cell").length === 64);
    await page.locator("#layer-grid").scrollIntoViewIfNeeded();
    await page.click("#grid-render-visible");
    await page.waitForFunction(() => document.querySelectorAll("#layer-grid .grid-cell img.render").length >= 4);
    await page.selectOption("#grid-order", "score");
    await page.waitForFunction(() => document.querySelectorAll("#layer-grid .grid-cell img.render").length >= 4);
    await shot("#analysis-panel", "views-grid.png");
    await page.click("#layer-grid .grid-cell >> nth=0");
    await page.waitForFunction(() => /^features\.3:\d+$/.test(document.querySelector("#node-panel h2 .id")?.textContent ?? ""));
  });

  await step("the page works under a notebook proxy's path (jupyter-server-proxy's /proxy/PORT/)", async () => {
    const target = new URL(url);
    const prefix = "/user/ada/proxy/8123";
    proxy = http.createServer((req, res) => {
      if (!req.url.startsWith(`${prefix}/`)) {
        res.writeHead(404).end("not under the proxy path");
        return;
      }
      const upstream = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url.slice(prefix.length), headers: req.headers },
        (answer) => {
          res.writeHead(answer.statusCode, answer.headers);
          answer.pipe(res);
        });
      upstream.on("error", () => res.destroy());
      res.on("close", () => upstream.destroy()); // the browser left: so does the proxied request (an event stream)
      req.pipe(upstream);
    });
    await new Promise((r) => proxy.listen(0, "127.0.0.1", r));
    const base = `http://127.0.0.1:${proxy.address().port}${prefix}/`;
    proxy.on("connection", (socket) => sockets.add(socket));
    const seen = [];
    page.on("request", (r) => seen.push(r.url()));
    await page.goto(`${base}?in=bag&node=features.3%3A2`);
    await page.waitForSelector("body[data-ready='1']");
    await page.waitForSelector("#ranked-nodes li[data-node]");
    await page.waitForSelector("#node-panel .vis img.render");
    const outside = seen.filter((u) => u.startsWith(`http://127.0.0.1:${proxy.address().port}/`) && !u.includes(prefix));
    expect(!outside.length, `requests left the proxy path: ${outside.slice(0, 3).join(", ")}`);
    stopProxy();
  });

  expect(!problems.length, `page errors: ${problems.join("; ")}`);
} finally {
  stopProxy();
  await close();
}
console.log(JSON.stringify({ ok: true, steps }));
process.exit(0); // nothing may hold the walk open (an upstream event stream of the proxy)
