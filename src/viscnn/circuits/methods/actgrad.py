"""actgrad: the paper's Taylor importance, mean |activation x gradient| of each kernel's map."""
from __future__ import annotations

from viscnn.circuits.methods import register
from viscnn.scoring.engine import score_batches


@register("actgrad", description="mean |map x dT/dmap| per kernel (Molchanov et al. 2017; the paper's eq. 4)")
def actgrad(model, graph, batches, target, keep, *, seed=0, device="cpu"):
    return score_batches(model, graph, batches, target, ("taylor",), device=device)["taylor"]


@register("actgrad_signed", description="|sum of map x dT/dmap| per kernel: the first-order effect of removing it")
def actgrad_signed(model, graph, batches, target, keep, *, seed=0, device="cpu"):
    return score_batches(model, graph, batches, target, ("taylor_signed",), device=device)["taylor_signed"].abs()
