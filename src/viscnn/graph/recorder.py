"""Watch (and optionally edit) every conv call of a forward pass, by the graph's layer names.

Conv calls are matched to the graph's layers by call order, the order the tracer recorded them in,
so functional convs and modules called twice are handled like everything else. A node's map is the
conv's output, or the output of the BatchNorm applied to it (BN folded: removing a filter then
removes its bias too). A target inside the network stops the forward pass once its map exists.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from viscnn.errors import ViscnnError
from viscnn.graph.graph import Graph
from viscnn.graph.ops import SIGNATURES, bind, op_name, pair
from viscnn.graph.types import Layer


@dataclass
class ConvCall:
    """One conv call: its actual arguments (input as passed, after any padding op) and output."""

    layer: Layer
    input: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor | None
    stride: tuple[int, int]
    padding: Any
    dilation: tuple[int, int]
    groups: int
    output: torch.Tensor
    node_map: torch.Tensor | None = None
    bn_scale: torch.Tensor | None = None  # gamma / sqrt(running_var + eps) of the BN folded into the node
    bn_shift: torch.Tensor | None = None  # beta - running_mean * bn_scale: the BN is x * bn_scale + bn_shift
    version: int = 0  # the node map's version counter when recorded

    def ready_map(self) -> torch.Tensor:
        """The node map, which a pass that reached this layer's node (its BN, if any) has set."""
        assert self.node_map is not None, f"the pass ended before the node map of {self.layer.name} was made"
        return self.node_map


class StopForward(Exception):
    """Raised inside the forward pass once the target's map is known."""


NodeEdit = Callable[[str, torch.Tensor], torch.Tensor]
ConvEdit = Callable[[ConvCall], torch.Tensor]
Folds = dict[str, tuple[torch.Tensor, torch.Tensor]]  # layer -> its eval-mode BN's (scale, shift)
BN_ARGS = ["input", "running_mean", "running_var", "weight", "bias", "training", "momentum", "eps"]


def bn_affine(bn: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(scale, shift) of a batch_norm call's bound arguments in eval mode (it is x * scale + shift), else None."""
    var = bn.get("running_var")
    if var is None or bn.get("training"):
        return None
    gamma = bn["weight"] if bn.get("weight") is not None else torch.ones_like(var)
    beta = bn["bias"] if bn.get("bias") is not None else torch.zeros_like(var)
    scale = (gamma / torch.sqrt(var + bn.get("eps", 1e-5))).detach()
    return scale, (beta - bn["running_mean"] * scale).detach()


class Recorder(TorchFunctionMode):
    """Records conv calls into `calls`; `stop_at` names the layer whose node map ends the pass.

    `folds` collects, for every layer (kept or not), the (scale, shift) of the eval-mode BN the pass applied
    to its conv's output. `fold` (the `folds` of an earlier pass of the same model) runs each listed layer's conv with its
    eval-mode BN folded into the weights and bias, and skips the BN itself: the same node maps (up to
    rounding) at the cost of the conv alone, forward and backward (renders use it: BN was about a sixth of
    a step). The recorded call keeps the weight as passed (unfolded) and the BN's scale, as without `fold`.
    Leave it out where the BN may be in training mode or a conv edit needs the conv's own output.
    """

    def __init__(self, graph: Graph, *, stop_at: str | None = None, edit_node: NodeEdit | None = None,
                 edit_conv: ConvEdit | None = None, keep: set[str] | None = None, copy: bool = True,
                 fold: Folds | None = None) -> None:
        super().__init__()
        self.copy = copy
        self.fold = fold or {}
        self.folds: Folds = {}
        self.layers = graph.conv_layers
        self.stop_at = stop_at
        self.edit_node = edit_node
        self.edit_conv = edit_conv
        self.keep = keep
        self.calls: dict[str, ConvCall] = {}
        self.pending_bn: dict[int, ConvCall] = {}
        self.count = 0

    def __torch_function__(self, func: Callable[..., Any], types: Iterable[type], args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        name = op_name(func)
        if name == "conv2d":
            return self.on_conv(func, args, kwargs)
        if name == "batch_norm" and args and id(args[0]) in self.pending_bn:
            call = self.pending_bn.pop(id(args[0]))
            if call.output is args[0]:
                bn = bind(args, kwargs, BN_ARGS)
                folded = call.layer.name in self.fold
                if folded and bn.get("training"):
                    raise ViscnnError(f"the BatchNorm after {call.layer.name} is in training mode: it cannot be folded")
                out = args[0] if folded else func(*args, **kwargs)
                affine = bn_affine(bn)
                if affine is not None:
                    call.bn_scale, call.bn_shift = affine
                    self.folds[call.layer.name] = affine
                return self.node_ready(call, out)
        return func(*args, **kwargs)

    def on_conv(self, func: Any, args: tuple, kwargs: dict) -> torch.Tensor:
        if self.count >= len(self.layers):
            raise ViscnnError(f"the model ran more conv calls than the {len(self.layers)} its graph was traced with: "
                              "its structure depends on the input, so trace it on inputs like these")
        layer = self.layers[self.count]
        self.count += 1
        a = bind(args, kwargs, SIGNATURES["conv2d"])
        if tuple(a["weight"].shape[:2]) != (layer.out_channels, layer.in_per_group):
            raise ViscnnError(f"conv call {self.count} has weight {list(a['weight'].shape)} but graph layer {layer.name} "
                              f"expects [{layer.out_channels}, {layer.in_per_group}, ...]: graph and model differ")
        if layer.name in self.fold:
            scale, shift = self.fold[layer.name]
            bias = shift if a.get("bias") is None else a["bias"] * scale + shift
            folded = {**a, "weight": a["weight"] * scale.view(-1, *[1] * (a["weight"].dim() - 1)), "bias": bias}
            out = func(**folded)
        else:
            out = func(*args, **kwargs)
        call = ConvCall(layer, a["input"], a["weight"], a.get("bias"), pair(a.get("stride", 1), 1), a.get("padding", 0),
                        pair(a.get("dilation", 1), 1), int(a.get("groups", 1) or 1), out)
        if self.edit_conv is not None:
            out = call.output = self.edit_conv(call)
        if self.keep is None or layer.name in self.keep:
            self.calls[layer.name] = call
        if layer.batchnorm is not None:
            self.pending_bn[id(out)] = call
            return out
        return self.node_ready(call, out)

    def node_ready(self, call: ConvCall, node_map: torch.Tensor) -> torch.Tensor:
        if self.edit_node is not None:
            node_map = self.edit_node(call.layer.name, node_map)
        call.node_map = node_map
        call.version = node_map._version
        if call.layer.name == self.stop_at:
            raise StopForward
        # with `copy`, the model gets a copy: an in-place op after it (ReLU(inplace=True)) must not rewrite
        # the map we keep. Without it, `overwritten()` tells whether that happened. A map not kept needs none.
        kept = self.keep is None or call.layer.name in self.keep
        return node_map.clone() if kept and (self.copy or call.layer.rewritten) else node_map

    def overwritten(self) -> bool:
        """True if an in-place op changed a kept map or conv output after it was recorded."""
        return any(call.node_map is not None and call.node_map._version != call.version for call in self.calls.values())

    def run(self, model: Callable[..., Any], *inputs: Any) -> Any:
        """`model(*inputs)` with this recorder on: the model's output, or None when the pass stopped at `stop_at`.

        Gradient mode is the caller's (wrap the call in `torch.no_grad()` where no gradient is wanted).
        """
        with self:
            try:
                return model(*inputs)
            except StopForward:
                return None
