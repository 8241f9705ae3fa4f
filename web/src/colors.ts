/** Colours and sizes shared by the 3D graph and the 2D circuit diagram. */

export type Sign = -1 | 0 | 1;

/** Red for excitatory kernels, blue for inhibitory ones, grey for mixed (as in the paper's figures). */
export const SIGN_RGB: Record<Sign, [number, number, number]> = {
  1: [0.9, 0.22, 0.2],
  [-1]: [0.22, 0.45, 0.95],
  0: [0.6, 0.6, 0.62],
} as Record<Sign, [number, number, number]>;

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

/** Diverging colour map for maps and kernels: blue below zero, white at zero, red above. */
export function diverging(value: number, limit: number): [number, number, number] {
  const t = limit > 0 ? Math.max(-1, Math.min(1, value / limit)) : 0;
  if (t >= 0) return [255, Math.round(255 * (1 - t)), Math.round(255 * (1 - t))];
  return [Math.round(255 * (1 + t)), Math.round(255 * (1 + t)), 255];
}

/** A compact number: 3 significant digits, exponent for very small or large values. */
export function fmt(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "–";
  if (value === 0) return "0";
  const a = Math.abs(value);
  return a >= 1e4 || a < 1e-3 ? value.toExponential(2) : value.toPrecision(3);
}
