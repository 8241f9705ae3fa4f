import { describe, expect, it } from "vitest";
import { chooseScale, colourOf, DIVERGING_LUT, diverging, divergingScale, fmt, gradientCss, normalise, SEQUENTIAL_LUT, signCss } from "./colors";
import { cellAt, colourBar, heatmapPixels, mapView, short, spread } from "./heatmap";

const lut = (table: Uint8Array, i: number) => [table[3 * i], table[3 * i + 1], table[3 * i + 2]];

describe("colours and scales", () => {
  it("colours kernels red, blue or grey by sign (the diverging map's red and blue)", () => {
    expect(signCss(1)).toBe(`rgb(${lut(DIVERGING_LUT, 212).join(",")})`);
    expect(signCss(-3)).toBe(`rgb(${lut(DIVERGING_LUT, 44).join(",")})`);
    expect(signCss(0)).toBe(signCss(Number.NaN));
  });

  it("normalises by |score| with the 99th percentile on top, so one outlier does not flatten the rest", () => {
    const scores = Array.from({ length: 200 }, (_, i) => (i === 0 ? 1000 : -(i % 10)));
    const norm = normalise(scores);
    expect(norm[0]).toBe(1);
    expect(norm[9]).toBeGreaterThan(0.5);
    expect(normalise([0, 0])).toEqual(new Float32Array([0, 0]));
  });

  it("uses the server's RdBu_r table: blue, near-white at zero, red", () => {
    expect(DIVERGING_LUT.length).toBe(768);
    expect(diverging(0, 1)).toEqual([247, 246, 246]); // matplotlib's RdBu_r at the middle (index 128)
    expect(diverging(2, 1)).toEqual(lut(DIVERGING_LUT, 255));
    expect(diverging(-1, 1)).toEqual([5, 48, 97]);
  });

  it("chooses a sequential scale when the values have one sign, the diverging one only for signed values", () => {
    expect(chooseScale([-1, 3, 0, 2])).toEqual({ kind: "diverging", low: -3, high: 3, flat: false });
    expect(chooseScale([0, 2, NaN, 5])).toEqual({ kind: "sequential", low: 0, high: 5, flat: false });
    expect(chooseScale([-4, -1])).toEqual({ kind: "sequential", low: -4, high: -1, flat: false });
    expect(chooseScale([0.7, 0.7]).flat).toBe(true);
    expect(chooseScale([]).flat).toBe(true);
    const positive = chooseScale([0, 1, 2]);
    expect(colourOf(0, positive)).toEqual(lut(SEQUENTIAL_LUT, 0));
    expect(colourOf(1, positive)).toEqual(lut(SEQUENTIAL_LUT, 128)); // as numpy rounds 127.5
    expect(colourOf(2, positive)).toEqual(lut(SEQUENTIAL_LUT, 255));
    expect(colourOf(9, positive)).toEqual(lut(SEQUENTIAL_LUT, 255)); // clipped
    expect(divergingScale(0).flat).toBe(true);
  });

  it("formats numbers compactly", () => {
    expect(fmt(0.000123)).toBe("1.23e-4");
    expect(fmt(12.345)).toBe("12.3");
    expect(fmt(null)).toBe("–");
  });

  it("draws one pixel per value on the chosen scale and finds the cell under the pointer", () => {
    const { data, width, height, scale } = heatmapPixels([[0, 1], [-2, 0]]);
    expect([width, height, scale.kind, scale.high]).toEqual([2, 2, "diverging", 2]);
    expect([...data.slice(8, 12)]).toEqual([...lut(DIVERGING_LUT, 0), 255]); // (1, 0) = -2: the bluest
    const positive = heatmapPixels([[1, 3]]);
    expect(positive.scale.kind).toBe("sequential");
    expect([...positive.data.slice(0, 3)]).toEqual(lut(SEQUENTIAL_LUT, 0)); // not a block of red
    expect(cellAt(10, 90, 100, 100, 7, 7)).toEqual([6, 0]);
    expect(cellAt(100, 0, 100, 100, 7, 7)).toBeNull();
  });

  it("gives every map a colour bar with its ends, reads values under the pointer, and flags a flat map", () => {
    const bar = colourBar(chooseScale([-2, 1]), 100, "activation");
    expect([...bar.querySelectorAll(".cbar-ends span")].map((e) => e.textContent)).toEqual(["-2.00", "0", "2.00"]);
    expect(bar.querySelector<HTMLElement>(".cbar-strip")!.getAttribute("style")).toContain("linear-gradient");
    expect(gradientCss(chooseScale([1, 2]))).toContain(`rgb(${lut(SEQUENTIAL_LUT, 0).join(",")}) 0.0%`);
    const view = mapView([[1, 2], [3, 4]], { size: 100, what: "activation" });
    const canvas = view.querySelector("canvas")!;
    canvas.getBoundingClientRect = () => ({ left: 0, top: 0, width: 100, height: 100, right: 100, bottom: 100, x: 0, y: 0, toJSON: () => ({}) });
    canvas.dispatchEvent(new MouseEvent("mousemove", { clientX: 75, clientY: 80 }));
    expect(view.querySelector(".map-readout")!.textContent).toBe("(1,1) activation = 4.00");
    expect(view.querySelector(".flag")).toBeNull();
    expect(mapView([[5, 5], [5, 5]], { size: 40, what: "x" }).querySelector(".flag")!.textContent).toContain("flat");
  });

  it("writes a small kernel's values on its cells", () => {
    const view = mapView([[0.5]], { size: 96, what: "weight", numbers: true, scale: divergingScale(0.5) });
    expect(view.querySelector(".map-numbers span")!.textContent).toBe(".50");
    expect([short(-0.0041), short(0.0298), short(12.3), short(2e-5), short(0)]).toEqual(["-.0041", ".030", "12", "2e-5", "0"]);
  });

  it("measures how flat a render is", () => {
    const flat = new Uint8ClampedArray(4 * 16).fill(128);
    expect(spread(flat)).toBeLessThan(1e-3);
    const varied = Uint8ClampedArray.from({ length: 64 }, (_, i) => (i % 8 < 4 ? 0 : 255));
    expect(spread(varied)).toBeGreaterThan(100);
  });
});
