/** The node panel: feature visualization, dataset examples, activation map with receptive fields, top inputs. */
import type { Api, Box, IncomingEdge, LayerInfo, ModelInfo } from "./api";
import { fmt, signCss, signName } from "./colors";
import { figure, h, image, rendered, status, statusOf } from "./dom";
import { cellAt, heatmapCanvas } from "./heatmap";
import { TOP_FEW, whenShown, type Panel } from "./scheduler";
import { edgeId, type Mode } from "./state";

export interface NodeContext {
  api: Api;
  model: ModelInfo;
  /** Who asks for this panel's work (its priority; let go of when the panel shows another node). */
  panel?: Panel | null;
  queryKey: string | null;
  image: string | null;
  mode: Mode;
  unit: [number, number] | null;
  selectNode(layer: string, channel: number): void;
  selectEdge(layer: string, out: number, inp: number): void;
  setMode(mode: Mode): void;
  setUnit(unit: [number, number] | null): void;
  /** Chooses an input image and a unit of this node's map at once (a dataset example's peak). */
  showExample(image: string, unit: [number, number]): void;
  useAsTarget(target: string): void;
}

export class NodePanel {
  private token = 0;

  constructor(private readonly host: HTMLElement) {
    this.clear();
  }

  clear(): void {
    this.token++;
    this.host.replaceChildren(h("h2", {}, "Node"), status("Click a node in the graph (or a node of the circuit) to inspect it."));
  }

  async show(ctx: NodeContext, layer: string, channel: number): Promise<void> {
    const token = ++this.token;
    const info = ctx.model.layers.find((l) => l.name === layer);
    if (!info) return this.host.replaceChildren(h("h2", {}, "Node"), status(`unknown layer ${layer}`, "error"));
    const head = h("div", { class: "node-head" });
    const vis = h("div", { class: "slot vis" });
    const examples = h("div", { class: "slot examples" });
    const activation = h("div", { class: "activation" });
    const incoming = h("div", { class: "incoming" }, status("loading inputs…", "busy"));
    const modes = h("div", { class: "toggle" }, ...(["channel", "neuron"] as const).map((m) =>
      h("button", { class: m === ctx.mode ? "on" : "", "data-mode": m, onclick: () => ctx.setMode(m) }, m)));
    this.host.replaceChildren(
      h("h2", {}, "Node ", h("span", { class: "id" }, `${layer}:${channel}`)),
      head,
      h("div", { class: "node-grid" },
        figure("feature visualization", vis, modes),
        activation,
        h("div", { class: "span-all" }, figure("dataset examples: most exciting (top) and inhibiting (bottom) patches", examples))),
      h("h3", {}, "Top incoming edges"),
      incoming,
    );
    head.append(
      h("span", {}, `${info.kind} · depth ${info.depth}`),
      h("span", {}, `map ${info.output_shape?.slice(1).join("×") ?? "?"}`),
      h("span", {}, `receptive field ${info.receptive_field?.whole_image ? "whole image" : info.receptive_field?.size.join("×") ?? "?"}`),
    );
    if (info.kind === "conv") head.append(h("button", { class: "small", onclick: () => ctx.useAsTarget(`${layer}:${channel}`) }, "use as output"));
    if (info.kind !== "conv") {
      vis.replaceChildren(status("the input has no feature visualization"));
      examples.replaceChildren(status("–"));
    } else {
      const mode = ctx.mode;
      const panel = ctx.panel ?? null;
      void rendered(ctx.api, vis, () => ctx.api.renderNode(layer, channel, mode, panel?.attention()), ctx.api.renderUrl(layer, channel, mode),
        `${layer}:${channel} ${mode}`, "render", false, panel);
      const picture = h("div");
      const links = h("div", { class: "example-links" });
      examples.replaceChildren(picture, links);
      void image(ctx.api, picture, ctx.api.examplesUrl(layer, channel), `${layer}:${channel} exciting (top) and inhibiting (bottom) patches`, "examples-img",
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

  /** Buttons that open an example image at the unit where the node peaks on it. */
  private async exampleLinks(ctx: NodeContext, host: HTMLElement, layer: string, channel: number, token: number): Promise<void> {
    type Example = { image_id: string; y: number; x: number; value: number };
    try {
      const answer = (await ctx.api.examples(layer, channel, ctx.panel?.attention())) as { result?: { excite?: Example[]; inhibit?: Example[] } | null };
      if (token !== this.token || !answer.result) return;
      const row = (label: string, list: Example[] = []) => h("div", { class: "row" }, h("span", { class: "muted" }, label),
        ...list.map((e) => h("button", { class: "small", title: `open ${e.image_id} at unit (${e.y},${e.x}): ${fmt(e.value)}`,
          onclick: () => ctx.showExample(e.image_id, [e.y, e.x]) }, h("img", { src: ctx.api.imageUrl(e.image_id), class: "pix example-thumb", alt: e.image_id }))));
      host.replaceChildren(row("open at its peak:", answer.result.excite), row("most inhibiting:", answer.result.inhibit));
    } catch {
      host.replaceChildren(); // the picture above already says what is missing
    }
  }

  private async activation(ctx: NodeContext, host: HTMLElement, info: LayerInfo, channel: number, token: number): Promise<void> {
    const mapSlot = h("div", { class: "slot map" }, status("loading…", "busy"));
    const inputSlot = h("div", { class: "slot input" });
    const caption = h("div", { class: "muted rf-caption" });
    host.replaceChildren(figure("activation map (click a unit)", mapSlot), figure("input image", h("div", {}, inputSlot, caption)));
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
      const draw = (mark: [number, number] | null) => {
        const canvas = heatmapCanvas(act.values, 168, mark);
        canvas.title = `min ${fmt(act.min)}, max ${fmt(act.max)}`;
        canvas.addEventListener("click", (e) => {
          const r = canvas.getBoundingClientRect();
          const cell = cellAt(e.clientX - r.left, e.clientY - r.top, r.width, r.height, act.height, act.width);
          if (cell) ctx.setUnit(cell);
        });
        mapSlot.replaceChildren(canvas, h("div", { class: "muted" }, `${act.height}×${act.width} · min ${fmt(act.min)} · max ${fmt(act.max)}`,
          mark ? ` · unit (${mark[0]},${mark[1]}) = ${fmt(act.values[mark[0]]?.[mark[1]])}` : ""));
      };
      const unit = ctx.unit && ctx.unit[0] < act.height && ctx.unit[1] < act.width ? ctx.unit : null;
      draw(unit);
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
      void image(ctx.api, kernel, ctx.api.edgeUrl(e.layer, e.out, e.in, "kernel"), "kernel", "pix", true);
      if (ctx.image) void image(ctx.api, output, ctx.api.edgeUrl(e.layer, e.out, e.in, "output", ctx.image), "output map", "pix", true);
      else output.replaceChildren(h("span", { class: "na muted", title: "pick an input image" }, "no image"));
      const src = e.sources[0];
      if (src && src.layer !== "input") {
        // after the node's own work, in rank order; only the top few and those scrolled into view
        const panel = ctx.panel ?? null;
        source.replaceChildren(h("span", { class: "na muted lazy-hint", title: "rendered when scrolled into view" }, "·"));
        whenShown(source, () => void rendered(ctx.api, source, () => ctx.api.renderNode(src.layer, src.channel, "channel", panel?.attention(2 + rank / 100)),
          ctx.api.renderUrl(src.layer, src.channel, "channel"), "source visualization", "render", true, panel), rank < TOP_FEW, panel);
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
      h("thead", {}, h("tr", {}, h("th", {}, ""), h("th", {}, "source"), h("th", {}, scored ? "score" : "|w|"), h("th", {}, "kernel"), h("th", {}, "output map"), h("th", {}, "source vis."))),
      h("tbody", {}, ...rows));
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
