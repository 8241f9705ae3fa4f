import { describe, expect, it } from "vitest";
import { diverging, fmt, normalise, signCss } from "./colors";
import { cellAt, heatmapPixels } from "./heatmap";

describe("colours and scales", () => {
  it("colours kernels red, blue or grey by sign", () => {
    expect(signCss(1)).toMatch(/^rgb\(2\d\d,/);
    expect(signCss(-3)).toMatch(/, ?2\d\d\)$/);
    expect(signCss(0)).toBe(signCss(Number.NaN));
  });

  it("normalises by |score| with the 99th percentile on top, so one outlier does not flatten the rest", () => {
    const scores = Array.from({ length: 200 }, (_, i) => (i === 0 ? 1000 : -(i % 10)));
    const norm = normalise(scores);
    expect(norm[0]).toBe(1);
    expect(norm[9]).toBeGreaterThan(0.5);
    expect(normalise([0, 0])).toEqual(new Float32Array([0, 0]));
  });

  it("maps values to a diverging scale centred on white", () => {
    expect(diverging(0, 1)).toEqual([255, 255, 255]);
    expect(diverging(2, 1)).toEqual([255, 0, 0]);
    expect(diverging(-1, 1)).toEqual([0, 0, 255]);
  });

  it("formats numbers compactly", () => {
    expect(fmt(0.000123)).toBe("1.23e-4");
    expect(fmt(12.345)).toBe("12.3");
    expect(fmt(null)).toBe("–");
  });

  it("draws one pixel per value and finds the clicked cell", () => {
    const { data, width, height, limit } = heatmapPixels([[0, 1], [-2, 0]]);
    expect([width, height, limit]).toEqual([2, 2, 2]);
    expect([...data.slice(8, 12)]).toEqual([0, 0, 255, 255]); // (1, 0) = -2: full blue
    expect(cellAt(10, 90, 100, 100, 7, 7)).toEqual([6, 0]);
    expect(cellAt(100, 0, 100, 100, 7, 7)).toBeNull();
  });
});
