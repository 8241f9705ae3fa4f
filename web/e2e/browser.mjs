// Launches Debian's Chromium through playwright-core (never a downloaded browser), headless, with a fresh profile.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

export const CHROMIUM = process.env.VISCNN_CHROMIUM || "/usr/bin/chromium";
// Without the background-networking flags Chromium keeps dialling Google's hosts, which this network refuses.
export const FLAGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync",
];

export async function launch(viewport = { width: 1500, height: 1250 }) {
  const profile = mkdtempSync(join(tmpdir(), "viscnn-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, args: FLAGS, viewport, deviceScaleFactor: 1,
  });
  const close = async () => {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  };
  return { context, close };
}
