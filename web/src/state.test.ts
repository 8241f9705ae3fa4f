import { describe, expect, it } from "vitest";
import { DEFAULTS, decodeState, edgeId, encodeState, parseEdge, parseNode, queryKey, withQuery } from "./state";

describe("view state in the URL", () => {
  it("round-trips every field and writes only what differs from the defaults", () => {
    const state = { ...DEFAULTS, images: "tiger - overall", target: "_blocks.3._expand_conv:5", criterion: "taylor_signed",
      nodeRule: "cumulative" as const, nodeValue: 0.8, node: "features.3@2:12", edge: "features.3:4<-7", image: "i12",
      mode: "neuron" as const, unit: [3, 4] as [number, number], view: "circuit" as const, circuit: true };
    const search = encodeState(state);
    expect(decodeState(search)).toEqual(state);
    expect(encodeState(DEFAULTS)).toBe("");
    expect(search).not.toContain("max=");
  });

  it("falls back to defaults on malformed values instead of failing", () => {
    const state = decodeState("?n=abc&e=7&nrule=bogus&unit=1,x&node=nochannel&mode=weird&max=-5&view=");
    expect(state.nodeValue).toBe(DEFAULTS.nodeValue);
    expect(state.edgeValue).toBe(DEFAULTS.edgeValue);
    expect(state.nodeRule).toBe("fraction");
    expect(state.unit).toBeNull();
    expect(state.node).toBeNull();
    expect(state.mode).toBe("channel");
    expect(state.maxEdges).toBe(DEFAULTS.maxEdges);
    expect(state.view).toBe("graph");
  });

  it("parses node and edge ids whose layer names contain dots, colons are split from the right", () => {
    expect(parseNode("_blocks.3._expand_conv:17")).toEqual(["_blocks.3._expand_conv", 17]);
    expect(parseNode("features.0")).toBeNull();
    expect(parseEdge("features.3:12<-3")).toEqual(["features.3", 12, 3]);
    expect(parseEdge("features.3:12")).toBeNull();
    expect(parseEdge("features.3:12<-")).toBeNull();
    expect(edgeId("_blocks.1._depthwise_conv", 4, 4)).toBe("_blocks.1._depthwise_conv:4<-4");
    expect(parseEdge(edgeId("a:b@2", 5, 9))).toEqual(["a:b@2", 5, 9]);
  });

  it("writes edges as Python does and reads the older LAYER:OUT:IN links", () => {
    expect(decodeState("?edge=features.3%3A4%3A7").edge).toBe("features.3:4<-7");
    expect(decodeState("?edge=features.3%3A4%3C-7").edge).toBe("features.3:4<-7");
    expect(decodeState("?edge=features.3%3A4").edge).toBeNull();
    expect(decodeState(encodeState({ ...DEFAULTS, edge: edgeId("features.3", 4, 7) })).edge).toBe("features.3:4<-7");
  });

  it("keeps the sample size in the URL: empty for the server's default, 0 for every image", () => {
    expect(decodeState("?sample=250").sample).toBe(250);
    expect(decodeState("?sample=0").sample).toBe(0);
    expect(decodeState("?sample=-3").sample).toBeNull();
    expect(decodeState("?sample=1.5").sample).toBeNull();
    expect(decodeState("").sample).toBeNull();
    expect(encodeState({ ...DEFAULTS, sample: 0 })).toBe("?sample=0");
    expect(queryKey({ ...DEFAULTS, sample: 100 })).not.toBe(queryKey(DEFAULTS));
    const moved = withQuery({ ...DEFAULTS, node: "a:1", images: "x" }, { ...DEFAULTS, images: "y", sample: 9, node: "b:2" });
    expect([moved.images, moved.sample, moved.node]).toEqual(["y", 9, "a:1"]);
  });

  it("changes the query key only for fields that change the query", () => {
    const key = queryKey(DEFAULTS);
    expect(queryKey({ ...DEFAULTS, node: "features.0:1", image: "i3", view: "circuit" })).toBe(key);
    expect(queryKey({ ...DEFAULTS, criterion: "weight" })).not.toBe(key);
  });
});
