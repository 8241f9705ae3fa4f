import { describe, expect, it } from "vitest";
import type { Job } from "./api";
import { etaText, progressText, shortSteps, stepsText } from "./progress";

const job = (extra: Partial<Job>): Job => ({ id: "render-1", kind: "render", state: "running", progress: 0, message: "rendering a:1", seconds: 0, ...extra });

describe("progress in words", () => {
  it("says the time left in seconds, minutes or hours", () => {
    expect(etaText(0.4)).toBe("under a second");
    expect(etaText(35.2)).toBe("35 s");
    expect(etaText(200)).toBe("3 min 20 s");
    expect(etaText(120)).toBe("2 min");
    expect(etaText(3900)).toBe("1 h 5 min");
  });

  it("says the steps done of all and the time left, or that it is waiting or paused", () => {
    expect(stepsText(job({ done: 120, total: 256, unit: "steps", eta: 35 }))).toBe("120/256 steps · 35 s left");
    expect(stepsText(job({ done: 0, total: 500, unit: "images", eta: null }))).toBe("0/500 images · estimating the time left");
    expect(stepsText(job({ done: 3, total: 12, unit: "circuits", paused: true }))).toBe("paused at 3/12 circuits while more urgent work runs");
    expect(stepsText(job({ state: "queued" }))).toBe("waiting for more urgent work");
    expect(stepsText(job({}))).toBe(""); // a job that does not count its steps: its message says it all
    expect(progressText(job({ done: 1000, total: 10000, unit: "images", eta: 60 }))).toBe("rendering a:1 · 1,000/10,000 images · 1 min left");
    expect(progressText(job({ state: "queued", description: "render a:1" }))).toBe("waiting: render a:1");
    expect(shortSteps(job({ done: 120, total: 256, eta: 35 }))).toBe("120/256 · 35 s");
    expect(shortSteps(job({ done: 1, total: 2, paused: true }))).toBe("paused");
    expect(shortSteps(job({ state: "queued", done: 1, total: 2 }))).toBe("");
  });
});
