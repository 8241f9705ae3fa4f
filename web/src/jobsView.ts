/** Progress of the server's background jobs (queries, renders, circuits), with cancel buttons. */
import type { Api, Job } from "./api";
import { h } from "./dom";

export class JobsView {
  private known = new Map<string, Job>();
  private timer: number | undefined;

  constructor(private readonly host: HTMLElement, private readonly api: Api) {}

  /** Polls /api/jobs while the page is visible; stops quietly if the server has no such endpoint. */
  start(interval = 1500): void {
    const tick = async () => {
      if (document.visibilityState === "visible") {
        try {
          for (const job of await this.api.jobs()) this.known.set(job.id, job);
          this.draw();
        } catch {
          return; // no job list on this server: progress still shows where a job is followed
        }
      }
      this.timer = window.setTimeout(tick, interval);
    };
    void tick();
  }

  stop(): void {
    window.clearTimeout(this.timer);
  }

  /** A job followed by a panel reports here too. */
  update(job: Job): void {
    this.known.set(job.id, job);
    this.draw();
  }

  private draw(): void {
    const running = [...this.known.values()].filter((j) => j.state === "running" || j.state === "queued");
    for (const [id, job] of this.known) if (job.state !== "running" && job.state !== "queued") this.known.delete(id);
    this.host.replaceChildren(...running.map((job) => h("div", { class: "job", "data-job": job.id },
      h("span", {}, job.kind),
      h("progress", { max: 1, value: job.progress || 0 }),
      h("span", { class: "muted" }, job.message ?? ""),
      h("button", { class: "small", title: "cancel", onclick: () => void this.api.cancel(job.id).catch(() => undefined) }, "×"))));
    this.host.hidden = running.length === 0;
  }
}
