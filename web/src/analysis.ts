/** The composition view for one image and the faithfulness chart of the target's circuits. */
import type { CompositionNode, Evaluation } from "./api";
import { fmt } from "./colors";
import { h } from "./dom";

const SVG = "http://www.w3.org/2000/svg";
const PALETTE = ["#f5b942", "#5aa9f7", "#e8574f", "#58c27d", "#b18cf0", "#9aa0a6", "#f08cc0", "#40c4c4"];

function s<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>, parent?: Element): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  parent?.appendChild(node);
  return node;
}

/** Median held-out r of each method's circuits against the kept fraction (log axis), AUC in the legend. */
export function faithfulnessChart(evaluation: Evaluation, width = 420, plotHeight = 220): SVGSVGElement {
  const legendRows = Math.ceil(evaluation.methods.length / 2);
  const height = plotHeight + 16 * legendRows + 6;
  const pad = { l: 44, r: 12, t: 12, b: 34 + 16 * legendRows + 6 };
  const fractions = [...evaluation.fractions].sort((a, b) => a - b);
  const lo = Math.log10(fractions[0] ?? 0.01), hi = Math.log10(fractions[fractions.length - 1] ?? 1);
  const x = (f: number) => pad.l + ((Math.log10(f) - lo) / (hi - lo || 1)) * (width - pad.l - pad.r);
  const values = evaluation.methods.flatMap((m) => Object.values(evaluation.summary[m]?.median_r ?? {})).filter((v): v is number => v !== null && Number.isFinite(v));
  const yMin = Math.min(0, ...values);
  const y = (r: number) => pad.t + ((1 - r) / (1 - yMin || 1)) * (height - pad.t - pad.b);
  const svg = s("svg", { width, height, viewBox: `0 0 ${width} ${height}`, class: "chart" });
  for (const r of [yMin, (yMin + 1) / 2, 1]) {
    s("line", { x1: pad.l, x2: width - pad.r, y1: y(r), y2: y(r), class: "grid" }, svg);
    s("text", { x: pad.l - 6, y: y(r) + 4, "text-anchor": "end", class: "tick" }, svg).textContent = r.toFixed(1);
  }
  for (const f of fractions) s("text", { x: x(f), y: height - pad.b + 16, "text-anchor": "middle", class: "tick" }, svg).textContent = `${+(f * 100).toPrecision(2)}%`;
  s("text", { x: (width + pad.l) / 2, y: height - pad.b + 30, "text-anchor": "middle", class: "axis" }, svg).textContent = "kernels kept (log)";
  const mid = (pad.t + height - pad.b) / 2;
  s("text", { x: 12, y: mid, transform: `rotate(-90 12 ${mid})`, "text-anchor": "middle", class: "axis" }, svg).textContent = "median r (held out)";
  evaluation.methods.forEach((method, i) => {
    const colour = PALETTE[i % PALETTE.length];
    const points = fractions.map((f) => [f, medianAt(evaluation, method, f)] as const)
      .filter((p): p is readonly [number, number] => p[1] !== null && Number.isFinite(p[1]));
    if (points.length) s("polyline", { points: points.map(([f, r]) => `${x(f)},${y(r)}`).join(" "), stroke: colour, fill: "none", "stroke-width": 2 }, svg);
    for (const [f, r] of points) s("circle", { cx: x(f), cy: y(r), r: 3, fill: colour }, svg);
    const column = i % 2, row = Math.floor(i / 2);
    s("text", { x: pad.l + column * ((width - pad.l) / 2), y: height - pad.b + 50 + 16 * row, fill: colour, class: "legend" }, svg).textContent =
      `${method}  AUC ${fmt(evaluation.summary[method]?.auc ?? null)}`;
  });
  return svg;
}

/** The composition tree as nested rows: unit, its activation, and its contribution to its parent. */
export function compositionTree(root: CompositionNode, select: (layer: string, channel: number, unit: [number, number]) => void): HTMLElement {
  const top = Math.max(1e-12, ...flatten(root).map((n) => Math.abs(n.contribution ?? 0)));
  const row = (node: CompositionNode, depth: number): HTMLElement => h("li", {},
    h("div", { class: "comp-row", style: `padding-left:${depth * 14}px` },
      h("a", { href: "#", onclick: (e: Event) => { e.preventDefault(); select(node.layer, node.channel, [node.y, node.x]); } }, node.unit),
      h("span", { class: "bar", style: `width:${Math.round((60 * Math.abs(node.contribution ?? 0)) / top)}px;background:${(node.contribution ?? 0) >= 0 ? "#e8574f" : "#5a8ff7"}` }),
      h("span", { class: "muted" }, depth ? `contribution ${fmt(node.contribution)} · act ${fmt(node.activation)}` : `activation ${fmt(node.activation)}`),
      node.saliency ? h("img", { src: node.saliency, loading: "lazy", class: "saliency", alt: `saliency of ${node.unit}`,
        title: "the input and d(parent unit)/d(input) through this unit; parent's field green, this unit's orange" }) : null),
    node.children.length ? h("ul", {}, ...node.children.map((c) => row(c, depth + 1))) : null);
  return h("ul", { class: "comp-tree" }, row(root, 0));
}

/** The summary's median r at fraction f (keys are Python's "%g" of the fraction: compare as numbers). */
export function medianAt(evaluation: Evaluation, method: string, f: number): number | null {
  const table = evaluation.summary[method]?.median_r ?? {};
  for (const [key, value] of Object.entries(table)) if (Math.abs(Number(key) - f) <= 1e-9 * Math.max(1, f)) return value;
  return null;
}

function flatten(node: CompositionNode): CompositionNode[] {
  return [node, ...node.children.flatMap(flatten)];
}
