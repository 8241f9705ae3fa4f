import { afterEach, describe, expect, it, vi } from "vitest";
import { Api, ApiError } from "./api";
import { image, progressLine, rendered, statusOf } from "./dom";
import { Scheduler } from "./scheduler";
import { json } from "./testing";

const fast = { pollMs: 1, pollMaxMs: 1 };
const png = () => new Response(new Uint8Array([137, 80, 78, 71]), { status: 200, headers: { "content-type": "image/png" } });

describe("images that may be unavailable or still computing", () => {
  afterEach(() => vi.unstubAllGlobals());

  it("follows a job (202: dataset examples being computed) and shows the picture when it is done", async () => {
    vi.stubGlobal("EventSource", undefined);
    const answers = [json(202, { job: "e1", state: "running", result: null }), json(200, { id: "e1", state: "done", progress: 1, message: "", result: null }), png()];
    const fetched: string[] = [];
    vi.stubGlobal("fetch", async (url: string) => {
      fetched.push(String(url));
      return answers.shift();
    });
    const host = document.createElement("div");
    const img = await image(new Api("", undefined, fast), host, "/api/nodes/a/1/examples.png", "examples");
    expect(img).not.toBeNull();
    expect(host.querySelector("img")).toBe(img);
    expect(fetched).toEqual(["/api/nodes/a/1/examples.png", "/api/jobs/e1", "/api/nodes/a/1/examples.png"]);
  });

  it("queues a render with a POST, follows its job, then reads the PNG with a GET", async () => {
    vi.stubGlobal("EventSource", undefined);
    const answers = [json(202, { job: "render-1", state: "queued", result: null }),
      json(200, { id: "render-1", state: "done", progress: 1, message: "", result: { png: "/api/nodes/a/1/render.png" } }), png()];
    const fetched: string[] = [];
    const fetcher = async (url: string | URL | Request, init?: RequestInit) => {
      fetched.push(`${init?.method ?? "GET"} ${url}`);
      return answers.shift()!;
    };
    vi.stubGlobal("fetch", fetcher);
    const api = new Api("", fetcher, fast);
    const host = document.createElement("div");
    const img = await rendered(api, host, () => api.renderNode("a", 1, "channel"), api.renderUrl("a", 1, "channel"), "render");
    expect(img).not.toBeNull();
    expect(fetched).toEqual(["POST /api/nodes/a/1/render?mode=channel", "GET /api/jobs/render-1", "GET /api/nodes/a/1/render.png?mode=channel"]);
  });

  it("shows a render's steps and time left, holds its job for its panel, and after a cancel renders again only on a click", async () => {
    vi.stubGlobal("EventSource", undefined);
    const answers = [json(202, { job: "render-1", state: "queued", result: null }),
      json(200, { id: "render-1", kind: "render", state: "running", progress: 0.47, message: "rendering a:1", done: 120, total: 256, unit: "steps", eta: 35 }),
      json(200, { id: "render-1", kind: "render", state: "cancelled", progress: 0.5, message: "cancelled" }),
      json(202, { job: "render-2", state: "queued", result: null })];
    const fetched: string[] = [];
    const fetcher = async (url: string | URL | Request, init?: RequestInit) => {
      fetched.push(`${init?.method ?? "GET"} ${url} ${(init?.headers as Record<string, string> | undefined)?.["X-Viscnn-Panel"] ?? ""}`.trim());
      return answers.shift() ?? json(200, { id: "render-2", kind: "render", state: "running", progress: 0, message: "" });
    };
    const api = new Api("", fetcher, { pollMs: 20, pollMaxMs: 20 });
    const scheduler = new Scheduler(api);
    const panel = scheduler.open("node", 1);
    const host = document.createElement("div");
    document.body.append(host);
    const seen: string[] = [];
    const watch = setInterval(() => seen.push(host.textContent ?? ""), 5);
    const shown = rendered(api, host, () => api.renderNode("a", 1, "channel", panel.attention()), "/r.png", "render", "render", false, panel);
    await vi.waitFor(() => expect(panel.jobs.has("render-1")).toBe(true));
    expect(await shown).toBeNull();
    clearInterval(watch);
    expect(seen.some((text) => text.includes("rendering a:1 · 120/256 steps · 35 s left"))).toBe(true);
    expect(host.querySelector(".status-cancelled")?.textContent).toBe("cancelled");
    expect(fetched.filter((f) => f.startsWith("POST"))).toEqual(["POST /api/nodes/a/1/render?mode=channel node"]); // not queued again by itself
    host.querySelector<HTMLButtonElement>("button.retry")!.click();
    await vi.waitFor(() => expect(fetched.filter((f) => f.startsWith("POST")).length).toBe(2));
    panel.leave();
    host.remove();
  });

  it("waits out a full queue (429) for the server's Retry-After, then queues the render", async () => {
    vi.stubGlobal("EventSource", undefined);
    vi.useFakeTimers();
    const answers = [json(429, { detail: "64 render jobs are already waiting" }, { "retry-after": "3" }),
      json(200, { job: null, state: "done", result: { png: "/p.png" } }), png()];
    const when: number[] = [];
    const fetcher = async () => {
      when.push(Date.now());
      return answers.shift()!;
    };
    vi.stubGlobal("fetch", fetcher);
    const api = new Api("", fetcher);
    const host = document.createElement("div");
    const shown = rendered(api, host, () => api.renderEdge("a", 1, 0), "/p.png", "edge");
    await vi.advanceTimersByTimeAsync(100);
    expect(host.textContent).toContain("busy");
    await vi.advanceTimersByTimeAsync(3000);
    expect(await shown).not.toBeNull();
    expect(when[1] - when[0]).toBeGreaterThanOrEqual(3000);
    vi.useRealTimers();
  });

  it("shows the server's reason when a part is unavailable, in a word when compact", async () => {
    vi.stubGlobal("fetch", async () => json(503, { detail: "renders need a store (this server runs with --no-cache)" }));
    const host = document.createElement("div");
    expect(await image(new Api(""), host, "/x.png", "x")).toBeNull();
    expect(host.querySelector(".status-unavailable")?.textContent).toContain("renders need a store");
    const small = document.createElement("div");
    await image(new Api(""), small, "/x.png", "x", "", true);
    expect(small.textContent).toBe("n/a");
    expect(small.querySelector("span")?.title).toContain("renders need a store");
  });

  it("reports an error (not 'unavailable') for a bad request, and a server that does not answer", async () => {
    vi.stubGlobal("fetch", async () => json(404, { detail: "unknown image id 'zz'" }));
    const host = document.createElement("div");
    await image(new Api(""), host, "/x.png", "x");
    expect(host.querySelector(".status-error")?.textContent).toBe("unknown image id 'zz'");
    vi.stubGlobal("fetch", async () => {
      throw new TypeError("Failed to fetch");
    });
    await image(new Api(""), host, "/x.png", "x");
    expect(host.textContent).toMatch(/does not answer/);
  });
});

describe("progress lines and cancels", () => {
  it("a progress line's cancel button cancels its own job, and later states update it in place", async () => {
    const cancelled: string[] = [];
    const cancel = async (id: string) => void cancelled.push(id);
    const host = document.createElement("div");
    const line = progressLine(host, { id: "circuit-7", progress: 0.1, message: "extracting" }, cancel);
    const button = line.querySelector("button")!;
    expect(progressLine(host, { id: "circuit-7", progress: 0.4, message: "step 2/5" }, cancel)).toBe(line);
    expect(line.querySelector("button")).toBe(button);
    expect(line.querySelector("progress")!.value).toBe(0.4);
    expect(line.textContent).toContain("step 2/5");
    button.click();
    expect(cancelled).toEqual(["circuit-7"]);
    expect(button.disabled).toBe(true);
    // Another job in the same place gets a line (and a button) of its own.
    const other = progressLine(host, { id: "query-8", progress: 0, message: "waiting" }, cancel);
    expect(other).not.toBe(line);
    expect(host.children.length).toBe(1);
    other.querySelector("button")!.click();
    expect(cancelled).toEqual(["circuit-7", "query-8"]);
  });

  it("shows a cancel as a neutral status, not as an error", () => {
    for (const error of [new ApiError(499, "cancelled"), new DOMException("aborted", "AbortError")]) {
      const line = statusOf(error);
      expect(line.textContent).toBe("cancelled");
      expect(line.className).toBe("status status-cancelled");
    }
    expect(statusOf(new ApiError(400, "no path")).className).toBe("status status-error");
  });

  it("says 'cancelled' for a thumbnail whose render was cancelled", async () => {
    vi.stubGlobal("EventSource", undefined);
    const answers = [json(202, { job: "r2", state: "running", result: null }), json(200, { id: "r2", state: "cancelled", progress: 0.3, message: "cancelled" })];
    vi.stubGlobal("fetch", async () => answers.shift());
    const small = document.createElement("div");
    expect(await image(new Api("", undefined, fast), small, "/x.png", "x", "", true)).toBeNull();
    expect(small.textContent).toBe("cancelled");
    vi.unstubAllGlobals();
  });
});
