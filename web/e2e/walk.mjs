// What every end-to-end walk shares: its arguments (URL, screenshot folder), the browser and its page, the
// page's errors, and steps under one deadline: no wait has a budget of its own, each polls for its condition
// until the walk's deadline (VISCNN_E2E_SECONDS, default 600 s), so a loaded machine makes a walk slower, not
// failed. A failed step saves a screenshot, prints what `onFailure` adds, and exits non-zero.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { launch } from "./browser.mjs";

export const expect = (ok, message) => {
  if (!ok) throw new Error(message);
};

/** Starts the walk named `name` (its usage line and failure screenshot `failureShot`). */
export async function startWalk(name, failureShot) {
  const [url, shots = "screenshots"] = process.argv.slice(2);
  if (!url) {
    console.error(`usage: node e2e/${name}.mjs URL SCREENSHOT_DIR`);
    process.exit(2);
  }
  mkdirSync(shots, { recursive: true });
  const { context, close } = await launch();
  const page = context.pages()[0] ?? (await context.newPage());
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => m.type() === "error" && !/Failed to load resource/.test(m.text()) && problems.push(`console: ${m.text()}`));
  const t0 = Date.now();
  const deadline = t0 + Number(process.env.VISCNN_E2E_SECONDS || 600) * 1000;
  const walk = {
    url, shots, context, page, problems, steps: [], t0, deadline, close,
    /** What a failed step prints besides its error (the page's last events, the server's jobs...). */
    onFailure: async () => {},
    async step(stepName, fn) {
      const t = Date.now();
      context.setDefaultTimeout(Math.max(1000, deadline - t));
      try {
        await fn();
        walk.steps.push({ name: stepName, ms: Date.now() - t });
      } catch (error) {
        await page.screenshot({ path: join(shots, failureShot), fullPage: true }).catch(() => {});
        await walk.onFailure().catch((e) => console.error(`(and the failure's report failed: ${e})`));
        console.error(`e2e step '${stepName}' failed: ${error.message}`);
        await close();
        process.exit(1);
      }
    },
    /** Polls `condition` (async, in Node) until it holds or the walk's deadline passes. */
    async until(condition, what, every = 100) {
      for (;;) {
        if (await condition()) return;
        if (Date.now() > deadline) throw new Error(`${what}: not reached before the walk's deadline`);
        await new Promise((r) => setTimeout(r, every));
      }
    },
  };
  return walk;
}
