"""Render objectives: the `Target`s a render maximises, one scalar per image, read off one recorded forward pass.

An objective is a `viscnn.scoring.targets.Target` of any kind but the loss (`check_objective`), parsed by
`parse_target` (a leading `-` flips the sign: what inhibits). The EDGE objective `LAYER:O<-I` is exact: a
conv of the recorded input channel I with the kernel W[O, I], times the BN scale of node O, so it is the
edge's contribution to node O's map; `LAYER:O<-I:neuron` reads the centre unit of that edge map.

Targets are evaluated for a batch where image b has its own objective; objectives of one kind and
layer are evaluated together (one indexing op, or one grouped conv for all edges of a layer).
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import torch
from torch import nn

from viscnn.errors import ViscnnError
from viscnn.graph import Graph
from viscnn.graph.recorder import ConvCall, Folds, Recorder
from viscnn.scoring.criteria import geometry
from viscnn.scoring.targets import Target


def check_objective(target: Target) -> Target:
    """`target` itself when it can be rendered: every kind but the loss."""
    if target.kind == "loss":
        raise ViscnnError("'loss' is not a render objective: use logit:K, class:NAME or a LAYER:C node")
    return target


# --- evaluation -----------------------------------------------------------------------------------------
def needed_layers(objectives: Sequence[Target]) -> set[str]:
    return {o.layer for o in objectives if o.layer is not None}


def _unit(objective: Target, maps: torch.Tensor) -> tuple[int, int]:
    h, w = maps.shape[-2:]
    y, x = objective.position if objective.position is not None else (h // 2, w // 2)
    if not (0 <= y < h and 0 <= x < w):
        raise ViscnnError(f"objective {objective} is outside the {h}x{w} map of layer {objective.layer}")
    return y, x


def edge_maps(call: ConvCall, rows: torch.Tensor, outs: Sequence[int], inps: Sequence[int]) -> torch.Tensor:
    """[len(rows), H', W']: for image rows[k], the map of kernel W[outs[k], inps[k]] on its input channel
    inps[k] alone, times node outs[k]'s BN scale. One grouped conv (one group per image) does them all."""
    layer = call.layer
    out = torch.tensor(list(outs), device=call.weight.device)
    inp = torch.tensor(list(inps), device=call.weight.device)
    local = inp - (out // layer.out_per_group) * layer.in_per_group
    kernels = call.weight[out, local].unsqueeze(1)  # [k, 1, kh, kw]
    geo = geometry(call)
    x = call.input[rows.to(call.input.device), inp].unsqueeze(0)  # [1, k, H, W]
    maps = torch.nn.functional.conv2d(geo.pad(x), kernels, None, geo.stride, 0, geo.dilation, len(outs))[0]
    if call.bn_scale is not None:
        maps = maps * call.bn_scale[out].view(-1, 1, 1)
    return maps


def evaluate(objectives: Sequence[Target], calls: dict[str, ConvCall], output: torch.Tensor | None) -> torch.Tensor:
    """[B]: objective b's value on image b, from a forward pass's recorded calls and output."""
    values: dict[int, torch.Tensor] = {}
    groups: dict[tuple[str, str | None], list[int]] = defaultdict(list)
    for b, objective in enumerate(objectives):
        groups[(check_objective(objective).kind, objective.layer)].append(b)
    for (kind, _), members in groups.items():
        items = [objectives[b] for b in members]
        rows = torch.tensor(members)
        if kind == "logit":
            if output is None or output.dim() != 2:
                raise ViscnnError("logit objectives need a model whose output is [N, classes]")
            classes = [o.logit_class for o in items]
            if max(classes) >= output.shape[1]:
                raise ViscnnError(f"class {max(classes)} is out of range: the model has {output.shape[1]} outputs")
            got = output[rows.to(output.device), torch.tensor(classes, device=output.device)]
        elif kind in ("edge", "edge_neuron"):
            edges = [o.edge for o in items]
            maps = edge_maps(calls[edges[0].layer], rows, [e.out for e in edges], [e.inp for e in edges])
            if kind == "edge":
                got = maps.mean(dim=(-2, -1))
            else:
                got = torch.stack([maps[k, y, x] for k, (y, x) in enumerate(_unit(o, maps) for o in items)])
        else:
            node_map = calls[items[0].map_layer].ready_map()
            r = rows.to(node_map.device)
            if kind == "node":
                channels = [o.node.channel for o in items]
                got = node_map[r, torch.tensor(channels, device=node_map.device)].mean(dim=(-2, -1))
            elif kind == "neuron":
                got = torch.stack([node_map[b, o.node.channel, y, x]
                                   for b, o, (y, x) in ((b, o, _unit(o, node_map)) for b, o in zip(members, items))])
            else:  # direction: a weighted sum of channel means (summed from a 0 like the builtin sum, so the same floats)
                zero = node_map.new_zeros(())
                got = torch.stack([sum((w * node_map[b, c].mean() for c, w in o.weights), zero)
                                   for b, o in zip(members, items)])
        for k, b in enumerate(members):
            values[b] = -got[k] if objectives[b].negative else got[k]
    return torch.stack([values[b] for b in range(len(objectives))])


def deepest(graph: Graph, layers: set[str]) -> str | None:
    """The needed layer called last, where the forward pass can stop (None: run the whole model)."""
    order = {layer.name: k for k, layer in enumerate(graph.conv_layers)}
    return max(layers, key=order.__getitem__) if layers else None


def forward(module: nn.Module, graph: Graph, objectives: Sequence[Target], x: torch.Tensor, *,
            keep: set[str] | None = None, fold: Folds | None = None) -> tuple[torch.Tensor, dict[str, ConvCall]]:
    """Run `module` on normalised inputs `x` ([B, ...], image b for objective b) inside a recorder.

    Returns the objective values [B] and the recorded calls of the needed layers (plus `keep`). The pass
    stops once the deepest needed map exists unless a logit objective needs the output. The recorder is
    a context-managed TorchFunctionMode: nothing stays attached to the model afterwards, even on errors.
    `fold` runs those layers with their BN folded into the conv (see `Recorder`).
    """
    layers = needed_layers(objectives) | (keep or set())
    stop = None if any(o.kind == "logit" for o in objectives) else deepest(graph, layers)
    recorder = Recorder(graph, stop_at=stop, keep=layers, fold=fold)
    output = recorder.run(module, x)
    return evaluate(objectives, recorder.calls, output), recorder.calls
