"""From a query to a circuit: score with a method, select by a rule, keep what connects."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from viscnn.circuits.circuit import Circuit, candidate_kernels, make_circuit
from viscnn.circuits.methods import Batch, get_method
from viscnn.circuits.select import check_fraction, cumulative, hierarchical, top_fraction
from viscnn.errors import ViscnnError
from viscnn.graph import Graph
from viscnn.scoring.scores import Scores
from viscnn.scoring.targets import Target

RULES = ("top", "cumulative", "hierarchical")


def select(scores: Scores, graph: Graph, target: Target, keep: float, *, rule: str = "top", normalise: bool = True,
           edges_per_node: int = 4) -> dict[str, torch.Tensor]:
    """Masks of the kernels `rule` keeps (before dropping what is disconnected)."""
    candidates = candidate_kernels(graph, target)
    edges = {n: scores.edges[n] for n in candidates}
    if rule == "top":
        return top_fraction(edges, keep, normalise=normalise, candidates=candidates)
    if rule == "cumulative":
        return cumulative(edges, keep, candidates)
    if rule == "hierarchical":
        return hierarchical(edges, {n: scores.nodes[n] for n in candidates}, keep, edges_per_node)
    raise ViscnnError(f"unknown selection rule {rule!r}: choose from {', '.join(RULES)}")


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
