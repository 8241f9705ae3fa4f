"""worst: actgrad in reverse, the least important kernels first (the paper's control)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import nn

from viscnn.circuits.methods import Batch, register
from viscnn.circuits.methods.actgrad import actgrad
from viscnn.graph import Graph
from viscnn.scoring.scores import Scores
from viscnn.scoring.targets import Target


@register("worst", description="actgrad's ranking reversed")
def worst(model: nn.Module, graph: Graph, batches: Sequence[Batch], target: Target, keep: float, *, seed: int = 0,
          device: str | torch.device = "cpu") -> Scores:
    scores = actgrad(model, graph, batches, target, keep, seed=seed, device=device)
    flip = {k: (v.max() - v) if v.numel() else v for k, v in scores.edges.items()}
    return replace(scores, criterion="worst", edges=flip, nodes={k: (v.max() - v) for k, v in scores.nodes.items()})
