/**
 * The analysis views: faithfulness of the target's circuits as best / random / worst against size (the
 * preprint's Fig 8), and the composition of one unit on one image, roomy, a render per unit (the
 * feature-composition blog's local paths).
 */
import type { Api, CompositionNode, Evaluation } from "./api";
import { fmt } from "./colors";
import { h, rendered } from "./dom";
import { served } from "./viewsApi";

const SVG = "http://www.w3.org/2000/svg";
const PALETTE = ["#f5b942", "#5aa9f7", "#e8574f", "#58c27d", "#b18cf0", "#9aa0a6", "#f08cc0", "#40c4c4"];
/** Fig 8's three lines: the method's circuits, random ones of the same size, the worst-ranked ones. */
const ROLE_STYLE: Record<string, { colour: string; dash?: string }> = {
  best: { colour: "#f5b942" }, random: { colour: "#9aa0a6", dash: "5 4" }, worst: { colour: "#5aa9f7", dash: "2 3" },
};

function s<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>, parent?: Element): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  parent?.appendChild(node);
  return node;
}

/** What a method's line stands for in Fig 8: "best" (the method asked for), "random" or "worst". */
export function roleOf(method: string, best: string): "best" | "random" | "worst" | null {
  if (method === "random" || method === "worst") return method;
  return method === best ? "best" : null;
}

/**
 * Median held-out r of each method's circuits against the kept share of the target's upstream kernels (log
 * axis), AUC in the legend. With `best`, the lines are named best / random / worst as in the preprint's Fig 8.
 */
export function faithfulnessChart(evaluation: Evaluation, width = 420, plotHeight = 220, best: string | null = null): SVGSVGElement {
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
  s("text", { x: (width + pad.l) / 2, y: height - pad.b + 30, "text-anchor": "middle", class: "axis" }, svg).textContent =
    "circuit size: share of the target's upstream kernels kept (log)";
  const mid = (pad.t + height - pad.b) / 2;
  s("text", { x: 12, y: mid, transform: `rotate(-90 12 ${mid})`, "text-anchor": "middle", class: "axis" }, svg).textContent = "median r (held out)";
  evaluation.methods.forEach((method, i) => {
    const role = best ? roleOf(method, best) : null;
    const style = role ? ROLE_STYLE[role] : { colour: PALETTE[i % PALETTE.length] };
    const points = fractions.map((f) => [f, medianAt(evaluation, method, f)] as const)
      .filter((p): p is readonly [number, number] => p[1] !== null && Number.isFinite(p[1]));
    if (points.length) {
      s("polyline", { points: points.map(([f, r]) => `${x(f)},${y(r)}`).join(" "), stroke: style.colour, fill: "none", "stroke-width": 2,
        ...(style.dash ? { "stroke-dasharray": style.dash } : {}), "data-method": method }, svg);
    }
    for (const [f, r] of points) s("circle", { cx: x(f), cy: y(r), r: 3, fill: style.colour }, svg);
    const column = i % 2, row = Math.floor(i / 2);
    const name = role === "best" ? `best (${method})` : method;
    s("text", { x: pad.l + column * ((width - pad.l) / 2), y: height - pad.b + 50 + 16 * row, fill: style.colour, class: "legend" }, svg).textContent =
      `${name}  AUC ${fmt(evaluation.summary[method]?.auc ?? null)}`;
  });
  return svg;
}

/** The methods of Fig 8 for a chosen method: it, random and worst (each once). */
export function figure8Methods(method: string, available: string[] | null): string[] {
  return [...new Set([method, "random", "worst"])].filter((m) => !available || available.includes(m));
}

/** The values under the chart: median r per method and size. */
export function faithfulnessTable(evaluation: Evaluation, best: string | null): HTMLElement {
  const fractions = [...evaluation.fractions].sort((a, b) => a - b);
  return h("table", { class: "small-table" },
    h("thead", {}, h("tr", {}, h("th", {}, "circuits"), ...fractions.map((f) => h("th", {}, `${+(f * 100).toPrecision(2)}%`)), h("th", {}, "AUC"))),
    h("tbody", {}, ...evaluation.methods.map((m) => h("tr", {},
      h("td", {}, best && roleOf(m, best) === "best" ? `best (${m})` : m),
      ...fractions.map((f) => h("td", { class: "num" }, fmt(medianAt(evaluation, m, f)))),
      h("td", { class: "num" }, fmt(evaluation.summary[m]?.auc ?? null))))));
}

/** The summary's median r at fraction f (keys are Python's "%g" of the fraction: compare as numbers). */
export function medianAt(evaluation: Evaluation, method: string, f: number): number | null {
  const table = evaluation.summary[method]?.median_r ?? {};
  for (const [key, value] of Object.entries(table)) if (Math.abs(Number(key) - f) <= 1e-9 * Math.max(1, f)) return value;
  return null;
}

/** The path followed down the tree: at each level the chosen child (by default the one contributing most). */
export function defaultPath(root: CompositionNode): number[] {
  const path: number[] = [];
  let node = root;
  while (node.children.length) {
    let best = 0;
    node.children.forEach((c, i) => {
      if (Math.abs(c.contribution ?? 0) > Math.abs(node.children[best].contribution ?? 0)) best = i;
    });
    path.push(best);
    node = node.children[best];
  }
  return path;
}

export interface CompositionCallbacks {
  /** Opens a unit in the node panel (its node, that unit of its map). */
  select(layer: string, channel: number, unit: [number, number]): void;
}

/**
 * The composition as rows, one per layer down the tree: the root unit, then the units that contribute most
 * to the unit chosen in the row above (click one to follow it down), each with its node's render, its
 * contribution and its saliency picture.
 */
export function compositionView(api: Api, root: CompositionNode, callbacks: CompositionCallbacks): HTMLElement {
  const host = h("div", { class: "comp-tree comp-rows" });
  let path = defaultPath(root);
  const draw = () => {
    const rows: HTMLElement[] = [];
    let parent: CompositionNode | null = null;
    let level: CompositionNode[] = [root];
    let chosen = 0;
    for (let depth = 0; level.length; depth++) {
      const top = Math.max(1e-12, ...level.map((n) => Math.abs(n.contribution ?? 0)));
      const pick = depth === 0 ? 0 : path[depth - 1] ?? 0;
      const cards = level.map((node, i) => card(api, node, depth, i === pick, Math.abs(node.contribution ?? 0) / top, callbacks, () => {
        if (depth === 0) return;
        path = [...path.slice(0, depth - 1), i, ...defaultPath(node)];
        draw();
      }));
      const caption = depth === 0 ? "the unit" : `what makes ${parent!.unit}: the ${level.length} units of ${level[0].layer} contributing most`;
      rows.push(h("div", { class: "comp-level" }, h("div", { class: "muted comp-caption" }, caption), h("div", { class: "comp-cards" }, ...cards)));
      chosen = pick;
      parent = level[chosen];
      level = parent.children;
    }
    host.replaceChildren(...rows);
  };
  draw();
  return host;
}

function card(api: Api, node: CompositionNode, depth: number, chosen: boolean, share: number, callbacks: CompositionCallbacks, follow: () => void): HTMLElement {
  const render = h("div", { class: "comp-render" });
  void rendered(api, render, () => api.renderNode(node.layer, node.channel, "channel"), api.renderUrl(node.layer, node.channel, "channel"),
    `feature visualization of ${node.layer}:${node.channel}`, "render");
  const contribution = node.contribution ?? 0;
  return h("div", { class: `comp-card${chosen ? " on" : ""}`, "data-unit": node.unit, onclick: follow },
    h("a", { href: "#", onclick: (e: Event) => { e.preventDefault(); e.stopPropagation(); callbacks.select(node.layer, node.channel, [node.y, node.x]); } }, node.unit),
    depth ? h("div", { class: "comp-bar" }, h("span", { style: `width:${Math.round(100 * share)}%;background:${contribution >= 0 ? "#e8574f" : "#5a8ff7"}` })) : null,
    h("div", { class: "muted" }, depth ? `contribution ${fmt(contribution)} · activation ${fmt(node.activation)}` : `activation ${fmt(node.activation)}`),
    h("div", { class: "comp-pictures" },
      h("figure", { class: "fig" }, h("figcaption", {}, "node's feature vis."), render),
      node.saliency ? h("figure", { class: "fig" }, h("figcaption", {}, depth ? "input | d parent / d input through it" : "input | d unit / d input"),
        h("img", { src: served(api, node.saliency), loading: "lazy", class: "saliency", alt: `saliency of ${node.unit}`,
          title: "the input and d(parent unit)/d(input) through this unit; parent's field green, this unit's orange" })) : null));
}
