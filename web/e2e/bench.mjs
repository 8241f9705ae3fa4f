// Page benchmark in headless Chromium against a running `viscnn serve` (see benchmarks/page.py):
// first paint of the whole graph, time to draw a query's edges, and frames per second while orbiting
// with 0, 10^4 and 10^5 highlighted edges, side by side in one run.
// usage: node e2e/bench.mjs URL [ORBIT_MS]   (prints one JSON line)
import { launch } from "./browser.mjs";

const [base, orbitArg = "4000"] = process.argv.slice(2);
const orbitMs = Number(orbitArg);
const query = "crit=weight&nrule=fraction&n=0.1&erule=fraction&e=0.05";
const { context, close } = await launch({ width: 1500, height: 1000 });
const errors = [];
let page = context.pages()[0] ?? (await context.newPage());

async function open(max) {
  // A fresh tab each time, so the last page's frames are not still being drawn during this load.
  await page.close();
  page = await context.newPage();
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(`${base}?${query}&max=${max}`);
  await page.waitForSelector("body[data-ready='1']", { timeout: 60000 });
  await page.waitForSelector("#q-took", { timeout: 180000 });
  await page.waitForFunction(() => performance.getEntriesByName("viscnn-edges-frame").length > 0 || window.viscnn.segments() === 0, null, { timeout: 30000 });
  return page.evaluate(() => {
    const at = (name) => performance.getEntriesByName(name)[0]?.startTime ?? null;
    const paint = performance.getEntriesByName("first-contentful-paint")[0]?.startTime ?? null;
    return {
      first_contentful_paint_ms: paint, graph_first_frame_ms: at("viscnn-first-frame"), edges_frame_ms: at("viscnn-edges-frame"),
      draw_query_ms: performance.getEntriesByName("viscnn-draw-query")[0]?.duration ?? null,
      segments: window.viscnn.segments(),
      renderer: (() => {
        const gl = document.querySelector("#graph canvas").getContext("webgl2");
        const info = gl && gl.getExtension("WEBGL_debug_renderer_info");
        return info ? gl.getParameter(info.UNMASKED_RENDERER_WEBGL) : null;
      })(),
    };
  });
}

const runs = [];
for (const max of [0, 10000, 100000]) { // heaviest last: its queued GPU frames would delay the next load
  const loaded = await open(max);
  await page.waitForTimeout(300);
  if (max === 100000) await page.screenshot({ path: process.env.BENCH_SCREENSHOT || "/tmp/viscnn-bench.png" });
  const adaptive = await page.evaluate((ms) => window.viscnn.orbit(ms, true), orbitMs);
  const full = await page.evaluate((ms) => window.viscnn.orbit(ms, false), orbitMs);
  runs.push({ max_edges: max, ...loaded, fps: adaptive.fps, edges_per_frame: adaptive.edges, fps_all_edges: full.fps });
}
await close();
console.log(JSON.stringify({ runs, errors }));
