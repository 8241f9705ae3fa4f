import { describe, expect, it } from "vitest";
import type { LayerInfo, ModelInfo } from "./api";
import { gridPositions, indexNodes, place, segments } from "./geometry";

const layer = (name: string, kind: string, depth: number, out: number, sources: LayerInfo["sources"]): LayerInfo =>
  ({ name, kind, depth, in_channels: 0, out_channels: out, groups: 1, kernel_size: [3, 3], sources });

// input(3) -> a(4) -> b(4); c = conv over (a + b) (a residual add: input channel k comes from a:k and b:k);
// d reads a concatenation where channel 1 has no source (-1).
const MODEL = {
  name: "toy", layers: [
    layer("input", "input", 0, 3, []),
    layer("a", "conv", 1, 4, [{ layer: "input", channels: [0, 1, 2] }]),
    layer("b", "conv", 2, 4, [{ layer: "a", channels: [0, 1, 2, 3] }]),
    layer("c", "conv", 3, 2, [{ layer: "a", channels: [0, 1, 2, 3] }, { layer: "b", channels: [0, 1, 2, 3] }]),
    layer("d", "conv", 3, 2, [{ layer: "b", channels: [3, -1] }]),
    layer("fc", "linear", 4, 10, [{ layer: "c", channels: [0, 1] }]),
  ],
} as unknown as ModelInfo;

describe("node index and placement", () => {
  it("numbers the input and conv nodes layer by layer and skips linear heads", () => {
    const index = indexNodes(MODEL);
    expect(index.layers.map((l) => l.name)).toEqual(["input", "a", "b", "c", "d"]);
    expect(index.count).toBe(3 + 4 + 4 + 2 + 2);
    expect(index.offset.get("c")).toBe(11);
    expect([index.layerOf[12], index.channelOf[12]]).toEqual([3, 1]);
  });

  it("puts layers along x by depth and side by side when they share a depth", () => {
    const index = indexNodes(MODEL);
    const { positions, centres } = place(index, null);
    const x = (node: number) => positions[node * 3];
    expect(x(0)).toBeLessThan(x(3));
    expect(x(3)).toBeLessThan(x(7));
    expect(x(11)).toBe(x(13)); // c and d: same depth
    expect(centres[3][2]).not.toBe(centres[4][2]); // ...but apart along z
  });

  it("uses the server's layout when it has one position per channel, the grid otherwise", () => {
    const index = indexNodes(MODEL);
    const layout = { kind: "test", kinds: ["test"], layers: { a: { depth: 1, positions: [[5, 0], [6, 0], [7, 0], [8, 0]] as [number, number][] }, b: { depth: 2, positions: [[1, 1]] as [number, number][] } } };
    const { positions } = place(index, layout);
    expect(positions[3 * 3 + 2]).toBe(5); // a:0 at u = 5 (z), v = 0 (y)
    const grid = gridPositions(4);
    expect(positions[7 * 3 + 1]).toBe(grid[0][1]); // b had the wrong count: grid
  });

  it("centres the grid with neighbours one apart", () => {
    const grid = gridPositions(9);
    expect(grid[0]).toEqual([-1, -1]);
    expect(grid[8]).toEqual([1, 1]);
  });
});

describe("edge segments", () => {
  it("joins a kernel to every node that feeds its input channel, skipping channels with no source", () => {
    const index = indexNodes(MODEL);
    const segs = segments(index, {
      c: { out: [1], in: [2], score: [0.5], sign: [-1] },
      d: { out: [0, 1], in: [0, 1], score: [1, 2], sign: [1, 0] },
      nosuch: { out: [0], in: [0], score: [1], sign: [1] },
    });
    expect(segs.count).toBe(3); // c: from a:2 and b:2; d: b:3 -> d:0 (d's channel 1 has no source)
    expect([...segs.from]).toEqual([3 + 2, 7 + 2, 7 + 3]);
    expect([...segs.to]).toEqual([12, 12, 13]);
    expect([...segs.sign]).toEqual([-1, -1, 1]);
    expect(index.layers[segs.layer[2]].name).toBe("d");
  });

  it("takes circuit edges as lists too", () => {
    const index = indexNodes(MODEL);
    const segs = segments(index, { b: [{ layer: "b", out: 0, in: 1, score: 3 }] });
    expect(segs.count).toBe(1);
    expect([segs.from[0], segs.to[0], segs.sign[0]]).toEqual([4, 7, 0]);
  });
});
