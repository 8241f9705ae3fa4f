import { describe, expect, it } from "vitest";
import type { Circuit, LayerInfo } from "./api";
import { faithfulnessChart, medianAt } from "./analysis";
import { arrange, drawCircuit, edgeStrengths } from "./circuit2d";

const layer = (name: string, depth: number, out: number, sources: LayerInfo["sources"]): LayerInfo =>
  ({ name, kind: name === "input" ? "input" : "conv", depth, in_channels: 0, out_channels: out, groups: 1, kernel_size: [3, 3], sources });
const LAYERS = [
  layer("input", 0, 1, []),
  layer("features.0", 1, 4, [{ layer: "input", channels: [0] }]),
  layer("features.3", 2, 4, [{ layer: "features.0", channels: [0, 1, 2, 3] }]),
];
const CIRCUIT: Circuit = {
  format: "viscnn.circuit/1", model: "toy", target: { text: "features.3:2", layer: "features.3", channel: 2 },
  method: "actgrad", keep: 0.5, kept_fraction: 0.5, upstream_edges: 8,
  nodes: [{ layer: "features.0", channel: 1, score: 2 }, { layer: "features.0", channel: 3, score: 1 }, { layer: "features.3", channel: 2, score: 5 }],
  edges: [
    { layer: "features.3", out: 2, in: 3, score: 0.5 },
    { layer: "features.3", out: 2, in: 1, score: 2, sign: -1 },
    { layer: "features.0", out: 1, in: 0, score: 1 },
  ],
};

describe("2D circuit diagram", () => {
  it("puts layers in columns by depth, channels in rows, and the input node its edges start from", () => {
    const d = arrange(CIRCUIT, LAYERS, 600, new Map([["features.3:2<-3", 1]]));
    expect(d.columns.map((c) => c.layer)).toEqual(["input", "features.0", "features.3"]);
    expect(d.columns[0].x).toBeLessThan(d.columns[1].x);
    const f0 = d.nodes.filter((n) => n.layer === "features.0").map((n) => [n.channel, n.y]);
    expect(f0.map((p) => p[0])).toEqual([1, 3]);
    expect(f0[0][1]).toBeLessThan(f0[1][1]);
    expect(d.edges).toHaveLength(3);
    // the sign comes from the circuit JSON when it has one, else from the query's signs, else unknown
    expect(d.edges.map((e) => [e.in, e.sign])).toEqual([[1, -1], [0, null], [3, 1]]);
  });

  it("draws clickable nodes and edges and marks the target", () => {
    const host = document.createElement("div");
    const picked: string[] = [];
    drawCircuit(host, CIRCUIT, LAYERS, { selectNode: (l, c) => picked.push(`${l}:${c}`), selectEdge: (l, o, i) => picked.push(`${l}:${o}<-${i}`) });
    expect(host.querySelectorAll("g.node")).toHaveLength(4);
    expect(host.querySelectorAll("g.node.target")).toHaveLength(1);
    (host.querySelector("g.node[data-node='features.0:3']") as SVGGElement).dispatchEvent(new Event("click"));
    (host.querySelectorAll("path.edge")[0] as SVGPathElement).dispatchEvent(new Event("click"));
    expect(picked).toEqual(["features.0:3", "features.3:2<-1"]);
  });
});

describe("faithfulness chart", () => {
  const evaluation = {
    methods: ["actgrad", "random"], fractions: [0.01, 0.1, 1e-5], targets: ["loss"], held_out_images: 10,
    summary: { actgrad: { median_r: { "0.01": 0.8, "0.1": 0.95, "1e-05": 0.1 }, auc: 0.7 }, random: { median_r: { "0.01": 0.1, "0.1": null, "1e-05": -0.2 }, auc: 0.1 } },
  };
  it("reads Python's %g keys as numbers", () => {
    expect(medianAt(evaluation, "actgrad", 1e-5)).toBe(0.1);
    expect(medianAt(evaluation, "random", 0.1)).toBeNull();
  });
  it("draws one line per method, leaving out missing points", () => {
    const svg = faithfulnessChart(evaluation);
    const lines = svg.querySelectorAll("polyline");
    expect(lines).toHaveLength(2);
    expect(lines[0].getAttribute("points")!.split(" ")).toHaveLength(3);
    expect(lines[1].getAttribute("points")!.split(" ")).toHaveLength(2);
    expect(svg.textContent).toContain("actgrad  AUC 0.700");
  });

  it("draws edges whose scores are all alike (a learned circuit) at one middling width, not all at full width", () => {
    expect([...edgeStrengths([0.5, 0.5, 0.5])]).toEqual([0.3, 0.3, 0.3].map((v) => Math.fround(v)));
    expect(edgeStrengths([1, 0.5, 0])[0]).toBe(1);
    expect(edgeStrengths([0, 0])[0]).toBeCloseTo(0.3);
  });
});
