"""Circuit methods: one module each, one signature, registered by name.

    method(model, graph, batches, target, keep, seed=0, device="cpu") -> Scores

Every method returns a `Scores` whose `edges` rank the kernels upstream of the target (higher =
keep first). `Method.normalise` says whether the selection rule should normalise those scores per
layer (importance scores) or use them as they are (the `learned` mask is already global).
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from viscnn.errors import ViscnnError
from viscnn.graph import Graph
from viscnn.scoring.scores import Scores
from viscnn.scoring.targets import Target

Batch = tuple[torch.Tensor, torch.Tensor | None]
MethodFunction = Callable[..., Scores]


@dataclass(frozen=True)
class Method:
    name: str
    function: MethodFunction
    normalise: bool = True
    description: str = ""

    def __call__(self, model: nn.Module, graph: Graph, batches: Sequence[Batch], target: Target, keep: float,
                 seed: int = 0, device: str | torch.device = "cpu") -> Scores:
        return self.function(model, graph, batches, target, keep, seed=seed, device=device)


METHODS: dict[str, Method] = {}
_MODULES = ["actgrad", "snip", "force", "magnitude", "random", "worst", "ablation", "learned"]


def register(name: str, normalise: bool = True, description: str = "") -> Callable[[MethodFunction], MethodFunction]:
    def decorate(function: MethodFunction) -> MethodFunction:
        METHODS[name] = Method(name, function, normalise, description)
        return function
    return decorate


def get_method(name: str) -> Method:
    if not METHODS:
        for module in _MODULES:
            importlib.import_module(f"viscnn.circuits.methods.{module}")
    if name not in METHODS:
        raise ViscnnError(f"unknown circuit method {name!r}: choose from {', '.join(sorted(METHODS))}")
    return METHODS[name]


def all_methods() -> dict[str, Method]:
    get_method("actgrad")
    return dict(METHODS)
