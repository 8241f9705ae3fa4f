/** Where every node sits in 3D, and which node pairs an edge (a kernel) joins. Pure functions, no WebGL. */
import type { EdgeBlock, LayerInfo, LayoutInfo, ModelInfo } from "./api";

export interface NodeIndex {
  /** Layers that have nodes (the input and the convs), in call order. */
  layers: LayerInfo[];
  /** First node index of each layer. */
  offset: Map<string, number>;
  count: number;
  /** Layer index (into `layers`) and channel of every node. */
  layerOf: Uint16Array;
  channelOf: Uint32Array;
}

export function indexNodes(model: ModelInfo): NodeIndex {
  const layers = model.layers.filter((l) => l.kind === "conv" || l.kind === "input");
  const offset = new Map<string, number>();
  let count = 0;
  for (const layer of layers) {
    offset.set(layer.name, count);
    count += layer.out_channels;
  }
  const layerOf = new Uint16Array(count);
  const channelOf = new Uint32Array(count);
  layers.forEach((layer, li) => {
    const start = offset.get(layer.name)!;
    for (let c = 0; c < layer.out_channels; c++) {
      layerOf[start + c] = li;
      channelOf[start + c] = c;
    }
  });
  return { layers, offset, count, layerOf, channelOf };
}

/** A centred square grid with neighbours 1 apart (the fallback when the server has no layout). */
export function gridPositions(n: number): [number, number][] {
  const side = Math.ceil(Math.sqrt(n));
  const rows = Math.ceil(n / Math.max(side, 1));
  const out: [number, number][] = [];
  for (let i = 0; i < n; i++) out.push([(i % side) - (side - 1) / 2, Math.floor(i / side) - (rows - 1) / 2]);
  return out;
}

export interface Placement {
  /** x, y, z per node: x runs along the layers (by depth), y and z are the layer's own layout. */
  positions: Float32Array;
  /** Centre of each layer (same order as NodeIndex.layers) and the overall size, for labels and the camera. */
  centres: [number, number, number][];
  size: [number, number, number];
}

export function place(index: NodeIndex, layout: LayoutInfo | null): Placement {
  const layouts = index.layers.map((layer) => {
    const given = layout?.layers[layer.name]?.positions;
    return given && given.length === layer.out_channels ? given : gridPositions(layer.out_channels);
  });
  const widths = layouts.map((ps) => {
    let w = 1;
    for (const [x, y] of ps) w = Math.max(w, 2 * Math.abs(x) + 1, 2 * Math.abs(y) + 1);
    return w;
  });
  const maxWidth = Math.max(1, ...widths);
  const maxDepth = Math.max(1, ...index.layers.map((l) => l.depth));
  const spacing = Math.max(3, (5 * maxWidth) / maxDepth);
  // Layers at the same depth (parallel branches) sit side by side along z.
  const byDepth = new Map<number, number[]>();
  index.layers.forEach((l, i) => byDepth.set(l.depth, [...(byDepth.get(l.depth) ?? []), i]));
  const shift = new Float32Array(index.layers.length);
  for (const members of byDepth.values()) {
    const total = members.reduce((s, i) => s + widths[i] + 1, -1);
    let at = -total / 2;
    for (const i of members) {
      shift[i] = at + widths[i] / 2;
      at += widths[i] + 1;
    }
  }
  const positions = new Float32Array(index.count * 3);
  const centres: [number, number, number][] = [];
  let zMin = 0, zMax = 0;
  index.layers.forEach((layer, li) => {
    const start = index.offset.get(layer.name)!;
    const x = (layer.depth - maxDepth / 2) * spacing;
    layouts[li].forEach(([u, v], c) => {
      positions.set([x, v, u + shift[li]], (start + c) * 3);
    });
    centres.push([x, 0, shift[li]]);
    zMin = Math.min(zMin, shift[li] - widths[li] / 2);
    zMax = Math.max(zMax, shift[li] + widths[li] / 2);
  });
  return { positions, centres, size: [maxDepth * spacing + 1, maxWidth, zMax - zMin] };
}

export interface Segments {
  count: number;
  from: Uint32Array;
  to: Uint32Array;
  score: Float32Array;
  sign: Int8Array;
  /** Which kernel each segment draws: layer index (into NodeIndex.layers), output and input channel. */
  layer: Uint16Array;
  out: Uint32Array;
  in: Uint32Array;
}

/**
 * One segment per (kernel, source node): the kernel of conv `layer` from input channel `in` to `out`
 * joins node (layer, out) to every node feeding input channel `in` (two after a residual add).
 */
export function segments(index: NodeIndex, edges: Record<string, EdgeBlock | { layer: string; out: number; in: number; score: number; sign?: number }[]>): Segments {
  const byName = new Map(index.layers.map((l, i) => [l.name, i] as const));
  // Two passes over typed arrays (10^5 edges: no object per edge): count the segments, then fill them.
  const visit = (fn: (li: number, out: number, inp: number, score: number, sign: number, from: number) => void) => {
    for (const [name, block] of Object.entries(edges)) {
      const li = byName.get(name);
      if (li === undefined) continue;
      const layer = index.layers[li];
      const one = (out: number, inp: number, score: number, sign: number) => {
        if (out >= layer.out_channels) return;
        for (const source of layer.sources) {
          const channel = source.channels[inp];
          const start = index.offset.get(source.layer);
          if (channel === undefined || channel < 0 || start === undefined) continue;
          fn(li, out, inp, score, sign, start + channel);
        }
      };
      if (Array.isArray(block)) for (const e of block) one(e.out, e.in, e.score, e.sign ?? 0);
      else for (let i = 0; i < block.out.length; i++) one(block.out[i], block.in[i], block.score[i], block.sign[i] ?? 0);
    }
  };
  let n = 0;
  visit(() => n++);
  const result: Segments = {
    count: n, from: new Uint32Array(n), to: new Uint32Array(n), score: new Float32Array(n), sign: new Int8Array(n),
    layer: new Uint16Array(n), out: new Uint32Array(n), in: new Uint32Array(n),
  };
  const firstNode = index.layers.map((l) => index.offset.get(l.name)!);
  let i = 0;
  visit((li, out, inp, score, sign, from) => {
    result.from[i] = from;
    result.to[i] = firstNode[li] + out;
    result.score[i] = score;
    result.sign[i] = Math.sign(sign);
    result.layer[i] = li;
    result.out[i] = out;
    result.in[i] = inp;
    i++;
  });
  return result;
}

/** Circuit edges ({layer, out, in, score}) grouped by layer, as `segments` takes them. */
export function groupEdges<T extends { layer: string }>(edges: T[]): Record<string, T[]> {
  const out: Record<string, T[]> = {};
  for (const e of edges) (out[e.layer] ??= []).push(e);
  return out;
}
