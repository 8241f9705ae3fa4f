"""ablation: |T(full) - T(kernel removed)| for every kernel, one forward pass each (small graphs only)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import nn

from viscnn.circuits.circuit import upstream_layers
from viscnn.circuits.methods import Batch, kernel_norms, labelled, register
from viscnn.errors import ViscnnError
from viscnn.graph import Graph
from viscnn.scoring.ablation import ablation_scores
from viscnn.scoring.scores import Scores
from viscnn.scoring.targets import Target

MAX_EDGES = 4096


@register("ablation", description="remove each kernel and rerun (ground truth; small graphs)")
def ablation(model: nn.Module, graph: Graph, batches: Sequence[Batch], target: Target, keep: float, *, seed: int = 0,
             device: str | torch.device = "cpu") -> Scores:
    layers = upstream_layers(graph, target)
    total = sum(graph[n].num_edges for n in layers)
    if total > MAX_EDGES:
        raise ViscnnError(f"ablation reruns the model once per kernel: {total:,} kernels upstream of {target} "
                          f"is more than {MAX_EDGES:,}; use it on small graphs")
    edges = [graph.edge_at(n, o, i) for n in layers for o in range(graph[n].out_channels) for i in range(graph[n].in_per_group)]
    values = ablation_scores(model, graph, labelled(batches), target, edges, device=device).abs()
    shape = kernel_norms(model, graph, batches, target, device=device)
    tables, start = {}, 0
    for n in layers:
        count = graph[n].num_edges
        tables[n] = values[start: start + count].view(graph[n].out_channels, graph[n].in_per_group)
        start += count
    return replace(shape, criterion="ablation", edges=tables, nodes={k: v.sum(dim=1) for k, v in tables.items()})



