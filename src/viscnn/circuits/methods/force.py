"""force: iterative SNIP (de Jorge et al. 2021): prune to `keep` over steps of an exponential schedule,
recomputing |dT/dmask| on the pruned circuit each time (pruned kernels may come back)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import nn

from viscnn.circuits.circuit import candidate_kernels
from viscnn.circuits.methods import Batch, kernel_norms, register
from viscnn.circuits.methods.snip import mask_saliency, ones
from viscnn.circuits.select import normalised, top_fraction
from viscnn.graph import Graph
from viscnn.scoring.scores import Scores
from viscnn.scoring.targets import Target

STEPS = 10


@register("force", description="iterative SNIP with an exponential keep schedule")
def force(model: nn.Module, graph: Graph, batches: Sequence[Batch], target: Target, keep: float, *, seed: int = 0,
          device: str | torch.device = "cpu") -> Scores:
    masks = ones(graph, target)
    candidates = candidate_kernels(graph, target)
    saliency = {}
    for step in range(1, STEPS + 1):
        fraction = keep ** (step / STEPS)  # 1 -> keep, exponentially
        saliency = mask_saliency(model, graph, batches, target, masks, device=device)
        masks = {k: v.float() for k, v in top_fraction(saliency, fraction, candidates=candidates).items()}
    # rank the final circuit first, then the rest by their last saliency
    ranked = {k: v.clamp(min=0) + 1e6 * masks[k] for k, v in normalised(saliency, candidates).items()}
    shape = kernel_norms(model, graph, batches, target, device=device)
    return replace(shape, criterion="force", edges=ranked, nodes={k: v.sum(dim=1) for k, v in ranked.items()})



