/** The flat layered diagram of an extracted circuit (SVG): one column per layer, kernels as curves. */
import type { Circuit, LayerInfo } from "./api";
import { fmt, normalise, signCss, signName } from "./colors";
import { edgeId } from "./state";

const SVG = "http://www.w3.org/2000/svg";
const MAX_EDGES = 2000;

export interface DiagramNode { layer: string; channel: number; score: number; x: number; y: number }
export interface Diagram {
  columns: { layer: string; x: number }[];
  nodes: DiagramNode[];
  /** `sign` is null when neither the circuit nor the query says it (drawn dashed). */
  edges: { from: DiagramNode; to: DiagramNode; score: number; sign: number | null; layer: string; out: number; in: number }[];
  width: number;
  height: number;
  dropped: number;
}

/**
 * Places the circuit's nodes: columns by depth (then call order), channels top to bottom.
 * `signs` maps an edge id ("layer:out<-in", `edgeId`) to a kernel's sign when the circuit JSON does not carry it.
 */
export function arrange(circuit: Circuit, layers: LayerInfo[], width: number, signs: Map<string, number> = new Map(), fitHeight = 600): Diagram {
  const info = new Map(layers.map((l, i) => [l.name, { layer: l, order: i }] as const));
  const edges = [...circuit.edges].sort((a, b) => Math.abs(b.score) - Math.abs(a.score));
  const dropped = Math.max(0, edges.length - MAX_EDGES);
  edges.length = Math.min(edges.length, MAX_EDGES);
  const scores = new Map<string, number>();
  for (const n of circuit.nodes) scores.set(`${n.layer}:${n.channel}`, n.score);
  const wanted = new Map<string, Set<number>>();
  const want = (layer: string, channel: number) => {
    if (!wanted.has(layer)) wanted.set(layer, new Set());
    wanted.get(layer)!.add(channel);
  };
  const pairs: { from: [string, number]; to: [string, number]; e: (typeof edges)[number] }[] = [];
  for (const e of edges) {
    const layer = info.get(e.layer)?.layer;
    if (!layer) continue;
    want(e.layer, e.out);
    for (const source of layer.sources) {
      const ch = source.channels[e.in];
      if (ch === undefined || ch < 0) continue;
      want(source.layer, ch);
      pairs.push({ from: [source.layer, ch], to: [e.layer, e.out], e });
    }
  }
  if (circuit.target.layer !== undefined && circuit.target.channel !== undefined) want(circuit.target.layer, circuit.target.channel);
  const names = [...wanted.keys()].filter((n) => info.has(n)).sort((a, b) => {
    const A = info.get(a)!, B = info.get(b)!;
    return A.layer.depth - B.layer.depth || A.order - B.order;
  });
  // Long layer names on many columns: at least 110 px per column (the diagram scrolls sideways).
  width = Math.max(width, names.length * 110);
  const margin = 60, top = 48;
  const step = names.length > 1 ? (width - 2 * margin) / (names.length - 1) : 0;
  const tallest = Math.max(1, ...names.map((n) => wanted.get(n)!.size));
  // Rows shrink (down to 9 px) so a circuit fits the view; taller ones scroll.
  const rowGap = Math.max(9, Math.min(22, (fitHeight - top - 20) / tallest));
  const height = top + tallest * rowGap + 20;
  const at = new Map<string, DiagramNode>();
  const columns = names.map((name, col) => {
    const x = names.length > 1 ? margin + col * step : width / 2;
    const channels = [...wanted.get(name)!].sort((a, b) => a - b);
    const offset = top + ((tallest - channels.length) * rowGap) / 2 + rowGap / 2;
    channels.forEach((channel, row) => {
      at.set(`${name}:${channel}`, { layer: name, channel, score: scores.get(`${name}:${channel}`) ?? 0, x, y: offset + row * rowGap });
    });
    return { layer: name, x };
  });
  return {
    columns,
    nodes: [...at.values()],
    edges: pairs.map(({ from, to, e }) => ({
      from: at.get(from.join(":"))!, to: at.get(to.join(":"))!, score: e.score, layer: e.layer, out: e.out, in: e.in,
      sign: e.sign ?? signs.get(edgeId(e.layer, e.out, e.in)) ?? null,
    })),
    width,
    height,
    dropped,
  };
}

/**
 * Width and opacity shares of the edges: |score| over the strongest's, or one middling share for all when the
 * scores do not tell them apart (a learned circuit's kept kernels all score alike: not all at full width).
 */
export function edgeStrengths(scores: number[]): Float32Array {
  const magnitudes = scores.map((v) => Math.abs(v) || 0);
  const top = Math.max(0, ...magnitudes), low = Math.min(Infinity, ...magnitudes);
  if (!(top > 0) || top - low <= 1e-6 * top) return new Float32Array(scores.length).fill(0.3);
  return normalise(scores);
}

function el<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>, parent?: Element): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  parent?.appendChild(node);
  return node;
}

export interface DiagramCallbacks {
  selectNode(layer: string, channel: number): void;
  selectEdge(layer: string, out: number, inp: number): void;
}

/** Draws the diagram into `host` (replacing what was there). */
export function drawCircuit(host: HTMLElement, circuit: Circuit, layers: LayerInfo[], callbacks: DiagramCallbacks,
  signs?: Map<string, number>, selected?: string | null): Diagram {
  const width = Math.max(480, host.clientWidth || 800);
  const d = arrange(circuit, layers, width, signs, Math.max(360, host.clientHeight || 600));
  const svg = el("svg", { width: d.width, height: d.height, class: "circuit-svg", viewBox: `0 0 ${d.width} ${d.height}` });
  d.columns.forEach((c, i) => {
    // alternate rows so neighbouring long names do not overlap
    el("text", { x: c.x, y: 14 + (i % 2) * 14, class: "col-label", "text-anchor": "middle" }, svg).textContent = c.layer;
  });
  const strength = edgeStrengths(d.edges.map((e) => e.score));
  const edgeLayer = el("g", { class: "edges" }, svg);
  d.edges.forEach((e, i) => {
    const mx = (e.from.x + e.to.x) / 2;
    const path = el("path", {
      d: `M${e.from.x},${e.from.y} C${mx},${e.from.y} ${mx},${e.to.y} ${e.to.x},${e.to.y}`,
      stroke: e.sign === null ? "#8a8f99" : signCss(e.sign), ...(e.sign === null ? { "stroke-dasharray": "3 3" } : {}), "stroke-width": (0.6 + 3.4 * strength[i]).toFixed(2), "stroke-opacity": (0.3 + 0.65 * strength[i]).toFixed(2),
      fill: "none", class: "edge", "data-from": `${e.from.layer}:${e.from.channel}`, "data-to": `${e.to.layer}:${e.to.channel}`,
    }, edgeLayer);
    el("title", {}, path).textContent = `${e.layer} ${e.in}→${e.out}  score ${fmt(e.score)}  ${e.sign === null ? "sign unknown" : signName(e.sign)}`;
    path.addEventListener("click", () => callbacks.selectEdge(e.layer, e.out, e.in));
  });
  const nodeScores = normalise(d.nodes.map((n) => n.score));
  const target = circuit.target.layer !== undefined ? `${circuit.target.layer}:${circuit.target.channel}` : null;
  const nodeLayer = el("g", { class: "nodes" }, svg);
  d.nodes.forEach((n, i) => {
    const id = `${n.layer}:${n.channel}`;
    const g = el("g", { class: `node${id === target ? " target" : ""}${id === selected ? " selected" : ""}`, "data-node": id }, nodeLayer);
    el("circle", { cx: n.x, cy: n.y, r: (4 + 5 * nodeScores[i]).toFixed(1) }, g);
    el("text", { x: n.x + 10, y: n.y + 3.5, class: "node-label" }, g).textContent = String(n.channel);
    el("title", {}, g).textContent = `${id}  score ${fmt(n.score)}`;
    g.addEventListener("click", () => callbacks.selectNode(n.layer, n.channel));
    g.addEventListener("mouseenter", () => {
      svg.classList.add("focus");
      markEdges(svg, id, true);
    });
    g.addEventListener("mouseleave", () => {
      svg.classList.remove("focus");
      markEdges(svg, id, false);
    });
  });
  host.replaceChildren(svg);
  return d;
}

function markEdges(svg: SVGSVGElement, id: string, on: boolean): void {
  for (const path of svg.querySelectorAll<SVGPathElement>(`path[data-from="${CSS.escape(id)}"], path[data-to="${CSS.escape(id)}"]`)) {
    path.classList.toggle("lit", on);
  }
}
