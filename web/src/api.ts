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
}
export interface QueryRequest {
  images: string; target: string; criterion: string; node_fraction?: number | null; node_cumulative?: number | null;
  edge_fraction?: number | null; edge_cumulative?: number | null; max_edges: number;
}
export interface Job {
  id: string; kind: string; state: "queued" | "running" | "done" | "error" | "cancelled"; progress: number;
  message: string; seconds: number; result?: unknown; error?: string | null;
  /** What the job does, e.g. "learned circuit of features.8:7 over overall". */
  description?: string;
}
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
  constructor(readonly status: number, message: string) {
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
  return new ApiError(response.status, message);
}

/**
 * Event streams the page keeps open at once; further jobs are polled. A browser opens at most six
 * HTTP/1.1 connections to a host, and an event stream holds one for its job's whole life: a row of
 * queued renders, each followed by a stream, would otherwise hold every connection, and a cancel or a
 * new query from the page would wait in the browser until one of those jobs ended.
 */
export const MAX_STREAMS = 2;

export class Api {
  private listeners = new Set<(job: Job) => void>();
  private streams = 0;

  constructor(readonly base = "", private readonly fetcher: typeof fetch = (...a) => fetch(...a)) {}

  /**
   * Calls `listener` with every state of a job this client learns of: the progress of a followed job, its end
   * (done, error or cancelled) as soon as it is seen, and the answer to a cancel. Returns the unsubscribe.
   */
  onJob(listener: (job: Job) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
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

  url(path: string, params?: Record<string, string | number | null | undefined>): string {
    const query = new URLSearchParams();
    for (const [k, v] of Object.entries(params ?? {})) if (v !== null && v !== undefined) query.set(k, String(v));
    const text = query.toString();
    return `${this.base}${path}${text ? `?${text}` : ""}`;
  }

  async json<T>(path: string, init?: RequestInit & { params?: Record<string, string | number | null | undefined> }): Promise<T> {
    let response: Response;
    try {
      response = await this.fetcher(this.url(path, init?.params), init);
    } catch (error) {
      if (error instanceof Error && error.name === "AbortError") throw error;
      throw new ApiError(0, `the server does not answer (${describe(error)})`);
    }
    if (!response.ok) throw await errorOf(response);
    return (await response.json()) as T;
  }

  post<T>(path: string, body: unknown, signal?: AbortSignal): Promise<T> {
    return this.json<T>(path, { method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json" }, signal });
  }

  model() { return this.json<ModelInfo>("/api/model"); }
  /** A layout, or (for a projection not prepared yet) a job that prepares it. */
  layout(kind: string) { return this.json<LayoutInfo | JobAnswer<LayoutInfo>>("/api/layout", { params: { kind } }); }
  sets() { return this.json<SetInfo[]>("/api/sets"); }
  images(set: string, limit = 200) { return this.json<ImageInfo[]>("/api/images", { params: { set, limit } }); }
  imageUrl(id: string) { return this.url(`/api/images/${seg(id)}.png`); }
  upload(file: File) {
    const form = new FormData();
    form.append("file", file);
    return this.json<ImageInfo>("/api/images", { method: "POST", body: form });
  }
  query(body: QueryRequest, signal?: AbortSignal) { return this.post<JobAnswer<QueryResult>>("/api/query", body, signal); }
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
  renderUrl(layer: string, channel: number, mode: string) { return this.url(`/api/nodes/${seg(layer)}/${channel}/render.png`, { mode }); }
  examplesUrl(layer: string, channel: number) { return this.url(`/api/nodes/${seg(layer)}/${channel}/examples.png`); }
  examples(layer: string, channel: number) { return this.json<unknown>(`/api/nodes/${seg(layer)}/${channel}/examples`); }
  activation(image: string, layer: string, channel: number) { return this.json<Activation>("/api/activation", { params: { image, layer, channel } }); }
  receptiveField(layer: string, y: number, x: number) { return this.json<Box>("/api/receptive_field", { params: { layer, y, x } }); }
  edge(layer: string, out: number, inp: number) { return this.json<EdgeInfo>(`/api/edges/${seg(layer)}/${out}/${inp}`); }
  edgeUrl(layer: string, out: number, inp: number, kind: "kernel" | "input" | "output" | "render", image?: string | null) {
    return this.url(`/api/edges/${seg(layer)}/${out}/${inp}/${kind}.png`, { image });
  }
  circuit(body: { images: string; target: string; method: string; keep: number }, signal?: AbortSignal) {
    return this.post<JobAnswer<Circuit>>("/api/circuit", body, signal);
  }
  faithfulness(body: { images: string; target: string; methods: string[]; fractions: number[] }) {
    return this.post<JobAnswer<Evaluation>>("/api/faithfulness", body);
  }
  composition(image: string, unit: string) { return this.json<JobAnswer<Composition>>("/api/composition", { params: { image, unit } }); }

  /**
   * The result of a job answer: at once when the server had it cached, otherwise when the job ends.
   * Progress arrives through the job's event stream; if the stream cannot be opened, the job is polled.
   */
  async follow<T>(answer: JobAnswer<T>, onProgress: (job: Job) => void = () => {}, signal?: AbortSignal): Promise<T> {
    if (answer.job === null) {
      if (answer.result === null) throw new ApiError(500, `the server answered state ${answer.state} without a result`);
      return answer.result;
    }
    const id = answer.job;
    const final = await this.watch(id, onProgress, signal);
    if (final.state === "done") return final.result as T;
    if (final.state === "cancelled") throw new ApiError(499, "cancelled");
    throw new ApiError(400, final.error || final.message || `job ${id} failed`);
  }

  /** The job's final state. Every state on the way goes to `onProgress` and the listeners, the final one to the listeners. */
  private watch(id: string, onProgress: (job: Job) => void, signal?: AbortSignal): Promise<Job> {
    const progress = (job: Job) => {
      this.tell(job);
      if (!signal?.aborted) onProgress(job); // a caller that stopped waiting hears no more
    };
    return new Promise<Job>((resolve, reject) => {
      if (typeof EventSource === "undefined" || this.streams >= MAX_STREAMS) {
        this.poll(id, progress, signal).then(resolve, reject);
        return;
      }
      const source = new EventSource(this.url(`/api/jobs/${seg(id)}/events`));
      this.streams++;
      let closed = false;
      const close = () => {
        closed = true;
        source.close();
        this.streams--;
      };
      const finish = (event: MessageEvent) => {
        close();
        const job = JSON.parse(event.data) as Job;
        this.tell(job);
        if (job.state === "done" && job.result === undefined) this.job(id).then(resolve, reject);
        else resolve(job);
      };
      source.addEventListener("progress", (event) => progress(JSON.parse((event as MessageEvent).data)));
      source.addEventListener("done", (e) => finish(e as MessageEvent));
      source.addEventListener("cancelled", (e) => finish(e as MessageEvent));
      source.addEventListener("error", (e) => {
        if (closed) return;
        // The job's own "error" event carries data; a transport failure does not: then poll instead.
        if ((e as MessageEvent).data) return finish(e as MessageEvent);
        close();
        if (!signal?.aborted) this.poll(id, progress, signal).then(resolve, reject);
      });
      const abort = () => {
        // The caller stops waiting at once; the stream stays open until the job's end, which the listeners get.
        this.cancel(id).catch(() => undefined);
        reject(new ApiError(499, "cancelled"));
      };
      if (signal?.aborted) abort();
      else signal?.addEventListener("abort", abort, { once: true });
    });
  }

  private async poll(id: string, onProgress: (job: Job) => void, signal?: AbortSignal): Promise<Job> {
    for (;;) {
      if (signal?.aborted) throw new ApiError(499, "cancelled");
      const job = await this.job(id);
      if (ended(job)) {
        this.tell(job);
        return job;
      }
      onProgress(job);
      await new Promise((r) => setTimeout(r, 300));
    }
  }
}
