"""Shared checks for the graph tests."""
from __future__ import annotations

import torch
from torch import nn

from viscnn.graph import Graph, build_graph
from viscnn.graph.replay import replay_check


def graph_and_replay(model: nn.Module, input_shape: tuple[int, int, int], images: int = 1, size: int | None = None,
                     tolerance: float = 1e-4) -> Graph:
    """Trace `model`, then check every conv output is rebuilt from its kernels to `tolerance`."""
    model.eval()
    graph = build_graph(model, input_shape)
    check_replay(model, graph, input_shape, images, size, tolerance)
    return graph


def check_replay(model: nn.Module, graph: Graph, input_shape: tuple[int, int, int], images: int = 1,
                 size: int | None = None, tolerance: float = 1e-4) -> None:
    """Every conv output of `model` on random images is rebuilt from `graph`'s kernels to `tolerance`."""
    channels, height, _ = input_shape
    side = size or height
    x = torch.randn(images, channels, side, side, generator=torch.Generator().manual_seed(1))
    results = replay_check(model, graph, x)
    assert len(results) == len(graph.conv_layers)
    worst = max(results, key=lambda r: r.relative_error)
    assert worst.relative_error < tolerance, worst


def sources(graph: Graph, layer: str) -> dict[str, list[int]]:
    """A layer's input channel sources as {source layer: [source channel per input channel]} (first array each)."""
    out: dict[str, list[int]] = {}
    for name, array in graph[layer].sources:
        out.setdefault(name, array.tolist())
    return out
