"""Run a model with some of its kernels removed, without touching the model.

A `KernelMasks` mode multiplies each conv call's weight by that layer's mask as the call happens
(matched to graph layers by call order, as the scoring recorder does), so the user's parameters are
never modified and a mask can be a differentiable tensor (the `learned` method optimises it).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from viscnn.errors import ViscnnError
from viscnn.graph import Graph
from viscnn.graph.ops import SIGNATURES, bind, op_name

Masks = dict[str, torch.Tensor]  # layer -> [C_out, C_in / groups] (bool or float)


class KernelMasks(TorchFunctionMode):
    """Inside this mode, conv call k uses weight * masks[layer k] (layers without a mask run whole)."""

    def __init__(self, graph: Graph, masks: Masks) -> None:
        super().__init__()
        self.layers = graph.conv_layers
        self.masks = masks
        self.count = 0

    def __torch_function__(self, func: Callable[..., Any], types: Iterable[type], args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        if op_name(func) != "conv2d":
            return func(*args, **kwargs)
        if self.count >= len(self.layers):
            raise ViscnnError("the model ran more conv calls than its graph has layers")
        layer = self.layers[self.count]
        self.count += 1
        mask = self.masks.get(layer.name)
        if mask is None:
            return func(*args, **kwargs)
        call = bind(args, kwargs, SIGNATURES["conv2d"])
        weight = call["weight"]
        call["weight"] = weight * mask.to(weight.dtype)[:, :, None, None]
        return func(**call)


class CircuitModel(nn.Module):
    """The user's model with a circuit's masks applied at run time; its parameters are the model's own."""

    def __init__(self, model: nn.Module, graph: Graph, masks: Masks) -> None:
        super().__init__()
        self.inner = model
        self.graph = graph
        self.masks = masks

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        with KernelMasks(self.graph, self.masks):
            return self.inner(*args, **kwargs)
