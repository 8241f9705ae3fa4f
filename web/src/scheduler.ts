/**
 * The page's side of a queue that follows attention: each panel on screen asks for work with its own
 * priority, and when it closes (another node is clicked, the edge panel is cleared, a newer analysis takes the
 * output area) the page lets go of the jobs it asked for, so the server cancels those nobody else holds at once.
 *
 * Priorities (lower runs first, the server's scale; see docs/api.md): the query the user ran 0; the focused
 * node's dataset examples and render 1 (the server runs examples first at equal priority); analyses and
 * circuits the user asked for 1; the edge panel's render 2; the node's incoming-edge source renders 3 and up,
 * in their rank order, and only those scrolled into view (or the top few). Among equals the panel opened last
 * is a hair more urgent (a millionth per panel opened), so the node just clicked overtakes the one left behind
 * even while that one's render is running (until the page lets go of it, a moment later).
 */
import { ended, type Api, type Attention, type Job } from "./api";

export const PRIORITY = { query: 0, node: 1, analysis: 1, circuit: 1, edge: 2, inputs: 3 } as const;
/** Incoming-edge renders started without being scrolled into view: the strongest few. */
export const TOP_FEW = 3;

/** One panel's requests: their attention, and the jobs they made (let go of when the panel closes). */
export class Panel {
  readonly jobs = new Set<string>();
  private gone = false;

  constructor(readonly name: string, readonly priority: number, private readonly owner: Scheduler, private readonly recency = 0,
    /** This showing of the panel, e.g. "node-17": the server keeps what another showing asked for too. */
    readonly id = name) {}

  /** The attention of a request from this panel; `extra` lowers its urgency (e.g. 2.01 for an input's render). */
  attention(extra = 0): Attention {
    return { panel: this.name, priority: Math.round((this.priority + extra - this.recency) * 1e6) / 1e6, hold: this.id };
  }

  /** Records a job this panel asked for; a panel already closed lets go of it at once. */
  hold(id: string | null | undefined): void {
    if (!id) return;
    if (this.gone) this.owner.letGo(this, [id]);
    else this.jobs.add(id);
  }

  /** The job ended (or was let go): nothing left to release. */
  forget(id: string): void {
    this.jobs.delete(id);
  }

  get left(): boolean {
    return this.gone;
  }

  /** The panel closed: its jobs are let go of (unless a panel still open holds them too). */
  leave(): void {
    if (this.gone) return;
    this.gone = true;
    this.owner.letGo(this, [...this.jobs]);
    this.jobs.clear();
  }
}

export interface SchedulerOptions {
  /** How long a let-go job waits before the server is told, so a panel opened right after can claim it, in ms. */
  delayMs?: number;
  /** How long at most the release waits for the page's requests still in flight, in ms. */
  maxWaitMs?: number;
}

/** The open panels, one per name, and the jobs let go of, released in batches. */
export class Scheduler {
  private panels = new Map<string, Panel>();
  private pending = new Map<string, Set<string>>(); // hold -> job ids let go of
  private timer: ReturnType<typeof setTimeout> | null = null;
  private since = 0;
  private opened = 0;
  private readonly options: Required<SchedulerOptions>;
  /** What the last release answered (for tests and the e2e walk). */
  released: string[] = [];

  constructor(private readonly api: Pick<Api, "release" | "releaseOnExit" | "onJob" | "inflight">, options: SchedulerOptions = {}) {
    this.options = { delayMs: 400, maxWaitMs: 5000, ...options };
    api.onJob((job: Job) => {
      if (ended(job)) for (const panel of this.panels.values()) panel.forget(job.id);
    });
    if (typeof window !== "undefined") window.addEventListener("pagehide", () => this.exit());
  }

  /** The page goes away (closed, reloaded, left): every job it holds is let go of at once. */
  exit(): void {
    const ids = new Set([...this.pending.values()].flatMap((set) => [...set]));
    for (const panel of this.panels.values()) for (const id of panel.jobs) ids.add(id);
    this.pending.clear();
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.api.releaseOnExit([...ids]);
  }

  /** A new panel named `name`; the one open under that name before is left. */
  open(name: string, priority: number): Panel {
    this.panels.get(name)?.leave();
    this.opened = Math.min(this.opened + 1, 9999); // the latest a hair more urgent among equals
    const panel = new Panel(name, priority, this, this.opened * 1e-6, `${name}-${this.opened}`);
    this.panels.set(name, panel);
    return panel;
  }

  /** Closes the panel named `name`, if one is open. */
  leave(name: string): void {
    this.panels.get(name)?.leave();
    this.panels.delete(name);
  }

  current(name: string): Panel | null {
    return this.panels.get(name) ?? null;
  }

  /** True while an open panel holds the job. */
  holds(id: string): boolean {
    for (const panel of this.panels.values()) if (!panel.left && panel.jobs.has(id)) return true;
    return false;
  }

  letGo(panel: Panel, ids: string[]): void {
    if (!ids.length) return;
    const set = this.pending.get(panel.id) ?? new Set<string>();
    for (const id of ids) set.add(id);
    this.pending.set(panel.id, set);
    if (this.timer === null) {
      this.since = Date.now();
      this.timer = setTimeout(() => this.flush(), this.options.delayMs);
    }
  }

  /** Tells the server, once the page's requests in flight have their answers (a panel just opened may claim a job). */
  private flush(): void {
    this.timer = null;
    if (this.api.inflight > 0 && Date.now() - this.since < this.options.maxWaitMs) {
      this.timer = setTimeout(() => this.flush(), 100);
      return;
    }
    const pending = [...this.pending];
    this.pending.clear();
    this.released = [];
    for (const [hold, set] of pending) {
      const ids = [...set].filter((id) => !this.holds(id));
      if (!ids.length) continue;
      this.released.push(...ids);
      this.api.release(ids, hold).catch(() => undefined); // an old server without release: the orphans' grace cancels them
    }
  }
}

/**
 * Calls `start` once `host` is scrolled into view (or at once when `eager`, or where the browser cannot tell);
 * never for a panel that has closed by then.
 */
export function whenShown(host: HTMLElement, start: () => void, eager: boolean, panel?: Panel | null): void {
  if (eager || typeof IntersectionObserver === "undefined") {
    start();
    return;
  }
  const observer = new IntersectionObserver((entries) => {
    if (panel?.left || !host.isConnected && entries.every((e) => !e.isIntersecting)) {
      if (panel?.left) observer.disconnect();
      return;
    }
    if (entries.some((e) => e.isIntersecting)) {
      observer.disconnect();
      start();
    }
  }, { rootMargin: "80px" });
  // observed once attached: the rows are built before their table is put on the page
  setTimeout(() => (panel?.left ? undefined : observer.observe(host)), 0);
}
