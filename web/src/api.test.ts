import { afterEach, describe, expect, it, vi } from "vitest";
import { Api, ApiError, describe as describeError, ended, isCancelled, MAX_STREAMS } from "./api";

const json = (status: number, body: unknown) => new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });

describe("API client", () => {
  afterEach(() => vi.unstubAllGlobals());

  it("turns a 4xx into one message from the server's detail", async () => {
    const api = new Api("", async () => json(400, { detail: "unknown image set 'tigr': did you mean 'tiger'?" }));
    await expect(api.sets()).rejects.toThrow("unknown image set 'tigr'");
    await expect(api.sets()).rejects.toMatchObject({ status: 400, unavailable: false });
  });

  it("marks parts the server does not have as unavailable, not as errors", async () => {
    const api = new Api("", async () => json(503, { detail: "feature visualizations are not in this build yet" }));
    const error = await api.examples("features.0", 1).catch((e: ApiError) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).unavailable).toBe(true);
    expect(describeError(error)).toMatch(/^unavailable: feature/);
    const missing = await new Api("", async () => json(404, { detail: "Not Found" })).composition("i1", "a:1").catch((e: ApiError) => e);
    expect(describeError(missing)).toMatch(/no such endpoint/);
  });

  it("says so when the server does not answer", async () => {
    const api = new Api("", async () => {
      throw new TypeError("Failed to fetch");
    });
    await expect(api.model()).rejects.toThrow(/does not answer/);
  });

  it("builds URLs with encoded layer names and query parameters", () => {
    const api = new Api("");
    expect(api.edgeUrl("features.3", 2, 5, "output", "i7")).toBe("/api/edges/features.3/2/5/output.png?image=i7");
    expect(api.renderUrl("name@2", 0, "neuron")).toBe("/api/nodes/name%402/0/render.png?mode=neuron");
    expect(api.url("/api/x", { a: null, b: 0 })).toBe("/api/x?b=0");
  });

  it("returns a cached result at once and follows a job to its result otherwise", async () => {
    vi.stubGlobal("EventSource", undefined); // no event stream: the job is polled
    const states = [
      { id: "q1", state: "running", progress: 0.5, message: "scoring" },
      { id: "q1", state: "done", progress: 1, message: "done", result: { answer: 42 } },
    ];
    const calls: string[] = [];
    const api = new Api("", async (url) => {
      calls.push(String(url));
      return json(200, states.shift());
    });
    expect(await api.follow({ job: null, state: "done", result: { answer: 1 } })).toEqual({ answer: 1 });
    const seen: number[] = [];
    expect(await api.follow({ job: "q1", state: "running", result: null }, (job) => seen.push(job.progress))).toEqual({ answer: 42 });
    expect(seen).toEqual([0.5]);
    expect(calls).toEqual(["/api/jobs/q1", "/api/jobs/q1"]);
  });

  it("reports a failed job with its message", async () => {
    vi.stubGlobal("EventSource", undefined);
    const api = new Api("", async () => json(200, { id: "c1", state: "error", progress: 0.2, message: "", error: "target layer has no path from the input" }));
    await expect(api.follow({ job: "c1", state: "queued", result: null })).rejects.toThrow("no path from the input");
  });
});

describe("event streams", () => {
  afterEach(() => vi.unstubAllGlobals());

  it("keep at most MAX_STREAMS open; more jobs are polled, and a closed stream frees its place", async () => {
    const opened: FakeSource[] = [];
    class FakeSource {
      listeners = new Map<string, (e: MessageEvent) => void>();
      closed = false;
      constructor(readonly url: string) { opened.push(this); }
      addEventListener(name: string, f: (e: MessageEvent) => void) { this.listeners.set(name, f); }
      close() { this.closed = true; }
      end(job: object) { this.listeners.get("done")!({ data: JSON.stringify(job) } as MessageEvent); }
    }
    vi.stubGlobal("EventSource", FakeSource);
    const polled: string[] = [];
    const api = new Api("", async (url) => {
      polled.push(String(url));
      return json(200, { id: String(url).split("/").pop(), state: "done", progress: 1, message: "done", result: 7 });
    });
    const streamed = Array.from({ length: MAX_STREAMS }, (_, k) => api.follow({ job: `r${k}`, state: "queued", result: null }));
    expect(opened.length).toBe(MAX_STREAMS);
    expect(await api.follow({ job: "extra", state: "queued", result: null })).toBe(7); // polled, not streamed
    expect(polled).toEqual(["/api/jobs/extra"]);
    opened[0].end({ id: "r0", state: "done", progress: 1, message: "done", result: 1 });
    expect(await streamed[0]).toBe(1);
    expect(opened[0].closed).toBe(true);
    void api.follow({ job: "next", state: "queued", result: null });
    expect(opened.length).toBe(MAX_STREAMS + 1); // the freed place went to the next job
    expect(opened[MAX_STREAMS].url).toBe("/api/jobs/next/events");
  });
});

describe("job listeners", () => {
  afterEach(() => vi.unstubAllGlobals());

  it("hear every state of a followed job, its end included, and the answer to a cancel", async () => {
    vi.stubGlobal("EventSource", undefined);
    const answers = [
      { id: "c1", kind: "circuit", state: "running", progress: 0.5, message: "step 1" },
      { id: "c1", kind: "circuit", state: "cancelled", progress: 0.5, message: "cancelled" },
      { id: "q2", kind: "query", state: "running", progress: 0.1, message: "cancelling" },
    ];
    const api = new Api("", async () => json(200, answers.shift()));
    const heard: string[] = [];
    const stop = api.onJob((job) => heard.push(`${job.id} ${job.state}`));
    const error = await api.follow({ job: "c1", state: "running", result: null }).catch((e) => e);
    expect(isCancelled(error)).toBe(true);
    await api.cancel("q2");
    expect(heard).toEqual(["c1 running", "c1 cancelled", "q2 running"]);
    stop();
    expect(ended({ state: "cancelled" }) && ended({ state: "done" }) && ended({ state: "error" }) && !ended({ state: "queued" })).toBe(true);
  });

  it("treat a failed job as an error, not a cancel", async () => {
    vi.stubGlobal("EventSource", undefined);
    const api = new Api("", async () => json(200, { id: "c1", state: "error", progress: 0.2, message: "", error: "bad target" }));
    const error = await api.follow({ job: "c1", state: "queued", result: null }).catch((e) => e);
    expect(isCancelled(error)).toBe(false);
  });
});
