/** Downloads from the page: the circuit as SVG and JSON, a query's scores as JSON. */
import type { Circuit, QueryResult } from "./api";

/** Saves `data` as a file named `name` (a click on a temporary link). */
export function download(name: string, data: Blob): void {
  const url = URL.createObjectURL(data);
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** A file-name-safe version of an id or expression. */
export function safeName(text: string): string {
  return text.replace(/<-/g, "_from_").replace(/[^A-Za-z0-9._=,-]+/g, "_").replace(/^_+|_+$/g, "").slice(0, 80) || "viscnn";
}

// The diagram's look without the page's stylesheet: the exported file stands alone.
const CIRCUIT_STYLE = `
.col-label { fill: #8a93a3; font: 11px ui-monospace, monospace; }
.node circle { fill: #ffc752; stroke: #11141b; stroke-width: 1.5; }
.node.target circle { fill: #fff; stroke: #f5b942; stroke-width: 3; }
.node.selected circle { stroke: #16e0a0; stroke-width: 3; }
.node-label { fill: #c4cad6; font: 10px ui-monospace, monospace; }
`;

/** The circuit diagram as a standalone SVG document (its own styles and background, every edge's title kept). */
export function svgDocument(svg: SVGSVGElement, title: string): string {
  const copy = svg.cloneNode(true) as SVGSVGElement;
  copy.setAttribute("xmlns", "http://www.w3.org/2000/svg");
  copy.classList.remove("focus");
  for (const lit of copy.querySelectorAll(".lit")) lit.classList.remove("lit");
  const ns = "http://www.w3.org/2000/svg";
  const style = document.createElementNS(ns, "style");
  style.textContent = CIRCUIT_STYLE;
  const background = document.createElementNS(ns, "rect");
  background.setAttribute("width", "100%");
  background.setAttribute("height", "100%");
  background.setAttribute("fill", "#11141b");
  const caption = document.createElementNS(ns, "title");
  caption.textContent = title;
  copy.prepend(caption, style, background);
  return `<?xml version="1.0" encoding="UTF-8"?>\n${new XMLSerializer().serializeToString(copy)}\n`;
}

export function exportCircuitSvg(svg: SVGSVGElement, circuit: Circuit): void {
  const name = `circuit-${safeName(circuit.target.text)}-${circuit.method}-${circuit.edges.length}.svg`;
  download(name, new Blob([svgDocument(svg, `${circuit.method} circuit of ${circuit.target.text}`)], { type: "image/svg+xml" }));
}

/** The circuit file: the server's stored bytes when given (so `viscnn visualize --circuit FILE` finds the page's renders), else the page's copy. */
export function exportCircuitJson(circuit: Circuit, stored?: Blob): void {
  const name = `circuit-${safeName(circuit.target.text)}-${circuit.method}-${circuit.edges.length}.json`;
  download(name, stored ?? new Blob([JSON.stringify(circuit)], { type: "application/json" }));
}

/** The query's every node score, the kept nodes and the drawn kernels (the answer of POST /api/query, as it came). */
export function exportScores(result: QueryResult): void {
  const name = `scores-${safeName(result.criterion)}-${safeName(result.target)}-${safeName(result.images)}.json`;
  download(name, new Blob([JSON.stringify({ format: "viscnn.scores/1", ...result })], { type: "application/json" }));
}
