/**
 * Progress of the server's background jobs (queries, renders, circuits), with cancel buttons.
 *
 * The view is a fixed-size strip in the header (a list two rows high that scrolls, and a count), so jobs that
 * come and go never move the page below it. The count is a button: it opens a list of every job (over the page,
 * so nothing below moves), each with what it does, its steps, the time left and a cancel button. It learns of
 * jobs from the page's `Api`: every change the event stream pushes (and the whole list each time the stream
 * opens), every state of a job the page follows, and a poll of /api/jobs only while there is no event stream.
 */
import { ended, type Api, type Job } from "./api";
import { h } from "./dom";
import { progressText, shortSteps, stepsText } from "./progress";
import "./attention.css";

/**
 * The jobs still running or queued: the running ones first, each group in the order the server made them
 * (as its list has them; a job it did not list yet comes last). A job once seen to end stays ended: a poll
 * answer sent before the end (or a late progress event) cannot bring its row back.
 */
export class JobList {
  private live = new Map<string, Job>();
  private over = new Set<string>();

  /** One job's state, from a progress event, the end of a followed job, a cancel or a poll. */
  see(job: Job): void {
    if (this.over.has(job.id)) return;
    if (ended(job)) {
      this.live.delete(job.id);
      this.over.add(job.id);
    } else {
      this.live.set(job.id, job);
    }
  }

  /** The server's whole job list. Ended jobs it no longer lists are forgotten (it never lists them again). */
  merge(jobs: Job[]): void {
    for (const job of jobs) this.see(job);
    const ordered = new Map<string, Job>();
    for (const job of jobs) if (this.live.has(job.id)) ordered.set(job.id, this.live.get(job.id)!);
    for (const [id, job] of this.live) if (!ordered.has(id)) ordered.set(id, job);
    this.live = ordered;
    const listed = new Set(jobs.map((j) => j.id));
    for (const id of this.over) if (!listed.has(id)) this.over.delete(id);
  }

  running(): Job[] {
    const jobs = [...this.live.values()];
    return [...jobs.filter((j) => j.state === "running"), ...jobs.filter((j) => j.state !== "running")];
  }

  has(id: string): boolean {
    return this.live.has(id);
  }
}

export class JobsView {
  readonly list = new JobList();
  private timer: number | undefined;
  private count: HTMLButtonElement;
  private rows: HTMLElement;
  /** The list the count opens (on the page's body: the header clips what overflows it). */
  readonly menu: HTMLElement;
  private menuRows: HTMLElement;

  constructor(private readonly host: HTMLElement, private readonly api: Api) {
    this.count = h("button", { class: "jobs-count", id: "jobs-toggle", title: "every job, with cancel buttons", "aria-expanded": "false" });
    this.count.addEventListener("click", () => this.toggle());
    this.rows = h("div", { class: "jobs-list", role: "list" });
    this.menuRows = h("div", { class: "jobs-menu-rows", role: "list" });
    const cancelWaiting = h("button", { class: "small", id: "jobs-cancel-waiting" }, "cancel all waiting");
    cancelWaiting.addEventListener("click", () => {
      for (const job of this.list.running()) if (job.state === "queued") this.api.cancel(job.id).catch(() => undefined);
    });
    this.menu = h("div", { class: "jobs-menu", id: "jobs-menu", hidden: true, role: "dialog", "aria-label": "jobs" },
      h("div", { class: "jobs-menu-head" }, h("strong", {}, "Jobs"), h("span", { class: "muted" }, "most urgent run first; a closed panel's work is cancelled"),
        cancelWaiting, h("button", { class: "small", title: "close", onclick: () => this.toggle(false) }, "×")),
      this.menuRows);
    host.replaceChildren(this.rows, this.count);
    (host.ownerDocument?.body ?? document.body).append(this.menu);
    api.onJob((job) => this.update(job));
    this.draw();
  }

  /** Opens or closes the list of every job. */
  toggle(open = this.menu.hidden): void {
    this.menu.hidden = !open;
    this.count.setAttribute("aria-expanded", String(open));
    this.count.classList.toggle("on", open);
    if (open) this.draw();
  }

  /**
   * Hears every job's changes from the page's event stream; only while that stream is not open, polls
   * /api/jobs every `interval` ms when the page is visible (stops quietly if the server has no such endpoint).
   */
  start(interval = 3000): void {
    this.api.onJobs((jobs) => {
      this.list.merge(jobs);
      this.draw();
    });
    const pushed = this.api.connect();
    const tick = async () => {
      if (!this.api.live && document.visibilityState === "visible") {
        try {
          this.list.merge(await this.api.jobs());
          this.draw();
        } catch {
          return; // no job list on this server: progress still shows where a job is followed
        }
      }
      this.timer = window.setTimeout(tick, interval);
    };
    if (pushed) this.timer = window.setTimeout(tick, interval); // the stream's first list comes first
    else void tick();
  }

  stop(): void {
    window.clearTimeout(this.timer);
  }

  /** A job's new state (the page's Api reports every one it sees here). */
  update(job: Job): void {
    this.list.see(job);
    this.draw();
  }

  /** Updates the rows in place (a row being clicked is never replaced under the pointer). */
  private draw(): void {
    const running = this.list.running();
    this.drawRows(this.rows, running, false);
    if (!this.menu.hidden) this.drawRows(this.menuRows, running, true);
    if (!this.menu.hidden && !running.length) this.menuRows.replaceChildren(h("div", { class: "muted jobs-none" }, "no jobs"));
    this.count.textContent = running.length ? `${running.length} job${running.length === 1 ? "" : "s"} ▾` : "no jobs";
    this.count.classList.toggle("busy", running.length > 0);
    this.host.dataset.count = String(running.length);
  }

  private drawRows(host: HTMLElement, running: Job[], full: boolean): void {
    const rows = new Map([...host.querySelectorAll<HTMLElement>(":scope > .job")].map((row) => [row.dataset.job!, row]));
    for (const child of [...host.children]) if (!(child as HTMLElement).dataset.job) child.remove();
    for (const [id, row] of rows) if (!this.list.has(id)) row.remove();
    running.forEach((job, i) => {
      const row = rows.get(job.id) ?? this.row(job, full);
      if (host.children[i] !== row) host.insertBefore(row, host.children[i] ?? null);
      row.querySelector("progress")!.value = job.progress || 0;
      row.classList.toggle("paused", !!job.paused);
      row.classList.toggle("queued", job.state === "queued");
      const message = row.querySelector<HTMLElement>(".job-message")!;
      // a queued job's message is only "waiting for the worker": say what it will do instead
      const text = job.state === "queued" ? `waiting: ${job.description || job.kind}` : job.message ?? "";
      if (message.textContent !== text) message.textContent = text;
      const steps = row.querySelector<HTMLElement>(".job-steps")!;
      const where = full ? stepsText(job) : shortSteps(job);
      if (steps.textContent !== where) steps.textContent = where;
      if (full) {
        const about = row.querySelector<HTMLElement>(".job-about")!;
        const said = `${job.description || job.id}${job.panel ? ` · for the ${job.panel} panel` : ""}`;
        if (about.textContent !== said) about.textContent = said;
      }
      row.title = `${job.description || job.id}: ${job.state === "queued" ? "waiting for more urgent work" : progressText(job)}`;
    });
  }

  private row(job: Job, full: boolean): HTMLElement {
    const cancel = h("button", { class: "small", title: "cancel", "aria-label": `cancel ${job.id}` }, "×");
    cancel.addEventListener("click", () => {
      cancel.disabled = true;
      this.api.cancel(job.id).catch(() => (cancel.disabled = false));
    });
    if (full) {
      return h("div", { class: "job job-full", role: "listitem", "data-job": job.id },
        h("span", { class: "job-kind" }, job.kind),
        h("div", { class: "job-text" }, h("div", { class: "job-about" }), h("div", { class: "job-message muted" })),
        h("div", { class: "job-meter" }, h("progress", { max: 1, value: job.progress || 0 }), h("div", { class: "job-steps muted" })),
        cancel);
    }
    return h("div", { class: "job", role: "listitem", "data-job": job.id },
      h("span", { class: "job-kind" }, job.kind),
      h("progress", { max: 1, value: job.progress || 0 }),
      h("span", { class: "job-steps muted" }),
      h("span", { class: "job-message muted" }),
      cancel);
  }
}
