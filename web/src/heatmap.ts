/** 2D arrays (activation maps, kernels) drawn as diverging heatmaps on a canvas, one cell per value. */
import { diverging } from "./colors";

/** RGBA pixels for a [rows][cols] array, symmetric colour limit (blue < 0 < red). */
export function heatmapPixels(values: number[][]): { data: Uint8ClampedArray<ArrayBuffer>; width: number; height: number; limit: number } {
  const height = values.length;
  const width = height ? values[0].length : 0;
  let limit = 0;
  for (const row of values) for (const v of row) if (Number.isFinite(v)) limit = Math.max(limit, Math.abs(v));
  const data = new Uint8ClampedArray(new ArrayBuffer(width * height * 4));
  values.forEach((row, y) => row.forEach((v, x) => {
    const [r, g, b] = diverging(Number.isFinite(v) ? v : 0, limit);
    data.set([r, g, b, 255], (y * width + x) * 4);
  }));
  return { data, width, height, limit };
}

/** The cell under a click at (px, py) on an element of size (w, h) showing a rows x cols map. */
export function cellAt(px: number, py: number, w: number, h: number, rows: number, cols: number): [number, number] | null {
  if (px < 0 || py < 0 || px >= w || py >= h || rows <= 0 || cols <= 0) return null;
  return [Math.min(rows - 1, Math.floor((py / h) * rows)), Math.min(cols - 1, Math.floor((px / w) * cols))];
}

/**
 * A canvas showing the map at `size` CSS pixels on its longer side (cells stay square, no smoothing),
 * with an optional outlined cell.
 */
export function heatmapCanvas(values: number[][], size: number, mark?: [number, number] | null): HTMLCanvasElement {
  const { data, width, height } = heatmapPixels(values);
  const scale = Math.max(1, Math.floor(size / Math.max(width, height, 1)));
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, width * scale);
  canvas.height = Math.max(1, height * scale);
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
    ctx.strokeStyle = "#16e0a0";
    ctx.lineWidth = Math.max(2, scale / 6);
    ctx.strokeRect(mark[1] * scale + 1, mark[0] * scale + 1, scale - 2, scale - 2);
  }
  return canvas;
}
