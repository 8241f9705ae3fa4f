"""Circuit methods: one module each, one signature, registered by name.

    method(model, graph, batches, target, keep, *, seed=0, device="cpu", **options) -> Scores

Every method returns a `Scores` whose `edges` rank the kernels upstream of the target (higher =
keep first). `Method.normalise` says whether the selection rule should normalise those scores per
layer (importance scores) or use them as they are (the `learned` mask is already global). A method
may take further keyword options (`learned`: `progress`, `augment`, `steps`, `seconds`); calling a
method with an option it does not take is a ViscnnError naming it.

Every module of this package is a method module: `get_method` and `all_methods` import them all
before answering, so which module was imported first never hides the others.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from viscnn.errors import ViscnnError
from viscnn.graph import Graph
from viscnn.scoring.engine import score_batches
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

    def __call__(self, model: nn.Module, graph: Graph, batches: Sequence[Batch], target: Target, keep: float, *,
                 seed: int = 0, device: str | torch.device = "cpu", **options: Any) -> Scores:
        unknown = sorted(set(options) - set(self.options()))
        if unknown:
            raise ViscnnError(f"circuit method {self.name} takes no option {', '.join(unknown)}"
                              + (f" (it takes {', '.join(self.options())})" if self.options() else ""))
        return self.function(model, graph, batches, target, keep, seed=seed, device=device, **options)

    def options(self) -> list[str]:
        """The keyword options this method takes beyond seed and device."""
        parameters = inspect.signature(self.function).parameters.values()
        return [p.name for p in parameters if p.kind is p.KEYWORD_ONLY and p.name not in ("seed", "device")]


@dataclass(frozen=True)
class StepReport:
    """What a method's `progress` callable receives after each of its steps (JSON-friendly numbers)."""

    step: int
    steps: int
    elapsed: float  # seconds since the method started
    remaining: float  # estimated seconds to go
    loss: float  # the step's training loss (learned: 1 - r on its minibatch)


Progress = Callable[[StepReport], None]


METHODS: dict[str, Method] = {}


def register(name: str, *, normalise: bool = True, description: str = "") -> Callable[[MethodFunction], MethodFunction]:
    """Decorator: register `function` as the circuit method `name`."""
    def decorate(function: MethodFunction) -> MethodFunction:
        METHODS[name] = Method(name, function, normalise, description)
        return function
    return decorate


def labelled(batches: Sequence[Batch]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """`batches` as scoring takes them: unlabelled images (None) get label -1 (the loss then uses the model's
    own top-1)."""
    return [(x, y if y is not None else torch.full((len(x),), -1, dtype=torch.long)) for x, y in batches]


def kernel_norms(model: nn.Module, graph: Graph, batches: Sequence[Batch], target: Target, *,
                 device: str | torch.device = "cpu") -> Scores:
    """The BN-folded kernel norms (criterion "weight", one batch): `magnitude`'s scores, and the shape of
    the Scores every other method fills in."""
    return score_batches(model, graph, labelled(batches[:1]), target, ("weight",), device=device)["weight"]


def _load_all() -> None:
    """Import every method module of this package (each registers itself; already imported ones cost nothing)."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


def get_method(name: str) -> Method:
    """The registered method `name`; an unknown name is a ViscnnError listing the known ones."""
    _load_all()
    if name not in METHODS:
        raise ViscnnError(f"unknown circuit method {name!r}: choose from {', '.join(sorted(METHODS))}")
    return METHODS[name]


def all_methods() -> dict[str, Method]:
    """Every registered method by name."""
    _load_all()
    return dict(METHODS)
