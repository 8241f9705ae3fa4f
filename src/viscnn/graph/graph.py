"""The kernel graph of a CNN: nodes are filters, edges are 2D kernels, layers in call order."""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from viscnn.errors import ViscnnError
from viscnn.graph import receptive
from viscnn.graph.trace import TraceResult, trace
from viscnn.graph.types import INPUT, Edge, Layer, Node


@dataclass
class Graph:
    """Layers (the input image first, then every conv call in execution order) and linear heads.

    A node is ``Node(layer, channel)``; an edge is ``Edge(layer, out, inp)``, the kernel
    ``weight[out, inp - group_offset]`` of conv ``layer``. Edges are implicit: every (out, local in)
    pair of a conv layer's weight is one, so the 3 million kernels of EfficientNet-Lite0 are never
    listed one by one.
    """

    layers: dict[str, Layer]
    heads: dict[str, Layer] = field(default_factory=dict)
    outputs: list[tuple[str, np.ndarray]] = field(default_factory=list)
    model_name: str = ""
    trace_seconds: float = 0.0

    # --- sizes ---------------------------------------------------------------------------------------
    @property
    def conv_layers(self) -> list[Layer]:
        return [layer for layer in self.layers.values() if layer.kind == "conv"]

    @property
    def num_nodes(self) -> int:
        """Filters of all conv layers (the input's image channels not counted)."""
        return sum(layer.out_channels for layer in self.conv_layers)

    @property
    def num_edges(self) -> int:
        """2D kernels of all conv layers (only those that exist in grouped/depthwise convs)."""
        return sum(layer.num_edges for layer in self.conv_layers)

    def __getitem__(self, name: str) -> Layer:
        return self.layers[name]

    def __contains__(self, name: str) -> bool:
        return name in self.layers

    # --- ids -----------------------------------------------------------------------------------------
    def nodes(self, layer: str) -> Iterator[Node]:
        return (Node(layer, c) for c in range(self.layers[layer].out_channels))

    def has_node(self, node: Node) -> bool:
        layer = self.layers.get(node.layer)
        return layer is not None and 0 <= node.channel < layer.out_channels

    def has_edge(self, edge: Edge) -> bool:
        layer = self.layers.get(edge.layer)
        if layer is None or layer.kind != "conv" or not (0 <= edge.out < layer.out_channels):
            return False
        group = edge.out // layer.out_per_group
        return group * layer.in_per_group <= edge.inp < (group + 1) * layer.in_per_group

    def edge_at(self, layer: str, out: int, local_in: int) -> Edge:
        """The edge of weight[out, local_in] of `layer`."""
        return Edge(layer, out, self.layers[layer].input_channel(out, local_in))

    def kernel_index(self, edge: Edge) -> tuple[int, int]:
        """(out, local in): where an edge's kernel sits in its layer's weight tensor."""
        layer = self.layers[edge.layer]
        return edge.out, edge.inp - (edge.out // layer.out_per_group) * layer.in_per_group

    def kernels(self, model: nn.Module, layer: str) -> torch.Tensor:
        """The layer's kernels as [C_out, C_in / groups, kh, kw] (a view of the model's weight)."""
        spec = self.layers[layer]
        if spec.weight_name is None:
            raise KeyError(f"layer {layer} computes its weight at run time; it has no parameter to view")
        return model.get_parameter(spec.weight_name).detach()

    def upstream(self, layer: str) -> list[str]:
        """Every layer `layer` depends on (through any path), in call order."""
        seen, todo = set(), [layer]
        while todo:
            for src in self.layers[todo.pop()].source_layers:
                if src in self.layers and src not in seen:
                    seen.add(src)
                    todo.append(src)
        return [name for name in self.layers if name in seen]

    # --- output --------------------------------------------------------------------------------------
    def summary(self) -> str:
        """A table of layers, then the totals."""
        rows = [f"{'#':>3} {'layer':<38} {'kind':<6} {'in->out':>11} {'kernel':>6} {'str':>3} {'grp':>4} "
                f"{'out size':>9} {'RF':>7} {'nodes':>6} {'edges':>9}  from"]
        for layer in list(self.layers.values()) + list(self.heads.values()):
            rf = layer.receptive_field
            rf_text = "all" if rf is None or rf.whole_image else f"{rf.size[0]:g}"
            size = "x".join(str(s) for s in layer.output_shape[1:]) or "-"
            sources = ",".join(sorted(layer.source_layers, key=lambda n: self.layers[n].index if n in self.layers else -1))
            rows.append(f"{layer.index:>3} {layer.name[:38]:<38} {layer.kind:<6} {layer.in_channels:>5}->{layer.out_channels:<5} "
                        f"{layer.kernel_size[0]}x{layer.kernel_size[1]:<4} {layer.stride[0]:>3} {layer.groups:>4} {size:>9} "
                        f"{rf_text:>7} {layer.out_channels:>6} {layer.num_edges:>9}  {sources[:60]}")
        rows.append(f"{len(self.conv_layers)} conv layers, {self.num_nodes:,} filter nodes, {self.num_edges:,} kernel edges"
                    f" ({self.layers[INPUT].out_channels} input channels, {len(self.heads)} linear heads);"
                    f" traced in {self.trace_seconds:.2f} s")
        return "\n".join(rows)

    def to_json(self) -> dict:
        """Everything but the weights; edges are given per layer by their sources and groups."""
        def layer_json(layer: Layer) -> dict:
            rf = layer.receptive_field
            return {
                "name": layer.name, "kind": layer.kind, "index": layer.index, "depth": layer.depth,
                "module": layer.module, "weight": layer.weight_name, "in_channels": layer.in_channels,
                "out_channels": layer.out_channels, "groups": layer.groups, "kernel_size": list(layer.kernel_size),
                "stride": list(layer.stride), "padding": list(layer.padding), "dilation": list(layer.dilation),
                "padding_mode": layer.padding_mode, "bias": layer.bias, "batchnorm": layer.batchnorm, "rewritten": layer.rewritten,
                "input_shape": list(layer.input_shape), "output_shape": list(layer.output_shape),
                "receptive_field": rf.to_json() if rf and not rf.whole_image else {"whole_image": True},
                "nodes": layer.out_channels, "edges": layer.num_edges,
                "sources": [{"layer": src, "channels": a.tolist()} for src, a in layer.sources],
            }

        return {
            "model": self.model_name,
            "counts": {"conv_layers": len(self.conv_layers), "nodes": self.num_nodes, "edges": self.num_edges},
            "layers": [layer_json(layer) for layer in self.layers.values()],
            "heads": [layer_json(layer) for layer in self.heads.values()],
            "outputs": [{"layer": src, "channels": a.tolist()} for src, a in self.outputs],
        }

    def save_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json()))


def _depths(layers: dict[str, Layer]) -> None:
    for layer in layers.values():
        layer.depth = 1 + max((layers[s].depth for s in layer.source_layers if s in layers), default=-1)


def from_trace(result: TraceResult, input_shape: tuple[int, ...], model_name: str = "") -> Graph:
    channels = input_shape[0]
    layers = {INPUT: Layer(name=INPUT, kind="input", index=0, out_channels=channels, output_shape=tuple(input_shape),
                           receptive_field=receptive.image())}
    layers.update((layer.name, layer) for layer in result.layers)
    order = {name: k for k, name in enumerate(layers)}
    for layer in list(layers.values()) + result.heads:
        layer.sources.sort(key=lambda item: order.get(item[0], len(order)))  # stable: arrays of one layer keep order
    _depths(layers)
    return Graph(layers, {h.name: h for h in result.heads}, result.outputs, model_name)


def build_graph(model: nn.Module, input_shape: tuple[int, ...], model_name: str = "", seed: int = 0) -> Graph:
    """Trace `model` on one random image of `input_shape` (C, H, W) and return its kernel graph."""
    generator = torch.Generator().manual_seed(seed)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    example = torch.randn((1, *input_shape), generator=generator).to(device)
    start = time.perf_counter()
    try:
        result = trace(model, example)
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:  # the model itself failed on the input
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ViscnnError(f"model {model_name or type(model).__name__} failed on an input of shape "
                          f"{[1, *input_shape]}: {first}") from exc
    graph = from_trace(result, tuple(input_shape), model_name)
    graph.trace_seconds = time.perf_counter() - start
    if not graph.conv_layers:
        raise ViscnnError(f"model {model_name or type(model).__name__} ran no 2D convolution on its input: nothing to graph")
    return graph
