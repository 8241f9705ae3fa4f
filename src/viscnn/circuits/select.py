"""Selection: which kernels a circuit keeps, given one score per kernel, at a size that means one thing.

Every rule turns the scores into a priority per kernel (higher first; -inf never):
    top           per-layer-normalised scores (or the raw scores of a method whose scores are global)
    cumulative    how little of its layer's total comes before the kernel: a prefix of this order is the
                  per-layer rule "the fewest top kernels reaching a share t of the layer's total"
    hierarchical  the original tool's rule: nodes by their cumulative share in their layer, each node's
                  `edges_per_node` best incoming kernels after it
and `fit_connected` takes the longest prefix of that order whose *connected* part (the kernels on an
input -> target path) has the asked size: `keep` is always the fraction of the target's upstream kernels the
circuit really has, whatever the method and the rule. (A global top-k followed by dropping what is
disconnected kept 1.4-3% for "5%", and nothing at all where the largest layer on every path, e.g. a 1.2M
kernel head, got no kernel.)

Scores are normalised per layer (each layer's scores over its candidate kernels sum to 1), so every
layer brings the same total importance: a layer of a few dozen kernels (the first conv, a depthwise
conv) is not crowded out by one of thousands. Candidates are the kernels on some path from the input to
the target.

`keep_top` and `keep_cumulative` are the two rules on one tensor of scores; the server's drawn graph
(viscnn.server.prune) selects with them too.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from viscnn.circuits.connect import attachable, connected
from viscnn.errors import ViscnnError
from viscnn.graph import Graph
from viscnn.scoring.targets import Target

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
    """Keep ceil(fraction * candidates) kernels with the highest (per-layer normalised) scores, connected or
    not (`force` prunes with it between its rounds; circuits are sized by `fit_connected`)."""
    check_fraction(fraction, "keep fraction")
    values = priority_top(edges, candidates, normalise=normalise)
    flat = torch.cat([v.flatten() for v in values.values()])
    total = int(sum(int(c.sum()) for c in candidates.values())) if candidates else flat.numel()
    count = min(max(1, math.ceil(fraction * total)), int(torch.isfinite(flat).sum()))
    return _mask_from_flat(values, keep_top(flat, count))


# --- priorities: one per kernel, higher first, -inf never -----------------------------------------------

def priority_top(edges: Values, candidates: Values | None = None, *, normalise: bool = True) -> Values:
    """Per-layer-normalised scores (a kernel scoring zero does nothing for the target: never kept), or with
    `normalise=False` the scores as they are. Non-candidates get -inf."""
    out = {}
    for name, value in edges.items():
        allowed = candidates[name] if candidates is not None else torch.ones_like(value, dtype=torch.bool)
        if normalise:
            value = normalised({name: value}, {name: allowed})[name].double()
            allowed = allowed & (value > 0)
        out[name] = torch.where(allowed & ~value.isnan(), value.double(), -math.inf)
    return out


def priority_cumulative(edges: Values, candidates: Values | None = None) -> Values:
    """Minus the share of its layer's total that the layer's better kernels hold: the prefixes of this order
    are the per-layer cumulative rule at every threshold. Kernels scoring zero: -inf."""
    out = {}
    for name, value in normalised(edges, candidates).items():
        flat = value.flatten().double()
        priority = torch.full_like(flat, -math.inf)
        ordered, order = flat.sort(descending=True, stable=True)
        before = ordered.cumsum(0) - ordered
        positive = ordered > 0
        priority[order[positive]] = -before[positive]
        out[name] = priority.view(value.shape)
    return out


def priority_hierarchical(edges: Values, nodes: Values, edges_per_node: int, candidates: Values | None = None) -> Values:
    """The original tool's rule as an order: nodes by their cumulative share in their layer (the best node of
    every layer first), each node's `edges_per_node` best incoming kernels right after it."""
    if edges_per_node < 1:
        raise ViscnnError(f"edges per node must be at least 1, not {edges_per_node}")
    out = {}
    for name, value in edges.items():
        node_values = nodes[name].double().clamp(min=0)
        total = float(node_values.sum())
        ordered, order = node_values.sort(descending=True, stable=True)
        node_priority = torch.empty_like(node_values)
        node_priority[order] = -(ordered.cumsum(0) - ordered) / (total if total > 0 else 1.0)
        allowed = candidates[name] if candidates is not None else torch.ones_like(value, dtype=torch.bool)
        kernels = value.double().masked_fill(~allowed, -math.inf)
        width = min(edges_per_node, value.shape[1])
        best = kernels.topk(width, dim=1).indices
        # within a node its kernels in their own order, between nodes the node's share
        steps = torch.arange(width, dtype=torch.float64)[None, :] * 1e-12
        priority = torch.full_like(kernels, -math.inf).scatter_(1, best, node_priority[:, None] - steps)
        out[name] = priority.masked_fill(~allowed, -math.inf)
    return out


# --- a connected circuit of the asked size --------------------------------------------------------------

def fit_connected(priority: Values, graph: Graph, target: Target, budget: int) -> Values:
    """The connected part (`connected`) of the longest prefix of `priority`'s order that has at most
    `budget` connected kernels, as masks: as close to `budget` as the order allows.

    Connectivity is monotone in the kept set, so a binary search finds the prefix. Where one kernel closes
    many paths at once (the first kernel of a huge layer), the prefix one longer overshoots; then that
    prefix's members are trimmed instead, every layer losing the same share of its worst ones (a second
    binary search, keeping the closing kernel; trimming by the global order would cut the huge layer's few
    kernels first and every path with them), and the larger of the two fits wins. What is left of the
    budget is filled with the best kernels that join the circuit one by one.
    """
    names = list(priority)
    flat = torch.cat([priority[n].flatten().double() for n in names]).numpy()
    eligible = np.flatnonzero(np.isfinite(flat))
    order = eligible[np.argsort(-flat[eligible], kind="stable")]

    def fit(chosen: np.ndarray) -> tuple[int, Values]:
        keep = torch.zeros(flat.size, dtype=torch.bool)
        keep[torch.from_numpy(chosen)] = True
        kept = connected(graph, _mask_from_flat(priority, keep), target)
        return int(sum(int(m.sum()) for m in kept.values())), kept

    whole = fit(order)
    if whole[0] <= budget:
        return whole[1]
    length, below = _largest_fit(lambda n: fit(order[:n]), order.size, budget)
    if below[0] == budget:
        return below[1]
    over = fit(order[:length + 1])[1]  # one kernel more closes paths past the budget
    in_over = torch.cat([over[n].flatten() for n in names]).numpy()
    closer = order[length]
    members = _worst_first_by_layer(order[:length][in_over[order[:length]]], priority)
    _, trimmed = _largest_fit(lambda n: fit(np.append(members[members.size - n:], closer)), members.size, budget)
    return _fill(priority, graph, target, trimmed if trimmed[0] > below[0] else below, budget)


def _fill(priority: Values, graph: Graph, target: Target, start: tuple[int, Values], budget: int) -> Values:
    """`start` topped up to `budget` with the best kernels that join it one by one (`attachable`)."""
    count, kept = start
    for _ in range(3):  # each round can make more kernels attachable
        if count >= budget:
            break
        joins = attachable(graph, kept, target)
        names = list(joins)
        values = torch.cat([priority[n].flatten().masked_fill(~joins[n].flatten(), -math.inf) for n in names])
        wanted = min(budget - count, int(torch.isfinite(values).sum()))
        if wanted == 0:
            break
        chosen = _mask_from_flat({n: joins[n] for n in names}, keep_top(values, wanted))
        kept = {n: kept[n] | chosen[n] for n in kept}
        count += wanted
    return kept


def _worst_first_by_layer(members: np.ndarray, priority: Values) -> np.ndarray:
    """`members` (flat indices in priority order, best first) reordered worst first by their rank within their
    own layer as a share of that layer's members (ties: the global order)."""
    starts = np.cumsum([0] + [value.numel() for value in priority.values()])
    layer = np.searchsorted(starts, members, side="right") - 1
    share = np.zeros(members.size)
    for index in np.unique(layer):
        here = np.flatnonzero(layer == index)  # already best first
        share[here] = np.arange(here.size) / here.size  # the best of each layer: 0, trimmed last
    return members[np.lexsort((-np.arange(members.size), -share))]


def _largest_fit(fit: Callable[[int], tuple[int, Values]], high: int, budget: int) -> tuple[int, tuple[int, Values]]:
    """The largest n in [0, high] whose fit(n) counts <= budget, and that fit (fit's count must not decrease
    with n)."""
    low, best = 0, fit(0)
    while low < high:
        middle = (low + high + 1) // 2
        found = fit(middle)
        if found[0] <= budget:
            low, best = middle, found
        else:
            high = middle - 1
    return low, best
