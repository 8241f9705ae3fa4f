"""From a query's scores to what the page draws: kept nodes per layer, at most `max_edges` edges, kernel signs.

All work is per layer on whole tensors (EfficientNet-Lite0 has 3.1M kernels): no Python loop over
nodes or edges.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from viscnn.circuits.select import keep_cumulative, keep_top
from viscnn.errors import ViscnnError
from viscnn.graph import Graph
from viscnn.graph.kernels import bn_scale, folded_kernels, kernel_signs
from viscnn.scoring.scores import Scores


@dataclass(frozen=True)
class Rule:
    """Keep the top `value` of a layer ("fraction"), or the fewest whose |scores| reach `value` of its total
    ("cumulative"): the rules of viscnn.circuits.select, named as the query's parameters."""

    kind: str
    value: float

    @classmethod
    def of(cls, fraction: float | None, cumulative: float | None, default: Rule, what: str) -> Rule:
        if fraction is not None and cumulative is not None:
            raise ViscnnError(f"give {what}_fraction or {what}_cumulative, not both")
        rule = cls("fraction", fraction) if fraction is not None else cls("cumulative", cumulative) if cumulative is not None else default
        if not (0.0 <= rule.value <= 1.0) or rule.value != rule.value:
            raise ViscnnError(f"{what}_{rule.kind} must be between 0 and 1, not {rule.value}")
        return rule

    def mask(self, magnitude: torch.Tensor, population: int | None = None) -> torch.Tensor:
        """Boolean mask (same shape) of the entries kept; entries of magnitude 0 are never kept.

        `population`: what a fraction is of, when `magnitude` holds only the candidates of a larger set.
        """
        if self.kind == "fraction":
            count = math.ceil(self.value * (population or magnitude.numel()))
            return keep_top(magnitude, min(count, int((magnitude > 0).sum())))
        return keep_cumulative(magnitude, self.value)


class KernelFacts:
    """Per layer, computed once on demand: each kernel's sign (1 / 0 / -1) and BN-folded norm."""

    def __init__(self, model: nn.Module, graph: Graph) -> None:
        self.model = model
        self.graph = graph
        self._signs: dict[str, torch.Tensor] = {}
        self._norms: dict[str, torch.Tensor] = {}
        self._lock = threading.Lock()

    def bn_scale(self, layer: str) -> torch.Tensor | None:
        """gamma / sqrt(var + eps) of the BatchNorm folded into `layer`'s nodes, or None."""
        return bn_scale(self.model, self.graph, layer)

    def folded(self, layer: str) -> torch.Tensor:
        """The layer's kernels [C_out, C_in/groups, kh, kw] with the BN scale folded in."""
        return folded_kernels(self.model, self.graph, layer)

    def _compute(self, layer: str) -> None:
        weight = self.folded(layer)
        self._signs[layer] = kernel_signs(weight)
        self._norms[layer] = weight.flatten(2).norm(dim=2)

    def signs(self, layer: str) -> torch.Tensor:
        with self._lock:
            if layer not in self._signs:
                self._compute(layer)
            return self._signs[layer]

    def norms(self, layer: str) -> torch.Tensor:
        with self._lock:
            if layer not in self._norms:
                self._compute(layer)
            return self._norms[layer]


def prune(scores: Scores, graph: Graph, facts: KernelFacts, *, node_rule: Rule, edge_rule: Rule,
          max_edges: int) -> dict:
    """The drawable part of a query: every node's score, the kept nodes, and the kept edges (columns per layer)."""
    if max_edges < 0:
        raise ViscnnError(f"max_edges must be at least 0, not {max_edges}")
    nodes, kept = {}, {}
    for layer in graph.conv_layers:
        values = scores.nodes.get(layer.name)
        if values is None:
            continue
        nodes[layer.name] = values.float().numpy()
        kept[layer.name] = node_rule.mask(values.abs().float()).nonzero().flatten().numpy().astype(np.int32)
    candidates = []  # (layer, flat indices, normalised magnitude)
    total = 0
    for layer in graph.conv_layers:
        edges = scores.edges.get(layer.name)
        if edges is None or layer.name not in kept:
            continue
        total += edges.numel()
        rows = torch.from_numpy(kept[layer.name]).long()
        magnitude = edges[rows].abs().float()  # only edges into kept nodes are candidates
        local = edge_rule.mask(magnitude, edges.numel()).nonzero()
        if local.numel():
            values = magnitude[local[:, 0], local[:, 1]]
            chosen = rows[local[:, 0]] * edges.shape[1] + local[:, 1]  # flat index in the layer's [C_out, C_in/g]
            candidates.append((layer.name, chosen, values / float(values.max())))
    if candidates and sum(len(c[1]) for c in candidates) > max_edges:
        take = keep_top(torch.cat([c[2] for c in candidates]), max_edges)
        start, trimmed = 0, []
        for name, chosen, normalised in candidates:
            part = take[start:start + len(chosen)]
            start += len(chosen)
            trimmed.append((name, chosen[part], normalised[part]))
        candidates = trimmed
    drawn, count = {}, 0
    for name, chosen, _ in candidates:
        if not chosen.numel():
            continue
        layer = graph[name]
        in_pg = layer.in_per_group
        out, local = chosen // in_pg, chosen % in_pg
        absolute = (out // layer.out_per_group) * in_pg + local
        values = scores.edges[name].flatten()[chosen].float()
        order = values.abs().argsort(descending=True)
        drawn[name] = {"out": out[order].numpy().astype(np.int32), "in": absolute[order].numpy().astype(np.int32),
                       "score": values[order].numpy(), "sign": facts.signs(name).flatten()[chosen[order]].numpy()}
        count += chosen.numel()
    return {"nodes": nodes, "kept": kept, "edges": drawn, "num_edges": count, "num_edges_total": total}
