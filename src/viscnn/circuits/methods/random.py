"""random: a seeded random ranking (the floor every method must beat)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import nn

from viscnn.circuits.methods import Batch, kernel_norms, register
from viscnn.graph import Graph
from viscnn.scoring.scores import Scores
from viscnn.scoring.targets import Target


@register("random", description="uniform random scores (seeded)")
def random_scores(model: nn.Module, graph: Graph, batches: Sequence[Batch], target: Target, keep: float, *, seed: int = 0,
                  device: str | torch.device = "cpu") -> Scores:
    shape = kernel_norms(model, graph, batches, target, device=device)
    generator = torch.Generator().manual_seed(seed)
    return replace(shape, criterion="random", nodes={k: torch.rand(v.shape, generator=generator) for k, v in shape.nodes.items()},
                   edges={k: torch.rand(v.shape, generator=generator) for k, v in shape.edges.items()})
