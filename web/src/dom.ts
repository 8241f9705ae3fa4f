/** Tiny DOM helpers: element creation, status messages, images that may be unavailable or still computing. */
import { Api, ApiError, describe, isCancelled, type Job, type JobAnswer, type RenderResult } from "./api";
import { progressText, stepsText } from "./progress";
import type { Panel } from "./scheduler";

type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | EventListener | null | undefined>;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = String(value);
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/** "cancelled" is neutral: the user asked for it, nothing went wrong. */
export type Status = "info" | "busy" | "error" | "unavailable" | "cancelled";

/** A one-line status: what is missing, computing, or went wrong (never a stack trace). */
export function status(text: string, kind: Status = "info"): HTMLElement {
  return h("div", { class: `status status-${kind}` }, text);
}

export function statusOf(error: unknown): HTMLElement {
  if (isCancelled(error)) return status("cancelled", "cancelled");
  const unavailable = error instanceof ApiError && error.unavailable;
  return status(describe(error), unavailable ? "unavailable" : "error");
}

/** What a progress line shows of a job (its steps and time left when the server counts them). */
export type JobProgress = Pick<Job, "id" | "progress" | "message"> & Partial<Job>;

/**
 * Shows a job's progress in `host`: a bar, the job's message and a cancel button that cancels this job
 * (`cancel(job.id)`), never another. Later states of the same job update the line in place, so the button
 * is not replaced under the pointer; another job's state replaces the line.
 */
export function progressLine(host: HTMLElement, job: JobProgress, cancel: (id: string) => Promise<unknown>): HTMLElement {
  let line = host.firstElementChild as HTMLElement | null;
  if (!line || !line.classList.contains("job-line") || line.dataset.job !== job.id || host.childElementCount !== 1) {
    const button = h("button", { class: "small", title: `cancel ${job.id}` }, "cancel");
    button.addEventListener("click", () => {
      button.disabled = true;
      button.textContent = "cancelling…";
      cancel(job.id).catch(() => {
        button.disabled = false;
        button.textContent = "cancel";
      });
    });
    line = h("span", { class: "job-line", "data-job": job.id }, h("progress", { max: 1 }), h("span", { class: "muted job-message" }),
      h("span", { class: "job-steps" }), button);
    host.replaceChildren(line);
  }
  line.querySelector("progress")!.value = job.progress || 0;
  const message = line.querySelector<HTMLElement>(".job-message")!;
  if (message.textContent !== (job.message ?? "")) message.textContent = job.message ?? "";
  const steps = line.querySelector<HTMLElement>(".job-steps");
  const where = stepsText({ state: "running", ...job });
  if (steps && steps.textContent !== where) steps.textContent = where;
  return line;
}

/** A job's progress as a status block: a bar with "what · 120/256 steps · 35 s left" under it. */
export function progressStatus(host: HTMLElement, job: Job, compact = false): void {
  if (compact) {
    const text = progressText(job);
    const mark = host.firstElementChild as HTMLElement | null;
    if (mark?.classList.contains("na") && mark.dataset.job === job.id) mark.title = text;
    else host.replaceChildren(h("span", { class: "na muted", title: text, "data-job": job.id }, job.state === "queued" ? "…" : "⋯"));
    return;
  }
  let block = host.firstElementChild as HTMLElement | null;
  if (!block?.classList.contains("progress-status") || block.dataset.job !== job.id) {
    block = h("div", { class: "status status-busy progress-status", "data-job": job.id }, h("progress", { max: 1 }), h("span", { class: "job-steps" }));
    host.replaceChildren(block);
  }
  block.querySelector("progress")!.value = job.progress || 0;
  block.querySelector<HTMLElement>(".job-steps")!.textContent = progressText(job);
}

/** Shows why a picture is missing: the server's reason, or (`compact`, in a table of thumbnails) one word with the reason on hover. */
function showFailure(host: HTMLElement, error: unknown, compact: boolean): void {
  const line = statusOf(error);
  const word = line.classList.contains("status-unavailable") ? "n/a" : line.classList.contains("status-cancelled") ? "cancelled" : "error";
  host.replaceChildren(compact ? h("span", { class: `na ${line.className}`, title: line.textContent ?? "" }, word) : line);
}

/** True while `host` is shown, or has not been shown yet (a row built before its table is attached). */
function shown(host: HTMLElement): () => boolean {
  let seen = false;
  return () => {
    if (host.isConnected) seen = true;
    return host.isConnected || !seen;
  };
}

/** `work()`, again after the server's Retry-After while its queue is full (429) and `host` is shown. */
async function whenRoom<T>(host: HTMLElement, work: () => Promise<T>, alive: () => boolean): Promise<T> {
  for (;;) {
    try {
      return await work();
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 429) || !alive()) throw error;
      host.replaceChildren(status("the server is busy: waiting for room in its queue…", "busy"));
      await new Promise((r) => setTimeout(r, 1000 * Math.max(1, error.retryAfter ?? 5)));
    }
  }
}

/**
 * Fills `host` with the PNG at `url`. A 202 with a job (dataset examples being computed) shows its progress
 * and retries when the job ends; 503/404 shows "unavailable" or the error with the server's reason.
 */
export async function image(api: Api, host: HTMLElement, url: string, alt: string, className = "", compact = false, onJob?: (job: Job) => void,
  panel?: Panel | null): Promise<HTMLImageElement | null> {
  const fail = (error: unknown) => showFailure(host, error, compact);
  const alive = shown(host);
  host.replaceChildren(compact ? h("span", { class: "na muted" }, "…") : status("loading…", "busy"));
  for (let attempt = 0; attempt < 2; attempt++) {
    let response: Response;
    try {
      response = await fetch(url, panel ? { headers: api.headers(panel.attention()) } : undefined);
    } catch (error) {
      fail(new ApiError(0, `the server does not answer (${describe(error)})`));
      return null;
    }
    const type = response.headers.get("content-type") ?? "";
    if (response.ok && type.startsWith("image/")) {
      const img = h("img", { src: URL.createObjectURL(await response.blob()), alt, class: className, title: alt });
      host.replaceChildren(img);
      return img;
    }
    if (response.ok && type.includes("json")) {
      const answer = (await response.json()) as JobAnswer<unknown>;
      if (answer.job) {
        panel?.hold(answer.job);
        host.replaceChildren(status("computing…", "busy"));
        try {
          await api.follow(answer, (job) => {
            progressStatus(host, job, compact);
            onJob?.(job);
          }, undefined, alive);
        } catch (error) {
          fail(error);
          return null;
        }
        continue;
      }
    }
    let detail = `${response.status} ${response.statusText}`;
    try {
      const body = await response.json();
      if (typeof body?.detail === "string") detail = body.detail;
    } catch {
      // keep the status line
    }
    fail(new ApiError(response.status, detail));
    return null;
  }
  host.replaceChildren(status("not computed yet", "unavailable"));
  return null;
}

/**
 * Fills `host` with a feature visualization: queues its render (`queue`, a POST; at once when stored),
 * follows the job while `host` is shown, then shows the PNG at `url`. A full queue (429) is waited out.
 */
export async function rendered(api: Api, host: HTMLElement, queue: () => Promise<JobAnswer<RenderResult>>, url: string, alt: string,
  className = "", compact = false, panel?: Panel | null): Promise<HTMLImageElement | null> {
  const visible = shown(host);
  const alive = () => visible() && !panel?.left;
  host.replaceChildren(compact ? h("span", { class: "na muted" }, "…") : status("loading…", "busy"));
  try {
    const answer = await whenRoom(host, queue, alive);
    if (answer.job) {
      panel?.hold(answer.job);
      host.replaceChildren(compact ? h("span", { class: "na muted", title: "rendering" }, "…") : status("rendering…", "busy"));
      await api.follow(answer, (job) => progressStatus(host, job, compact), undefined, alive);
    }
  } catch (error) {
    showFailure(host, error, compact);
    if (isCancelled(error) && host.isConnected && !panel?.left) retryButton(host, () => void rendered(api, host, queue, url, alt, className, compact, panel), compact);
    return null;
  }
  return image(api, host, url, alt, className, compact);
}

/** After a cancel (the user's, or another page's): render again only when the user asks. */
function retryButton(host: HTMLElement, again: () => void, compact: boolean): void {
  const button = h("button", { class: "small retry", title: "queue it again" }, compact ? "↻" : "render again");
  button.addEventListener("click", (e) => {
    e.stopPropagation();
    again();
  });
  host.append(button);
}

/** A labelled figure block: caption above, content below. */
export function figure(caption: string, content: HTMLElement, extra?: HTMLElement): HTMLElement {
  return h("figure", { class: "fig" }, h("figcaption", {}, caption, extra ?? null), content);
}
