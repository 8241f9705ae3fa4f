/** Typed calls of the views' endpoints (docs/api.md, "Views"), through the page's one `Api` client. */
import type { Api, Attention, Circuit, JobAnswer, RenderResult } from "./api";
import type { ColourScale } from "./colors";

const seg = (text: string) => encodeURIComponent(text);

export interface MapValues { height: number; width: number; min: number; max: number; values: number[][]; scale: ColourScale }
export interface EdgeMaps { layer: string; out: number; in: number; image: string; input: MapValues; output: MapValues }
export interface LayerRenders { layer: string; mode: string; channels: number; rendered: number[] }
export interface StoredCircuit {
  key: string; created: number; target: string; method: string; keep: number; edges: number; kept_fraction: number;
  images?: string; subfeature?: string; cluster?: number;
}
/** A render through a circuit: the whole model's render is at the node's own URL. */
export interface CircuitRender extends RenderResult { circuit: string; method: string; circuit_edges: number; kept_fraction: number }
export interface Examples {
  node: string; image_count: number; lowest?: number | null;
  excite: { image_id: string; y: number; x: number; value: number }[];
  inhibit: { image_id: string; y: number; x: number; value: number }[];
}
export interface SubfeatureCluster {
  id: number; size: number; circuit_edges: number | null; circuit: string; kept_fraction: number; patches_png: string;
  members: { image: number; y: number; x: number; value: number }[];
}
export interface Subfeatures {
  key: string; node: string; patches: number; noise: number; message: string; top_n: number; min_cluster_size: number;
  keep: number; method: string; images: string; image_count: number;
  clusters: SubfeatureCluster[]; iou: (number | null)[][]; scrambled_iou: (number | null)[][];
  mean_iou: number | null; mean_scrambled_iou: number | null;
  projection: { method: string; points: { x: number; y: number; cluster: number; image: number; value: number }[] };
}
export interface SubfeatureRequest { node: string; images?: string; top_n?: number; min_cluster_size?: number; keep?: number; method?: string }

export function edgeMaps(api: Api, layer: string, out: number, inp: number, image: string): Promise<EdgeMaps> {
  return api.json<EdgeMaps>(`/api/edges/${seg(layer)}/${out}/${inp}/maps`, { params: { image } });
}

export function layerRenders(api: Api, layer: string, mode = "channel"): Promise<LayerRenders> {
  return api.json<LayerRenders>(`/api/layers/${seg(layer)}/renders`, { params: { mode } });
}

export function examples(api: Api, layer: string, channel: number, attention?: Attention | null): Promise<JobAnswer<Examples>> {
  return api.json<JobAnswer<Examples>>(`/api/nodes/${seg(layer)}/${channel}/examples`, { attention });
}

export function storedCircuits(api: Api): Promise<StoredCircuit[]> {
  return api.json<StoredCircuit[]>("/api/circuits");
}

export function circuitFileUrl(api: Api, key: string): string {
  return api.url(`/api/circuits/${seg(key)}`);
}

export function storedCircuit(api: Api, key: string): Promise<Circuit> {
  return api.json<Circuit>(`/api/circuits/${seg(key)}`);
}

/** Queues `objective` (default: the circuit's target) rendered through a stored circuit; at once when stored. */
export function renderThrough(api: Api, key: string, objective?: string | null, attention?: Attention | null): Promise<JobAnswer<CircuitRender>> {
  return api.json<JobAnswer<CircuitRender>>(`/api/circuits/${seg(key)}/render`, { method: "POST", params: { objective: objective ?? null }, attention });
}

export function renderThroughUrl(api: Api, key: string, objective?: string | null): string {
  return api.url(`/api/circuits/${seg(key)}/render.png`, { objective: objective ?? null });
}

export function subfeatures(api: Api, body: SubfeatureRequest, attention?: Attention | null): Promise<JobAnswer<Subfeatures>> {
  return api.post<JobAnswer<Subfeatures>>("/api/subfeatures", body, undefined, attention);
}

/** A URL the server wrote ("/api/..."), as this page reaches it (under a notebook proxy, the page's own path). */
export function served(api: Api, url: string): string {
  return url.startsWith("/") ? `${api.base}${url}` : url;
}
