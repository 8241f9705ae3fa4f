/**
 * Colours and scales shared by every view: the server's two colour maps (palettes.ts, generated from the
 * matplotlib tables viscnn.inspection.draw uses), the choice between them, and the kernels' sign colours.
 *
 * A map whose values have both signs is drawn on the diverging RdBu_r (blue < 0, white at 0, red > 0,
 * symmetric about 0); a map of one sign on the sequential viridis over its range (dark low, yellow high),
 * so an all-positive map shows its structure rather than a block of red.
 */
import { DIVERGING_HEX, SEQUENTIAL_HEX } from "./palettes";

export type Sign = -1 | 0 | 1;
export type RGB = [number, number, number];

function table(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** 256 RGB triples each, as the server's maps use them. */
export const DIVERGING_LUT = table(DIVERGING_HEX);
export const SEQUENTIAL_LUT = table(SEQUENTIAL_HEX);

function at(lut: Uint8Array, index: number): RGB {
  const i = Math.max(0, Math.min(255, index)) * 3;
  return [lut[i], lut[i + 1], lut[i + 2]];
}

export interface ColourScale {
  kind: "diverging" | "sequential";
  /** The value drawn with the first colour, and the one drawn with the last (diverging: -limit and +limit). */
  low: number;
  high: number;
  /** Every value is the same: the map says nothing. */
  flat: boolean;
}

/** The scale for a map (as `viscnn.inspection.draw.choose_scale`): diverging when it holds both signs, else sequential over its range. */
export function chooseScale(values: Iterable<number>): ColourScale {
  let low = Infinity, high = -Infinity;
  for (const v of values) {
    if (!Number.isFinite(v)) continue;
    if (v < low) low = v;
    if (v > high) high = v;
  }
  if (low === Infinity) return { kind: "sequential", low: 0, high: 0, flat: true };
  if (low < 0 && high > 0) {
    const limit = Math.max(-low, high);
    return { kind: "diverging", low: -limit, high: limit, flat: false };
  }
  return { kind: "sequential", low, high, flat: low === high };
}

/** A symmetric diverging scale (kernels: a weight's sign is what it does, so kernels always diverge). */
export function divergingScale(limit: number): ColourScale {
  return { kind: "diverging", low: -Math.abs(limit), high: Math.abs(limit), flat: !(limit !== 0) };
}

/** The colour of `value` on `scale` (the server's index rounding: the same value gets the same colour). */
export function colourOf(value: number, scale: ColourScale): RGB {
  if (scale.kind === "diverging") {
    const limit = scale.high > 0 ? scale.high : 1;
    const v = Number.isFinite(value) ? value : 0;
    return at(DIVERGING_LUT, Math.round((v / limit + 1) * 127.5));
  }
  const span = scale.high - scale.low;
  const v = Number.isFinite(value) ? value : scale.low;
  const t = span > 0 ? (v - scale.low) / span : 0;
  return at(SEQUENTIAL_LUT, Math.round(Math.max(0, Math.min(1, t)) * 255));
}

/** Diverging colour of `value` for a symmetric limit (blue below zero, near-white at zero, red above). */
export function diverging(value: number, limit: number): RGB {
  return colourOf(value, divergingScale(limit));
}

export function css([r, g, b]: RGB): string {
  return `rgb(${r},${g},${b})`;
}

/** A CSS gradient from the scale's low end (left) to its high end, for colour bars. */
export function gradientCss(scale: ColourScale, stops = 17): string {
  const lut = scale.kind === "diverging" ? DIVERGING_LUT : SEQUENTIAL_LUT;
  const parts = Array.from({ length: stops }, (_, k) => {
    const t = k / (stops - 1);
    return `${css(at(lut, Math.round(t * 255)))} ${(t * 100).toFixed(1)}%`;
  });
  return `linear-gradient(to right, ${parts.join(", ")})`;
}

/** What a scale's colours mean, in words (for captions). */
export function scaleName(scale: ColourScale): string {
  return scale.kind === "diverging" ? "blue < 0 < red (RdBu_r)" : "dark low → yellow high (viridis)";
}

/**
 * Kernels red when excitatory, blue when inhibitory, grey when mixed (as in the paper's figures): the RdBu_r
 * map's red and blue (at 15% from its ends, bright enough on a dark page), 0..1 RGB for WebGL.
 */
export const SIGN_RGB: Record<Sign, RGB> = {
  1: at(DIVERGING_LUT, 212).map((c) => c / 255) as RGB,
  [-1]: at(DIVERGING_LUT, 44).map((c) => c / 255) as RGB,
  0: [0.6, 0.6, 0.62],
} as Record<Sign, RGB>;

export function signCss(sign: number): string {
  const [r, g, b] = SIGN_RGB[(Math.sign(sign) || 0) as Sign];
  return `rgb(${Math.round(r * 255)},${Math.round(g * 255)},${Math.round(b * 255)})`;
}

export function signName(sign: number): string {
  return sign > 0 ? "excitatory" : sign < 0 ? "inhibitory" : "mixed";
}

/** Scores scaled to [0, 1] by the largest |score| (robust to a few outliers: the 99th percentile). */
export function normalise(scores: ArrayLike<number>): Float32Array {
  const out = new Float32Array(scores.length);
  if (scores.length === 0) return out;
  const magnitudes = Float32Array.from(scores, (s) => Math.abs(s) || 0).sort();
  const top = magnitudes[Math.min(magnitudes.length - 1, Math.floor(magnitudes.length * 0.99))] || magnitudes[magnitudes.length - 1];
  if (!(top > 0)) return out;
  for (let i = 0; i < scores.length; i++) out[i] = Math.min(1, Math.abs(scores[i]) / top || 0);
  return out;
}

/** A compact number: 3 significant digits, exponent for very small or large values. */
export function fmt(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "–";
  if (value === 0) return "0";
  const a = Math.abs(value);
  return a >= 1e4 || a < 1e-3 ? value.toExponential(2) : value.toPrecision(3);
}
