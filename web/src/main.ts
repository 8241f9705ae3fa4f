/** The viscnn page: wires the query panel, the 3D graph, the circuit diagram and the panels to the server. */
import "./styles.css";
import { Api, ApiError, describe, type Circuit, type JobAnswer, type LayoutInfo, type ModelInfo, type QueryResult, type SetInfo } from "./api";
import { pageBase } from "./base";
import { drawCircuit } from "./circuit2d";
import { fmt, signName } from "./colors";
import { h, progressLine, status, statusOf, type JobProgress } from "./dom";
import { AUTO_START_IMAGES, imagesToScore, QueryHistory } from "./history";
import { EdgePanel } from "./edgePanel";
import { groupEdges, indexNodes, place, segments, type NodeIndex } from "./geometry";
import { NetworkGraph, type Pick } from "./graph3d";
import { ImagePicker } from "./imagePicker";
import { JobsView } from "./jobsView";
import { NodePanel } from "./nodePanel";
import { QueryPanel } from "./queryPanel";
import { PRIORITY, Scheduler } from "./scheduler";
import { decodeState, edgeId, encodeState, parseEdge, parseNode, queryKey, type ViewState } from "./state";
import { queryRequest, Views } from "./views";

const $ = (id: string) => document.getElementById(id)!;

class App {
  private api = new Api(pageBase(location.pathname));
  private state: ViewState = decodeState(location.search);
  private model!: ModelInfo;
  private index!: NodeIndex;
  private layoutKinds = ["grid"];
  private graph!: NetworkGraph;
  private query!: QueryPanel;
  private nodePanel = new NodePanel($("node-panel"));
  private edgePanel = new EdgePanel($("edge-panel"));
  private picker!: ImagePicker;
  private views!: Views;
  private jobs = new JobsView($("jobs"), this.api);
  private scheduler = new Scheduler(this.api);
  private queries = new QueryHistory<QueryResult>();
  private sets: SetInfo[] = [];
  private result: QueryResult | null = null;
  private circuit: Circuit | null = null;
  private signs = new Map<string, number>();
  private running: AbortController | null = null;
  private picking = false;
  private lastQuery = "";

  async start(): Promise<void> {
    try {
      this.model = await this.api.model();
    } catch (error) {
      $("graph-status").replaceChildren(statusOf(error), h("button", { onclick: () => location.reload() }, "retry"));
      return;
    }
    $("model-name").textContent = this.model.name;
    $("model-facts").textContent = `${this.model.layers.filter((l) => l.kind === "conv").length} conv layers · ${this.model.num_nodes.toLocaleString()} nodes · ${this.model.num_edges.toLocaleString()} kernels · input ${this.model.input_shape.join("×")}`;
    this.index = indexNodes(this.model);
    this.graph = new NetworkGraph($("graph"), { hover: (p, x, y) => this.hover(p, x, y), click: (p) => this.click(p) });
    await this.loadLayout(this.state.layout);
    performance.mark("viscnn-graph");
    this.query = new QueryPanel($("query-panel"), this.model, this.state, {
      change: (patch) => this.set(patch),
      run: () => void this.runQuery({ step: true }),
      circuit: () => void this.extractCircuit(),
      pick: (on) => (this.picking = on),
      layouts: () => this.layoutKinds,
    });
    this.picker = new ImagePicker($("image-panel"), this.api, (id) => this.set({ image: id, unit: null }));
    this.setupTabs();
    $("circuit-3d").addEventListener("change", () => this.restyle());
    this.views = new Views({ api: this.api, model: this.model, index: this.index, graph: this.graph, state: () => this.state,
      set: (patch) => this.set(patch), restyle: () => this.restyle(), scheduler: this.scheduler });
    this.jobs.start();
    window.addEventListener("popstate", () => {
      this.apply(decodeState(location.search), true);
      this.restoreQuery();
    });
    let sets: SetInfo[] = [];
    try {
      sets = await this.api.sets();
    } catch (error) {
      $("image-panel").append(statusOf(error));
    }
    this.sets = sets;
    this.query.setSets(sets);
    this.picker.setSets(sets);
    this.picker.show(this.state.image);
    this.apply(this.state, true);
    // the URL's query starts by itself when it is small; a big one waits for a click
    void this.runQuery({ start: imagesToScore(this.state, sets) <= AUTO_START_IMAGES });
    if (this.state.circuit) void this.extractCircuit();
    document.body.dataset.ready = "1";
  }

  /** Changes the state, writes it to the URL, and updates what depends on the changed fields. */
  set(patch: Partial<ViewState>): void {
    this.apply({ ...this.state, ...patch }, false);
  }

  private apply(next: ViewState, force: boolean): void {
    const before = this.state;
    this.state = next;
    const url = `${location.pathname}${encodeState(next)}`;
    // Selecting a node or an edge, or switching views, is a step Back can undo; other changes are not.
    const step = !force && (next.node !== before.node || next.edge !== before.edge || next.view !== before.view);
    if (url !== `${location.pathname}${location.search}`) history[step ? "pushState" : "replaceState"](null, "", url);
    this.query?.update(next);
    if (next.layout !== before.layout) void this.loadLayout(next.layout, false).then(() => this.restyle());
    const nodeChanged = force || next.node !== before.node || next.image !== before.image || next.mode !== before.mode
      || String(next.unit) !== String(before.unit);
    if (nodeChanged) this.showNode();
    if (force || next.edge !== before.edge || next.image !== before.image) this.showEdge();
    if (force || next.view !== before.view) this.showView();
    if (next.image !== before.image) this.picker?.show(next.image);
  }

  /** Places the nodes by a layout; a projection still being prepared shows the grid until its job ends. */
  private async loadLayout(kind: string, first = true): Promise<void> {
    const line = $("graph-status");
    let layout: LayoutInfo | null = null;
    try {
      const answer = await this.api.layout(kind);
      if ("layers" in answer) {
        layout = answer;
        this.layoutKinds = answer.kinds?.length ? answer.kinds : [answer.kind];
        line.replaceChildren();
      } else {
        line.replaceChildren(status(`preparing the ${kind} layout in the background; showing a grid meanwhile`, "busy"));
        void this.api.follow(answer, (job) => {
          line.replaceChildren(status(`preparing the ${kind} layout: ${Math.round(job.progress * 100)}% ${job.message ?? ""}`, "busy"));
        }).then(
          () => {
            if (this.state.layout === kind) void this.loadLayout(kind, false).then(() => this.restyle());
          },
          (error) => {
            if (this.state.layout === kind) line.replaceChildren(statusOf(error));
          },
        );
      }
    } catch (error) {
      line.replaceChildren(status(`layout ${kind}: ${describe(error)}; showing a grid`, error instanceof ApiError && error.unavailable ? "unavailable" : "error"));
    }
    if (first || layout) this.graph.setNodes(this.index, place(this.index, layout), !first);
    this.query?.refreshLayouts();
  }

  /**
   * Runs the query the state names. `start` false: only shows it when the server has it computed, else asks
   * (a button) instead of starting work; `step`: the user ran it, so Back returns to the query before.
   */
  private async runQuery({ start = true, step = false }: { start?: boolean; step?: boolean } = {}): Promise<void> {
    this.running?.abort();
    const controller = new AbortController();
    this.running = controller;
    const s = this.state;
    const t0 = performance.now();
    this.query.setBusy(true, "query");
    $("q-run").classList.remove("asking");
    const time = this.query.time;
    time.replaceChildren(status(start ? "querying…" : "looking for this query's result…", "busy"));
    if (step) this.queries.step(s);
    const panel = this.scheduler.open("query", PRIORITY.query);
    try {
      const answer = await this.api.query({ ...queryRequest(s, s.images), start }, controller.signal, panel.attention());
      panel.hold(answer.job);
      this.waiting(answer, time, "computing in the background…");
      const result = await this.api.follow(answer, (job) => this.progress(job, time), controller.signal);
      if (controller !== this.running) return;
      const wall = (performance.now() - t0) / 1000;
      this.shownQuery(s, result, h("span", { id: "q-took" }, `${fmt(wall)} s`),
        ` (server ${fmt(result.seconds)} s${result.computed?.length ? `, computed ${result.computed.join(", ")}` : ", cached"})`);
    } catch (error) {
      if (controller !== this.running) return;
      if (!start && error instanceof ApiError && error.status === 404) this.askToRun(s);
      else time.replaceChildren(statusOf(error));
    } finally {
      if (controller === this.running) {
        this.query.setBusy(false, "query");
        this.running = null;
      }
    }
  }

  /** Draws a query's result and says what it is: how long it took (`took`), what is drawn, how it was sampled. */
  private shownQuery(s: ViewState, result: QueryResult, ...took: (Node | string)[]): void {
    this.result = result;
    this.lastQuery = queryKey(s);
    this.queries.remember(s, result);
    const drawStart = performance.now();
    this.showResult(result);
    performance.measure("viscnn-draw-query", { start: drawStart, end: performance.now() });
    const sampled = Object.entries(result.sampled ?? {});
    this.query.time.replaceChildren(...took,
      ` · ${result.num_edges.toLocaleString()} of ${result.num_edges_total.toLocaleString()} kernels drawn · ${result.n_images.toLocaleString()} images`,
      ...(sampled.length ? [" · ", h("span", { class: "sampled", id: "q-sampled", title: "set a sample size (0: every image) to change it" },
        sampled.map(([name, n]) => `${name}: sampled ${n.images.toLocaleString()} of ${n.of.toLocaleString()}`).join(", "))] : []));
    document.body.dataset.query = result.key;
    if (this.state.node) this.showNode();
  }

  /** The query on screen is not the state's (Back, Forward): its result from the page's cache, else the server's. */
  private restoreQuery(): void {
    if (this.queries.isShown(this.state) && this.lastQuery === queryKey(this.state)) return;
    const cached = this.queries.recall(this.state);
    if (!cached) return void this.runQuery({ start: false });
    this.running?.abort();
    this.running = null;
    this.query.setBusy(false, "query");
    this.shownQuery(this.state, cached, h("span", { id: "q-restored" }, "restored from history"));
  }

  /** The query is not computed: say what running it takes, and wait for the click. */
  private askToRun(s: ViewState): void {
    const images = imagesToScore(s, this.sets);
    $("q-run").classList.add("asking");
    this.query.time.replaceChildren(h("div", { class: "ask", id: "q-ask" },
      status(`${s.target} over ${s.images} is not computed yet${images ? ` (it scores up to ${images.toLocaleString()} images)` : ""}: nothing runs until you ask`),
      h("button", { id: "q-ask-run", class: "small primary", onclick: () => void this.runQuery({ step: true }) }, "run it")));
  }

  /** A job's progress in a panel, with a button that cancels that job (the jobs view hears of every state from the Api). */
  private progress(job: JobProgress, host: HTMLElement): void {
    progressLine(host, job, (id) => this.api.cancel(id));
  }

  /** The progress line from the moment the server answers with a job, so it can be cancelled before its first progress. */
  private waiting(answer: JobAnswer<unknown>, host: HTMLElement, message: string): void {
    if (answer.job && answer.state !== "done") {
      this.progress({ id: answer.job, progress: 0, message: answer.state === "queued" ? "waiting for the worker" : message }, host);
    }
  }

  private showResult(result: QueryResult): void {
    this.signs.clear();
    for (const [layer, block] of Object.entries(result.edges)) {
      for (let i = 0; i < block.out.length; i++) this.signs.set(edgeId(layer, block.out[i], block.in[i]), block.sign[i]);
    }
    this.views.setResult(result);
    this.restyle();
  }

  private restyle(): void {
    if (this.circuit && ($("circuit-3d") as HTMLInputElement).checked) return this.circuitIn3d(this.circuit);
    if (!this.result) return;
    const view = this.views.graphView(this.result); // the query's kernels and their nodes (and an overlaid second input)
    this.graph.setStyle(view.style);
    this.graph.setSegments(view.segs, view.segColours);
    const selected = parseNode(this.state.node);
    this.graph.select(selected ? this.nodeId(selected[0], selected[1]) : null);
    document.body.dataset.kept = String(view.kept);
  }

  /** The circuit's nodes and kernels in the 3D view, in place of the query's. */
  private circuitIn3d(circuit: Circuit): void {
    const n = this.index.count;
    const scores = new Float32Array(n).fill(NaN);
    const kept = new Uint8Array(n);
    for (const node of circuit.nodes) {
      const id = this.nodeId(node.layer, node.channel);
      if (id === null) continue;
      scores[id] = node.score;
      kept[id] = 1;
    }
    this.graph.setStyle({ scores, kept, signed: false });
    const edges = circuit.edges.map((e) => ({ ...e, sign: e.sign ?? this.signs.get(edgeId(e.layer, e.out, e.in)) ?? 0 }));
    this.graph.setSegments(segments(this.index, groupEdges(edges)));
  }

  private async extractCircuit(): Promise<void> {
    const s = this.state;
    const panel = this.scheduler.open("circuit", PRIORITY.circuit);
    const host = $("circuit");
    this.query.setBusy(true, "circuit");
    // The old circuit gives way to the new one's progress: nothing may redraw it over that line meanwhile
    // (a query that ends first restyles the page, and selecting a node redraws the diagram).
    this.circuit = null;
    this.views.setCircuit(null);
    ($("circuit-3d") as HTMLInputElement).disabled = true;
    this.set({ view: "circuit", circuit: true });
    host.replaceChildren(status(`extracting the ${s.method} circuit for ${s.target} (keep ${s.keep})…`, "busy"));
    const t0 = performance.now();
    try {
      const answer = await this.api.circuit({ images: s.images, target: s.target, method: s.method, keep: s.keep }, undefined, panel.attention());
      panel.hold(answer.job);
      this.waiting(answer, host, `extracting the ${s.method} circuit…`);
      const circuit = await this.api.follow(answer, (job) => this.progress(job, host));
      this.circuit = circuit;
      this.views.setCircuit(circuit);
      ($("circuit-3d") as HTMLInputElement).disabled = false;
      this.restyle();
      this.drawCircuit();
      const info = $("circuit-info");
      const seconds = (performance.now() - t0) / 1000;
      info.textContent = `${circuit.method} circuit for ${circuit.target.text}: ${circuit.edges.length.toLocaleString()} kernels, ${circuit.nodes.length} nodes, kept ${fmt(circuit.kept_fraction * 100)}% of ${circuit.upstream_edges.toLocaleString()} upstream kernels · ${fmt(seconds)} s`;
      document.body.dataset.circuit = String(circuit.edges.length);
    } catch (error) {
      host.replaceChildren(statusOf(error));
    } finally {
      this.query.setBusy(false, "circuit");
    }
  }

  private drawCircuit(): void {
    if (!this.circuit) return;
    drawCircuit($("circuit"), this.circuit, this.index.layers, {
      selectNode: (layer, channel) => this.set({ node: `${layer}:${channel}`, unit: null }),
      selectEdge: (layer, out, inp) => this.set({ edge: edgeId(layer, out, inp) }),
    }, this.signs, this.state.node);
  }

  private showView(): void {
    const circuit = this.state.view === "circuit";
    $("graph").hidden = circuit;
    $("circuit-view").hidden = !circuit;
    $("graph-hint").hidden = circuit;
    for (const tab of document.querySelectorAll<HTMLElement>("[data-view]")) tab.classList.toggle("on", tab.dataset.view === this.state.view);
    if (circuit) this.drawCircuit();
    else if (this.circuit === null && !this.state.circuit) $("circuit").replaceChildren(status("Extract a circuit (query panel) to see it here."));
  }

  private setupTabs(): void {
    for (const tab of document.querySelectorAll<HTMLElement>("[data-view]")) {
      tab.addEventListener("click", () => this.set({ view: tab.dataset.view as ViewState["view"] }));
    }
    $("circuit").replaceChildren(status("Extract a circuit (query panel) to see it here."));
  }

  private nodeId(layer: string, channel: number): number | null {
    const start = this.index.offset.get(layer);
    return start === undefined ? null : start + channel;
  }

  private showNode(): void {
    const node = parseNode(this.state.node);
    if (!node) {
      this.scheduler.leave("node");
      this.nodePanel.clear();
      this.graph?.select(null);
      return;
    }
    this.graph?.select(this.nodeId(node[0], node[1]));
    this.views?.setNode(this.state.node);
    void this.nodePanel.show({
      api: this.api, model: this.model, panel: this.scheduler.open("node", PRIORITY.node), queryKey: this.result && this.lastQuery === queryKey(this.state) ? this.result.key : null,
      image: this.state.image, mode: this.state.mode, unit: this.state.unit, circuit: this.views?.circuitForPanel(),
      selectNode: (layer, channel) => this.set({ node: `${layer}:${channel}`, unit: null }),
      selectEdge: (layer, out, inp) => this.set({ edge: edgeId(layer, out, inp) }),
      setMode: (mode) => this.set({ mode }),
      setUnit: (unit) => this.set({ unit }),
      showExample: (image, unit) => this.set({ image, unit }),
      useAsTarget: (target) => {
        this.set({ target });
        void this.runQuery({ start: false }); // shown if computed; else a button: nothing long starts unasked
      },
    }, node[0], node[1]);
    if (this.state.view === "circuit") this.drawCircuit();
  }

  private showEdge(): void {
    const edge = parseEdge(this.state.edge);
    if (!edge) {
      this.scheduler.leave("edge");
      return this.edgePanel.clear();
    }
    void this.edgePanel.show(this.api, edge[0], edge[1], edge[2], this.state.image, (layer, channel) => this.set({ node: `${layer}:${channel}`, unit: null }),
      this.scheduler.open("edge", PRIORITY.edge));
  }

  private describeNode(i: number): string {
    const layer = this.index.layers[this.index.layerOf[i]];
    const channel = this.index.channelOf[i];
    const score = this.result?.nodes[layer.name]?.[channel];
    const kept = this.result?.kept[layer.name]?.includes(channel);
    return `${layer.name}:${channel}${score !== undefined ? `  score ${fmt(score)}${kept ? " (kept)" : ""}` : ""}`;
  }

  private hover(pick: Pick, x: number, y: number): void {
    const tip = $("tooltip");
    let text = "";
    if (pick.node !== null) text = this.describeNode(pick.node);
    else if (pick.segment !== null && this.graph.segments) {
      const sg = this.graph.segments, i = pick.segment;
      text = `${this.index.layers[sg.layer[i]].name} ${sg.in[i]}→${sg.out[i]}  score ${fmt(sg.score[i])}  ${signName(sg.sign[i])}`;
    }
    tip.hidden = !text;
    tip.textContent = text;
    tip.style.transform = `translate(${x + 14}px, ${y + 10}px)`;
  }

  private click(pick: Pick): void {
    if (pick.node !== null) {
      const layer = this.index.layers[this.index.layerOf[pick.node]];
      const id = `${layer.name}:${this.index.channelOf[pick.node]}`;
      if (this.picking && layer.kind === "conv") {
        this.query.setPicking(false);
        this.set({ target: id });
        void this.runQuery({ start: false }); // shown if computed; else a button: nothing long starts unasked
        return;
      }
      this.set({ node: id, unit: null });
    } else if (pick.segment !== null && this.graph.segments) {
      const sg = this.graph.segments, i = pick.segment;
      this.set({ edge: edgeId(this.index.layers[sg.layer[i]].name, sg.out[i], sg.in[i]) });
    }
  }

  /** Hooks for the end-to-end test and the benchmark. */
  hooks() {
    return {
      nodeOnScreen: (layer: string, channel: number) => {
        const id = this.nodeId(layer, channel);
        return id === null ? null : this.graph.nodeOnScreen(id);
      },
      orbit: (ms: number, lod = true) => this.graph.orbit(ms, lod),
      pick: (x: number, y: number) => this.graph.pick(x, y),
      /** A point on the canvas where an edge (not a node) would be clicked, and that edge's id. */
      edgeSpot: () => {
        const sg = this.graph.segments;
        for (let i = 0; sg && i < Math.min(sg.count, 500); i++) {
          const a = this.graph.nodeOnScreen(sg.from[i]), b = this.graph.nodeOnScreen(sg.to[i]);
          if (!a || !b) continue;
          const [x, y] = [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2];
          const hit = this.graph.pick(x, y).segment;
          if (hit !== null) return { x, y, edge: edgeId(this.index.layers[sg.layer[hit]].name, sg.out[hit], sg.in[hit]) };
        }
        return null;
      },
      state: () => ({ ...this.state }),
      /** The job ids each open panel holds, and the ids the page let go of last. */
      panels: () => Object.fromEntries(["query", "node", "edge", "analysis", "circuit"].map((name) =>
        [name, [...(this.scheduler.current(name)?.jobs ?? [])]])),
      released: () => [...this.scheduler.released],
      segments: () => this.graph.segments?.count ?? 0,
    };
  }
}

const app = new App();
(window as unknown as { viscnn: ReturnType<App["hooks"]> }).viscnn = app.hooks();
void app.start();
