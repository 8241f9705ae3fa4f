/** The view's state, kept in the URL query string so a view can be bookmarked and shared. */

export type Rule = "fraction" | "cumulative";
export type Mode = "channel" | "neuron";
export type View = "graph" | "circuit";

export interface ViewState {
  images: string;
  target: string;
  criterion: string;
  nodeRule: Rule;
  nodeValue: number;
  edgeRule: Rule;
  edgeValue: number;
  maxEdges: number;
  /** Images scored per set: null the server's default (big sets sampled), 0 every image, N at most N. */
  sample: number | null;
  method: string;
  keep: number;
  layout: string;
  /** Selected node as "LAYER:C". */
  node: string | null;
  /** Selected edge as "LAYER:OUT<-IN" (the edge id Python writes; see `edgeId`). */
  edge: string | null;
  image: string | null;
  mode: Mode;
  /** Selected unit of the node's activation map as [y, x]. */
  unit: [number, number] | null;
  view: View;
  /** Whether the circuit for the query is shown (re-extracted on load; the server caches it). */
  circuit: boolean;
}

export const DEFAULTS: Readonly<ViewState> = Object.freeze({
  images: "overall",
  target: "loss",
  criterion: "taylor",
  nodeRule: "fraction",
  nodeValue: 0.1,
  // a kernel budget, not a share: the 1,500 strongest kernels into the kept nodes (a share drew 30-43k on Lite0)
  edgeRule: "fraction",
  edgeValue: 1,
  maxEdges: 1500,
  sample: null,
  method: "actgrad",
  keep: 0.05,
  layout: "grid",
  node: null,
  edge: null,
  image: null,
  mode: "channel",
  unit: null,
  view: "graph",
  circuit: false,
});

const KEYS: Record<keyof ViewState, string> = {
  images: "in", target: "out", criterion: "crit", nodeRule: "nrule", nodeValue: "n", edgeRule: "erule",
  edgeValue: "e", maxEdges: "max", sample: "sample", method: "method", keep: "keep", layout: "layout", node: "node",
  edge: "edge", image: "img", mode: "mode", unit: "unit", view: "view", circuit: "circuit",
};

function number(text: string | null, fallback: number, min: number, max: number): number {
  if (text === null || text.trim() === "") return fallback;
  const value = Number(text);
  return Number.isFinite(value) && value >= min && value <= max ? value : fallback;
}

function oneOf<T extends string>(text: string | null, options: readonly T[], fallback: T): T {
  return options.includes(text as T) ? (text as T) : fallback;
}

/** A sample size from the URL or a field: a whole number from 0 (every image) to 10^6; anything else is null (the default). */
export function parseSample(text: string | null): number | null {
  if (text === null || !/^\s*\d+\s*$/.test(text)) return null;
  const value = Number(text);
  return value <= 1e6 ? value : null;
}

/** Parses a "Y,X" unit; anything else is null. */
export function parseUnit(text: string | null): [number, number] | null {
  const match = /^(\d+),(\d+)$/.exec(text ?? "");
  return match ? [Number(match[1]), Number(match[2])] : null;
}

/** "LAYER:C" -> [layer, channel]; layer names may contain dots and '@' but the channel is the last field. */
export function parseNode(text: string | null): [string, number] | null {
  const match = /^(.+):(\d+)$/.exec(text ?? "");
  return match ? [match[1], Number(match[2])] : null;
}

/** The id of the kernel from input channel `inp` to output channel `out` of `layer`, as Python writes it. */
export function edgeId(layer: string, out: number, inp: number): string {
  return `${layer}:${out}<-${inp}`;
}

/** "LAYER:OUT<-IN" -> [layer, out, in]; the older "LAYER:OUT:IN" of saved links is read too. */
export function parseEdge(text: string | null): [string, number, number] | null {
  const match = /^(.+):(\d+)\s*<-\s*(\d+)$/.exec(text ?? "") ?? /^(.+):(\d+):(\d+)$/.exec(text ?? "");
  return match ? [match[1], Number(match[2]), Number(match[3])] : null;
}

/** An edge id in the one form the page writes (old links' "LAYER:OUT:IN" becomes "LAYER:OUT<-IN"); else null. */
function canonicalEdge(text: string | null): string | null {
  const edge = parseEdge(text);
  return edge ? edgeId(...edge) : null;
}

/** Reads a state from a query string; unknown or malformed values fall back to the defaults. */
export function decodeState(search: string): ViewState {
  const p = new URLSearchParams(search);
  const get = (key: keyof ViewState) => p.get(KEYS[key]);
  return {
    images: get("images") ?? DEFAULTS.images,
    target: get("target") ?? DEFAULTS.target,
    criterion: get("criterion") ?? DEFAULTS.criterion,
    nodeRule: oneOf(get("nodeRule"), ["fraction", "cumulative"] as const, DEFAULTS.nodeRule),
    nodeValue: number(get("nodeValue"), DEFAULTS.nodeValue, 0, 1),
    edgeRule: oneOf(get("edgeRule"), ["fraction", "cumulative"] as const, DEFAULTS.edgeRule),
    edgeValue: number(get("edgeValue"), DEFAULTS.edgeValue, 0, 1),
    maxEdges: Math.round(number(get("maxEdges"), DEFAULTS.maxEdges, 0, 1e6)),
    sample: parseSample(get("sample")),
    method: get("method") ?? DEFAULTS.method,
    keep: number(get("keep"), DEFAULTS.keep, 0, 1),
    layout: get("layout") ?? DEFAULTS.layout,
    node: parseNode(get("node")) ? get("node") : null,
    edge: canonicalEdge(get("edge")),
    image: get("image"),
    mode: oneOf(get("mode"), ["channel", "neuron"] as const, DEFAULTS.mode),
    unit: parseUnit(get("unit")),
    view: oneOf(get("view"), ["graph", "circuit"] as const, DEFAULTS.view),
    circuit: get("circuit") === "1",
  };
}

/** Writes the fields that differ from the defaults, in a stable order. */
export function encodeState(state: ViewState): string {
  const p = new URLSearchParams();
  for (const key of Object.keys(KEYS) as (keyof ViewState)[]) {
    const value = state[key];
    const fallback = DEFAULTS[key];
    if (key === "unit") {
      if (state.unit) p.set(KEYS.unit, state.unit.join(","));
    } else if (key === "circuit") {
      if (state.circuit) p.set(KEYS.circuit, "1");
    } else if (key === "sample") {
      if (state.sample !== null) p.set(KEYS.sample, String(state.sample));
    } else if (value !== null && value !== fallback) {
      p.set(KEYS[key], String(value));
    }
  }
  const text = p.toString();
  return text ? `?${text}` : "";
}

/** The fields that define a query: when any of them changes, the query has to run again. */
export function queryKey(state: ViewState): string {
  return JSON.stringify([state.images, state.target, state.criterion, state.nodeRule, state.nodeValue,
    state.edgeRule, state.edgeValue, state.maxEdges, state.sample]);
}

/** The fields `queryKey` reads: what a query in the history restores. */
export const QUERY_FIELDS = ["images", "target", "criterion", "nodeRule", "nodeValue", "edgeRule", "edgeValue", "maxEdges", "sample"] as const;

/** `state` with the query fields of `query` (the rest, such as the selected node, kept). */
export function withQuery(state: ViewState, query: ViewState): ViewState {
  const next = { ...state };
  for (const key of QUERY_FIELDS) (next as Record<string, unknown>)[key] = query[key];
  return next;
}
