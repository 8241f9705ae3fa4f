/**
 * 2D arrays (activation maps, kernels) drawn on a canvas, one cell per value, on the scale their values call
 * for (colors.ts), with a colour bar, the value under the pointer, and a flag when the map is flat.
 */
import { chooseScale, colourOf, fmt, gradientCss, scaleName, type ColourScale } from "./colors";
import { h } from "./dom";

/** RGBA pixels for a [rows][cols] array on `scale` (default: the scale its values call for). */
export function heatmapPixels(values: number[][], scale: ColourScale = chooseScale(values.flat())):
  { data: Uint8ClampedArray<ArrayBuffer>; width: number; height: number; scale: ColourScale } {
  const height = values.length;
  const width = height ? values[0].length : 0;
  const data = new Uint8ClampedArray(new ArrayBuffer(width * height * 4));
  values.forEach((row, y) => row.forEach((v, x) => {
    const [r, g, b] = colourOf(v, scale);
    data.set([r, g, b, 255], (y * width + x) * 4);
  }));
  return { data, width, height, scale };
}

/** The cell under a point (px, py) on an element of size (w, h) showing a rows x cols map. */
export function cellAt(px: number, py: number, w: number, h: number, rows: number, cols: number): [number, number] | null {
  if (px < 0 || py < 0 || px >= w || py >= h || rows <= 0 || cols <= 0) return null;
  return [Math.min(rows - 1, Math.floor((py / h) * rows)), Math.min(cols - 1, Math.floor((px / w) * cols))];
}

/**
 * A canvas showing the map at `size` CSS pixels on its longer side (cells stay square, no smoothing), with an
 * optional outlined cell.
 */
export function heatmapCanvas(values: number[][], size: number, mark?: [number, number] | null, scale?: ColourScale): HTMLCanvasElement {
  const { data, width, height } = heatmapPixels(values, scale);
  const factor = Math.max(1, Math.floor(size / Math.max(width, height, 1)));
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, width * factor);
  canvas.height = Math.max(1, height * factor);
  canvas.className = "heatmap";
  const ctx = canvas.getContext("2d");
  if (!ctx || !width || !height) return canvas;
  const small = document.createElement("canvas");
  small.width = width;
  small.height = height;
  small.getContext("2d")!.putImageData(new ImageData(data, width, height), 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(small, 0, 0, canvas.width, canvas.height);
  if (mark) {
    ctx.strokeStyle = "#ff2fd0"; // magenta: stands out on both colour maps
    ctx.lineWidth = Math.max(2, factor / 6);
    ctx.strokeRect(mark[1] * factor + 1, mark[0] * factor + 1, factor - 2, factor - 2);
  }
  return canvas;
}

/** A horizontal colour bar with its end values (and 0 where a diverging scale has it), `width` CSS px wide. */
export function colourBar(scale: ColourScale, width = 168, what = ""): HTMLElement {
  const ends = h("div", { class: "cbar-ends" }, h("span", {}, fmt(scale.low)),
    scale.kind === "diverging" ? h("span", {}, "0") : null, h("span", {}, fmt(scale.high)));
  return h("div", { class: "cbar", style: `width:${width}px`, title: `${what ? `${what}: ` : ""}${scaleName(scale)}` },
    h("div", { class: "cbar-strip", style: `background:${gradientCss(scale)}` }), ends);
}

export interface MapOptions {
  /** CSS pixels of the longer side. */
  size: number;
  mark?: [number, number] | null;
  scale?: ColourScale;
  /** What a value is ("activation", "weight"): shown with it under the pointer. */
  what: string;
  /** A click on a cell. */
  onCell?: (cell: [number, number]) => void;
  /** Write each value on its cell (small kernels). */
  numbers?: boolean;
}

/** The map's canvas, its colour bar, and a line that reads the value under the pointer; flat maps flagged. */
export function mapView(values: number[][], options: MapOptions): HTMLElement {
  const scale = options.scale ?? chooseScale(values.flat());
  const rows = values.length, cols = rows ? values[0].length : 0;
  const canvas = heatmapCanvas(values, options.size, options.mark, scale);
  canvas.style.width = `${options.size}px`;
  const readout = h("div", { class: "muted map-readout" }, `${rows}×${cols} · hover for values`);
  const at = (e: MouseEvent): [number, number] | null => {
    const r = canvas.getBoundingClientRect();
    return cellAt(e.clientX - r.left, e.clientY - r.top, r.width, r.height, rows, cols);
  };
  canvas.addEventListener("mousemove", (e) => {
    const cell = at(e);
    if (cell) readout.textContent = `(${cell[0]},${cell[1]}) ${options.what} = ${fmt(values[cell[0]][cell[1]])}`;
  });
  canvas.addEventListener("mouseleave", () => (readout.textContent = `${rows}×${cols} · hover for values`));
  if (options.onCell) {
    canvas.addEventListener("click", (e) => {
      const cell = at(e);
      if (cell) options.onCell!(cell);
    });
  } else canvas.style.cursor = "crosshair";
  const parts: (HTMLElement | null)[] = [numbers(canvas, values, options)];
  parts.push(colourBar(scale, options.size, options.what));
  if (scale.flat) parts.push(h("div", { class: "flag" }, `flat: every value is ${fmt(scale.low)}`));
  parts.push(readout);
  return h("div", { class: "map-view" }, ...parts);
}

/** A value in at most 6 characters (2 significant digits), to fit a kernel's cell. */
export function short(value: number): string {
  if (!Number.isFinite(value)) return "–";
  if (value === 0) return "0";
  const a = Math.abs(value);
  if (a >= 1e3 || a < 1e-3) return value.toExponential(0).replace("e+", "e");
  return value.toPrecision(2).replace(/^(-?)0\./, "$1.");
}

/** The canvas, with each value written on its cell when asked and the cells are big enough to read. */
function numbers(canvas: HTMLCanvasElement, values: number[][], options: MapOptions): HTMLElement {
  const rows = values.length, cols = rows ? values[0].length : 0;
  const cell = options.size / Math.max(rows, cols, 1);
  if (!options.numbers || cell < 26) return canvas;
  const frame = h("div", { class: "map-numbers", style: `width:${options.size}px;height:${(options.size * rows) / Math.max(cols, 1)}px` }, canvas);
  const scale = options.scale ?? chooseScale(values.flat());
  values.forEach((row, y) => row.forEach((v, x) => {
    const [r, g, b] = colourOf(v, scale);
    const dark = 0.299 * r + 0.587 * g + 0.114 * b < 140;
    frame.append(h("span", {
      style: `left:${x * cell}px;top:${y * cell}px;width:${cell}px;height:${cell}px;line-height:${cell}px;color:${dark ? "#fff" : "#111"}`,
    }, short(v)));
  }));
  return frame;
}

/**
 * How much the pixels of a picture vary (RGBA bytes): the standard deviation of their grey level, 0..255. A
 * render below `FLAT_SPREAD` is flat: its objective gave the optimiser nothing to climb (e.g. a kernel of
 * zeros, or an input that is dead where the kernel looks).
 */
export function spread(data: ArrayLike<number>): number {
  let n = 0, sum = 0, squares = 0;
  for (let i = 0; i + 3 < data.length; i += 4) {
    const grey = 0.299 * data[i] + 0.587 * data[i + 1] + 0.114 * data[i + 2];
    sum += grey;
    squares += grey * grey;
    n++;
  }
  if (!n) return 0;
  const mean = sum / n;
  return Math.sqrt(Math.max(0, squares / n - mean * mean));
}

export const FLAT_SPREAD = 2;

/** The spread of a loaded picture's pixels (null where the browser cannot read them). */
export function pictureSpread(img: HTMLImageElement): number | null {
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, Math.min(img.naturalWidth, 256));
  canvas.height = Math.max(1, Math.min(img.naturalHeight, 256));
  const ctx = canvas.getContext("2d");
  if (!ctx || !img.naturalWidth) return null;
  try {
    ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
    return spread(ctx.getImageData(0, 0, canvas.width, canvas.height).data);
  } catch {
    return null;
  }
}

/** Marks `host` with a flag once `img` has loaded flat (a degenerate render). */
export function flagIfFlat(img: HTMLImageElement, host: HTMLElement, what: string): void {
  const check = () => {
    const value = pictureSpread(img);
    if (value !== null) host.dataset.spread = value.toFixed(3);
    if (value !== null && value < FLAT_SPREAD) {
      host.append(h("div", { class: "flag", title: "the optimiser found nothing to climb: this objective is constant (or nearly) on every image" },
        `flat render: ${what} is degenerate (pixel spread ${value.toFixed(2)})`));
      host.dataset.flat = "1";
    }
  };
  if (img.complete && img.naturalWidth) check();
  else img.addEventListener("load", check, { once: true });
}
