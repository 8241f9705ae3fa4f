/**
 * Sub-feature circuits of a node (the preprint's Fig 10): its most exciting patches clustered by their layer's
 * activations (a) with each cluster's top patches (b) and the node revisualised through each cluster's circuit (c).
 */
import type { Api } from "./api";
import { fmt } from "./colors";
import { h, rendered, status } from "./dom";
import { flagIfFlat } from "./heatmap";
import { renderThrough, renderThroughUrl, served, type Subfeatures } from "./viewsApi";

const SVG = "http://www.w3.org/2000/svg";
export const CLUSTER_COLOURS = ["#f5b942", "#40c4e0", "#e8574f", "#58c27d", "#b18cf0", "#f08cc0", "#c9d36a", "#7fa8ff"];
const NOISE = "#5d6470";

export function clusterColour(cluster: number): string {
  return cluster < 0 ? NOISE : CLUSTER_COLOURS[cluster % CLUSTER_COLOURS.length];
}

/** Points scaled into a `size` square with a margin: [x, y] pixels, y up. */
export function scatterPositions(points: { x: number; y: number }[], size: number, margin = 10): [number, number][] {
  if (!points.length) return [];
  const xs = points.map((p) => p.x), ys = points.map((p) => p.y);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const span = Math.max(x1 - x0, y1 - y0) || 1;
  const inner = size - 2 * margin;
  return points.map((p) => [margin + ((p.x - x0) / span) * inner + (inner - ((x1 - x0) / span) * inner) / 2,
    size - margin - ((p.y - y0) / span) * inner - (inner - ((y1 - y0) / span) * inner) / 2]);
}

function scatter(result: Subfeatures, size = 240): SVGSVGElement {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("width", String(size));
  svg.setAttribute("height", String(size));
  svg.setAttribute("class", "scatter");
  const points = result.projection.points;
  scatterPositions(points, size).forEach(([x, y], i) => {
    const dot = document.createElementNS(SVG, "circle");
    dot.setAttribute("cx", x.toFixed(1));
    dot.setAttribute("cy", y.toFixed(1));
    dot.setAttribute("r", points[i].cluster < 0 ? "2.5" : "3.5");
    dot.setAttribute("fill", clusterColour(points[i].cluster));
    const title = document.createElementNS(SVG, "title");
    title.textContent = `image #${points[i].image}: ${fmt(points[i].value)} (${points[i].cluster < 0 ? "noise" : `cluster ${points[i].cluster}`})`;
    dot.append(title);
    svg.append(dot);
  });
  return svg;
}

/** The result: the projection, then one column per cluster (patches, circuit size, the node through its circuit). */
export function subfeaturesView(api: Api, result: Subfeatures): HTMLElement {
  const separable = result.mean_iou !== null
    ? `their circuits share ${fmt(100 * result.mean_iou)}% of their kernels (IoU), against ${fmt(100 * (result.mean_scrambled_iou ?? NaN))}% for scrambled sets of the same sizes`
    : "";
  const head = h("div", { class: "muted" },
    `${result.patches} most exciting patches of ${result.node} (one per image of ${result.images}), clustered by HDBSCAN `
    + `(min cluster size ${result.min_cluster_size}): ${result.clusters.length} cluster${result.clusters.length === 1 ? "" : "s"}, ${result.noise} noise. ${separable}`);
  const columns = result.clusters.map((cluster) => {
    const through = h("div", { class: "slot vis" });
    void rendered(api, through, () => renderThrough(api, cluster.circuit), renderThroughUrl(api, cluster.circuit), `${result.node} through cluster ${cluster.id}'s circuit`, "render")
      .then((img) => img && flagIfFlat(img, through, "the node through this circuit"));
    return h("div", { class: "sf-cluster", "data-cluster": cluster.id },
      h("div", { class: "sf-title" }, h("span", { class: "sf-swatch", style: `background:${clusterColour(cluster.id)}` }), `cluster ${cluster.id}: ${cluster.size} patches`),
      h("figure", { class: "fig" }, h("figcaption", {}, "(b) its top patches"), h("img", { src: served(api, cluster.patches_png), class: "pix sf-patches", alt: `cluster ${cluster.id} patches` })),
      h("figure", { class: "fig" }, h("figcaption", {}, `(c) ${result.node} through its circuit: ${cluster.circuit_edges?.toLocaleString() ?? "?"} kernels (${fmt(100 * cluster.kept_fraction)}%)`), through));
  });
  return h("div", { class: "subfeatures" },
    h("h3", {}, `Sub-features of ${result.node}`), head,
    result.message ? status(result.message) : null,
    h("div", { class: "sf-row" },
      h("figure", { class: "fig" }, h("figcaption", {}, `(a) the patches' layer activations: ${result.projection.method}`), scatter(result)),
      ...columns));
}
