import { afterEach, describe, expect, it, vi } from "vitest";
import { Api, type Job } from "./api";
import { PRIORITY, Scheduler, TOP_FEW, whenShown } from "./scheduler";
import { json } from "./testing";

/** An Api whose release calls are recorded (and answered as cancelled). */
function recording() {
  const released: string[][] = [];
  const holds: string[] = [];
  const calls: { url: string; headers: Record<string, string> }[] = [];
  const api = new Api("", async (url, init) => {
    calls.push({ url: String(url), headers: (init?.headers ?? {}) as Record<string, string> });
    if (String(url) === "/api/release") {
      const body = JSON.parse(String(init?.body)) as { ids: string[]; client: string; hold?: string };
      released.push(body.ids);
      holds.push(body.hold ?? "");
      return json(200, body.ids.map((id) => ({ id, kind: "render", state: "cancelled", progress: 0, message: "", seconds: 0 })));
    }
    return json(202, { job: "render-9", state: "queued", result: null });
  });
  return { api, released, calls, holds };
}

describe("the page's scheduler", () => {
  afterEach(() => vi.useRealTimers());

  it("names the panel and its priority in the requests it makes, with the page's id", async () => {
    const { api, calls } = recording();
    const scheduler = new Scheduler(api);
    const panel = scheduler.open("node", PRIORITY.node);
    expect(panel.attention()).toEqual({ panel: "node", priority: 0.999999, hold: "node-1" }); // the first panel opened
    expect(panel.attention(2 + 3 / 100)).toEqual({ panel: "node", priority: 3.029999, hold: "node-1" });
    const next = scheduler.open("node", PRIORITY.node);
    expect(next.attention().priority).toBeLessThan(panel.attention().priority); // the node clicked last goes first
    expect(next.attention().priority).toBeGreaterThan(PRIORITY.query);
    await api.renderNode("features.3", 5, "channel", next.attention());
    expect(calls[0].headers).toMatchObject({ "X-Viscnn-Panel": "node", "X-Viscnn-Priority": "0.999998", "X-Viscnn-Client": api.client,
      "X-Viscnn-Hold": "node-2" }); // another showing of the panel: the server keeps what it asks for again
    await api.renderNode("features.3", 5, "channel");
    expect(calls[1].headers["X-Viscnn-Panel"]).toBeUndefined(); // no attention: the kind's default on the server
    expect(PRIORITY.query).toBeLessThan(PRIORITY.node);
    expect(PRIORITY.node).toBeLessThan(PRIORITY.edge);
    expect(PRIORITY.edge).toBeLessThan(PRIORITY.inputs);
  });

  it("lets go of a closed panel's jobs in one batch, except those a panel opened since holds", async () => {
    vi.useFakeTimers();
    const { api, released, holds } = recording();
    const scheduler = new Scheduler(api, { delayMs: 300 });
    const first = scheduler.open("node", PRIORITY.node);
    first.hold("render-1");
    first.hold("examples-2");
    first.hold("render-3");
    const second = scheduler.open("node", PRIORITY.node); // another node clicked: the first panel is left
    expect(first.left).toBe(true);
    second.hold("examples-2"); // the same work for the new node (one examples job serves every node)
    await vi.advanceTimersByTimeAsync(299);
    expect(released).toEqual([]);
    await vi.advanceTimersByTimeAsync(10);
    expect(released).toEqual([["render-1", "render-3"]]);
    expect(holds).toEqual([first.attention().hold]); // the first showing lets go: the second keeps examples-2 on the server too
    expect(scheduler.released).toEqual(["render-1", "render-3"]);
    scheduler.leave("node");
    await vi.advanceTimersByTimeAsync(400);
    expect(released).toEqual([["render-1", "render-3"], ["examples-2"]]);
  });

  it("waits for the page's requests in flight before releasing (a new panel may be about to claim a job)", async () => {
    vi.useFakeTimers();
    const { api, released } = recording();
    const scheduler = new Scheduler(api, { delayMs: 100, maxWaitMs: 10000 });
    scheduler.open("edge", PRIORITY.edge).hold("render-1");
    const next = scheduler.open("edge", PRIORITY.edge);
    api.inflight = 1; // the new panel's POST has not been answered yet
    await vi.advanceTimersByTimeAsync(1000);
    expect(released).toEqual([]);
    next.hold("render-1"); // its answer: the same job
    api.inflight = 0;
    await vi.advanceTimersByTimeAsync(200);
    expect(released).toEqual([]); // still wanted: nothing to release
  });

  it("lets go at once of a job that a closed panel learns of late, and forgets jobs that ended", async () => {
    vi.useFakeTimers();
    const { api, released } = recording();
    const scheduler = new Scheduler(api, { delayMs: 50 });
    const panel = scheduler.open("analysis", PRIORITY.analysis);
    panel.hold("faithfulness-4");
    (api as unknown as { tell(job: Job): void }).tell({ id: "faithfulness-4", kind: "faithfulness", state: "done", progress: 1, message: "", seconds: 1 });
    expect(panel.jobs.size).toBe(0);
    panel.leave();
    panel.hold("composition-5"); // its answer came after the panel closed
    await vi.advanceTimersByTimeAsync(100);
    expect(released).toEqual([["composition-5"]]);
  });

  it("lets go of every job it holds when the page goes away, by a beacon", () => {
    const { api } = recording();
    const sent: { url: string; body: Blob }[] = [];
    vi.stubGlobal("navigator", { sendBeacon: (url: string, body: Blob) => sent.push({ url, body }) > 0 });
    const scheduler = new Scheduler(api, { delayMs: 10000 });
    scheduler.open("node", PRIORITY.node).hold("render-1");
    scheduler.open("edge", PRIORITY.edge).hold("render-2");
    scheduler.open("node", PRIORITY.node); // render-1 waits to be released
    window.dispatchEvent(new Event("pagehide"));
    expect(sent.map((s) => s.url)).toContain("/api/release");
    const last = sent[sent.length - 1];
    return last.body.text().then((text) => {
      expect(JSON.parse(text)).toEqual({ ids: ["render-1", "render-2"], client: api.client });
      vi.unstubAllGlobals();
    });
  });

  it("starts the top few incoming renders at once and the rest only when shown", () => {
    const started: number[] = [];
    vi.stubGlobal("IntersectionObserver", class {
      static made: unknown[] = [];
      constructor(readonly callback: IntersectionObserverCallback) {}
      observe() {}
      disconnect() {}
    });
    for (let rank = 0; rank < 6; rank++) whenShown(document.createElement("div"), () => started.push(rank), rank < TOP_FEW);
    expect(started).toEqual([0, 1, 2]);
    vi.unstubAllGlobals();
  });

  it("starts a row once it scrolls into view, never for a panel that has closed", async () => {
    const observers: { callback: IntersectionObserverCallback; observed: Element[] }[] = [];
    vi.stubGlobal("IntersectionObserver", class {
      observed: Element[] = [];
      constructor(readonly callback: IntersectionObserverCallback) {
        observers.push(this);
      }
      observe(el: Element) { this.observed.push(el); }
      disconnect() {}
    });
    const { api } = recording();
    const scheduler = new Scheduler(api);
    const panel = scheduler.open("node", PRIORITY.node);
    const started: string[] = [];
    const row = document.createElement("div");
    document.body.append(row);
    whenShown(row, () => started.push("shown"), false, panel);
    const other = document.createElement("div");
    document.body.append(other);
    whenShown(other, () => started.push("closed"), false, panel);
    await new Promise((r) => setTimeout(r, 5));
    expect(observers.map((o) => o.observed.length)).toEqual([1, 1]);
    observers[0].callback([{ isIntersecting: true } as IntersectionObserverEntry], {} as IntersectionObserver);
    panel.leave();
    observers[1].callback([{ isIntersecting: true } as IntersectionObserverEntry], {} as IntersectionObserver);
    expect(started).toEqual(["shown"]);
    vi.unstubAllGlobals();
  });
});
