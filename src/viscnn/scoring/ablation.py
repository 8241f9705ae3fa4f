"""Ground truth: remove a node or an edge, rerun, and measure how the target changes.

One forward pass per removed item and batch, so this is for small graphs and for validating the
Taylor scores (`spearman_vs_taylor`). A node is removed by zeroing its (BN-folded) map; an edge by
subtracting its single-kernel map from the conv's output.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from viscnn.errors import ViscnnError
from viscnn.graph import Edge, Graph, Node
from viscnn.graph.recorder import ConvCall, ConvEdit, NodeEdit, Recorder
from viscnn.scoring.targets import Target

Batch = tuple[torch.Tensor, torch.Tensor]


def _target_values(model: nn.Module, graph: Graph, x: torch.Tensor, labels: torch.Tensor, target: Target,
                   recorder: Recorder) -> torch.Tensor:
    with torch.no_grad():
        output = recorder.run(model, x)
    if target.layer is not None:  # inside
        return target.from_map(recorder.calls[target.layer].ready_map())
    return target.from_output(output, labels)


def _remove_node(node: Node) -> NodeEdit:
    def edit(layer: str, node_map: torch.Tensor) -> torch.Tensor:
        if layer != node.layer:
            return node_map
        node_map = node_map.clone()
        node_map[:, node.channel] = 0
        return node_map
    return edit


def _remove_edge(graph: Graph, edge: Edge) -> ConvEdit:
    out, local = graph.kernel_index(edge)

    def edit(call: ConvCall) -> torch.Tensor:
        if call.layer.name != edge.layer:
            return call.output
        kernel = call.weight[out: out + 1, local: local + 1]
        single = F.conv2d(call.input[:, edge.inp: edge.inp + 1], kernel, None, call.stride, call.padding, call.dilation)
        output = call.output.clone()
        output[:, out] -= single[:, 0]
        return output
    return edit


def ablation_scores(model: nn.Module, graph: Graph, batches: Iterable[Batch], target: Target,
                    items: Sequence[Node | Edge], *, device: str | torch.device = "cpu") -> torch.Tensor:
    """[len(items)]: mean over images of T(full) - T(item removed), the change a removal causes."""
    for item in items:
        ok = graph.has_node(item) if isinstance(item, Node) else graph.has_edge(item)
        if not ok:
            raise ViscnnError(f"{item} is not in the graph")
    stop = target.layer if target.inside else None
    totals = torch.zeros(len(items), dtype=torch.float64)
    count = 0
    for x, labels in batches:
        x = x.to(device)
        full = _target_values(model, graph, x, labels, target, Recorder(graph, stop_at=stop))
        for k, item in enumerate(items):
            recorder = (Recorder(graph, stop_at=stop, edit_node=_remove_node(item)) if isinstance(item, Node)
                        else Recorder(graph, stop_at=stop, edit_conv=_remove_edge(graph, item)))
            totals[k] += (full - _target_values(model, graph, x, labels, target, recorder)).double().sum().cpu()
        count += x.shape[0]
    if count == 0:
        raise ViscnnError("no images to run the ablation on")
    return (totals / count).float()


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman rank correlation of two score vectors."""
    from scipy.stats import spearmanr

    return float(spearmanr(a.numpy(), b.numpy()).statistic)
