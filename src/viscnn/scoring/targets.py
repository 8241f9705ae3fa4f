"""Targets: the scalar (per image) that a query scores against, a circuit keeps and a render maximises.

One grammar (the query's Output field, `--target`, a circuit file's target, a render objective):
    loss                      cross-entropy with the images' labels (the model's own top-1 where unlabelled)
    logit:K | class:NAME      one class logit (NAME matched against the model's class names)
    LAYER:C                   mean of node C's map (the paper's node target)
    LAYER:C:neuron            the centre unit of that map;  LAYER:C:Y,X  the unit at row Y, column X
    LAYER:dir(3=0.5,7=-1)     mean of a weighted sum of channels (a direction in the layer's space)
    LAYER:O<-I                an EDGE: mean of the map of the single kernel W[O, I] on input channel I alone,
                              times node O's BN scale (its contribution to node O's map)
    LAYER:O<-I:neuron         the centre unit of that edge map;  LAYER:O<-I:Y,X  the unit at row Y, column X
A leading `-` negates the target (what inhibits it). Each consumer says which kinds it takes: scoring
and circuits every kind but edges (`check_scorable`), renders every kind but the loss
(`viscnn.featurevis.objectives.check_objective`). Node and edge ids are read by `viscnn.graph.ids`.
"""
from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F

from viscnn.errors import ViscnnError
from viscnn.graph import INPUT, Edge, Graph, Node
from viscnn.graph.ids import check_edge, check_node, conv_layer, match_edge, match_node

KINDS = ("loss", "logit", "node", "neuron", "direction", "edge", "edge_neuron")
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_DIRECTION = re.compile(r"(?P<layer>.+?):dir\((?P<body>.*)\)")
_AT = re.compile(r"(?P<base>.+?)(?::(?P<at>neuron|(?P<y>\d+),(?P<x>\d+)))?")  # an id, then where in its map
_FORMS = "loss, logit:K, class:NAME, LAYER:C, LAYER:C:neuron, LAYER:C:Y,X, LAYER:dir(C=W,...) or LAYER:OUT<-IN[:neuron]"


@dataclass(frozen=True)
class Target:
    """What to score, keep or render. `layer` is None for the model's output (loss, logit).

    Node kinds read node `channel` of `layer`; edge kinds the kernel from input channel `inp` to output
    channel `channel`. `negative` flips the sign of every value.
    """

    kind: str  # one of KINDS
    layer: str | None = None
    channel: int | None = None
    position: tuple[int, int] | None = None  # None with kind "neuron" or "edge_neuron" means the centre unit
    weights: tuple[tuple[int, float], ...] = field(default_factory=tuple)
    class_index: int | None = None
    inp: int | None = None
    negative: bool = False

    def __str__(self) -> str:
        sign = "-" if self.negative else ""
        where = "neuron" if self.position is None else f"{self.position[0]},{self.position[1]}"
        if self.kind == "loss":
            return f"{sign}loss"
        if self.kind == "logit":
            return f"{sign}logit:{self.class_index}"
        if self.kind == "node":
            return f"{sign}{self.layer}:{self.channel}"
        if self.kind == "neuron":
            return f"{sign}{self.layer}:{self.channel}:{where}"
        if self.kind == "edge":
            return f"{sign}{self.layer}:{self.channel}<-{self.inp}"
        if self.kind == "edge_neuron":
            return f"{sign}{self.layer}:{self.channel}<-{self.inp}:{where}"
        return f"{sign}{self.layer}:dir(" + ",".join(f"{c}={w:g}" for c, w in self.weights) + ")"

    @property
    def inside(self) -> bool:
        """True when the target is a map inside the network (the forward pass can stop there)."""
        return self.layer is not None

    @property
    def is_edge(self) -> bool:
        return self.kind in ("edge", "edge_neuron")

    @property
    def map_layer(self) -> str:
        """`layer`, for a target inside the network; a ValueError for one on the model's output (loss, logit)."""
        if self.layer is None:
            raise ValueError(f"target {self} reads the model's output, not a layer's map")
        return self.layer

    @property
    def node(self) -> Node:
        """The node whose map the target reads (for an edge: the node the kernel feeds)."""
        if self.layer is None or self.channel is None:
            raise ValueError(f"target {self} reads no single node")
        return Node(self.layer, self.channel)

    @property
    def edge(self) -> Edge:
        if not self.is_edge or self.inp is None:
            raise ValueError(f"target {self} is not an edge")
        node = self.node
        return Edge(node.layer, node.channel, self.inp)

    @property
    def logit_class(self) -> int:
        """The class whose logit a logit target reads; a ValueError for every other kind."""
        if self.kind != "logit" or self.class_index is None:
            raise ValueError(f"target {self} is not a class logit")
        return self.class_index

    @property
    def channels(self) -> list[int]:
        """The channels of `layer` whose maps the target reads."""
        return [c for c, _ in self.weights] if self.kind == "direction" else [self.node.channel]

    def negated(self) -> Target:
        return replace(self, negative=not self.negative)

    def _signed(self, values: torch.Tensor) -> torch.Tensor:
        return -values if self.negative else values

    def from_map(self, node_map: torch.Tensor) -> torch.Tensor:
        """Per-image target values [N] from the target layer's map [N, C, H, W]."""
        if self.kind == "node":
            return self._signed(node_map[:, self.channel].mean(dim=(-2, -1)))
        if self.kind == "neuron":
            h, w = node_map.shape[-2:]
            y, x = self.position if self.position is not None else (h // 2, w // 2)
            if not (0 <= y < h and 0 <= x < w):
                raise ViscnnError(f"target {self} is outside the {h}x{w} map of layer {self.layer}")
            return self._signed(node_map[:, self.channel, y, x])
        if self.kind == "direction":
            channels = torch.tensor([c for c, _ in self.weights], device=node_map.device)
            weights = torch.tensor([w for _, w in self.weights], dtype=node_map.dtype, device=node_map.device)
            return self._signed((node_map[:, channels].mean(dim=(-2, -1)) * weights).sum(dim=1))
        raise ValueError(f"target {self} is not a map target")

    def from_output(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Per-image target values [N] from the model's output logits [N, K]."""
        if logits.dim() != 2:
            raise ViscnnError(f"target {self} needs logits of shape [N, classes]; the model returned {list(logits.shape)}")
        if self.kind == "logit":
            if not 0 <= self.logit_class < logits.shape[1]:
                raise ViscnnError(f"class {self.class_index} is out of range: the model has {logits.shape[1]} outputs")
            return self._signed(logits[:, self.class_index])
        own = logits.detach().argmax(dim=1)
        labels = labels.to(logits.device)
        usable = (labels >= 0) & (labels < logits.shape[1])
        return self._signed(F.cross_entropy(logits, torch.where(usable, labels, own), reduction="none"))


def check_scorable(target: Target) -> Target:
    """`target` itself when it can be scored (and so have a circuit): every kind but an edge."""
    if target.is_edge:
        raise ViscnnError(f"cannot score target {str(target)!r}: an edge is a render objective only; score its node "
                          f"{target.layer}:{target.channel}, or use loss, logit:K, class:NAME, LAYER:C, LAYER:C:neuron "
                          f"or LAYER:dir(C=W,...)")
    return target


def parse_target(text: str, graph: Graph, class_names: Sequence[str] | None = None) -> Target:
    """Read a target (the module docstring's grammar) against `graph`'s layers and the model's class names.

    Layers, channels and edges are checked here; a unit's position is checked where its map is (a
    render can be larger than the model's input).
    """
    spec = text.strip()
    negative = spec.startswith("-")
    target = _parse(spec[1:].strip() if negative else spec, text, graph, class_names)
    return replace(target, negative=True) if negative else target


def _parse(spec: str, text: str, graph: Graph, class_names: Sequence[str] | None) -> Target:
    if spec == "loss":
        return Target("loss")
    if re.fullmatch(r"logit:\d+", spec):
        return Target("logit", class_index=int(spec.split(":")[1]))
    if spec.startswith("class:") or (class_names and spec in class_names):
        name = spec.split(":", 1)[1] if spec.startswith("class:") else spec
        matches = [i for i, c in enumerate(class_names or []) if c.lower() == name.lower()]
        if not matches:
            raise ViscnnError(f"unknown class {name!r} in target {text!r}")
        return Target("logit", class_index=matches[0])
    if match := _DIRECTION.fullmatch(spec):
        return _direction(match["layer"], match["body"], text, graph)
    match = _AT.fullmatch(spec)
    if match is None:  # an empty spec
        raise ViscnnError(f"cannot read target {text!r}: use {_FORMS}")
    base, at = match["base"], match["at"]
    position = None if at in (None, "neuron") else (int(match["y"]), int(match["x"]))
    if "<-" in base:
        edge = match_edge(base)
        if edge is None:
            raise ViscnnError(f"cannot read edge {text!r}: use LAYER:OUT<-IN, LAYER:OUT<-IN:neuron or LAYER:OUT<-IN:Y,X")
        check_edge(edge, graph, what="target", text=text)
        return Target("edge" if at is None else "edge_neuron", edge.layer, edge.out, position, inp=edge.inp)
    node = match_node(base)
    if node is None:
        layer = spec.partition(":")[0]
        if ":" in spec and layer != INPUT:
            conv_layer(graph, layer, what="target", text=text)
        raise ViscnnError(f"cannot read target {text!r}: use {_FORMS}")
    _not_input(node.layer, text)
    check_node(node, graph, what="target", text=text)
    return Target("node" if at is None else "neuron", node.layer, node.channel, position)


def _not_input(layer: str, text: str) -> None:
    if layer == INPUT:
        raise ViscnnError(f"target {text!r} is an input channel: no layer lies upstream of it to score")


def _direction(layer: str, body: str, text: str, graph: Graph) -> Target:
    _not_input(layer, text)
    conv_layer(graph, layer, what="target", text=text)
    weights = []
    for pair in (p.strip() for p in body.split(",") if p.strip()):
        if not re.fullmatch(rf"\d+\s*=\s*{_NUMBER}", pair):
            raise ViscnnError(f"cannot read direction weight {pair!r} in target {text!r}: use CHANNEL=WEIGHT")
        channel, weight = (part.strip() for part in pair.split("="))
        check_node(Node(layer, int(channel)), graph, what="target", text=text)
        if not math.isfinite(float(weight)):
            raise ViscnnError(f"target {text[:60]!r} has a weight too large to be a number")
        weights.append((int(channel), float(weight)))
    if not weights:
        raise ViscnnError(f"direction in target {text!r} has no CHANNEL=WEIGHT pairs")
    return Target("direction", layer, weights=tuple(weights))
