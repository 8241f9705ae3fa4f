"""ablation: |T(full) - T(kernel removed)| for every kernel, one forward pass each (small graphs only)."""
from __future__ import annotations

from dataclasses import replace

from viscnn.circuits.circuit import upstream_layers
from viscnn.circuits.methods import register
from viscnn.errors import ViscnnError
from viscnn.scoring.ablation import ablation_scores
from viscnn.scoring.engine import score_batches

MAX_EDGES = 4096


@register("ablation", description="remove each kernel and rerun (ground truth; small graphs)")
def ablation(model, graph, batches, target, keep, *, seed=0, device="cpu"):
    layers = upstream_layers(graph, target)
    total = sum(graph[n].num_edges for n in layers)
    if total > MAX_EDGES:
        raise ViscnnError(f"ablation reruns the model once per kernel: {total:,} kernels upstream of {target} "
                          f"is more than {MAX_EDGES:,}; use it on small graphs")
    edges = [graph.edge_at(n, o, i) for n in layers for o in range(graph[n].out_channels) for i in range(graph[n].in_per_group)]
    values = ablation_scores(model, graph, batches, target, edges, device).abs()
    shape = score_batches(model, graph, batches[:1], target, ("weight",), device=device)["weight"]
    tables, start = {}, 0
    for n in layers:
        count = graph[n].num_edges
        tables[n] = values[start: start + count].view(graph[n].out_channels, graph[n].in_per_group)
        start += count
    return replace(shape, criterion="ablation", edges=tables, nodes={k: v.sum(dim=1) for k, v in tables.items()})



