"""Routes: the model's graph, layouts, nodes, edges, activation maps and receptive fields."""
from __future__ import annotations

from typing import Annotated

import torch
from fastapi import APIRouter, Query
from fastapi.responses import Response

from viscnn.graph import Layer
from viscnn.inspection.draw import ColourScale, choose_scale, colours, diverging
from viscnn.server.layouts import KINDS, Layouts
from viscnn.server.prune import KernelFacts
from viscnn.server.responses import FastJSON, Index, answers, one_of
from viscnn.server.state import NotFound, ServerState
from viscnn.server.views import Maps, png, upscale


def layer_json(layer: Layer) -> dict:
    rf = layer.receptive_field
    return {"name": layer.name, "kind": layer.kind, "index": layer.index, "depth": layer.depth,
            "in_channels": layer.in_channels, "out_channels": layer.out_channels, "groups": layer.groups,
            "kernel_size": list(layer.kernel_size), "stride": list(layer.stride), "output_shape": list(layer.output_shape),
            "receptive_field": rf.to_json() if rf is not None else {"whole_image": True},
            "sources": [{"layer": src, "channels": channels.tolist()} for src, channels in layer.sources]}


def routes(state: ServerState, facts: KernelFacts, maps: Maps, layouts: Layouts) -> APIRouter:
    router = APIRouter(tags=["model"])
    graph = state.graph
    model_json = {
        "name": state.loaded.name, "fingerprint": state.fingerprint, "input_shape": list(state.loaded.input_shape),
        "num_nodes": graph.num_nodes, "num_edges": graph.num_edges, "classes": state.class_names,
        "layers": [layer_json(layer) for layer in graph.layers.values()],
    }

    @router.get("/model", summary="the model's kernel graph: layers, sizes, sources, receptive fields", responses=answers())
    def model() -> dict:
        from viscnn.circuits import all_methods
        from viscnn.scoring.criteria import CRITERIA

        return {**model_json, "criteria": list(CRITERIA), "methods": sorted(all_methods()),
                "default_target": "loss"}

    @router.get("/layout", summary="where every node sits (docs/layout.md); 202 + job while a projection is computed",
                responses=answers(503, job=True))
    def layout(kind: str = Query("grid", json_schema_extra=one_of(lambda: KINDS))) -> Response:
        return layouts.answer(kind)

    @router.get("/nodes/{layer}/{channel}", summary="a node and its top incoming edges", responses=answers(404))
    def node(layer: str, channel: Index, query: str | None = Query(None, description="a query's key, to score its edges"),
             top: int = Query(20, ge=1, le=1000)) -> dict:
        spec = state.check_channel(layer, channel)
        scores = None
        if query is not None:
            scores = state.queries.get(query)
            if scores is None:
                raise NotFound(f"unknown query {query[:100]!r}: run it again with POST /api/query (old ones are forgotten)")
        norms = facts.norms(layer)[channel]
        edge_scores = scores.edges[layer][channel].float() if scores is not None and layer in scores.edges else None
        order = (edge_scores.abs() if edge_scores is not None else norms).argsort(descending=True)[:top]
        offset = (channel // spec.out_per_group) * spec.in_per_group
        signs = facts.signs(layer)[channel]
        incoming = []
        for local in order.tolist():
            inp = offset + local
            incoming.append({"layer": layer, "out": channel, "in": inp,
                             "sources": [{"layer": n.layer, "channel": n.channel} for n in spec.in_sources(inp)],
                             "score": float(edge_scores[local]) if edge_scores is not None else None,
                             "weight_norm": float(norms[local]), "sign": int(signs[local])})
        score = float(scores.nodes[layer][channel]) if scores is not None and layer in scores.nodes else None
        return {"layer": layer, "channel": channel, "depth": spec.depth, "kind": spec.kind,
                "receptive_field": layer_json(spec)["receptive_field"], "map_size": list(spec.output_shape[-2:]),
                "score": score, "incoming": incoming}

    def activation_values(image: str, layer: str, channel: int) -> torch.Tensor:
        state.check_channel(layer, channel)
        return maps.node_map(state.image(image), layer, channel)

    @router.get("/activation", summary="a node's map for one image (BN folded)", responses=answers(404))
    def activation(image: str, layer: str, channel: Annotated[int, Query(ge=0)]) -> Response:
        values = activation_values(image, layer, channel)
        return FastJSON({"image": image, "layer": layer, "channel": channel, **map_json(values),
                         "png": f"/api/activation.png?image={image}&layer={layer}&channel={channel}"})

    @router.get("/activation.png", summary="a node's map for one image, one pixel per unit (signed: blue < 0 < red; "
                "one sign: viridis over its range)", response_class=Response, responses=answers(404, body="png"))
    def activation_png(image: str, layer: str, channel: Annotated[int, Query(ge=0)]) -> Response:
        return Response(png(colours(activation_values(image, layer, channel).numpy())), media_type="image/png")

    @router.get("/receptive_field", summary="where unit (y, x) of a layer's map looks, in input pixels",
                responses=answers(404))
    def receptive_field(layer: str, y: Annotated[int, Query(ge=0)], x: Annotated[int, Query(ge=0)]) -> dict:
        spec = state.conv_layer(layer)
        height, width = spec.output_shape[-2:]
        if not (0 <= y < height and 0 <= x < width):
            raise NotFound(f"unit {y},{x} is outside the {height}x{width} map of layer {layer}")
        size = list(state.loaded.input_shape[1:])
        rf = spec.receptive_field
        if rf is None or rf.whole_image:
            return {"top": 0, "left": 0, "bottom": size[0], "right": size[1], "image_size": size, "whole_image": True}
        top, left, bottom, right = rf.box(y, x)
        return {"top": top, "left": left, "bottom": bottom, "right": right, "image_size": size, "whole_image": False}

    def edge_check(layer: str, out: int, inp: int) -> Layer:
        return state.check_edge(layer, out, inp)

    @router.get("/edges/{layer}/{out}/{inp}", summary="an edge: its BN-folded kernel, sign and source nodes",
                responses=answers(404))
    def edge(layer: str, out: Index, inp: Index) -> dict:
        spec = edge_check(layer, out, inp)
        local = inp - (out // spec.out_per_group) * spec.in_per_group
        kernel = facts.folded(layer)[out, local]
        limit = float(kernel.abs().max())
        return {"layer": layer, "out": out, "in": inp, "kernel": kernel.tolist(), "sign": int(facts.signs(layer)[out, local]),
                # kernels keep the diverging scale whatever their signs: a weight's sign is what it does
                "scale": ColourScale("diverging", -limit, limit, flat=limit == 0).to_json(),
                "sources": [{"layer": n.layer, "channel": n.channel} for n in spec.in_sources(inp)]}

    @router.get("/edges/{layer}/{out}/{inp}/kernel.png", summary="the kernel as a heatmap", response_class=Response,
                responses=answers(404, body="png"))
    def edge_kernel(layer: str, out: Index, inp: Index) -> Response:
        spec = edge_check(layer, out, inp)
        local = inp - (out // spec.out_per_group) * spec.in_per_group
        return Response(png(upscale(diverging(facts.folded(layer)[out, local].numpy()))), media_type="image/png")

    @router.get("/edges/{layer}/{out}/{inp}/input.png", summary="the map feeding the edge, for one image",
                response_class=Response, responses=answers(404, body="png"))
    def edge_input(layer: str, out: Index, inp: Index, image: str) -> Response:
        edge_check(layer, out, inp)
        values = maps.input_map(state.image(image), layer, inp)
        return Response(png(colours(values.numpy())), media_type="image/png")

    @router.get("/edges/{layer}/{out}/{inp}/output.png", summary="what this kernel alone outputs, for one image",
                response_class=Response, responses=answers(404, body="png"))
    def edge_output(layer: str, out: Index, inp: Index, image: str) -> Response:
        edge_check(layer, out, inp)
        values = maps.kernel_output(state.image(image), layer, out, inp, bn_scale=facts.bn_scale(layer))
        return Response(png(colours(values.numpy())), media_type="image/png")

    @router.get("/edges/{layer}/{out}/{inp}/maps", summary="the map feeding the edge and the map it makes, for one image, "
                "as values with their colour scale", responses=answers(404))
    def edge_maps(layer: str, out: Index, inp: Index, image: str) -> Response:
        edge_check(layer, out, inp)
        ref = state.image(image)
        feeding = maps.input_map(ref, layer, inp)
        made = maps.kernel_output(ref, layer, out, inp, bn_scale=facts.bn_scale(layer))
        return FastJSON({"layer": layer, "out": out, "in": inp, "image": image,
                         "input": map_json(feeding), "output": map_json(made)})

    return router


def map_json(values: torch.Tensor) -> dict:
    """A map's values with its size, range and colour scale (what the page draws, and the server's PNGs use)."""
    array = values.float().numpy()
    return {"height": int(array.shape[0]), "width": int(array.shape[1]), "min": float(array.min()),
            "max": float(array.max()), "values": array, "scale": choose_scale(array).to_json()}
