"""From a query to a circuit: score with a method, select by a rule, keep what connects."""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from viscnn.circuits.circuit import Circuit, candidate_kernels, make_circuit
from viscnn.circuits.methods import Batch, get_method
from viscnn.circuits.select import (
    check_fraction,
    fit_connected,
    priority_cumulative,
    priority_hierarchical,
    priority_top,
)
from viscnn.errors import ViscnnError
from viscnn.graph import Graph
from viscnn.scoring.scores import Scores
from viscnn.scoring.targets import Target

RULES = ("top", "cumulative", "hierarchical")


def budget(graph: Graph, target: Target, keep: float) -> int:
    """How many kernels `keep` asks for: that fraction of the target's upstream kernels, at least one."""
    check_fraction(keep, "keep fraction")
    upstream = sum(int(m.sum()) for m in candidate_kernels(graph, target).values())
    return max(1, math.ceil(keep * upstream))


def select(scores: Scores, graph: Graph, target: Target, keep: float, *, rule: str = "top", normalise: bool = True,
           edges_per_node: int = 4) -> dict[str, torch.Tensor]:
    """Masks of a connected circuit of `keep` of the target's upstream kernels (as close as the scores allow),
    taken in the order `rule` puts the kernels in (see viscnn.circuits.select)."""
    candidates = candidate_kernels(graph, target)
    edges = {n: scores.edges[n] for n in candidates}
    if rule == "top":
        priority = priority_top(edges, candidates, normalise=normalise)
    elif rule == "cumulative":
        priority = priority_cumulative(edges, candidates)
    elif rule == "hierarchical":
        priority = priority_hierarchical(edges, {n: scores.nodes[n] for n in candidates}, edges_per_node, candidates)
    else:
        raise ViscnnError(f"unknown selection rule {rule!r}: choose from {', '.join(RULES)}")
    return fit_connected(priority, graph, target, budget(graph, target, keep))


def extract_circuit(model: nn.Module, graph: Graph, batches: Sequence[Batch], target: Target, keep: float,
                    method: str = "actgrad", *, rule: str = "top", seed: int = 0, device: str | torch.device = "cpu",
                    model_name: str = "", fingerprint: str = "", scores: Scores | None = None) -> Circuit:
    """The circuit `method` finds for `target` over `batches`, keeping `keep` (fraction) of its upstream kernels."""
    check_fraction(keep, "keep fraction")
    chosen = get_method(method)
    if not batches:
        raise ViscnnError("no images to extract a circuit from")
    scores = scores or chosen(model, graph, list(batches), target, keep, seed=seed, device=device)
    masks = select(scores, graph, target, keep, rule=rule, normalise=chosen.normalise)
    return make_circuit(graph, target, masks, method=method, keep=keep, model_name=model_name, fingerprint=fingerprint,
                        edge_scores={n: scores.edges[n] for n in masks},
                        node_scores={n: scores.nodes[n] for n in masks if n in scores.nodes})
