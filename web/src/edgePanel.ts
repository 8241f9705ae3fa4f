/** The edge panel: one kernel (values on hover), the map it reads, the map it makes, its visualization (flat ones flagged). */
import type { Api } from "./api";
import { divergingScale, fmt, signCss, signName } from "./colors";
import { figure, h, rendered, status, statusOf } from "./dom";
import { flagIfFlat, mapView } from "./heatmap";
import type { Panel } from "./scheduler";
import { edgeMaps } from "./viewsApi";

export class EdgePanel {
  private token = 0;

  constructor(private readonly host: HTMLElement) {
    this.clear();
  }

  clear(): void {
    this.token++;
    this.host.replaceChildren(h("h2", {}, "Edge"), status("Click an edge in the graph, a ranked kernel, or an incoming edge of a node."));
  }

  async show(api: Api, layer: string, out: number, inp: number, imageId: string | null, selectNode: (layer: string, channel: number) => void,
    panel?: Panel | null): Promise<void> {
    const token = ++this.token;
    const kernel = h("div", { class: "slot kernel" }, status("loading…", "busy"));
    const input = h("div", { class: "slot" });
    const output = h("div", { class: "slot" });
    const render = h("div", { class: "slot vis" });
    const head = h("div", { class: "node-head" });
    const on = imageId ? `image ${imageId}` : "the input image";
    this.host.replaceChildren(
      h("h2", {}, "Edge ", h("span", { class: "id" }, `${layer} ${inp}→${out}`)),
      head,
      h("div", { class: "edge-grid" },
        figure(`kernel ${layer}:${out}<-${inp} (BN-folded weights; hover for values)`, kernel),
        figure(`edge visualization: the image that maximises this kernel's output`, render),
        figure(`input map: input channel ${inp} of ${layer} on ${on}`, input),
        figure(`output map: what this kernel alone adds to ${layer}:${out} on ${on}`, output)),
    );
    if (imageId) void this.maps(api, input, output, layer, out, inp, imageId, token);
    else {
      input.replaceChildren(status("pick an input image"));
      output.replaceChildren(status("pick an input image"));
    }
    void rendered(api, render, () => api.renderEdge(layer, out, inp, panel?.attention()), api.edgeUrl(layer, out, inp, "render"),
      `visualization of ${layer}:${out}<-${inp}`, "render", false, panel)
      .then((img) => img && flagIfFlat(img, render, "this kernel's objective"));
    try {
      const edge = await api.edge(layer, out, inp);
      if (token !== this.token) return;
      const values = edge.kernel.flat();
      const limit = Math.max(...values.map(Math.abs));
      const rows = edge.kernel.length, cols = edge.kernel[0]?.length ?? 0;
      kernel.replaceChildren(
        mapView(edge.kernel, { size: rows * cols === 1 ? 96 : 144, scale: divergingScale(limit), what: "weight", numbers: true }),
        h("div", { class: "muted" }, `${rows}×${cols}${rows * cols === 1 ? " (a 1×1 kernel: one weight)" : ""} · sum ${fmt(values.reduce((a, b) => a + b, 0))} · max |w| ${fmt(limit)}`));
      head.append(
        h("span", {}, h("span", { class: "sign", style: `background:${signCss(edge.sign)}` }), ` ${signName(edge.sign)}`),
        h("span", {}, "from ", ...edge.sources.map((s) => h("a", { href: "#", onclick: (e: Event) => { e.preventDefault(); selectNode(s.layer, s.channel); } }, `${s.layer}:${s.channel} `))),
        h("span", {}, "to ", h("a", { href: "#", onclick: (e: Event) => { e.preventDefault(); selectNode(layer, out); } }, `${layer}:${out}`)),
      );
    } catch (error) {
      if (token === this.token) kernel.replaceChildren(statusOf(error));
    }
  }

  private async maps(api: Api, input: HTMLElement, output: HTMLElement, layer: string, out: number, inp: number, imageId: string, token: number): Promise<void> {
    input.replaceChildren(status("loading…", "busy"));
    output.replaceChildren(status("loading…", "busy"));
    try {
      const maps = await edgeMaps(api, layer, out, inp, imageId);
      if (token !== this.token) return;
      input.replaceChildren(mapView(maps.input.values, { size: 144, scale: maps.input.scale, what: "input" }));
      output.replaceChildren(mapView(maps.output.values, { size: 144, scale: maps.output.scale, what: "output" }));
    } catch (error) {
      if (token !== this.token) return;
      input.replaceChildren(statusOf(error));
      output.replaceChildren(statusOf(error));
    }
  }
}
