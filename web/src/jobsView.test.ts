import { afterEach, describe, expect, it, vi } from "vitest";
import { Api, type Job } from "./api";
import { JobList, JobsView } from "./jobsView";
import { FakeSource, json, tick } from "./testing";

const job = (id: string, state: Job["state"], progress = 0, message = ""): Job => ({ id, kind: id.split("-")[0], state, progress, message, seconds: 0 });
const rows = (host: HTMLElement) => [...host.querySelectorAll<HTMLElement>(".job")].map((row) => row.dataset.job);

describe("the list of running jobs", () => {
  it("keeps running and queued jobs in the order first seen, and drops one when it ends", () => {
    const list = new JobList();
    list.see(job("query-1", "running", 0.2));
    list.see(job("circuit-2", "queued"));
    list.see(job("query-1", "running", 0.6));
    expect(list.running().map((j) => [j.id, j.progress])).toEqual([["query-1", 0.6], ["circuit-2", 0]]);
    list.see(job("query-1", "done", 1));
    expect(list.running().map((j) => j.id)).toEqual(["circuit-2"]);
  });

  it("lists running jobs first, each group in the server's order", () => {
    const list = new JobList();
    list.see(job("query-9", "queued")); // followed by the page, so seen before the poll lists the others
    list.merge([job("circuit-7", "running", 0.1), job("circuit-8", "queued"), job("query-9", "queued")]);
    list.see(job("render-10", "running")); // not listed yet: after the listed ones
    expect(list.running().map((j) => j.id)).toEqual(["circuit-7", "render-10", "circuit-8", "query-9"]);
    list.see(job("circuit-7", "done"));
    list.see(job("circuit-8", "running"));
    expect(list.running().map((j) => j.id)).toEqual(["circuit-8", "render-10", "query-9"]);
  });

  it("never brings back a job it saw end, whatever a late poll or progress event says", () => {
    const list = new JobList();
    list.see(job("circuit-2", "running", 0.5));
    list.see(job("circuit-2", "cancelled"));
    list.merge([job("circuit-2", "running", 0.5)]); // a poll answer sent before the cancel
    list.see(job("circuit-2", "running", 0.6));
    expect(list.running()).toEqual([]);
  });

  it("takes the server's list, and forgets ended jobs once the server does", () => {
    const list = new JobList();
    list.see(job("render-3", "done"));
    list.merge([job("render-3", "done"), job("query-4", "running")]);
    expect(list.running().map((j) => j.id)).toEqual(["query-4"]);
    list.merge([job("query-4", "running")]); // render-3 forgotten by the server: so forgotten here too
    list.merge([job("query-4", "done")]);
    expect(list.running()).toEqual([]);
  });
});

describe("the jobs view", () => {
  afterEach(() => vi.unstubAllGlobals());

  it("shows each job with its progress, updates rows in place, and counts them", () => {
    const host = document.createElement("div");
    const view = new JobsView(host, new Api("", async () => json(200, [])));
    expect(host.querySelector(".jobs-count")?.textContent).toBe("no jobs");
    view.update(job("query-1", "running", 0.25, "scoring sandal"));
    view.update(job("circuit-2", "queued"));
    const first = host.querySelector<HTMLElement>(".job[data-job='query-1']")!;
    view.update(job("query-1", "running", 0.75, "scoring overall"));
    expect(host.querySelector(".job[data-job='query-1']")).toBe(first); // the same row (and button), not a new one
    expect(first.querySelector("progress")!.value).toBe(0.75);
    expect(first.querySelector(".job-message")!.textContent).toBe("scoring overall");
    expect(rows(host)).toEqual(["query-1", "circuit-2"]);
    view.update({ ...job("circuit-2", "queued"), description: "learned circuit of a:1 over overall" });
    expect(host.querySelector(".job[data-job='circuit-2'] .job-message")!.textContent).toBe("waiting: learned circuit of a:1 over overall");
    expect(host.querySelector(".jobs-count")?.textContent).toBe("2 jobs ▾");
    expect(host.dataset.count).toBe("2");
    view.update(job("query-1", "done", 1));
    expect(rows(host)).toEqual(["circuit-2"]);
  });

  it("opens from its count into a list of every job with what it does, its steps, time left and a cancel button", async () => {
    const calls: string[] = [];
    const api = new Api("", async (url, init) => {
      calls.push(`${init?.method ?? "GET"} ${url}`);
      return json(200, job(String(url).split("/").pop()!, "cancelled"));
    });
    const host = document.createElement("div");
    const view = new JobsView(host, api);
    view.update({ ...job("render-1", "running", 0.47, "rendering a:1"), description: "render a:1", panel: "node", done: 120, total: 256, unit: "steps", eta: 35 });
    view.update({ ...job("render-2", "running", 0.1, "rendering a:2"), paused: true, done: 30, total: 256, unit: "steps" });
    view.update({ ...job("render-3", "queued"), description: "render b:7" });
    expect(view.menu.hidden).toBe(true);
    host.querySelector<HTMLButtonElement>("#jobs-toggle")!.click();
    expect(view.menu.hidden).toBe(false);
    const full = [...view.menu.querySelectorAll<HTMLElement>(".job")];
    expect(full.map((row) => row.dataset.job)).toEqual(["render-1", "render-2", "render-3"]);
    expect(full[0].querySelector(".job-about")!.textContent).toBe("render a:1 · for the node panel");
    expect(full[0].querySelector(".job-steps")!.textContent).toBe("120/256 steps · 35 s left");
    expect(full[1].classList.contains("paused") && full[1].querySelector(".job-steps")!.textContent).toBe("paused at 30/256 steps while more urgent work runs");
    expect(full[2].querySelector(".job-message")!.textContent).toBe("waiting: render b:7");
    // the strip in the header says the steps too
    expect(host.querySelector(".job[data-job='render-1'] .job-steps")!.textContent).toBe("120/256 · 35 s");
    view.menu.querySelector<HTMLButtonElement>("#jobs-cancel-waiting")!.click();
    full[1].querySelector<HTMLButtonElement>("button")!.click();
    await vi.waitFor(() => expect([...view.menu.querySelectorAll<HTMLElement>(".job")].map((row) => row.dataset.job)).toEqual(["render-1"]));
    expect(calls.sort()).toEqual(["DELETE /api/jobs/render-2", "DELETE /api/jobs/render-3"]);
    host.querySelector<HTMLButtonElement>("#jobs-toggle")!.click();
    expect(view.menu.hidden).toBe(true);
    view.menu.remove();
  });

  it("cancels the job of the row whose button is clicked", async () => {
    const calls: string[] = [];
    const api = new Api("", async (url, init) => {
      calls.push(`${init?.method ?? "GET"} ${url}`);
      return json(200, job("circuit-2", "cancelled"));
    });
    const host = document.createElement("div");
    const view = new JobsView(host, api);
    view.update(job("query-1", "running", 0.5));
    view.update(job("circuit-2", "running", 0.1));
    host.querySelector<HTMLButtonElement>(".job[data-job='circuit-2'] button")!.click();
    await vi.waitFor(() => expect(rows(host)).toEqual(["query-1"])); // the cancel's answer ends the row at once
    expect(calls).toEqual(["DELETE /api/jobs/circuit-2"]);
  });

  it("drops a followed job the moment the page's follow() sees it end, not at the next poll", async () => {
    vi.stubGlobal("EventSource", undefined); // followed by polling the job
    const states = [job("query-1", "running", 0.5, "scoring"), { ...job("query-1", "done", 1), result: { key: "k" } }];
    const api = new Api("", async () => json(200, states.shift()), { pollMs: 1 });
    const host = document.createElement("div");
    const view = new JobsView(host, api);
    const seen: string[][] = [];
    const result = await api.follow({ job: "query-1", state: "running", result: null }, () => seen.push(rows(host) as string[]));
    expect(seen).toEqual([["query-1"]]); // shown while it ran
    expect(result).toEqual({ key: "k" });
    expect(rows(host)).toEqual([]); // and gone when follow() returned
    view.update(job("query-1", "running", 0.5)); // a stale report cannot bring it back
    expect(rows(host)).toEqual([]);
  });

  it("shows what the event stream pushes, and polls /api/jobs only while there is no stream", async () => {
    const opened = FakeSource.install();
    const calls: string[] = [];
    const api = new Api("", async (url) => {
      calls.push(String(url));
      return json(200, [job("query-1", "running", 0.5)]);
    });
    const host = document.createElement("div");
    const view = new JobsView(host, api);
    view.start(20);
    await tick();
    opened[0].emit("jobs", [job("query-1", "running", 0.1), job("layout-2", "queued")]);
    expect(rows(host)).toEqual(["query-1", "layout-2"]);
    opened[0].emit("job", job("query-1", "done", 1));
    opened[0].emit("job", job("layout-2", "running", 0.3));
    expect(rows(host)).toEqual(["layout-2"]);
    await new Promise((r) => setTimeout(r, 100));
    expect(calls).toEqual([]); // pushed: nothing polled
    opened[0].readyState = 2; // the stream is gone for good: the view polls again
    opened[0].emit("error");
    await vi.waitFor(() => expect(calls.length).toBeGreaterThan(0));
    expect(calls[0]).toBe("/api/jobs");
    view.stop();
  });
});
