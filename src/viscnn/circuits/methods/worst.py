"""worst: actgrad in reverse, the least important kernels first (the paper's control)."""
from __future__ import annotations

from dataclasses import replace

from viscnn.circuits.methods import register
from viscnn.circuits.methods.actgrad import actgrad


@register("worst", description="actgrad's ranking reversed")
def worst(model, graph, batches, target, keep, *, seed=0, device="cpu"):
    scores = actgrad(model, graph, batches, target, keep, seed=seed, device=device)
    flip = {k: (v.max() - v) if v.numel() else v for k, v in scores.edges.items()}
    return replace(scores, criterion="worst", edges=flip, nodes={k: (v.max() - v) for k, v in scores.nodes.items()})
