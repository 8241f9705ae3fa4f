"""Objectives: what a render maximises, one scalar per image, read off one recorded forward pass.

Syntax (the graph's layer names; `--negative` or a leading `-` flips the sign: what inhibits):
    LAYER:C                node C's channel objective: mean of its map (BN folded in, as scoring reads it)
    LAYER:C:neuron         the centre unit of that map;  LAYER:C:Y,X  the unit at row Y, column X
    LAYER:dir(3=0.5,7=-1)  mean of a weighted sum of channels (a direction)
    logit:K | class:NAME   one class logit
    LAYER:O<-I             the EDGE objective: mean of the map of the single kernel W[O, I] applied to input
                           channel I alone (exact: a conv of the recorded input channel with that kernel,
                           times the BN scale of node O, so it is the edge's contribution to node O's map)
    LAYER:O<-I:neuron      the centre unit of that edge map

Objectives are evaluated for a batch where image b has its own objective; objectives of one kind and
layer are evaluated together (one indexing op, or one grouped conv for all edges of a layer).
"""
from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from viscnn.errors import ViscnnError
from viscnn.graph import Graph
from viscnn.graph.recorder import ConvCall, Folds, Recorder
from viscnn.scoring.criteria import geometry
from viscnn.scoring.targets import parse_target

_EDGE = re.compile(r"(?P<layer>.+):(?P<out>\d+)\s*<-\s*(?P<inp>\d+)(?::(?P<pos>neuron|(?P<y>\d+),(?P<x>\d+)))?")


@dataclass(frozen=True)
class Objective:
    """One render objective. `channel` is the output channel (for edges: O); `inp` the edge's input channel."""

    kind: str  # "node" | "neuron" | "direction" | "logit" | "edge" | "edge_neuron"
    layer: str | None = None
    channel: int | None = None
    inp: int | None = None
    position: tuple[int, int] | None = None  # None for a neuron means the centre unit
    weights: tuple[tuple[int, float], ...] = field(default_factory=tuple)
    class_index: int | None = None
    negative: bool = False

    def __str__(self) -> str:
        sign = "-" if self.negative else ""
        where = "" if self.position is None else f"{self.position[0]},{self.position[1]}"
        if self.kind == "logit":
            return f"{sign}logit:{self.class_index}"
        if self.kind == "node":
            return f"{sign}{self.layer}:{self.channel}"
        if self.kind == "neuron":
            return f"{sign}{self.layer}:{self.channel}:{where or 'neuron'}"
        if self.kind == "edge":
            return f"{sign}{self.layer}:{self.channel}<-{self.inp}"
        if self.kind == "edge_neuron":
            return f"{sign}{self.layer}:{self.channel}<-{self.inp}:{where or 'neuron'}"
        return f"{sign}{self.layer}:dir(" + ",".join(f"{c}={w:g}" for c, w in self.weights) + ")"

    @property
    def is_edge(self) -> bool:
        return self.kind in ("edge", "edge_neuron")

    def negated(self) -> Objective:
        return replace(self, negative=not self.negative)


def _edge(text: str, match: re.Match, graph: Graph) -> Objective:
    name, out, inp = match.group("layer"), int(match.group("out")), int(match.group("inp"))
    if name not in graph:
        raise ViscnnError(f"unknown layer {name!r} in edge {text!r}")
    layer = graph[name]
    if layer.kind != "conv":
        raise ViscnnError(f"{name!r} in edge {text!r} is not a conv layer: it has no kernels")
    if not 0 <= out < layer.out_channels:
        raise ViscnnError(f"output channel {out} of edge {text!r} is out of range: layer {name} has {layer.out_channels}")
    if not 0 <= inp < layer.in_channels:
        raise ViscnnError(f"input channel {inp} of edge {text!r} is out of range: layer {name} has {layer.in_channels}")
    group = out // layer.out_per_group
    first, last = group * layer.in_per_group, (group + 1) * layer.in_per_group
    if not first <= inp < last:
        what = "depthwise" if layer.in_per_group == 1 else f"grouped ({layer.groups} groups)"
        reads = f"input channel {first}" if last - first == 1 else f"input channels {first}-{last - 1}"
        raise ViscnnError(f"edge {text!r} does not exist: layer {name} is {what}, so output channel {out} reads only "
                          f"{reads} (try {name}:{out}<-{first})")
    pos = match.group("pos")
    if pos is None:
        return Objective("edge", name, out, inp)
    position = None if pos == "neuron" else (int(match.group("y")), int(match.group("x")))
    return Objective("edge_neuron", name, out, inp, position)


def parse_objective(text: str, graph: Graph, negative: bool = False, class_names: list[str] | None = None) -> Objective:
    """An objective from its text (see the module docstring); unknown layers, channels and edges are errors."""
    spec = text.strip()
    if spec.startswith("-"):
        spec, negative = spec[1:].strip(), not negative
    if "<-" in spec:
        match = _EDGE.fullmatch(spec)
        if match is None:
            raise ViscnnError(f"cannot read edge objective {text!r}: use LAYER:OUT<-IN or LAYER:OUT<-IN:neuron")
        objective = _edge(text, match, graph)
    else:
        if spec == "loss":
            raise ViscnnError("'loss' is not a render objective: use logit:K, class:NAME or a LAYER:C node")
        target = parse_target(spec, graph, class_names)
        objective = Objective(target.kind, target.layer, target.channel, None, target.position, target.weights,
                              target.class_index)
    return replace(objective, negative=negative)


# --- evaluation -----------------------------------------------------------------------------------------
def needed_layers(objectives: Sequence[Objective]) -> set[str]:
    return {o.layer for o in objectives if o.layer is not None}


def _unit(objective: Objective, maps: torch.Tensor) -> tuple[int, int]:
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


def evaluate(objectives: Sequence[Objective], calls: dict[str, ConvCall], output: torch.Tensor | None) -> torch.Tensor:
    """[B]: objective b's value on image b, from a forward pass's recorded calls and output."""
    values: list[torch.Tensor | None] = [None] * len(objectives)
    groups: dict[tuple[str, str | None], list[int]] = defaultdict(list)
    for b, objective in enumerate(objectives):
        groups[(objective.kind, objective.layer)].append(b)
    for (kind, layer), members in groups.items():
        items = [objectives[b] for b in members]
        rows = torch.tensor(members)
        if kind == "logit":
            if output is None or output.dim() != 2:
                raise ViscnnError("logit objectives need a model whose output is [N, classes]")
            classes = [o.class_index for o in items]
            if max(classes) >= output.shape[1]:
                raise ViscnnError(f"class {max(classes)} is out of range: the model has {output.shape[1]} outputs")
            got = output[rows.to(output.device), torch.tensor(classes, device=output.device)]
        elif kind in ("edge", "edge_neuron"):
            maps = edge_maps(calls[layer], rows, [o.channel for o in items], [o.inp for o in items])
            if kind == "edge":
                got = maps.mean(dim=(-2, -1))
            else:
                got = torch.stack([maps[k, y, x] for k, (y, x) in enumerate(_unit(o, maps) for o in items)])
        else:
            node_map = calls[layer].node_map
            r = rows.to(node_map.device)
            if kind == "node":
                got = node_map[r, torch.tensor([o.channel for o in items], device=node_map.device)].mean(dim=(-2, -1))
            elif kind == "neuron":
                got = torch.stack([node_map[b, o.channel, y, x]
                                   for b, o, (y, x) in ((b, o, _unit(o, node_map)) for b, o in zip(members, items))])
            else:  # direction
                got = torch.stack([sum(w * node_map[b, c].mean() for c, w in o.weights) for b, o in zip(members, items)])
        for k, b in enumerate(members):
            values[b] = -got[k] if objectives[b].negative else got[k]
    return torch.stack(values)  # type: ignore[arg-type]


def deepest(graph: Graph, layers: set[str]) -> str | None:
    """The needed layer called last, where the forward pass can stop (None: run the whole model)."""
    order = {layer.name: k for k, layer in enumerate(graph.conv_layers)}
    return max(layers, key=order.__getitem__) if layers else None


def forward(module: nn.Module, graph: Graph, objectives: Sequence[Objective], x: torch.Tensor,
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
