"""magnitude: keep the kernels with the largest (BN-folded) L2 norm; no images needed."""
from __future__ import annotations

from viscnn.circuits.methods import register
from viscnn.scoring.engine import score_batches


@register("magnitude", description="kernel L2 norm with BN folded in")
def magnitude(model, graph, batches, target, keep, *, seed=0, device="cpu"):
    return score_batches(model, graph, batches[:1], target, ("weight",), device=device)["weight"]
