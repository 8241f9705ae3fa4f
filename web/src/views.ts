/**
 * The views around the graph: the query's ranked nodes and kernels, "go to node", what the graph highlights,
 * the overlay of a second input (Fig 5a), exports, the circuit's tools (Fig 9, SVG/JSON), and the analysis
 * panel (composition, faithfulness as Fig 8, sub-features as Fig 10, a layer's renders as a grid).
 */
import "./views.css";
import { isCancelled, type Api, type Attention, type Circuit, type JobAnswer, type ModelInfo, type QueryRequest, type QueryResult } from "./api";
import { compositionView, faithfulnessChart, faithfulnessTable, figure8Methods } from "./analysis";
import { h, progressLine, status, statusOf, type JobProgress } from "./dom";
import { exportCircuitJson, exportCircuitSvg, exportScores } from "./exporting";
import { segments, type NodeIndex, type Segments } from "./geometry";
import type { NetworkGraph, NodeStyle } from "./graph3d";
import { highlighted, nodeScores, type Highlight } from "./highlight";
import { LayerGrid } from "./layerGrid";
import { OVERLAY_RGB, overlay } from "./overlay";
import { RankedLists } from "./ranking";
import { PRIORITY, type Scheduler } from "./scheduler";
import { GoToBox } from "./search";
import { parseNode, type ViewState } from "./state";
import { subfeaturesView } from "./subfeaturesView";
import { circuitFileUrl, subfeatures } from "./viewsApi";

const $ = (id: string) => document.getElementById(id)!;

export interface ViewsHost {
  api: Api;
  model: ModelInfo;
  index: NodeIndex;
  graph: NetworkGraph;
  state(): ViewState;
  set(patch: Partial<ViewState>): void;
  /** Draws the graph again (after the highlight or the overlay changed). */
  restyle(): void;
  /** Whose work comes first: the analysis panel's jobs are let go of when a newer request takes the area. */
  scheduler?: Scheduler;
}

/** What the 3D graph draws for the current query (and the overlay, when one is shown). */
export interface GraphView { style: NodeStyle; segs: Segments; segColours?: Float32Array; kept: number }

/** The request of the page's query for the input `images` (the thresholds and the kernel budget of the view). */
export function queryRequest(s: ViewState, images: string): QueryRequest {
  return {
    images, target: s.target, criterion: s.criterion, max_edges: s.maxEdges,
    node_fraction: s.nodeRule === "fraction" ? s.nodeValue : null, node_cumulative: s.nodeRule === "cumulative" ? s.nodeValue : null,
    edge_fraction: s.edgeRule === "fraction" ? s.edgeValue : null, edge_cumulative: s.edgeRule === "cumulative" ? s.edgeValue : null,
    sample: s.sample,
  };
}

export class Views {
  private highlight: Highlight = "kernels";
  private result: QueryResult | null = null;
  private second: QueryResult | null = null;
  private circuit: Circuit | null = null;
  private readonly ranked: RankedLists;
  private readonly overlayLine = h("div", { class: "overlay-line" });
  private readonly overlayInput: HTMLInputElement;
  private overlayRun: AbortController | null = null;
  private latest = 0;
  private area: HTMLElement | null = null;

  constructor(private readonly host: ViewsHost) {
    const graph = host.graph;
    const panel = $("ranked-panel");
    const go = new GoToBox(host.model.layers, (found) => {
      const id = host.index.offset.get(found.layer);
      if (id !== undefined) graph.focus(id + found.channel);
      host.set({ node: `${found.layer}:${found.channel}`, unit: null });
    });
    $("goto-slot").replaceChildren(go.element, h("button", { id: "fit-view", class: "small", title: "show the whole graph again", onclick: () => graph.resetView() }, "whole graph"));
    const toggle = h("select", { id: "highlight", title: "which nodes the graph lights up", onchange: () => {
      this.highlight = toggle.value as Highlight;
      host.restyle();
    } }, h("option", { value: "kernels" }, "the drawn kernels' nodes"), h("option", { value: "rule" }, "the node rule's nodes"));
    this.overlayInput = h("input", { id: "overlay-images", type: "text", placeholder: "second input, e.g. trouser", spellcheck: "false" });
    const exportButton = h("button", { id: "export-scores", class: "small", title: "every node's score, the kept nodes and the drawn kernels, as JSON",
      onclick: () => this.result && exportScores(this.result) }, "export scores (JSON)");
    panel.replaceChildren(
      h("h2", {}, "Query's top"),
      h("div", { class: "row" }, h("label", { class: "inline", for: "highlight" }, "light up"), toggle),
      h("div", { class: "overlay" },
        h("h3", {}, "Overlay a second input (Fig 5a)"),
        h("div", { class: "row" }, this.overlayInput,
          h("button", { id: "overlay-run", class: "small", onclick: () => void this.runOverlay() }, "overlay"),
          h("button", { id: "overlay-clear", class: "small", onclick: () => this.clearOverlay() }, "clear")),
        this.overlayLine),
      h("div", { class: "row" }, exportButton),
    );
    this.overlayInput.addEventListener("keydown", (e) => e.key === "Enter" && void this.runOverlay());
    this.ranked = new RankedLists(panel, {
      selectNode: (layer, channel) => {
        graph.point(null);
        host.set({ node: `${layer}:${channel}`, unit: null });
      },
      selectEdge: (layer, out, inp) => host.set({ edge: `${layer}:${out}<-${inp}` }),
      hoverNode: (layer, channel) => {
        const start = layer === null ? undefined : host.index.offset.get(layer);
        graph.point(start === undefined ? null : start + channel);
      },
    });
    this.setupAnalysis();
  }

  setResult(result: QueryResult): void {
    this.result = result;
    this.ranked.setResult(result);
    if (this.second && (this.second.target !== result.target || this.second.criterion !== result.criterion)) this.clearOverlay(false);
  }

  setNode(node: string | null): void {
    this.ranked.select(node);
  }

  setCircuit(circuit: Circuit | null): void {
    this.circuit = circuit;
    const tools = $("circuit-tools");
    if (!circuit) return tools.replaceChildren();
    const svgButton = h("button", { id: "export-svg", class: "small", onclick: () => {
      const svg = document.querySelector<SVGSVGElement>("#circuit svg");
      if (svg) exportCircuitSvg(svg, circuit);
    } }, "export SVG");
    const jsonButton = h("button", { id: "export-circuit", class: "small", onclick: () => void this.exportCircuit(circuit) }, "export JSON");
    tools.replaceChildren(h("span", { class: "muted" }, "circuit:"), svgButton, jsonButton,
      h("span", { class: "muted" }, circuit.key ? "select one of its nodes to revisualise it through the circuit (node panel, Fig 9)" : ""));
  }

  /** The extracted circuit for the node panel's "render through the circuit" (Fig 9). */
  circuitForPanel(): { key: string; nodes: Set<string>; name: string } | null {
    const c = this.circuit;
    if (!c?.key) return null;
    const nodes = new Set(c.nodes.map((n) => `${n.layer}:${n.channel}`));
    if (c.target.layer !== undefined) nodes.add(`${c.target.layer}:${c.target.channel}`);
    return { key: c.key, nodes, name: `the ${c.method} circuit of ${c.target.text} (${c.edges.length.toLocaleString()} kernels)` };
  }

  /** The graph's nodes and kernels for `result`: its own, or with the overlay's second input in a second colour. */
  graphView(result: QueryResult): GraphView {
    const index = this.host.index;
    // a signed criterion or a contrast ("sandal - overall") has scores of both signs: colour nodes by sign
    const signed = ["taylor_signed", "gradient", "activation"].includes(result.criterion)
      || Object.values(result.nodes).some((values) => values.some((v) => v < 0));
    if (this.second) {
      const o = overlay(index, result, this.second, this.highlight);
      this.overlayLine.replaceChildren(legend("a", `${result.images} only`, o.counts.a), legend("b", `${this.second.images} only`, o.counts.b),
        legend("both", "both", o.counts.both));
      return { style: { scores: o.scores, kept: o.kept, signed: false, colours: o.colours }, segs: o.segs, segColours: o.segColours, kept: o.kept.reduce((a, b) => a + b, 0) };
    }
    const segs = segments(index, result.edges);
    const kept = highlighted(index, result, segs, this.highlight);
    drawn = segs;
    return { style: { scores: nodeScores(index, result), kept, signed }, segs, kept: kept.reduce((a, b) => a + b, 0) };
  }

  private async exportCircuit(circuit: Circuit): Promise<void> {
    let stored: Blob | undefined;
    if (circuit.key) {
      try {
        const response = await fetch(circuitFileUrl(this.host.api, circuit.key));
        if (response.ok) stored = await response.blob();
      } catch {
        // the page's copy will do
      }
    }
    exportCircuitJson(circuit, stored);
  }

  private async runOverlay(): Promise<void> {
    const images = this.overlayInput.value.trim();
    if (!images) return this.overlayLine.replaceChildren(status("type a second input (image sets), e.g. trouser or bag - overall"));
    if (!this.result) return this.overlayLine.replaceChildren(status("run a query first: the overlay adds a second input to it"));
    this.overlayRun?.abort();
    const controller = (this.overlayRun = new AbortController());
    const api = this.host.api;
    try {
      const answer = await api.query(queryRequest(this.host.state(), images), controller.signal);
      if (answer.job && answer.state !== "done") progressLine(this.overlayLine, { id: answer.job, progress: 0, message: "waiting for the worker" }, (id) => api.cancel(id));
      const second = await api.follow(answer, (job) => progressLine(this.overlayLine, job, (id) => api.cancel(id)), controller.signal);
      if (controller !== this.overlayRun) return;
      this.second = second;
      document.body.dataset.overlay = second.key;
      this.host.restyle();
    } catch (error) {
      if (controller === this.overlayRun && !isCancelled(error)) this.overlayLine.replaceChildren(statusOf(error));
    }
  }

  private clearOverlay(redraw = true): void {
    this.overlayRun?.abort();
    this.second = null;
    delete document.body.dataset.overlay;
    this.overlayLine.replaceChildren();
    if (redraw) this.host.restyle();
  }

  // --- the analysis panel: one output area, the latest request owns it -------------------------------------
  private setupAnalysis(): void {
    const panel = $("analysis-panel");
    const area = (this.area = h("div", { id: "analysis-out" }));
    const button = (id: string, text: string, title: string, run: (out: Output) => Promise<void>) =>
      h("button", { id, title, onclick: () => void run(this.claim(area)) }, text);
    panel.replaceChildren(
      h("h2", {}, "Analysis"),
      h("div", { class: "row" },
        button("btn-composition", "Composition of the selected unit", "the units that compose the selected unit's response to the input image, layer by layer",
          (out) => this.composition(out)),
        button("btn-faithfulness", "Faithfulness: best / random / worst vs size", "how well circuits of each size reproduce the target on held-out images (Fig 8)",
          (out) => this.faithfulness(out)),
        button("btn-subfeatures", "Sub-features of the selected node", "cluster the node's top patches and extract one circuit per cluster (Fig 10)",
          (out) => this.subfeatures(out)),
        button("btn-layer-grid", "Browse a layer's renders", "every node of a layer as its feature visualization (as OpenAI Microscope)",
          async (out) => this.layerGrid(out))),
      area);
  }

  private claim(area: HTMLElement): Output {
    const run = ++this.latest;
    const mine = () => run === this.latest;
    const api = this.host.api;
    const panel = this.host.scheduler?.open("analysis", PRIORITY.analysis) ?? null; // the earlier request's work is let go of
    return {
      attention: panel?.attention() ?? null,
      show: (...nodes) => { if (mine()) area.replaceChildren(...nodes); },
      progress: (job) => { if (mine()) progressLine(area, job, (id) => api.cancel(id)); },
      waiting: (answer, message) => {
        panel?.hold(answer.job);
        if (mine() && answer.job && answer.state !== "done") progressLine(area, { id: answer.job, progress: 0, message: answer.state === "queued" ? "waiting for the worker" : message }, (id) => api.cancel(id));
      },
    };
  }

  private async composition(out: Output): Promise<void> {
    const s = this.host.state();
    const node = parseNode(s.node);
    if (!node || !s.image) return out.show(status("Select a node and an input image first (a unit too, or the map's peak is used)."));
    const unit = `${node[0]}:${node[1]}${s.unit ? `:${s.unit.join(",")}` : ""}`;
    out.show(status(`composing ${unit}…`, "busy"));
    try {
      const api = this.host.api;
      const answer = await api.composition(s.image, unit, out.attention);
      out.waiting(answer, `composing ${unit}…`);
      const result = await api.follow(answer, out.progress);
      out.show(h("h3", {}, `Composition of ${result.root} on image ${s.image}`),
        h("div", { class: "muted" }, "Each row: the units of the layer below that contribute most (activation × gradient) to the unit chosen above it; click a card to follow it down, its id to inspect it."),
        compositionView(api, result.tree, { select: (layer, channel, u) => this.host.set({ node: `${layer}:${channel}`, unit: u }) }));
    } catch (error) {
      out.show(statusOf(error));
    }
  }

  private async faithfulness(out: Output): Promise<void> {
    const s = this.host.state();
    const methods = figure8Methods(s.method, this.host.model.methods ?? null);
    out.show(status(`evaluating circuits for ${s.target}…`, "busy"));
    try {
      const api = this.host.api;
      const answer = await api.faithfulness({ images: s.images, target: s.target, methods, fractions: [0.01, 0.03, 0.1, 0.3] }, out.attention);
      out.waiting(answer, `evaluating circuits for ${s.target}…`);
      const evaluation = await api.follow(answer, out.progress);
      out.show(h("h3", {}, `Faithfulness of circuits for ${s.target} (Fig 8)`),
        h("div", { class: "faith" }, faithfulnessChart(evaluation, 560, 260, s.method), h("div", {},
          faithfulnessTable(evaluation, s.method),
          h("p", { class: "muted" }, `Median Pearson r between each circuit's target and the full model's, over ${evaluation.held_out_images} held-out images; `
            + `best: the ${s.method} circuit of each size, random: kernels drawn at random, worst: the lowest-ranked kernels first.`))));
    } catch (error) {
      out.show(statusOf(error));
    }
  }

  private async subfeatures(out: Output, asked?: { top: number; min: number }): Promise<void> {
    const s = this.host.state();
    const node = parseNode(s.node);
    if (!node || !this.host.index.offset.has(node[0]) || node[0] === "input") return out.show(status("Select a node (of a conv layer) first."));
    const sets = await this.host.api.sets().catch(() => []);
    const overall = sets.find((x) => x.name === "overall")?.count ?? 0;
    const top = asked?.top ?? Math.min(300, overall);
    const min = asked?.min ?? Math.max(2, Math.min(20, Math.floor(top / 4)));
    const name = `${node[0]}:${node[1]}`;
    const topInput = h("input", { id: "sf-top", type: "number", min: 2, max: 2000, step: 10, value: top });
    const minInput = h("input", { id: "sf-min", type: "number", min: 2, max: 500, step: 1, value: min });
    const form = h("div", { class: "row" }, h("span", { class: "muted" }, `sub-features of ${name}:`),
      h("label", { class: "inline" }, "top patches ", topInput), h("label", { class: "inline" }, "min cluster size ", minInput),
      h("button", { id: "sf-run", class: "small", onclick: () => void this.subfeatures(this.claim(this.area!), { top: Number(topInput.value), min: Number(minInput.value) }) }, "split again"));
    out.show(form, status(`splitting ${name} into sub-features…`, "busy"));
    const progress = h("div");
    try {
      const api = this.host.api;
      const answer = await subfeatures(api, { node: name, top_n: top, min_cluster_size: min, keep: s.keep, method: s.method }, out.attention);
      out.waiting(answer, `splitting ${name} into sub-features…`);
      out.show(form, progress);
      const line: Output = { ...out, progress: (job) => progressLine(progress, job, (id) => api.cancel(id)), show: out.show };
      if (answer.job && answer.state !== "done") line.progress({ id: answer.job, progress: 0, message: "waiting for the worker" });
      const result = await api.follow(answer, line.progress);
      out.show(form, subfeaturesView(api, result));
    } catch (error) {
      out.show(form, statusOf(error));
    }
  }

  private layerGrid(out: Output): void {
    const node = parseNode(this.host.state().node);
    const grid = new LayerGrid(this.host.api, this.host.model.layers, () => this.result,
      { selectNode: (layer, channel) => this.host.set({ node: `${layer}:${channel}`, unit: null }) }, node?.[0]);
    out.show(h("h3", {}, "A layer's feature visualizations"), grid.element);
  }
}

let drawn: Segments | null = null;
/** For the end-to-end walk: the kernels the graph draws now, as "layer index:out:in". */
(window as unknown as { viscnnViews: object }).viscnnViews = {
  drawnKernels: () => Array.from({ length: drawn?.count ?? 0 }, (_, i) => `${drawn!.layer[i]}:${drawn!.out[i]}:${drawn!.in[i]}`),
};

interface Output {
  attention: Attention | null;
  show(...nodes: (Node | string)[]): void;
  progress(job: JobProgress): void;
  waiting(answer: JobAnswer<unknown>, message: string): void;
}

function legend(which: keyof typeof OVERLAY_RGB, text: string, count: number): HTMLElement {
  const [r, g, b] = OVERLAY_RGB[which].map((c) => Math.round(c * 255));
  return h("span", { class: "overlay-key" }, h("i", { style: `background:rgb(${r},${g},${b})` }), `${text} (${count.toLocaleString()} nodes)`);
}
