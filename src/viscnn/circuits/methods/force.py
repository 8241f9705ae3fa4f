"""force: iterative SNIP (de Jorge et al. 2021): prune to `keep` over steps of an exponential schedule,
recomputing |dT/dmask| on the pruned circuit each time (pruned kernels may come back)."""
from __future__ import annotations

from dataclasses import replace

from viscnn.circuits.circuit import candidate_kernels
from viscnn.circuits.methods import register
from viscnn.circuits.methods.snip import mask_saliency, ones
from viscnn.circuits.select import normalised, top_fraction
from viscnn.scoring.engine import score_batches

STEPS = 10


@register("force", description="iterative SNIP with an exponential keep schedule")
def force(model, graph, batches, target, keep, *, seed=0, device="cpu"):
    masks = ones(graph, target)
    candidates = candidate_kernels(graph, target)
    saliency = {}
    for step in range(1, STEPS + 1):
        fraction = keep ** (step / STEPS)  # 1 -> keep, exponentially
        saliency = mask_saliency(model, graph, batches, target, masks, device=device)
        masks = {k: v.float() for k, v in top_fraction(saliency, fraction, candidates=candidates).items()}
    # rank the final circuit first, then the rest by their last saliency
    ranked = {k: v.clamp(min=0) + 1e6 * masks[k] for k, v in normalised(saliency, candidates).items()}
    shape = score_batches(model, graph, batches[:1], target, ("weight",), device=device)["weight"]
    return replace(shape, criterion="force", edges=ranked, nodes={k: v.sum(dim=1) for k, v in ranked.items()})



