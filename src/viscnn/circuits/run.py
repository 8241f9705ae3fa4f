"""Run a model (or a circuit of it) up to its target and read the target's values."""
from __future__ import annotations

import torch
from torch import nn

from viscnn.circuits.masking import KernelMasks, Masks
from viscnn.graph import Graph
from viscnn.graph.recorder import Recorder
from viscnn.scoring.targets import Target


def target_output(model: nn.Module, graph: Graph, x: torch.Tensor, labels: torch.Tensor | None, target: Target, *,
                  masks: Masks | None = None) -> torch.Tensor:
    """What the target reads: the whole map [N, H, W] of a node target; [N] values otherwise.

    Gradients flow to `masks` when they require grad; the pass stops at the target's layer.
    """
    recorder = Recorder(graph, stop_at=target.layer, keep=set() if target.layer is None else {target.layer})
    with KernelMasks(graph, masks or {}):
        output = recorder.run(model, x)
    if target.layer is not None:  # inside: the pass stopped at the target's node map
        node_map = recorder.calls[target.layer].ready_map()
        return node_map[:, target.channel] if target.kind == "node" else target.from_map(node_map)
    if labels is None:
        labels = torch.full((x.shape[0],), -1, dtype=torch.long)
    return target.from_output(output, labels)


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson r of two equally shaped tensors, over all their entries (0 when either is constant)."""
    a, b = a.detach().flatten().double(), b.detach().flatten().double()
    a, b = a - a.mean(), b - b.mean()
    denominator = a.norm() * b.norm()
    return float((a @ b) / denominator) if denominator > 0 else 0.0
