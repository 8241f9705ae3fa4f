/**
 * A layer's nodes in a grid of feature visualizations to browse (as OpenAI Microscope): stored renders load as
 * they scroll into view; the others render when asked (one, or those in view), nothing runs unasked.
 */
import type { Api, LayerInfo, QueryResult } from "./api";
import { fmt } from "./colors";
import { h, rendered, status, statusOf } from "./dom";
import { layerRenders } from "./viewsApi";

export type GridOrder = "channel" | "score";

/** The channels of a layer in the grid's order: by index, or by |score| of the query (unscored last). */
export function gridOrder(channels: number, order: GridOrder, scores?: number[] | null): number[] {
  const all = Array.from({ length: channels }, (_, c) => c);
  if (order !== "score" || !scores) return all;
  const key = (c: number) => (Number.isFinite(scores[c]) ? Math.abs(scores[c]) : -1);
  return all.sort((a, b) => key(b) - key(a) || a - b);
}

export interface GridCallbacks {
  selectNode(layer: string, channel: number): void;
}

export class LayerGrid {
  readonly element: HTMLElement;
  private readonly layerSelect: HTMLSelectElement;
  private readonly orderSelect: HTMLSelectElement;
  private readonly grid = h("div", { class: "layer-grid", id: "layer-grid" });
  private readonly note = h("div", { class: "muted" });
  private observer: IntersectionObserver | null = null;
  private said = "";
  private token = 0;

  constructor(private readonly api: Api, layers: LayerInfo[], private readonly result: () => QueryResult | null,
    private readonly callbacks: GridCallbacks, first?: string) {
    const convs = layers.filter((l) => l.kind === "conv");
    this.layerSelect = h("select", { id: "grid-layer", onchange: () => void this.show() },
      ...convs.map((l) => h("option", { value: l.name, selected: l.name === first }, `${l.name} (${l.out_channels})`)));
    this.orderSelect = h("select", { id: "grid-order", onchange: () => void this.show() },
      h("option", { value: "channel" }, "by channel"), h("option", { value: "score", selected: !!result() }, "by the query's |score|"));
    const visible = h("button", { id: "grid-render-visible", onclick: () => this.renderVisible() }, "render the nodes in view");
    this.element = h("div", { class: "layer-browser" },
      h("div", { class: "row" }, h("label", { class: "inline" }, "layer ", this.layerSelect), h("label", { class: "inline" }, "order ", this.orderSelect), visible),
      this.note, this.grid);
    void this.show();
  }

  private async show(): Promise<void> {
    const token = ++this.token;
    const layer = this.layerSelect.value;
    this.observer?.disconnect();
    this.grid.replaceChildren(status("loading…", "busy"));
    try {
      const known = await layerRenders(this.api, layer);
      if (token !== this.token) return;
      const stored = new Set(known.rendered);
      const scores = this.result()?.nodes[layer] ?? null;
      const order = gridOrder(known.channels, this.orderSelect.value as GridOrder, scores);
      this.said = `${layer}: ${known.channels} nodes, ${stored.size} rendered (the image that maximises each node's mean). `
        + "Rendered ones load as you scroll; click a node to inspect it.";
      this.note.textContent = this.said;
      this.observer = new IntersectionObserver((entries) => {
        for (const entry of entries) {
          if (!entry.isIntersecting) continue;
          const cell = entry.target as HTMLElement;
          this.observer?.unobserve(cell);
          const img = cell.querySelector<HTMLImageElement>("img[data-src]");
          if (img) img.src = img.dataset.src!;
        }
      }, { root: null, rootMargin: "200px" });
      this.grid.replaceChildren(...order.map((c) => this.cell(layer, c, stored.has(c), scores?.[c])));
      for (const cell of this.grid.children) this.observer.observe(cell);
    } catch (error) {
      if (token === this.token) this.grid.replaceChildren(statusOf(error));
    }
  }

  private cell(layer: string, channel: number, stored: boolean, score: number | undefined): HTMLElement {
    const slot = h("div", { class: "grid-render" });
    if (stored) slot.append(h("img", { "data-src": this.api.renderUrl(layer, channel, "channel"), class: "render", alt: `${layer}:${channel}` }));
    else slot.append(h("button", { class: "small", onclick: (e: Event) => { e.stopPropagation(); this.render(layer, channel, slot); } }, "render"));
    return h("div", { class: "grid-cell", "data-channel": channel, "data-stored": stored ? "1" : "0", title: `${layer}:${channel}${score !== undefined ? `: score ${fmt(score)}` : ""}`,
      onclick: () => this.callbacks.selectNode(layer, channel) },
    slot, h("div", { class: "grid-label" }, h("span", {}, String(channel)), score !== undefined ? h("span", { class: "muted" }, fmt(score)) : null));
  }

  private render(layer: string, channel: number, slot: HTMLElement): void {
    slot.closest<HTMLElement>(".grid-cell")!.dataset.stored = "asked";
    void rendered(this.api, slot, () => this.api.renderNode(layer, channel, "channel"), this.api.renderUrl(layer, channel, "channel"), `${layer}:${channel}`, "render", true);
  }

  /** Queues the renders of the unrendered nodes now on screen (at most 16 at once: the queue is the server's). */
  private renderVisible(): void {
    const layer = this.layerSelect.value;
    const view = { top: 0, bottom: window.innerHeight };
    let asked = 0;
    for (const cell of this.grid.querySelectorAll<HTMLElement>(".grid-cell[data-stored='0']")) {
      const r = cell.getBoundingClientRect();
      if (r.bottom < view.top || r.top > view.bottom) continue;
      this.render(layer, Number(cell.dataset.channel), cell.querySelector<HTMLElement>(".grid-render")!);
      if (++asked >= 16) break;
    }
    this.note.textContent = `${this.said} ${asked ? `Asked for ${asked} renders.` : "Every node in view is rendered or asked for."}`;
  }
}
