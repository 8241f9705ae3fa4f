"""The replay check (as TorchLens validates its captures): rebuild every conv's output from its edges.

For each conv layer, the output of the real forward pass is compared with the sum of its single-kernel
maps plus bias, computed from the graph's own record of the layer (padding with any folded F.pad,
stride, dilation, groups) and the model's weights. A graph that passes describes the network exactly.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from viscnn.graph.dissect import ConvGeometry, replay_conv
from viscnn.graph.graph import Graph
from viscnn.graph.trace import trace


@dataclass(frozen=True)
class ReplayResult:
    layer: str
    max_abs_error: float
    max_abs_output: float

    @property
    def relative_error(self) -> float:
        return self.max_abs_error / max(self.max_abs_output, 1e-12)


def replay_check(model: nn.Module, graph: Graph, images: torch.Tensor, max_bytes: int = 256 << 20) -> list[ReplayResult]:
    """Replay every conv layer of `graph` on `images`; one result per layer, in call order."""
    captured = trace(model, images, capture=True).captures
    missing = [name for name in graph.layers if graph.layers[name].kind == "conv" and name not in captured]
    if missing:
        raise RuntimeError(f"layers {missing[:3]} of the graph did not run on these images")
    results = []
    with torch.no_grad():
        for layer in graph.conv_layers:
            capture = captured[layer.name]
            weight = model.get_parameter(layer.weight_name) if layer.weight_name else capture.weight
            bias = capture.bias
            rebuilt = replay_conv(capture.input, weight.detach(), bias, ConvGeometry.of(layer), max_bytes)
            if rebuilt.shape != capture.output.shape:
                results.append(ReplayResult(layer.name, float("inf"), float(capture.output.abs().max())))
                continue
            error = (rebuilt - capture.output).abs().max().item()
            results.append(ReplayResult(layer.name, error, capture.output.abs().max().item()))
    return results
