/** Typed client for the viscnn server (docs/api.md). Every error becomes an ApiError with one message. */

export interface Source { layer: string; channels: number[] }
export interface LayerInfo {
  name: string; kind: string; depth: number; in_channels: number; out_channels: number; groups: number;
  kernel_size: number[]; output_shape?: number[];
  receptive_field?: { size: number[]; stride: number[]; offset: number[]; whole_image: boolean };
  sources: Source[];
}
export interface ModelInfo {
  name: string; fingerprint: string; input_shape: number[]; num_nodes: number; num_edges: number;
  classes: string[] | null; criteria: string[]; methods: string[]; default_target: string; layers: LayerInfo[];
}
export interface LayoutInfo {
  kind: string; kinds: string[];
  layers: Record<string, { depth: number; positions: [number, number][] }>;
}
export interface SetInfo { name: string; count: number }
export interface ImageInfo { id: string; set: string; label: number; label_name: string | null; name: string }
export interface EdgeBlock { out: number[]; in: number[]; score: number[]; sign: number[] }
export interface QueryResult {
  key: string; seconds: number; computed: string[]; cached: string[]; images: string; target: string;
  criterion: string; n_images: number; nodes: Record<string, number[]>; kept: Record<string, number[]>;
  edges: Record<string, EdgeBlock>; num_edges: number; num_edges_total: number;
  /** The sets scored on a sample: images scored of the images in the set. */
  sampled?: Record<string, { images: number; of: number }>;
}
export interface QueryRequest {
  images: string; target: string; criterion: string; node_fraction?: number | null; node_cumulative?: number | null;
  edge_fraction?: number | null; edge_cumulative?: number | null; max_edges: number;
  /** At most this many images of each set (a fixed choice); 0: all; null/absent: the server's default. */
  sample?: number | null;
  /** false: answer only from what the server has computed (a 404 otherwise), so asking starts nothing. */
  start?: boolean;
}
export interface Job {
  id: string; kind: string; state: "queued" | "running" | "done" | "error" | "cancelled"; progress: number;
  message: string; seconds: number; result?: unknown; error?: string | null;
  /** What the job does, e.g. "learned circuit of features.8:7 over overall". */
  description?: string;
  /** Lower runs first; the panel that asked for it. */
  priority?: number; panel?: string;
  /** Its steps: `done` of `total` `unit` ("steps", "images", "circuits"), and the seconds left (null: not known yet). */
  done?: number | null; total?: number | null; unit?: string; eta?: number | null;
  /** Started, but waiting while more urgent work runs. */
  paused?: boolean;
  /** When it was made, started and finished (seconds since 1970; null: not yet). */
  created?: number; started?: number | null; finished?: number | null;
}
/**
 * What a request that may queue work says about it: the panel that asks, how urgent it is (lower first), and
 * which showing of the panel (`hold`: a panel shown again is another hold, so letting go of the old one's work
 * keeps what the new one asked for again).
 */
export interface Attention { panel: string; priority: number; hold?: string }
export interface JobAnswer<T> { job: string | null; state: string; result: T | null }
export interface NodeRef { layer: string; channel: number }
export interface IncomingEdge {
  layer: string; out: number; in: number; sources: NodeRef[]; score: number | null; weight_norm: number; sign: number;
}
export interface NodeInfo {
  layer: string; channel: number; depth: number; kind: string; map_size: number[]; score: number | null;
  receptive_field?: LayerInfo["receptive_field"]; incoming: IncomingEdge[];
}
export interface Activation {
  image: string; layer: string; channel: number; height: number; width: number; min: number; max: number;
  values: number[][]; png?: string;
}
export interface Box { top: number; left: number; bottom: number; right: number; image_size?: number[] }
export interface EdgeInfo { layer: string; out: number; in: number; kernel: number[][]; sign: number; sources: NodeRef[] }
export interface CircuitEdge { layer: string; out: number; in: number; score: number; sign?: number }
export interface Circuit {
  format: string; model: string; target: { text: string; layer?: string; channel?: number };
  method: string; keep: number; kept_fraction: number; upstream_edges: number;
  nodes: { layer: string; channel: number; score: number }[]; edges: CircuitEdge[]; key?: string; seconds?: number;
}
export interface Evaluation {
  methods: string[]; fractions: number[]; targets: string[]; held_out_images: number;
  summary: Record<string, { median_r: Record<string, number | null>; auc: number | null }>;
}
export interface CompositionNode {
  unit: string; layer: string; channel: number; y: number; x: number; activation: number; contribution: number;
  /** URL of a picture: the input image and d(parent unit)/d(input) through this node, fields boxed. */
  saliency?: string;
  children: CompositionNode[];
}
export interface Composition { image: string; root: string; tree: CompositionNode; paths: string[][] }

export class ApiError extends Error {
  /** `retryAfter`: seconds the server asked to wait before trying again (a 429: its queue is full). */
  constructor(readonly status: number, message: string, readonly retryAfter: number | null = null) {
    super(message);
  }
  /** A part of the server that this build does not have yet, or a route it does not know. */
  get unavailable(): boolean {
    return this.status === 503 || this.status === 501 || (this.status === 404 && this.message === "Not Found");
  }
}

/** True for a job the user (or the page) cancelled: not a failure. */
export function isCancelled(error: unknown): boolean {
  return (error instanceof ApiError && error.status === 499) || (error instanceof Error && error.name === "AbortError");
}

/** A job that will not change any more. */
export function ended(job: Pick<Job, "state">): boolean {
  return job.state === "done" || job.state === "error" || job.state === "cancelled";
}

/** The message to show for an error of any kind. */
export function describe(error: unknown): string {
  if (error instanceof ApiError) {
    return error.unavailable ? `unavailable: ${error.message === "Not Found" ? "this server has no such endpoint yet" : error.message}` : error.message;
  }
  if (error instanceof Error) return error.name === "AbortError" ? "cancelled" : error.message;
  return String(error);
}

const seg = encodeURIComponent;

async function errorOf(response: Response): Promise<ApiError> {
  let message = `${response.status} ${response.statusText}`.trim();
  try {
    const body = await response.json();
    if (body && typeof body.detail === "string") message = body.detail;
    else if (body && Array.isArray(body.detail)) message = body.detail.map((d: { msg?: string }) => d.msg ?? String(d)).join("; ");
  } catch {
    // not JSON: keep the status line
  }
  const retry = Number(response.headers.get("retry-after") ?? NaN);
  return new ApiError(response.status, message, Number.isFinite(retry) ? retry : null);
}

/** A render's answer: the objective and where its PNG is (once rendered). */
export interface RenderResult { objective: string; png: string; value?: number; seconds?: number }

export interface ApiOptions {
  /** Polling (only when the event stream is unavailable): the first wait and the longest, in ms. */
  pollMs?: number;
  pollMaxMs?: number;
  /** How often jobs whose display has gone are let go (so the server may cancel them), in ms. */
  checkMs?: number;
}

/** One caller waiting for a job's end. */
interface Waiter {
  id: string;
  onProgress: (job: Job) => void;
  resolve: (job: Job) => void;
  reject: (error: unknown) => void;
  alive: () => boolean;
}

/** A random id for this page: the server lets this page let go of the jobs it asked for (and only those). */
function newClientId(): string {
  const bytes = new Uint8Array(9);
  globalThis.crypto?.getRandomValues?.(bytes);
  return Array.from(bytes, (b) => (b || Math.floor(Math.random() * 256)).toString(16).padStart(2, "0")).join("");
}

export class Api {
  /** This page's id, sent with requests that may queue work and with its event stream. */
  readonly client = newClientId();
  /** Requests with an `Attention` still waiting for their answer (a job id the page will hold). */
  inflight = 0;
  private listeners = new Set<(job: Job) => void>();
  private listListeners = new Set<(jobs: Job[]) => void>();
  private waiters = new Map<string, Set<Waiter>>();
  private source: EventSource | null = null;
  private sourceFollows: string | null = null;
  private resync: ReturnType<typeof setTimeout> | null = null;
  private checker: ReturnType<typeof setInterval> | null = null;
  private wanted = false;
  private unfollowed = false;
  /** True once the event stream answered and until it fails: jobs are then pushed, not polled. */
  live = false;
  private broken = false;
  private readonly options: Required<ApiOptions>;

  constructor(readonly base = "", private readonly fetcher: typeof fetch = (...a) => fetch(...a), options: ApiOptions = {}) {
    this.options = { pollMs: 1000, pollMaxMs: 5000, checkMs: 2000, ...options };
  }

  /**
   * Calls `listener` with every state of a job this client learns of: the progress of a followed job, its end
   * (done, error or cancelled) as soon as it is seen, every change the event stream pushes, and the answer to
   * a cancel. Returns the unsubscribe.
   */
  onJob(listener: (job: Job) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Calls `listener` with the server's whole job list each time the event stream (re)opens. */
  onJobs(listener: (jobs: Job[]) => void): () => void {
    this.listListeners.add(listener);
    return () => this.listListeners.delete(listener);
  }

  private tell(job: Job): void {
    for (const listener of this.listeners) {
      try {
        listener(job);
      } catch (error) {
        console.error(error); // one broken listener must not stop a job from being followed
      }
    }
  }

  /**
   * Keeps the page's one event stream (/api/events) open: every job's changes are pushed through it, and
   * the jobs the page waits for are named in it, so the server keeps them (it cancels a queued job nobody
   * follows). Returns false when this browser or server has no event stream (then jobs are polled).
   */
  connect(): boolean {
    this.wanted = true;
    this.sync();
    return this.streams();
  }

  private streams(): boolean {
    return typeof EventSource !== "undefined" && !this.broken;
  }

  /**
   * Reopens the stream (at most once per tick) when it must name a job it does not, or must stop naming one
   * the page let go of before it ended; a job that ended may stay named until the next reopening.
   */
  private sync(): void {
    if (this.resync !== null || !this.streams()) return;
    this.resync = setTimeout(() => {
      this.resync = null;
      const ids = [...this.waiters.keys()].sort();
      if (!this.wanted && !ids.length) {
        this.close();
        return;
      }
      const named = new Set(this.sourceFollows?.split(",") ?? []);
      if (this.source && !this.unfollowed && ids.every((id) => named.has(id))) return;
      this.unfollowed = false;
      this.open(ids.join(","));
    }, 0);
  }

  private close(): void {
    this.source?.close();
    this.source = null;
    this.sourceFollows = null;
    this.live = false;
  }

  private open(ids: string): void {
    this.close();
    const source = new EventSource(this.url("/api/events", { follow: ids || null, client: this.client }));
    this.source = source;
    this.sourceFollows = ids;
    const mine = (f: (event: MessageEvent) => void) => (event: Event) => {
      if (this.source === source) f(event as MessageEvent); // a replaced stream's late events are ignored
    };
    source.addEventListener("jobs", mine((event) => {
      this.live = true;
      const jobs = JSON.parse(event.data) as Job[];
      for (const listener of this.listListeners) listener(jobs);
      for (const job of jobs) if (this.waiters.has(job.id)) this.seen(job);
    }));
    source.addEventListener("job", mine((event) => {
      const job = JSON.parse(event.data) as Job;
      this.tell(job);
      this.seen(job);
    }));
    source.addEventListener("gone", mine((event) => {
      for (const id of (JSON.parse(event.data) as { ids: string[] }).ids) {
        this.settle(id, (w) => w.reject(new ApiError(404, `unknown job '${id}' (finished jobs are forgotten after a while)`)));
      }
    }));
    source.addEventListener("error", mine(() => {
      this.live = false;
      // CONNECTING: the browser reconnects by itself (and the server sends the whole list again). CLOSED: this
      // server has no event stream (or refused one): follow by polling from now on.
      if (source.readyState === 2) {
        this.close();
        this.broken = true;
        for (const set of this.waiters.values()) for (const waiter of set) void this.poll(waiter);
      }
    }));
  }

  /** A followed job's state from the stream: progress, or its end (a done job's result is fetched once). */
  private seen(job: Job): void {
    if (!this.waiters.has(job.id)) return;
    if (!ended(job)) {
      for (const waiter of this.waiters.get(job.id) ?? []) waiter.onProgress(job);
      return;
    }
    if (job.state !== "done") {
      this.settle(job.id, (w) => w.resolve(job));
      return;
    }
    const waiters = this.take(job.id);
    this.job(job.id).then((full) => waiters.forEach((w) => w.resolve(full)), (error) => waiters.forEach((w) => w.reject(error)));
  }

  private take(id: string): Waiter[] {
    const waiters = [...(this.waiters.get(id) ?? [])];
    this.waiters.delete(id);
    this.sync();
    return waiters;
  }

  private settle(id: string, how: (waiter: Waiter) => void): void {
    for (const waiter of this.take(id)) how(waiter);
  }

  /** Stops waiting for a job that has not ended (its caller went away). */
  private drop(waiter: Waiter): void {
    const set = this.waiters.get(waiter.id);
    if (!set?.delete(waiter)) return;
    if (!set.size) {
      this.waiters.delete(waiter.id);
      this.unfollowed = true;
    }
    this.sync();
  }

  url(path: string, params?: Record<string, string | number | null | undefined>): string {
    const query = new URLSearchParams();
    for (const [k, v] of Object.entries(params ?? {})) if (v !== null && v !== undefined) query.set(k, String(v));
    const text = query.toString();
    return `${this.base}${path}${text ? `?${text}` : ""}`;
  }

  /** The headers that tell the server which panel asks and how urgently (none without `attention`). */
  headers(attention?: Attention | null): Record<string, string> {
    if (!attention) return {};
    return { "X-Viscnn-Client": this.client, "X-Viscnn-Panel": attention.panel, "X-Viscnn-Priority": String(attention.priority),
      ...(attention.hold ? { "X-Viscnn-Hold": attention.hold } : {}) };
  }

  async json<T>(path: string, init?: RequestInit & { params?: Record<string, string | number | null | undefined>; attention?: Attention | null }): Promise<T> {
    let response: Response;
    const { attention, params, ...rest } = init ?? {};
    const request: RequestInit = attention ? { ...rest, headers: { ...(rest.headers as Record<string, string> | undefined), ...this.headers(attention) } } : rest;
    if (attention) this.inflight++;
    try {
      response = await this.fetcher(this.url(path, params), init ? request : undefined);
    } catch (error) {
      if (error instanceof Error && error.name === "AbortError") throw error;
      throw new ApiError(0, `the server does not answer (${describe(error)})`);
    } finally {
      if (attention) this.inflight--;
    }
    if (!response.ok) throw await errorOf(response);
    return (await response.json()) as T;
  }

  post<T>(path: string, body: unknown, signal?: AbortSignal, attention?: Attention | null): Promise<T> {
    return this.json<T>(path, { method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json" }, signal, attention });
  }

  /** The same as `release`, sent as the page goes away (a beacon: it is sent even as the page unloads). */
  releaseOnExit(ids: string[]): boolean {
    if (!ids.length || typeof navigator === "undefined" || !navigator.sendBeacon) return false;
    const body = new Blob([JSON.stringify({ ids, client: this.client })], { type: "application/json" }); // every hold
    return navigator.sendBeacon(this.url("/api/release"), body);
  }

  /** Lets go of jobs a closed panel (`hold`; absent: every panel) asked for: the server cancels those nobody else holds, at once. */
  async release(ids: string[], hold?: string): Promise<Job[]> {
    if (!ids.length) return [];
    const jobs = await this.post<Job[]>("/api/release", { ids, client: this.client, ...(hold ? { hold } : {}) });
    for (const job of jobs) this.tell(job);
    return jobs;
  }

  model() { return this.json<ModelInfo>("/api/model"); }
  /** A layout, or (for a projection not prepared yet) a job that prepares it. */
  layout(kind: string) { return this.json<LayoutInfo | JobAnswer<LayoutInfo>>("/api/layout", { params: { kind } }); }
  sets() { return this.json<SetInfo[]>("/api/sets"); }
  images(set: string, limit = 200, offset = 0) { return this.json<ImageInfo[]>("/api/images", { params: { set, limit, offset: offset || null } }); }
  /** One image's name and label (ids `i<k>` are the k-th image of `overall`; uploads are looked up in theirs); null if unknown. */
  async imageInfo(id: string): Promise<ImageInfo | null> {
    const overall = /^i(\d+)$/.exec(id);
    const list = overall ? await this.images("overall", 1, Number(overall[1])) : id.startsWith("u") ? await this.images("uploads", 10000) : [];
    return list.find((info) => info.id === id) ?? null;
  }
  imageUrl(id: string) { return this.url(`/api/images/${seg(id)}.png`); }
  upload(file: File) {
    const form = new FormData();
    form.append("file", file);
    return this.json<ImageInfo>("/api/images", { method: "POST", body: form });
  }
  query(body: QueryRequest, signal?: AbortSignal, attention?: Attention | null) { return this.post<JobAnswer<QueryResult>>("/api/query", body, signal, attention); }
  jobs() { return this.json<Job[]>("/api/jobs"); }
  job(id: string) { return this.json<Job>(`/api/jobs/${seg(id)}`); }
  /** Asks the server to cancel a job; the answer (still "running" while it stops, or already "cancelled") is told to the listeners. */
  async cancel(id: string) {
    const job = await this.json<Job>(`/api/jobs/${seg(id)}`, { method: "DELETE" });
    this.tell(job);
    return job;
  }
  node(layer: string, channel: number, query?: string | null, top = 20) {
    return this.json<NodeInfo>(`/api/nodes/${seg(layer)}/${channel}`, { params: { query, top } });
  }
  /** Where a node's render is read (404 until it is rendered): `renderNode` queues it. */
  renderUrl(layer: string, channel: number, mode: string) { return this.url(`/api/nodes/${seg(layer)}/${channel}/render.png`, { mode }); }
  /** Queues a node's render (a POST: a GET never makes the server work); answers at once when it is stored. */
  renderNode(layer: string, channel: number, mode: string, attention?: Attention | null) {
    return this.json<JobAnswer<RenderResult>>(`/api/nodes/${seg(layer)}/${channel}/render`, { method: "POST", params: { mode }, attention });
  }
  renderEdge(layer: string, out: number, inp: number, attention?: Attention | null) {
    return this.json<JobAnswer<RenderResult>>(`/api/edges/${seg(layer)}/${out}/${inp}/render`, { method: "POST", attention });
  }
  examplesUrl(layer: string, channel: number) { return this.url(`/api/nodes/${seg(layer)}/${channel}/examples.png`); }
  examples(layer: string, channel: number, attention?: Attention | null) { return this.json<unknown>(`/api/nodes/${seg(layer)}/${channel}/examples`, { attention }); }
  activation(image: string, layer: string, channel: number) { return this.json<Activation>("/api/activation", { params: { image, layer, channel } }); }
  receptiveField(layer: string, y: number, x: number) { return this.json<Box>("/api/receptive_field", { params: { layer, y, x } }); }
  edge(layer: string, out: number, inp: number) { return this.json<EdgeInfo>(`/api/edges/${seg(layer)}/${out}/${inp}`); }
  edgeUrl(layer: string, out: number, inp: number, kind: "kernel" | "input" | "output" | "render", image?: string | null) {
    return this.url(`/api/edges/${seg(layer)}/${out}/${inp}/${kind}.png`, { image });
  }
  circuit(body: { images: string; target: string; method: string; keep: number }, signal?: AbortSignal, attention?: Attention | null) {
    return this.post<JobAnswer<Circuit>>("/api/circuit", body, signal, attention);
  }
  faithfulness(body: { images: string; target: string; methods: string[]; fractions: number[] }, attention?: Attention | null) {
    return this.post<JobAnswer<Evaluation>>("/api/faithfulness", body, undefined, attention);
  }
  composition(image: string, unit: string, attention?: Attention | null) {
    return this.json<JobAnswer<Composition>>("/api/composition", { params: { image, unit }, attention });
  }

  /**
   * The result of a job answer: at once when the server had it cached, otherwise when the job ends.
   * Progress is pushed by the event stream; where there is none, the job is polled, at most once a second.
   * `signal` aborting cancels the job; `alive` turning false (its display has gone) only stops following it
   * (the server then cancels it if it is still queued and nobody else follows it).
   */
  async follow<T>(answer: JobAnswer<T>, onProgress: (job: Job) => void = () => {}, signal?: AbortSignal,
    alive: () => boolean = () => true): Promise<T> {
    if (answer.job === null) {
      if (answer.result === null) throw new ApiError(500, `the server answered state ${answer.state} without a result`);
      return answer.result;
    }
    const id = answer.job;
    const final = await this.watch(id, onProgress, signal, alive);
    if (final.state === "done") return final.result as T;
    if (final.state === "cancelled") throw new ApiError(499, "cancelled");
    throw new ApiError(400, final.error || final.message || `job ${id} failed`);
  }

  /** The job's final state. Every state on the way goes to `onProgress` and the listeners, the final one to the listeners. */
  private watch(id: string, onProgress: (job: Job) => void, signal: AbortSignal | undefined, alive: () => boolean): Promise<Job> {
    return new Promise<Job>((resolve, reject) => {
      const waiter: Waiter = {
        id, alive, resolve, reject,
        onProgress: (job) => {
          if (!signal?.aborted) onProgress(job); // a caller that stopped waiting hears no more
        },
      };
      const abort = () => {
        // The caller stops waiting at once; the listeners still hear the job's end from the stream.
        this.drop(waiter);
        this.cancel(id).catch(() => undefined);
        reject(new ApiError(499, "cancelled"));
      };
      if (signal?.aborted) return abort();
      signal?.addEventListener("abort", abort, { once: true });
      if (!this.waiters.has(id)) this.waiters.set(id, new Set());
      this.waiters.get(id)!.add(waiter);
      this.watchAlive();
      if (this.streams()) this.sync();
      else void this.poll(waiter);
    });
  }

  /** Every `checkMs`, lets go of waiters whose display has gone (while there are any). */
  private watchAlive(): void {
    if (this.checker !== null) return;
    this.checker = setInterval(() => {
      for (const set of [...this.waiters.values()]) {
        for (const waiter of [...set]) {
          if (!waiter.alive()) {
            this.drop(waiter);
            waiter.reject(new ApiError(499, "no longer shown"));
          }
        }
      }
      if (!this.waiters.size && this.checker !== null) {
        clearInterval(this.checker);
        this.checker = null;
      }
    }, this.options.checkMs);
  }

  /** Polls one waiter's job with a growing wait (pollMs, x1.5, at most pollMaxMs) until it ends or the waiter goes. */
  private async poll(waiter: Waiter): Promise<void> {
    let wait = this.options.pollMs;
    const waiting = () => this.waiters.get(waiter.id)?.has(waiter) ?? false;
    while (waiting()) {
      await new Promise((r) => setTimeout(r, wait));
      wait = Math.min(this.options.pollMaxMs, wait * 1.5);
      if (!waiting()) return;
      let job: Job;
      try {
        job = await this.job(waiter.id);
      } catch (error) {
        if (waiting()) {
          this.drop(waiter);
          waiter.reject(error);
        }
        return;
      }
      if (!waiting()) return;
      this.tell(job);
      if (ended(job)) {
        this.drop(waiter);
        waiter.resolve(job);
        return;
      }
      waiter.onProgress(job);
    }
  }
}
