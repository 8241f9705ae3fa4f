"""random: a seeded random ranking (the floor every method must beat)."""
from __future__ import annotations

from dataclasses import replace

import torch

from viscnn.circuits.methods import register
from viscnn.scoring.engine import score_batches


@register("random", description="uniform random scores (seeded)")
def random_scores(model, graph, batches, target, keep, *, seed=0, device="cpu"):
    shape = score_batches(model, graph, batches[:1], target, ("weight",), device=device)["weight"]
    generator = torch.Generator().manual_seed(seed)
    return replace(shape, criterion="random", nodes={k: torch.rand(v.shape, generator=generator) for k, v in shape.nodes.items()},
                   edges={k: torch.rand(v.shape, generator=generator) for k, v in shape.edges.items()})
