/** The node panel: feature visualization, dataset examples, activation map with receptive fields, top inputs. */
import type { Api, Box, IncomingEdge, LayerInfo, ModelInfo } from "./api";
import { chooseScale, divergingScale, fmt, signCss, signName } from "./colors";
import { figure, h, image, rendered, status, statusOf } from "./dom";
import { colourBar, flagIfFlat, heatmapCanvas, mapView } from "./heatmap";
import { TOP_FEW, whenShown, type Panel } from "./scheduler";
import { edgeId, type Mode } from "./state";
import { edgeMaps, examples as fetchExamples, renderThrough, renderThroughUrl, type Examples } from "./viewsApi";

export interface NodeContext {
  api: Api;
  model: ModelInfo;
  /** Who asks for this panel's work (its priority; let go of when the panel shows another node). */
  panel?: Panel | null;
  queryKey: string | null;
  image: string | null;
  mode: Mode;
  unit: [number, number] | null;
  /** The extracted circuit (its store key and its nodes as "LAYER:C"), to revisualise the node through it. */
  circuit?: { key: string; nodes: Set<string>; name: string } | null;
  selectNode(layer: string, channel: number): void;
  selectEdge(layer: string, out: number, inp: number): void;
  setMode(mode: Mode): void;
  setUnit(unit: [number, number] | null): void;
  /** Chooses an input image and a unit of this node's map at once (a dataset example's peak). */
  showExample(image: string, unit: [number, number]): void;
  useAsTarget(target: string): void;
}

const OBJECTIVE: Record<Mode, string> = { channel: "the mean of its whole map", neuron: "its centre unit" };

export class NodePanel {
  private token = 0;

  constructor(private readonly host: HTMLElement) {
    this.clear();
  }

  clear(): void {
    this.token++;
    this.host.replaceChildren(h("h2", {}, "Node"), status("Click a node in the graph (or a node of the circuit, a ranked node, or go to one) to inspect it."));
  }

  async show(ctx: NodeContext, layer: string, channel: number): Promise<void> {
    const token = ++this.token;
    const info = ctx.model.layers.find((l) => l.name === layer);
    if (!info) return this.host.replaceChildren(h("h2", {}, "Node"), status(`unknown layer ${layer}`, "error"));
    const id = `${layer}:${channel}`;
    const head = h("div", { class: "node-head" });
    const vis = h("div", { class: "slot vis" });
    const examples = h("div", { class: "slot examples" });
    const activation = h("div", { class: "activation" });
    const incoming = h("div", { class: "incoming" }, status("loading inputs…", "busy"));
    const modes = h("div", { class: "toggle" }, ...(["channel", "neuron"] as const).map((m) =>
      h("button", { class: m === ctx.mode ? "on" : "", "data-mode": m, onclick: () => ctx.setMode(m) }, m)));
    const through = this.throughCircuit(ctx, info, channel);
    this.host.replaceChildren(
      h("h2", {}, "Node ", h("span", { class: "id" }, id)),
      head,
      h("div", { class: "node-grid" },
        figure(`feature visualization: the image that maximises ${OBJECTIVE[ctx.mode]}`, vis, modes),
        activation,
        through,
        h("div", { class: "span-all" }, figure(`dataset examples of ${id}: the patches that excite it most (top row) and inhibit it, below 0 (bottom row)`, examples))),
      h("h3", {}, "Top incoming edges"),
      incoming,
    );
    head.append(
      h("span", {}, `${info.kind} · depth ${info.depth}`),
      h("span", {}, `map ${info.output_shape?.slice(1).join("×") ?? "?"}`),
      h("span", {}, `receptive field ${info.receptive_field?.whole_image ? "whole image" : info.receptive_field?.size.join("×") ?? "?"}`),
    );
    if (info.kind === "conv") head.append(h("button", { class: "small", onclick: () => ctx.useAsTarget(id) }, "use as output"));
    if (info.kind !== "conv") {
      vis.replaceChildren(status("the input has no feature visualization"));
      examples.replaceChildren(status("–"));
    } else {
      const mode = ctx.mode;
      const panel = ctx.panel ?? null;
      void rendered(ctx.api, vis, () => ctx.api.renderNode(layer, channel, mode, panel?.attention()), ctx.api.renderUrl(layer, channel, mode),
        `${id} ${mode}`, "render", false, panel)
        .then((img) => img && flagIfFlat(img, vis, "this node's objective"));
      const picture = h("div");
      const links = h("div", { class: "example-links" });
      examples.replaceChildren(picture, links);
      void image(ctx.api, picture, ctx.api.examplesUrl(layer, channel), `${id} exciting (top) and inhibiting (bottom) patches`, "examples-img",
        false, undefined, panel)
        .then((img) => img && this.exampleLinks(ctx, links, layer, channel, token));
    }
    void this.activation(ctx, activation, info, channel, token);
    try {
      const node = await ctx.api.node(layer, channel, ctx.queryKey, 16);
      if (token !== this.token) return;
      head.prepend(h("span", { class: "score" }, `score ${fmt(node.score)}`));
      incoming.replaceChildren(this.incoming(ctx, node.incoming));
    } catch (error) {
      if (token === this.token) incoming.replaceChildren(statusOf(error));
    }
  }

  /** Fig 9: the node rendered through the extracted circuit (only its kernels), beside its render in the whole model. */
  private throughCircuit(ctx: NodeContext, info: LayerInfo, channel: number): HTMLElement | null {
    const circuit = ctx.circuit;
    const id = `${info.name}:${channel}`;
    if (!circuit || info.kind !== "conv") return null;
    const slot = h("div", { class: "slot vis through" });
    if (!circuit.nodes.has(id)) {
      slot.replaceChildren(status(`not in ${circuit.name}: select one of its nodes to revisualise it through the circuit`));
    } else {
      const objective = ctx.mode === "neuron" ? `${id}:neuron` : id;
      const go = () => void rendered(ctx.api, slot, () => renderThrough(ctx.api, circuit.key, objective, ctx.panel?.attention()),
        renderThroughUrl(ctx.api, circuit.key, objective), `${objective} through the circuit`, "render", false, ctx.panel ?? null).then((img) => img && flagIfFlat(img, slot, "the node through this circuit"));
      slot.replaceChildren(h("button", { id: "btn-through", onclick: go }, "render through the circuit"));
    }
    return figure(`the same objective rendered through ${circuit.name} (Fig 9)`, slot);
  }

  /** Buttons that open an example image at the unit where the node peaks on it; "inhibiting" means below 0. */
  private async exampleLinks(ctx: NodeContext, host: HTMLElement, layer: string, channel: number, token: number): Promise<void> {
    try {
      const answer = await fetchExamples(ctx.api, layer, channel, ctx.panel?.attention());
      if (token !== this.token || !answer.result) return;
      const result: Examples = answer.result;
      const row = (label: string, list: Examples["excite"]) => h("div", { class: "row" }, h("span", { class: "muted example-label" }, label),
        ...list.map((e) => h("button", { class: "small", title: `open ${e.image_id} at unit (${e.y},${e.x}): ${fmt(e.value)}`,
          onclick: () => ctx.showExample(e.image_id, [e.y, e.x]) }, h("img", { src: ctx.api.imageUrl(e.image_id), class: "pix example-thumb", alt: e.image_id }))));
      const inhibit = result.inhibit.length
        ? row("most inhibiting (below 0):", result.inhibit)
        : h("div", { class: "row muted", id: "no-inhibit" }, `no image inhibits it: none drives it below 0 (its lowest value is ${fmt(result.lowest ?? null)})`);
      host.replaceChildren(row("most exciting, open at its peak:", result.excite), inhibit);
    } catch {
      host.replaceChildren(); // the picture above already says what is missing
    }
  }

  private async activation(ctx: NodeContext, host: HTMLElement, info: LayerInfo, channel: number, token: number): Promise<void> {
    const mapSlot = h("div", { class: "slot map" }, status("loading…", "busy"));
    const inputSlot = h("div", { class: "slot input" });
    const caption = h("div", { class: "muted rf-caption" });
    const imageName = ctx.image ? `image ${ctx.image}` : "the input image";
    host.replaceChildren(figure(`activation map of ${info.name}:${channel} on ${imageName} (BN folded; click a unit)`, mapSlot),
      figure(`${imageName} as the model sees it${ctx.unit ? ", the unit's receptive field boxed" : ""}`, h("div", {}, inputSlot, caption)));
    if (!ctx.image) {
      mapSlot.replaceChildren(status("Pick an input image (left) to see this node's map.", "info"));
      inputSlot.replaceChildren(status("no image chosen"));
      return;
    }
    const frame = h("div", { class: "rf-frame" });
    inputSlot.replaceChildren(frame);
    const picture = h("img", { src: ctx.api.imageUrl(ctx.image), alt: "input image", class: "input-image" });
    const box = h("div", { class: "rf-box", hidden: true });
    frame.append(picture, box);
    try {
      const act = await ctx.api.activation(ctx.image, info.name, channel);
      if (token !== this.token) return;
      const unit = ctx.unit && ctx.unit[0] < act.height && ctx.unit[1] < act.width ? ctx.unit : null;
      mapSlot.replaceChildren(mapView(act.values, { size: 168, mark: unit, what: "activation", onCell: (cell) => ctx.setUnit(cell) }));
      if (unit) mapSlot.append(h("div", { class: "muted" }, `unit (${unit[0]},${unit[1]}) = ${fmt(act.values[unit[0]]?.[unit[1]])}`));
      if (unit) {
        const rf = await ctx.api.receptiveField(info.name, unit[0], unit[1]);
        if (token !== this.token) return;
        showBox(frame, box, rf, ctx.model.input_shape);
        caption.textContent = `unit (${unit[0]},${unit[1]}): receptive field rows ${rf.top}…${rf.bottom - 1}, cols ${rf.left}…${rf.right - 1}`;
      }
    } catch (error) {
      if (token === this.token) mapSlot.replaceChildren(statusOf(error));
    }
  }

  private incoming(ctx: NodeContext, edges: IncomingEdge[]): HTMLElement {
    if (!edges.length) return status("no incoming edges");
    const scored = edges.some((e) => e.score !== null);
    const rows = edges.map((e, rank) => {
      const kernel = h("div", { class: "thumb" });
      const output = h("div", { class: "thumb" });
      const source = h("div", { class: "thumb" });
      void thumbMap(kernel, async () => {
        const edge = await ctx.api.edge(e.layer, e.out, e.in);
        const limit = Math.max(...edge.kernel.flat().map(Math.abs));
        return { values: edge.kernel, scale: divergingScale(limit), what: "weight" };
      });
      if (ctx.image) {
        const imageId = ctx.image;
        void thumbMap(output, async () => {
          const maps = await edgeMaps(ctx.api, e.layer, e.out, e.in, imageId);
          return { values: maps.output.values, scale: maps.output.scale ?? chooseScale(maps.output.values.flat()), what: "output" };
        });
      } else output.replaceChildren(h("span", { class: "na muted", title: "pick an input image" }, "no image"));
      const src = e.sources[0];
      if (src && src.layer !== "input") {
        // after the node's own work, in rank order; only the top few and those scrolled into view
        const panel = ctx.panel ?? null;
        source.replaceChildren(h("span", { class: "na muted lazy-hint", title: "rendered when scrolled into view" }, "·"));
        whenShown(source, () => void rendered(ctx.api, source, () => ctx.api.renderNode(src.layer, src.channel, "channel", panel?.attention(2 + rank / 100)),
          ctx.api.renderUrl(src.layer, src.channel, "channel"), `render of ${src.layer}:${src.channel}`, "render", true, panel), rank < TOP_FEW, panel);
      }
      else source.replaceChildren(h("span", { class: "na muted" }, src ? "input" : "–"));
      return h("tr", { class: "edge-row", "data-edge": edgeId(e.layer, e.out, e.in), onclick: () => ctx.selectEdge(e.layer, e.out, e.in) },
        h("td", {}, h("span", { class: "sign", style: `background:${signCss(e.sign)}`, title: signName(e.sign) })),
        h("td", {}, ...e.sources.map((s) => h("a", { href: "#", onclick: (ev: Event) => { ev.preventDefault(); ev.stopPropagation(); ctx.selectNode(s.layer, s.channel); } }, `${s.layer}:${s.channel}`)),
          h("div", { class: "muted" }, `in ${e.in}`)),
        h("td", { class: "num" }, fmt(scored ? e.score : e.weight_norm)),
        h("td", {}, kernel), h("td", {}, output), h("td", {}, source));
    });
    return h("table", { class: "edges-table" },
      h("thead", {}, h("tr", {}, h("th", {}, ""), h("th", {}, "source"), h("th", {}, scored ? "score" : "|w|"),
        h("th", { title: "BN-folded weights, blue < 0 < red, scaled to the kernel's largest |w|" }, "kernel"),
        h("th", { title: "what this kernel alone adds to the node's map on the input image" }, "output map"),
        h("th", { title: "the source node's feature visualization" }, "source vis."))),
      h("tbody", {}, ...rows));
  }
}

/** A small map (kernel or output map) with a thin colour bar; its values and range on hover. */
async function thumbMap(host: HTMLElement, load: () => Promise<{ values: number[][]; scale: ReturnType<typeof chooseScale>; what: string }>): Promise<void> {
  host.replaceChildren(h("span", { class: "na muted" }, "…"));
  try {
    const { values, scale, what } = await load();
    const canvas = heatmapCanvas(values, 48, null, scale);
    canvas.className = "thumb-map"; // not the node's own map (canvas.heatmap)
    const rows = values.length, cols = values[0]?.length ?? 0;
    const range = `${rows}×${cols} ${what}, ${fmt(scale.low)} … ${fmt(scale.high)}${scale.flat ? " (flat)" : ""}`;
    canvas.title = range;
    canvas.addEventListener("mousemove", (e) => {
      const r = canvas.getBoundingClientRect();
      const y = Math.min(rows - 1, Math.floor(((e.clientY - r.top) / r.height) * rows));
      const x = Math.min(cols - 1, Math.floor(((e.clientX - r.left) / r.width) * cols));
      canvas.title = `(${y},${x}) ${what} = ${fmt(values[y]?.[x])}\n${range}`;
    });
    const bar = colourBar(scale, 48, what);
    bar.classList.add("mini");
    host.replaceChildren(canvas, bar);
  } catch (error) {
    const line = statusOf(error);
    host.replaceChildren(h("span", { class: `na ${line.className}`, title: line.textContent ?? "" }, "error"));
  }
}

/** Outlines a receptive field (input pixels, may reach past the border) on the displayed input image. */
export function showBox(frame: HTMLElement, box: HTMLElement, rf: Box, inputShape: number[]): void {
  const [H, W] = rf.image_size ?? inputShape.slice(-2);
  const clamp = (v: number) => Math.max(0, Math.min(100, v));
  const top = clamp((rf.top / H) * 100), left = clamp((rf.left / W) * 100);
  const bottom = clamp((rf.bottom / H) * 100), right = clamp((rf.right / W) * 100); // bottom/right exclusive
  Object.assign(box.style, { top: `${top}%`, left: `${left}%`, height: `${bottom - top}%`, width: `${right - left}%` });
  box.hidden = false;
  frame.classList.add("has-box");
}
