import { afterEach, describe, expect, it, vi } from "vitest";
import { Api, ApiError, describe as describeError, ended, isCancelled, type Job } from "./api";
import { FakeSource, json, tick } from "./testing";

const fast = { pollMs: 1, pollMaxMs: 1 };
const job = (id: string, state: Job["state"], progress = 0, extra: Partial<Job> = {}): Job =>
  ({ id, kind: id.split("-")[0], state, progress, message: "", seconds: 0, ...extra });

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
    }, fast);
    expect(await api.follow({ job: null, state: "done", result: { answer: 1 } })).toEqual({ answer: 1 });
    const seen: number[] = [];
    expect(await api.follow({ job: "q1", state: "running", result: null }, (job) => seen.push(job.progress))).toEqual({ answer: 42 });
    expect(seen).toEqual([0.5]);
    expect(calls).toEqual(["/api/jobs/q1", "/api/jobs/q1"]);
  });

  it("reports a failed job with its message", async () => {
    vi.stubGlobal("EventSource", undefined);
    const api = new Api("", async () => json(200, { id: "c1", state: "error", progress: 0.2, message: "", error: "target layer has no path from the input" }), fast);
    await expect(api.follow({ job: "c1", state: "queued", result: null })).rejects.toThrow("no path from the input");
  });
});

describe("the page's event stream", () => {
  afterEach(() => {
    vi.unstubAllGlobals();
    vi.useRealTimers();
  });

  it("follows many jobs through one stream that names them, and fetches a done job's result once", async () => {
    const opened = FakeSource.install();
    const fetched: string[] = [];
    const api = new Api("", async (url) => {
      fetched.push(String(url));
      return json(200, job("render-1", "done", 1, { result: { png: "/p.png" } }));
    });
    const progress: number[] = [];
    const first = api.follow({ job: "render-1", state: "queued", result: null }, (j) => progress.push(j.progress));
    const others = ["render-2", "render-3"].map((id) => api.follow({ job: id, state: "queued", result: null }));
    await tick();
    expect(opened.length).toBe(1); // one stream for all three, opened once
    expect(opened[0].url).toBe(`/api/events?follow=render-1%2Crender-2%2Crender-3&client=${api.client}`);
    const stream = opened[0];
    stream.emit("jobs", [job("render-1", "queued"), job("render-2", "running", 0.1), job("render-3", "queued")]);
    stream.emit("job", job("render-1", "running", 0.5));
    stream.emit("job", job("render-1", "done", 1));
    expect(await first).toEqual({ png: "/p.png" });
    expect(progress).toEqual([0, 0.5]); // its state when the stream opened, then each change
    expect(fetched).toEqual(["/api/jobs/render-1"]); // the result, once; progress came pushed
    stream.emit("job", job("render-2", "error", 0.3, { error: "bad" }));
    stream.emit("job", job("render-3", "cancelled"));
    await expect(others[0]).rejects.toThrow("bad");
    expect(isCancelled(await others[1].catch((e) => e))).toBe(true);
    await tick();
    expect(opened.length).toBe(1); // jobs that ended need no new stream
  });

  it("tells the list listeners the whole list and every pushed change", async () => {
    const opened = FakeSource.install();
    const api = new Api("", async () => json(500, {}));
    const lists: string[][] = [];
    const heard: string[] = [];
    api.onJobs((jobs) => lists.push(jobs.map((j) => j.id)));
    api.onJob((j) => heard.push(`${j.id} ${j.state}`));
    expect(api.connect()).toBe(true);
    await tick();
    expect(opened.map((s) => s.url)).toEqual([`/api/events?client=${api.client}`]);
    opened[0].emit("jobs", [job("query-1", "running"), job("layout-2", "queued")]);
    opened[0].emit("job", job("layout-2", "running"));
    expect(lists).toEqual([["query-1", "layout-2"]]);
    expect(heard).toEqual(["layout-2 running"]);
    expect(api.live).toBe(true);
  });

  it("rejects a job the server no longer knows", async () => {
    const opened = FakeSource.install();
    const api = new Api("", async () => json(500, {}));
    const lost = api.follow({ job: "query-9", state: "queued", result: null });
    await tick();
    opened[0].emit("gone", { ids: ["query-9"] });
    await expect(lost).rejects.toMatchObject({ status: 404 });
  });

  it("lets go of a job whose display has gone: the stream is reopened without it", async () => {
    const opened = FakeSource.install();
    const api = new Api("", async () => json(500, {}), { checkMs: 10 });
    let shown = true;
    const kept = api.follow({ job: "render-1", state: "queued", result: null });
    const gone = api.follow({ job: "render-2", state: "queued", result: null }, () => {}, undefined, () => shown);
    await tick();
    expect(opened[0].follows).toEqual(["render-1", "render-2"]);
    shown = false;
    await expect(gone).rejects.toMatchObject({ status: 499 });
    await tick();
    expect(opened.length).toBe(2);
    expect(opened[0].closed).toBe(true);
    expect(opened[1].follows).toEqual(["render-1"]); // the server may now cancel render-2 if it still waits
    opened[1].emit("job", job("render-1", "cancelled"));
    await expect(kept).rejects.toMatchObject({ status: 499 });
  });

  it("polls instead when the server has no event stream", async () => {
    const opened = FakeSource.install();
    const api = new Api("", async () => json(200, job("query-1", "done", 1, { result: 5 })), fast);
    const answer = api.follow({ job: "query-1", state: "queued", result: null });
    await tick();
    opened[0].readyState = 2; // the server answered 404: EventSource gives up
    opened[0].emit("error");
    expect(await answer).toBe(5);
    expect(api.follow({ job: "query-2", state: "queued", result: null })).resolves.toBe(5);
    await tick();
    expect(opened.length).toBe(1); // no stream again
  });

  it("polls a job at most about once a second, less and less often", async () => {
    vi.stubGlobal("EventSource", undefined);
    vi.useFakeTimers();
    const polls: number[] = [];
    const api = new Api("", async () => {
      polls.push(Date.now());
      return json(200, job("render-1", "running", 0.1));
    });
    const t0 = Date.now();
    void api.follow({ job: "render-1", state: "queued", result: null }).catch(() => undefined);
    await vi.advanceTimersByTimeAsync(30_000);
    const gaps = polls.map((t, k) => t - (k ? polls[k - 1] : t0));
    expect(gaps[0]).toBeGreaterThanOrEqual(1000);
    expect(gaps.every((gap, k) => k === 0 || gap >= gaps[k - 1])).toBe(true);
    expect(Math.max(...gaps)).toBe(5000);
    expect(polls.length).toBeLessThan(12); // 30 s: not the 100 a 300 ms poll would make
  });

  it("keeps the server's Retry-After on a full queue", async () => {
    const api = new Api("", async () => json(429, { detail: "64 render jobs are already waiting" }, { "retry-after": "5" }));
    await expect(api.renderNode("a", 1, "channel")).rejects.toMatchObject({ status: 429, retryAfter: 5 });
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
    const api = new Api("", async () => json(200, answers.shift()), fast);
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
    const api = new Api("", async () => json(200, { id: "c1", state: "error", progress: 0.2, message: "", error: "bad target" }), fast);
    const error = await api.follow({ job: "c1", state: "queued", result: null }).catch((e) => e);
    expect(isCancelled(error)).toBe(false);
  });
});
