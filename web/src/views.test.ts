import { describe, expect, it } from "vitest";
import type { CompositionNode, EdgeBlock, LayerInfo, ModelInfo, QueryResult } from "./api";
import { pageBase } from "./base";
import { roleOf, figure8Methods, defaultPath } from "./analysis";
import { safeName, svgDocument } from "./exporting";
import { indexNodes, segments } from "./geometry";
import { drawnNodes, highlighted, ruleNodes } from "./highlight";
import { gridOrder } from "./layerGrid";
import { mergeSegments, overlay, OVERLAY_RGB } from "./overlay";
import { defaultOrder, topEdges, topNodes } from "./ranking";
import { goToSuggestions, matchLayers, parseGoTo } from "./search";
import { scatterPositions } from "./subfeaturesView";
import { DEFAULTS } from "./state";
import { queryRequest } from "./views";

const layer = (name: string, depth: number, out: number, sources: LayerInfo["sources"]): LayerInfo =>
  ({ name, kind: name === "input" ? "input" : "conv", depth, in_channels: 0, out_channels: out, groups: 1, kernel_size: [3, 3], sources });
const LAYERS = [
  layer("input", 0, 1, []),
  layer("features.0", 1, 4, [{ layer: "input", channels: [0] }]),
  layer("features.3", 2, 4, [{ layer: "features.0", channels: [0, 1, 2, 3] }]),
  layer("features.10", 3, 12, [{ layer: "features.3", channels: [0, 1, 2, 3] }]),
];
const MODEL = { layers: LAYERS } as ModelInfo;
const block = (rows: [number, number, number, number][]): EdgeBlock =>
  ({ out: rows.map((r) => r[0]), in: rows.map((r) => r[1]), score: rows.map((r) => r[2]), sign: rows.map((r) => r[3]) });
const result = (edges: Record<string, EdgeBlock>, nodes: Record<string, number[]>, kept: Record<string, number[]> = {}, images = "a"): QueryResult => ({
  key: images, seconds: 0, computed: [], cached: [], images, target: "loss", criterion: "taylor", n_images: 1, nodes, kept, edges,
  num_edges: Object.values(edges).reduce((n, b) => n + b.out.length, 0), num_edges_total: 100,
});

describe("readable defaults: a kernel budget and the nodes it joins", () => {
  it("the page asks for its drawn kernels by a budget, not a fraction", () => {
    const request = queryRequest(DEFAULTS, "overall");
    expect(request.max_edges).toBe(1500);
    expect(request.edge_fraction).toBe(1); // every candidate kernel competes for the budget
    expect(request.edge_cumulative).toBeNull();
  });

  it("lights up the nodes the drawn kernels join (else the node rule's)", () => {
    const index = indexNodes(MODEL);
    const r = result({ "features.3": block([[2, 1, 0.5, 1]]) }, { "features.0": [1, 2, 3, 4], "features.3": [4, 3, 2, 1] },
      { "features.0": [0, 1], "features.3": [0, 1] });
    const segs = segments(index, r.edges);
    const drawn = drawnNodes(index.count, segs);
    const at = (name: string, c: number) => index.offset.get(name)! + c;
    expect([...drawn].map((v, i) => (v ? i : -1)).filter((i) => i >= 0)).toEqual([at("features.0", 1), at("features.3", 2)]);
    expect(highlighted(index, r, segs, "kernels")).toEqual(drawn);
    expect(highlighted(index, r, segs, "rule")).toEqual(ruleNodes(index, r));
    const none = segments(index, {});
    expect(highlighted(index, r, none, "kernels")).toEqual(ruleNodes(index, r)); // nothing drawn: the rule's nodes
  });
});

describe("ranked lists", () => {
  const r = result({ "features.3": block([[0, 1, -0.9, -1], [1, 2, 0.2, 1]]), "features.0": block([[3, 0, 0.5, 0]]) },
    { "features.0": [0.1, 0, -3, 0.2], "features.3": [1, 0.5, NaN, -2] }, { "features.0": [2] });

  it("ranks nodes by |score| across layers or within one, zero and NaN left out", () => {
    expect(topNodes(r, 3).map((n) => `${n.layer}:${n.channel}`)).toEqual(["features.0:2", "features.3:3", "features.3:0"]);
    expect(topNodes(r, 3)[0].kept).toBe(true);
    expect(topNodes(r, 10, "features.3").map((n) => n.channel)).toEqual([3, 0, 1]);
    expect(topNodes(r, 10).length).toBe(6);
  });

  it("ranks a contrast's most positive scores first, anything else by |score|", () => {
    const mixed = { a: [1, -2] }, negative = { a: [-1, -2] };
    expect(defaultOrder("sandal - overall", mixed)).toBe("high");
    expect(defaultOrder("-1*overall + bag", mixed)).toBe("high");
    expect(defaultOrder("sandal - overall", negative)).toBe("abs"); // nothing above 0: "most positive" would list ~0s
    expect(defaultOrder("243-bull_mastiff + overall", mixed)).toBe("abs");
    expect(topNodes(r, 5, null, "high").map((n) => `${n.layer}:${n.channel}`)).toEqual(["features.3:0", "features.3:1", "features.0:3", "features.0:0"]);
    expect(topNodes(r, 1, null, "low")[0].score).toBe(-3);
    expect(topNodes(r, 9, null, "low")).toHaveLength(2); // negative scores only
    expect(topEdges(r.edges, 1, null, "low")[0].score).toBe(-0.9);
    expect(topEdges(r.edges, 9, null, "high")).toHaveLength(2);
  });

  it("ranks the drawn kernels by |score|", () => {
    expect(topEdges(r.edges, 2).map((e) => [e.layer, e.out, e.in, e.sign])).toEqual([["features.3", 0, 1, -1], ["features.0", 3, 0, 0]]);
    expect(topEdges(r.edges, 5, "features.0")).toHaveLength(1);
  });
});

describe("go to node", () => {
  it("reads LAYER:CHANNEL, a unique part of a layer name, and says what is wrong", () => {
    expect(parseGoTo("features.3:2", LAYERS)).toEqual({ layer: "features.3", channel: 2 });
    expect(parseGoTo(" features.10 11 ", LAYERS)).toEqual({ layer: "features.10", channel: 11 });
    expect(parseGoTo("features.1:3", LAYERS)).toEqual({ layer: "features.10", channel: 3 }); // the one layer it starts
    expect(parseGoTo("FEATURES.0:1", LAYERS)).toEqual({ layer: "features.0", channel: 1 });
    expect(parseGoTo("features.3:4", LAYERS)).toEqual({ error: "features.3 has channels 0..3" });
    expect(parseGoTo("feat:1", LAYERS)).toMatchObject({ error: expect.stringContaining("matches 3 layers") });
    expect(parseGoTo("input:0", LAYERS)).toMatchObject({ error: expect.stringContaining("no conv layer") });
    expect(parseGoTo("features.3", LAYERS)).toMatchObject({ error: expect.stringContaining("LAYER:CHANNEL") });
  });

  it("completes layer names, then the channels of the layer", () => {
    expect(matchLayers("3", LAYERS)).toEqual(["features.3"]);
    expect(goToSuggestions("feat", LAYERS)).toEqual(["features.0:", "features.3:", "features.10:"]);
    expect(goToSuggestions("features.10:1", LAYERS)).toEqual(["features.10:1", "features.10:10", "features.10:11"]);
    expect(goToSuggestions("features.3:", LAYERS, 2)).toEqual(["features.3:0", "features.3:1"]);
    expect(goToSuggestions("features.3:x", LAYERS)).toEqual([]);
  });
});

describe("two queries on one graph (Fig 5a)", () => {
  it("colours what each input lights up, and what both do, apart", () => {
    const index = indexNodes(MODEL);
    const a = result({ "features.3": block([[0, 1, 1, 1], [1, 1, 0.5, 1]]) }, { "features.0": [0, 1, 0, 0], "features.3": [2, 1, 0, 0] }, {}, "a");
    const b = result({ "features.3": block([[1, 1, 0.4, 1], [3, 2, 1, -1]]) }, { "features.0": [0, 1, 1, 0], "features.3": [0, 1, 0, 2] }, {}, "b");
    const o = overlay(index, a, b, "kernels");
    const at = (name: string, c: number) => index.offset.get(name)! + c;
    const colour = (i: number) => [...o.colours.subarray(i * 3, i * 3 + 3)];
    expect(colour(at("features.3", 0))).toEqual([...Float32Array.from(OVERLAY_RGB.a)]);
    expect(colour(at("features.3", 3))).toEqual([...Float32Array.from(OVERLAY_RGB.b)]);
    expect(colour(at("features.0", 1))).toEqual([...Float32Array.from(OVERLAY_RGB.both)]); // both draw kernels from it
    expect(o.counts).toEqual({ a: 1, b: 2, both: 2 });
    expect(o.segs.count).toBe(3); // the kernel both draw is one segment
    const shared = [...o.segColours.subarray(3, 6)];
    expect(shared).toEqual([...Float32Array.from(OVERLAY_RGB.both)]);
  });

  it("merges segments without duplicates", () => {
    const index = indexNodes(MODEL);
    const s = segments(index, { "features.3": block([[0, 1, 1, 1]]) });
    expect(mergeSegments(s, s).segs.count).toBe(1);
  });
});

describe("views' helpers", () => {
  it("finds the API under the page's folder (a notebook proxy path)", () => {
    expect(pageBase("/")).toBe("");
    expect(pageBase("/index.html")).toBe("");
    expect(pageBase("/user/ada/proxy/8123/")).toBe("/user/ada/proxy/8123");
    expect(pageBase("/user/ada/proxy/8123/index.html")).toBe("/user/ada/proxy/8123");
  });

  it("orders a layer's grid by channel or by the query's |score|", () => {
    expect(gridOrder(4, "channel", [1, 5, -9, NaN])).toEqual([0, 1, 2, 3]);
    expect(gridOrder(4, "score", [1, 5, -9, NaN])).toEqual([2, 1, 0, 3]);
    expect(gridOrder(3, "score", null)).toEqual([0, 1, 2]);
  });

  it("names Fig 8's lines best, random and worst", () => {
    expect(figure8Methods("snip", null)).toEqual(["snip", "random", "worst"]);
    expect(figure8Methods("random", ["random", "worst"])).toEqual(["random", "worst"]);
    expect(roleOf("snip", "snip")).toBe("best");
    expect(roleOf("worst", "snip")).toBe("worst");
    expect(roleOf("magnitude", "snip")).toBeNull();
  });

  it("follows the strongest child down a composition tree", () => {
    const unit = (contribution: number, children: CompositionNode[] = []): CompositionNode =>
      ({ unit: "u", layer: "l", channel: 0, y: 0, x: 0, activation: 1, contribution, children });
    expect(defaultPath(unit(0, [unit(0.1), unit(-0.5, [unit(1), unit(2)]), unit(0.3)]))).toEqual([1, 1]);
  });

  it("scales a projection into a square", () => {
    const spots = scatterPositions([{ x: 0, y: 0 }, { x: 2, y: 1 }], 100, 10);
    expect(spots[0][0]).toBeCloseTo(10);
    expect(spots[1][0]).toBeCloseTo(90);
    expect(spots[0][1]).toBeGreaterThan(spots[1][1]); // y up
  });

  it("exports a standalone SVG and safe file names", () => {
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.classList.add("circuit-svg", "focus");
    svg.innerHTML = '<g class="node"><circle r="3"/></g>';
    const text = svgDocument(svg, "actgrad circuit of features.3:1");
    expect(text).toContain('xmlns="http://www.w3.org/2000/svg"');
    expect(text).toContain("<style>");
    expect(text).not.toContain("focus");
    expect(safeName("features.3:1<-2 / class:tabby cat")).toBe("features.3_1_from_2_class_tabby_cat");
  });
});
