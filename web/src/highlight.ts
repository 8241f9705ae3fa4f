/** What the 3D graph highlights for a query: the nodes its drawn kernels join (the default), or its node rule's. */
import type { QueryResult } from "./api";
import { normalise } from "./colors";
import type { NodeIndex, Segments } from "./geometry";

export type Highlight = "kernels" | "rule";

/** Per node: 1 when some drawn kernel starts or ends there. */
export function drawnNodes(count: number, segs: Segments): Uint8Array {
  const out = new Uint8Array(count);
  for (let i = 0; i < segs.count; i++) {
    out[segs.from[i]] = 1;
    out[segs.to[i]] = 1;
  }
  return out;
}

/** Per node: 1 when the query's node rule kept it. */
export function ruleNodes(index: NodeIndex, result: Pick<QueryResult, "kept">): Uint8Array {
  const kept = new Uint8Array(index.count);
  for (const layer of index.layers) {
    const start = index.offset.get(layer.name)!;
    for (const c of result.kept[layer.name] ?? []) if (c < layer.out_channels) kept[start + c] = 1;
  }
  return kept;
}

/** Per node: its score (NaN where the query has none: layers past an inner target). */
export function nodeScores(index: NodeIndex, result: Pick<QueryResult, "nodes">): Float32Array {
  const scores = new Float32Array(index.count).fill(NaN);
  for (const layer of index.layers) {
    const start = index.offset.get(layer.name)!;
    const values = result.nodes[layer.name] ?? [];
    for (let c = 0; c < Math.min(values.length, layer.out_channels); c++) scores[start + c] = values[c];
  }
  return scores;
}

/** The highlighted nodes: those the drawn kernels join (the graph then shows "the top N kernels and their nodes"), else the node rule's. */
export function highlighted(index: NodeIndex, result: Pick<QueryResult, "kept">, segs: Segments, how: Highlight): Uint8Array {
  return how === "kernels" && segs.count > 0 ? drawnNodes(index.count, segs) : ruleNodes(index, result);
}

/** Per node, |score| scaled to [0, 1] within its layer (as the graph sizes nodes), 0 where unscored. */
export function layerShares(index: NodeIndex, scores: Float32Array): Float32Array {
  const out = new Float32Array(index.count);
  for (const layer of index.layers) {
    const start = index.offset.get(layer.name)!;
    const part = normalise(scores.subarray(start, start + layer.out_channels).map((v) => (Number.isFinite(v) ? v : 0)));
    out.set(part, start);
  }
  return out;
}
