"""Selection rules: which edges a circuit keeps, given one score per edge.

    top_fraction  global top-k over per-layer-normalised scores
    cumulative    per layer, the fewest edges whose scores add up to a fraction of the layer's total
    hierarchical  the original tool's rule: per layer, nodes up to a cumulative fraction, then each
                  kept node's top incoming edges
Scores are normalised per layer (each layer's scores over its candidate kernels sum to 1), so every
layer brings the same total importance: a layer of a few dozen kernels (the first conv, a depthwise
conv) is not crowded out by one of thousands, and the circuit stays connected through its
bottlenecks. Candidates are the kernels on some path from the input to the target.

`keep_top` and `keep_cumulative` are the two rules on one tensor of scores; the circuits here and the
server's drawn graph (viscnn.server.prune) both select with them.
"""
from __future__ import annotations

import math

import numpy as np
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


def check_fraction(fraction: float, what: str) -> None:
    """A ViscnnError naming `what` unless `fraction` is a number in (0, 1]."""
    if not (isinstance(fraction, (int, float)) and 0 < fraction <= 1 and math.isfinite(fraction)):
        raise ViscnnError(f"{what} must be in (0, 1], not {fraction!r}")


def top_indices(values: np.ndarray, count: int) -> np.ndarray:
    """Indices of the `count` largest values, in no order (a partition: linear time, unlike a top-k sort)."""
    if count <= 0:
        return np.zeros(0, dtype=np.int64)
    if count >= len(values):
        return np.arange(len(values))
    return np.argpartition(values, len(values) - count)[len(values) - count:]


def keep_top(values: torch.Tensor, count: int) -> torch.Tensor:
    """Boolean mask (shape of `values`) of its `count` largest entries (ties broken arbitrarily)."""
    flat = values.detach().flatten().cpu()
    keep = torch.zeros(flat.numel(), dtype=torch.bool)
    keep[torch.from_numpy(top_indices(flat.numpy(), count))] = True
    return keep.view(values.shape)


def keep_cumulative(values: torch.Tensor, threshold: float) -> torch.Tensor:
    """Boolean mask (shape of `values`): the fewest largest entries whose sum reaches `threshold` of the total
    of the positive ones. Entries <= 0 are never kept; a threshold of 0 keeps nothing."""
    flat = values.detach().flatten().cpu().float().clamp(min=0)
    keep = torch.zeros(flat.numel(), dtype=torch.bool)
    positive = int((flat > 0).sum())
    if positive == 0 or threshold <= 0:
        return keep.view(values.shape)
    ordered, order = flat.sort(descending=True)
    running = ordered.double().cumsum(0)
    count = int(torch.searchsorted(running, threshold * float(running[-1]))) + 1
    keep[order[: min(count, positive)]] = True
    return keep.view(values.shape)


def _mask_from_flat(values: Values, keep_flat: torch.Tensor) -> Values:
    masks, start = {}, 0
    for name, value in values.items():
        masks[name] = keep_flat[start: start + value.numel()].view_as(value)
        start += value.numel()
    return masks


def top_fraction(edges: Values, fraction: float, *, normalise: bool = True, candidates: Values | None = None) -> Values:
    """Keep ceil(fraction * candidates) kernels with the highest (per-layer normalised) scores."""
    check_fraction(fraction, "keep fraction")
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
    return _mask_from_flat(values, keep_top(flat, count))


def cumulative(edges: Values, threshold: float, candidates: Values | None = None) -> Values:
    """In every layer, the fewest top kernels whose scores reach `threshold` of the layer's total."""
    check_fraction(threshold, "cumulative threshold")
    return {name: keep_cumulative(value, threshold) for name, value in normalised(edges, candidates).items()}


def hierarchical(edges: Values, nodes: Values, node_fraction: float, edges_per_node: int) -> Values:
    """Per layer, nodes up to `node_fraction` of the layer's cumulative node score, then each kept
    node's `edges_per_node` best incoming edges."""
    check_fraction(node_fraction, "node fraction")
    if edges_per_node < 1:
        raise ViscnnError(f"edges per node must be at least 1, not {edges_per_node}")
    masks = {}
    for name, value in edges.items():
        node_values = nodes[name].float()
        chosen = keep_cumulative(node_values, node_fraction)
        if not bool(chosen.any()):  # no node scores above zero: keep the first
            chosen[int(node_values.clamp(min=0).argmax())] = True
        kept_nodes = chosen.nonzero().flatten()
        mask = torch.zeros_like(value, dtype=torch.bool)
        best = torch.topk(value[kept_nodes].float(), min(edges_per_node, value.shape[1]), dim=1).indices
        mask[kept_nodes[:, None], best] = True
        masks[name] = mask
    return masks
