/** The edge panel: one kernel's heatmap, the map it reads, the map it makes, its visualization. */
import type { Api } from "./api";
import { fmt, signCss, signName } from "./colors";
import { figure, h, image, rendered, status, statusOf } from "./dom";
import { heatmapCanvas } from "./heatmap";
import type { Panel } from "./scheduler";

export class EdgePanel {
  private token = 0;

  constructor(private readonly host: HTMLElement) {
    this.clear();
  }

  clear(): void {
    this.token++;
    this.host.replaceChildren(h("h2", {}, "Edge"), status("Click an edge in the graph or an incoming edge of a node."));
  }

  async show(api: Api, layer: string, out: number, inp: number, imageId: string | null, selectNode: (layer: string, channel: number) => void,
    panel?: Panel | null): Promise<void> {
    const token = ++this.token;
    const kernel = h("div", { class: "slot kernel" }, status("loading…", "busy"));
    const input = h("div", { class: "slot" });
    const output = h("div", { class: "slot" });
    const render = h("div", { class: "slot vis" });
    const head = h("div", { class: "node-head" });
    this.host.replaceChildren(
      h("h2", {}, "Edge ", h("span", { class: "id" }, `${layer} ${inp}→${out}`)),
      head,
      h("div", { class: "edge-grid" }, figure("kernel", kernel), figure("input map", input), figure("output map", output), figure("edge visualization", render)),
    );
    if (imageId) {
      void image(api, input, api.edgeUrl(layer, out, inp, "input", imageId), "input map", "pix map");
      void image(api, output, api.edgeUrl(layer, out, inp, "output", imageId), "output map", "pix map");
    } else {
      input.replaceChildren(status("pick an input image"));
      output.replaceChildren(status("pick an input image"));
    }
    void rendered(api, render, () => api.renderEdge(layer, out, inp, panel?.attention()), api.edgeUrl(layer, out, inp, "render"), "edge visualization", "render",
      false, panel);
    try {
      const edge = await api.edge(layer, out, inp);
      if (token !== this.token) return;
      const values = edge.kernel.flat();
      const canvas = heatmapCanvas(edge.kernel, 144);
      canvas.title = edge.kernel.map((row) => row.map(fmt).join("  ")).join("\n");
      kernel.replaceChildren(canvas, h("div", { class: "muted" },
        `${edge.kernel.length}×${edge.kernel[0]?.length ?? 0} · sum ${fmt(values.reduce((a, b) => a + b, 0))} · max |w| ${fmt(Math.max(...values.map(Math.abs)))}`));
      head.append(
        h("span", {}, h("span", { class: "sign", style: `background:${signCss(edge.sign)}` }), ` ${signName(edge.sign)}`),
        h("span", {}, "from ", ...edge.sources.map((s) => h("a", { href: "#", onclick: (e: Event) => { e.preventDefault(); selectNode(s.layer, s.channel); } }, `${s.layer}:${s.channel} `))),
        h("span", {}, "to ", h("a", { href: "#", onclick: (e: Event) => { e.preventDefault(); selectNode(layer, out); } }, `${layer}:${out}`)),
      );
    } catch (error) {
      if (token === this.token) kernel.replaceChildren(statusOf(error));
    }
  }
}
