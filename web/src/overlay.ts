/**
 * Two queries on one graph (the preprint's Fig 5a): the first input's nodes and kernels in one colour, the
 * second's in another, what both highlight in a third, so where two sets of images are processed shows at once.
 */
import type { QueryResult } from "./api";
import { type RGB } from "./colors";
import { segments, type NodeIndex, type Segments } from "./geometry";
import { highlighted, layerShares, nodeScores, type Highlight } from "./highlight";

export const OVERLAY_RGB: Record<"a" | "b" | "both", RGB> = {
  a: [1.0, 0.62, 0.18], // orange: the main query
  b: [0.25, 0.85, 0.95], // cyan: the second input
  both: [0.98, 0.98, 0.98], // white: both
};

export interface OverlayStyle {
  scores: Float32Array;
  kept: Uint8Array;
  /** RGB per node (0..1), for the kept ones. */
  colours: Float32Array;
  segs: Segments;
  /** RGB per segment (0..1). */
  segColours: Float32Array;
  counts: { a: number; b: number; both: number };
}

/** Nodes and kernels of `a` and `b` on one graph, each coloured by which of them highlights it. */
export function overlay(index: NodeIndex, a: QueryResult, b: QueryResult, how: Highlight): OverlayStyle {
  const segsA = segments(index, a.edges), segsB = segments(index, b.edges);
  const keptA = highlighted(index, a, segsA, how), keptB = highlighted(index, b, segsB, how);
  const shareA = layerShares(index, nodeScores(index, a)), shareB = layerShares(index, nodeScores(index, b));
  const scores = new Float32Array(index.count), kept = new Uint8Array(index.count), colours = new Float32Array(index.count * 3);
  const counts = { a: 0, b: 0, both: 0 };
  for (let i = 0; i < index.count; i++) {
    const inA = keptA[i] === 1, inB = keptB[i] === 1;
    scores[i] = Math.max(inA ? shareA[i] : 0, inB ? shareB[i] : 0, 0.15 * Math.max(shareA[i], shareB[i]));
    if (!inA && !inB) continue;
    kept[i] = 1;
    const which = inA && inB ? "both" : inA ? "a" : "b";
    counts[which]++;
    colours.set(OVERLAY_RGB[which], i * 3);
  }
  const merged = mergeSegments(segsA, segsB);
  return { scores, kept, colours, ...merged, counts };
}

/** A's segments then B's new ones; a kernel both draw is one segment, coloured "both". Scores: each query's share of its layer's strongest. */
export function mergeSegments(a: Segments, b: Segments): { segs: Segments; segColours: Float32Array } {
  const key = (s: Segments, i: number) => `${s.layer[i]}:${s.out[i]}:${s.in[i]}:${s.from[i]}`;
  const seen = new Map<string, number>();
  for (let i = 0; i < a.count; i++) seen.set(key(a, i), i);
  const extra: number[] = [];
  const shared = new Uint8Array(a.count);
  for (let i = 0; i < b.count; i++) {
    const at = seen.get(key(b, i));
    if (at === undefined) extra.push(i);
    else shared[at] = 1;
  }
  const n = a.count + extra.length;
  const segs: Segments = {
    count: n, from: new Uint32Array(n), to: new Uint32Array(n), score: new Float32Array(n), sign: new Int8Array(n),
    layer: new Uint16Array(n), out: new Uint32Array(n), in: new Uint32Array(n),
  };
  const colours = new Float32Array(n * 3);
  const scaled = (s: Segments) => {
    const top = new Map<number, number>();
    for (let i = 0; i < s.count; i++) top.set(s.layer[i], Math.max(top.get(s.layer[i]) ?? 0, Math.abs(s.score[i])));
    return (i: number) => Math.abs(s.score[i]) / (top.get(s.layer[i]) || 1);
  };
  const shareA = scaled(a), shareB = scaled(b);
  const copy = (from: Segments, i: number, k: number, score: number, rgb: RGB) => {
    segs.from[k] = from.from[i];
    segs.to[k] = from.to[i];
    segs.score[k] = score;
    segs.sign[k] = from.sign[i];
    segs.layer[k] = from.layer[i];
    segs.out[k] = from.out[i];
    segs.in[k] = from.in[i];
    colours.set(rgb, k * 3);
  };
  for (let i = 0; i < a.count; i++) copy(a, i, i, shareA(i), shared[i] ? OVERLAY_RGB.both : OVERLAY_RGB.a);
  extra.forEach((i, k) => copy(b, i, a.count + k, shareB(i), OVERLAY_RGB.b));
  return { segs, segColours: colours };
}
