"""Targets: the scalar (per image) whose sensitivity to every node and edge is scored.

Syntax (the query's Output field):
    loss                      cross-entropy with the images' labels (the model's own top-1 where unlabelled)
    logit:K | class:NAME      one class logit (NAME matched against the model's class names)
    LAYER:C                   mean of node C's map (the paper's node target)
    LAYER:C:neuron            the centre unit of that map;  LAYER:C:Y,X  the unit at row Y, column X
    LAYER:dir(3=0.5,7=-1)     mean of a weighted sum of channels (a direction in the layer's space)
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from viscnn.errors import ViscnnError
from viscnn.graph import INPUT, Graph

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


@dataclass(frozen=True)
class Target:
    """What to score against. `layer` is None for the model's output (loss, logit)."""

    kind: str  # "loss" | "logit" | "node" | "neuron" | "direction"
    layer: str | None = None
    channel: int | None = None
    position: tuple[int, int] | None = None  # None with kind "neuron" means the centre unit
    weights: tuple[tuple[int, float], ...] = field(default_factory=tuple)
    class_index: int | None = None

    def __str__(self) -> str:
        if self.kind == "loss":
            return "loss"
        if self.kind == "logit":
            return f"logit:{self.class_index}"
        if self.kind == "node":
            return f"{self.layer}:{self.channel}"
        if self.kind == "neuron":
            return f"{self.layer}:{self.channel}:" + ("neuron" if self.position is None else f"{self.position[0]},{self.position[1]}")
        return f"{self.layer}:dir(" + ",".join(f"{c}={w:g}" for c, w in self.weights) + ")"

    @property
    def inside(self) -> bool:
        """True when the target is a map inside the network (the forward pass can stop there)."""
        return self.layer is not None

    def from_map(self, node_map: torch.Tensor) -> torch.Tensor:
        """Per-image target values [N] from the target layer's map [N, C, H, W]."""
        if self.kind == "node":
            return node_map[:, self.channel].mean(dim=(-2, -1))
        if self.kind == "neuron":
            h, w = node_map.shape[-2:]
            y, x = self.position if self.position is not None else (h // 2, w // 2)
            if not (0 <= y < h and 0 <= x < w):
                raise ViscnnError(f"target {self} is outside the {h}x{w} map of layer {self.layer}")
            return node_map[:, self.channel, y, x]
        if self.kind == "direction":
            channels = torch.tensor([c for c, _ in self.weights], device=node_map.device)
            weights = torch.tensor([w for _, w in self.weights], dtype=node_map.dtype, device=node_map.device)
            return (node_map[:, channels].mean(dim=(-2, -1)) * weights).sum(dim=1)
        raise ValueError(f"target {self} is not a map target")

    def from_output(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Per-image target values [N] from the model's output logits [N, K]."""
        if logits.dim() != 2:
            raise ViscnnError(f"target {self} needs logits of shape [N, classes]; the model returned {list(logits.shape)}")
        if self.kind == "logit":
            if not 0 <= self.class_index < logits.shape[1]:
                raise ViscnnError(f"class {self.class_index} is out of range: the model has {logits.shape[1]} outputs")
            return logits[:, self.class_index]
        own = logits.detach().argmax(dim=1)
        labels = labels.to(logits.device)
        usable = (labels >= 0) & (labels < logits.shape[1])
        return F.cross_entropy(logits, torch.where(usable, labels, own), reduction="none")


def _channel(graph: Graph, layer: str, text: str, original: str) -> int:
    channel = int(text)
    size = graph[layer].out_channels
    if not 0 <= channel < size:
        raise ViscnnError(f"channel {channel} of target {original!r} is out of range: layer {layer} has {size} channels")
    return channel


def parse_target(text: str, graph: Graph, class_names: list[str] | None = None) -> Target:
    """Parse the Output field against `graph` (layer names) and the model's class names."""
    spec = text.strip()
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
    layer, _, rest = spec.partition(":")
    if not rest:
        raise ViscnnError(f"cannot read target {text!r}: use loss, logit:K, class:NAME, LAYER:C, LAYER:C:neuron, "
                          f"LAYER:C:Y,X or LAYER:dir(C=W,...)")
    if layer not in graph:
        raise ViscnnError(f"unknown layer {layer!r} in target {text!r}")
    if layer == INPUT:
        raise ViscnnError(f"target {text!r} is an input channel: no layer lies upstream of it to score")
    if match := re.fullmatch(r"dir\((.*)\)", rest):
        pairs = [p.strip() for p in match.group(1).split(",") if p.strip()]
        weights = []
        for pair in pairs:
            if not re.fullmatch(rf"\d+\s*=\s*{_NUMBER}", pair):
                raise ViscnnError(f"cannot read direction weight {pair!r} in target {text!r}: use CHANNEL=WEIGHT")
            channel, weight = pair.split("=")
            weights.append((_channel(graph, layer, channel.strip(), text), float(weight)))
        if not weights:
            raise ViscnnError(f"direction in target {text!r} has no CHANNEL=WEIGHT pairs")
        return Target("direction", layer, weights=tuple(weights))
    if match := re.fullmatch(r"(\d+)(?::(neuron|(\d+),(\d+)))?", rest):
        channel = _channel(graph, layer, match.group(1), text)
        if match.group(2) is None:
            return Target("node", layer, channel)
        position = None if match.group(2) == "neuron" else (int(match.group(3)), int(match.group(4)))
        return Target("neuron", layer, channel, position)
    raise ViscnnError(f"cannot read target {text!r}: after the layer name use C, C:neuron, C:Y,X or dir(C=W,...)")
