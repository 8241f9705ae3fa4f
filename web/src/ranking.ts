/** The query's top nodes and drawn kernels as ranked, clickable lists (the graph's readable companion). */
import type { EdgeBlock, QueryResult } from "./api";
import { fmt, signCss, signName } from "./colors";
import { h, status } from "./dom";
import { edgeId } from "./state";

export interface RankedNode { layer: string; channel: number; score: number; kept: boolean }
export interface RankedEdge { layer: string; out: number; in: number; score: number; sign: number }
/** By |score|, or the most positive first (what the first sets of a contrast need more), or the most negative. */
export type Order = "abs" | "high" | "low";

const KEY: Record<Order, (score: number) => number> = { abs: Math.abs, high: (v) => v, low: (v) => -v };

/** A contrast ("sandal - overall") with positive scores ranks those first (what its first sets need more); anything else by |score|. */
export function defaultOrder(images: string, nodes: Record<string, number[]> = {}): Order {
  const contrast = /(^|\s)-\s*\S/.test(images.trim());
  return contrast && Object.values(nodes).some((values) => values.some((v) => v > 0)) ? "high" : "abs";
}

/** Whether a score belongs in a list of that order: "high" lists positive scores only, "low" negative ones. */
function fits(score: number, order: Order): boolean {
  return order === "abs" ? score !== 0 : order === "high" ? score > 0 : score < 0;
}

/** The first `n` nodes by `order` (of one layer, or of all: scores are on one scale, the target's). */
export function topNodes(result: Pick<QueryResult, "nodes" | "kept">, n: number, layer: string | null = null, order: Order = "abs"): RankedNode[] {
  const all: RankedNode[] = [];
  for (const [name, scores] of Object.entries(result.nodes)) {
    if (layer !== null && name !== layer) continue;
    const kept = new Set(result.kept[name] ?? []);
    scores.forEach((score, channel) => {
      if (Number.isFinite(score) && fits(score, order)) all.push({ layer: name, channel, score, kept: kept.has(channel) });
    });
  }
  const key = KEY[order];
  return all.sort((a, b) => key(b.score) - key(a.score) || a.layer.localeCompare(b.layer) || a.channel - b.channel).slice(0, n);
}

/** The first `n` drawn kernels by `order` (of one layer, or of all). */
export function topEdges(edges: Record<string, EdgeBlock>, n: number, layer: string | null = null, order: Order = "abs"): RankedEdge[] {
  const all: RankedEdge[] = [];
  for (const [name, block] of Object.entries(edges)) {
    if (layer !== null && name !== layer) continue;
    for (let i = 0; i < block.out.length; i++) {
      if (fits(block.score[i], order)) all.push({ layer: name, out: block.out[i], in: block.in[i], score: block.score[i], sign: block.sign[i] });
    }
  }
  const key = KEY[order];
  return all.sort((a, b) => key(b.score) - key(a.score)).slice(0, n);
}

export interface RankedCallbacks {
  selectNode(layer: string, channel: number): void;
  selectEdge(layer: string, out: number, inp: number): void;
  /** The pointer is over a row's node (null: it left), so the graph can ring it. */
  hoverNode(layer: string | null, channel: number): void;
}

/** Two lists under one layer filter: the query's top nodes and its top drawn kernels. */
export class RankedLists {
  private result: QueryResult | null = null;
  private layer: string | null = null;
  private order: Order = "abs";
  private chosenOrder = false;
  private selected: string | null = null;
  private readonly filter: HTMLSelectElement;
  private readonly orderSelect: HTMLSelectElement;
  private readonly nodes = h("ol", { class: "ranked", id: "ranked-nodes" });
  private readonly edges = h("ol", { class: "ranked", id: "ranked-edges" });
  private readonly note = h("div", { class: "muted small" });

  constructor(host: HTMLElement, private readonly callbacks: RankedCallbacks, private readonly count = 25) {
    this.filter = h("select", { id: "ranked-layer", onchange: () => {
      this.layer = this.filter.value || null;
      this.draw();
    } });
    this.orderSelect = h("select", { id: "ranked-order", onchange: () => {
      this.order = this.orderSelect.value as Order;
      this.chosenOrder = true;
      this.draw();
    } }, h("option", { value: "abs" }, "|score|"), h("option", { value: "high" }, "most positive"), h("option", { value: "low" }, "most negative"));
    host.append(h("div", { class: "row" }, h("label", { class: "inline", for: "ranked-layer" }, "layer"), this.filter),
      h("div", { class: "row" }, h("label", { class: "inline", for: "ranked-order" }, "rank by"), this.orderSelect),
      this.note, h("h3", {}, "Top nodes"), this.nodes, h("h3", {}, "Top kernels drawn"), this.edges);
    this.nodes.replaceChildren(status("run a query to rank its nodes"));
  }

  setResult(result: QueryResult | null): void {
    this.result = result;
    const layers = result ? Object.keys(result.nodes) : [];
    if (this.layer !== null && !layers.includes(this.layer)) this.layer = null;
    if (!this.chosenOrder && result) this.order = defaultOrder(result.images, result.nodes);
    this.orderSelect.value = this.order;
    this.filter.replaceChildren(h("option", { value: "" }, "all layers"),
      ...layers.map((name) => h("option", { value: name, selected: name === this.layer }, name)));
    this.draw();
  }

  select(node: string | null): void {
    this.selected = node;
    for (const row of this.nodes.querySelectorAll<HTMLElement>("li[data-node]")) row.classList.toggle("on", row.dataset.node === node);
  }

  private draw(): void {
    const result = this.result;
    if (!result) return;
    const nodes = topNodes(result, this.count, this.layer, this.order);
    const edges = topEdges(result.edges, this.count, this.layer, this.order);
    const by = { abs: "|score|", high: "score, most positive first", low: "score, most negative first" }[this.order];
    const what = ["activation", "weight"].includes(result.criterion) ? result.criterion : `${result.criterion} of ${result.target}`;
    this.note.textContent = `${what} over ${result.images}; ranked by ${by}`;
    const top = Math.max(1e-30, ...nodes.map((n) => Math.abs(n.score)));
    this.nodes.replaceChildren(...nodes.map((n) => {
      const id = `${n.layer}:${n.channel}`;
      return h("li", { "data-node": id, class: id === this.selected ? "on" : "", title: `${id}: score ${fmt(n.score)}${n.kept ? " (kept by the node rule)" : ""}`,
        onclick: () => this.callbacks.selectNode(n.layer, n.channel),
        onmouseenter: () => this.callbacks.hoverNode(n.layer, n.channel), onmouseleave: () => this.callbacks.hoverNode(null, 0) },
      h("span", { class: "rank-id" }, h("span", { class: "rank-layer" }, n.layer), h("span", { class: "rank-tail" }, `:${n.channel}`)), bar(Math.abs(n.score) / top, n.score < 0 ? "#3a87bd" : "#f5b942"), h("span", { class: "num" }, fmt(n.score)));
    }));
    const none = { abs: "no node scores other than 0", high: "no node scores above 0", low: "no node scores below 0" }[this.order];
    if (!nodes.length) this.nodes.replaceChildren(status(none));
    const strongest = Math.max(1e-30, ...edges.map((e) => Math.abs(e.score)));
    this.edges.replaceChildren(...edges.map((e) => {
      const id = edgeId(e.layer, e.out, e.in);
      return h("li", { "data-edge": id, title: `${id}: score ${fmt(e.score)}, ${signName(e.sign)}`, onclick: () => this.callbacks.selectEdge(e.layer, e.out, e.in),
        onmouseenter: () => this.callbacks.hoverNode(e.layer, e.out), onmouseleave: () => this.callbacks.hoverNode(null, 0) },
      h("span", { class: "rank-id" }, h("span", { class: "sign", style: `background:${signCss(e.sign)}` }), h("span", { class: "rank-layer" }, e.layer),
        h("span", { class: "rank-tail spaced" }, `${e.in}→${e.out}`)),
      bar(Math.abs(e.score) / strongest, signCss(e.sign)), h("span", { class: "num" }, fmt(e.score)));
    }));
    if (!edges.length) this.edges.replaceChildren(status(this.order === "abs" || !result.num_edges ? "no kernel drawn: raise the kernel budget" : none.replace("node", "drawn kernel")));
  }
}

function bar(share: number, colour: string): HTMLElement {
  return h("span", { class: "rank-bar" }, h("span", { style: `width:${Math.max(2, Math.round(share * 100))}%;background:${colour}` }));
}
