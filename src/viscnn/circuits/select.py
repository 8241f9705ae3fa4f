"""Selection rules: which edges a circuit keeps, given one score per edge.

    top_fraction  global top-k over per-layer-normalised scores
    cumulative    per layer, the fewest edges whose scores add up to a fraction of the layer's total
    hierarchical  the original tool's rule: per layer, nodes up to a cumulative fraction, then each
                  kept node's top incoming edges
Scores are normalised per layer (each layer's scores over its candidate kernels sum to 1), so every
layer brings the same total importance: a layer of a few dozen kernels (the first conv, a depthwise
conv) is not crowded out by one of thousands, and the circuit stays connected through its
bottlenecks. Candidates are the kernels on some path from the input to the target.
"""
from __future__ import annotations

import math

import torch

from viscnn.errors import ViscnnError

Values = dict[str, torch.Tensor]


def normalised(edges: Values, candidates: Values | None = None) -> Values:
    """Each layer's non-negative scores divided by their sum over the layer's candidate kernels.

    Non-candidates (kernels on no path to the target) get -1, below every candidate.
    """
    out = {}
    for name, value in edges.items():
        value = value.float().clamp(min=0)
        allowed = candidates[name] if candidates is not None else torch.ones_like(value, dtype=torch.bool)
        total = value[allowed].sum() if bool(allowed.any()) else torch.tensor(0.0)
        value = value / total if total > 0 else value
        out[name] = torch.where(allowed, value, torch.full_like(value, -1.0))
    return out


def _check(fraction: float, what: str) -> None:
    if not (isinstance(fraction, (int, float)) and 0 < fraction <= 1 and math.isfinite(fraction)):
        raise ViscnnError(f"{what} must be in (0, 1], not {fraction!r}")


def _mask_from_flat(values: Values, keep_flat: torch.Tensor) -> Values:
    masks, start = {}, 0
    for name, value in values.items():
        masks[name] = keep_flat[start: start + value.numel()].view_as(value)
        start += value.numel()
    return masks


def top_fraction(edges: Values, fraction: float, normalise: bool = True, candidates: Values | None = None) -> Values:
    """Keep ceil(fraction * candidates) kernels with the highest (per-layer normalised) scores."""
    _check(fraction, "keep fraction")
    if normalise:
        values = normalised(edges, candidates)
    else:
        values = {k: torch.where(candidates[k], v.float(), torch.full_like(v.float(), -math.inf)) if candidates else v.float()
                  for k, v in edges.items()}
    flat = torch.cat([v.flatten() for v in values.values()])
    total = int(sum(int(c.sum()) for c in candidates.values())) if candidates else flat.numel()
    count = max(1, math.ceil(fraction * total))
    if normalise:  # a kernel scoring zero does nothing for the target: never fill the quota with it
        count = min(count, int((flat > 0).sum()))
    keep = torch.zeros(flat.numel(), dtype=torch.bool)
    keep[torch.topk(flat, count, sorted=False).indices] = True
    return _mask_from_flat(values, keep)


def cumulative(edges: Values, threshold: float, candidates: Values | None = None) -> Values:
    """In every layer, the fewest top kernels whose scores reach `threshold` of the layer's total."""
    _check(threshold, "cumulative threshold")
    masks = {}
    for name, value in normalised(edges, candidates).items():
        flat = value.flatten()
        order = torch.argsort(flat, descending=True)
        running = torch.cumsum(flat[order].clamp(min=0), 0)
        total = running[-1] if running.numel() else torch.tensor(0.0)
        count = int(torch.searchsorted(running, threshold * total).item()) + 1 if total > 0 else 0
        keep = torch.zeros(flat.numel(), dtype=torch.bool)
        keep[order[: min(count, flat.numel())]] = True
        masks[name] = keep.view_as(value)
    return masks


def hierarchical(edges: Values, nodes: Values, node_fraction: float, edges_per_node: int) -> Values:
    """Per layer, nodes up to `node_fraction` of the layer's cumulative node score, then each kept
    node's `edges_per_node` best incoming edges."""
    _check(node_fraction, "node fraction")
    if edges_per_node < 1:
        raise ViscnnError(f"edges per node must be at least 1, not {edges_per_node}")
    masks = {}
    for name, value in edges.items():
        node_values = nodes[name].float().clamp(min=0)
        order = torch.argsort(node_values, descending=True)
        running = torch.cumsum(node_values[order], 0)
        total = running[-1]
        count = int(torch.searchsorted(running, node_fraction * total).item()) + 1 if total > 0 else 1
        kept_nodes = order[:count]
        mask = torch.zeros_like(value, dtype=torch.bool)
        best = torch.topk(value[kept_nodes].float(), min(edges_per_node, value.shape[1]), dim=1).indices
        mask[kept_nodes[:, None], best] = True
        masks[name] = mask
    return masks
