"""The most ANY image can give an objective: a sound upper bound (its ceiling), by interval arithmetic.

A render's ratio over natural images means little without this: ReLU6 caps and BN shifts can put a
node's maximum over all images only a few times above what photos give it (EfficientNet-Lite0's stem
and many of its depthwise nodes), while plain ReLU networks leave it unbounded. `ceiling` says which.

How: the box of all 0-1 images is pushed through the model (interval bound propagation: each op maps
a box of inputs to a box holding all its outputs) up to the objective's conv. The objective is affine
in that conv's input (its kernels, its folded BN), so its maximum over that box is exact: f(centre) +
sum |df/dx| * radius. The only slack is the box itself: it treats the conv's inputs as independent.
Logit objectives are bounded by the box of the model's output.

A box travels as one tensor holding the lower bounds of its B images then their upper bounds (batch
2B), so ops that are increasing in each input (ReLU, pooling, padding, reshaping, adding two boxes)
run on it unchanged. Convs, linear layers and BN split it into centre and radius (|W| on the radius);
other arithmetic is done per bound. Any other op on a box is an error naming it (a wrong ceiling is
worse than none): SiLU, for one, is not increasing.
"""
from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from viscnn.errors import ViscnnError
from viscnn.featurevis.objectives import check_objective, evaluate
from viscnn.graph import Graph
from viscnn.graph.ops import SIGNATURES, bind, op_name, pair
from viscnn.graph.recorder import BN_ARGS, ConvCall, bn_affine
from viscnn.models.preprocess import Preprocess
from viscnn.scoring.targets import Target

INCREASING = frozenset(["relu", "relu6", "hardtanh", "clamp", "clamp_min", "clamp_max", "sigmoid", "tanh", "leaky_relu", "elu", "softplus", "hardsigmoid", "exp", "max_pool2d", "max_pool2d_with_indices", "avg_pool2d", "adaptive_avg_pool2d", "adaptive_max_pool2d", "pad", "sum", "mean", "amax", "amin"])
MOVES = frozenset(["view", "reshape", "flatten", "contiguous", "clone", "detach", "to", "float", "type", "__getitem__", "narrow", "select", "squeeze", "unsqueeze", "cat", "concat", "split", "chunk", "dropout", "dropout2d", "feature_dropout"])
SHAPE = frozenset(["size", "dim", "numel", "__get__", "__len__", "__format__", "__repr__"])
BATCH_DIM_ARG = {"flatten": "start_dim", "sum": "dim", "mean": "dim", "amax": "dim", "amin": "dim", "cat": "dim",
                 "concat": "dim", "narrow": "dim", "select": "dim", "squeeze": "dim", "unsqueeze": "dim",
                 "split": "dim", "chunk": "dim"}


@dataclass
class _Reached:
    layer: str
    call: ConvCall | None = None  # the objective's conv call, its input the box (centre) and radius in `radius`
    radius: torch.Tensor | None = None


TensorOp = Callable[[torch.Tensor], torch.Tensor]


class _Stop(Exception):
    pass


class IntervalMode(TorchFunctionMode):
    """Runs a forward pass on boxes (see the module docstring); stops at `target`'s node map if given."""

    def __init__(self, graph: Graph, target: str | None) -> None:
        super().__init__()
        self.layers = graph.conv_layers
        self.count = 0
        self.boxes: weakref.WeakValueDictionary[int, torch.Tensor] = weakref.WeakValueDictionary()
        self.target = _Reached(target) if target else None
        self.pending: torch.Tensor | None = None  # the target conv's output, waiting for its BN

    def box(self, lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
        return self.mark(torch.cat([lower, upper]))

    def mark(self, out: Any) -> Any:
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.boxes[id(t)] = t
        return out

    def is_box(self, value: Any) -> bool:
        return isinstance(value, torch.Tensor) and self.boxes.get(id(value)) is value

    def __torch_function__(self, func: Callable[..., Any], types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        name = op_name(func)
        boxes = [a for a in list(args) + list(kwargs.values()) if self.is_box(a)]
        if isinstance(args[0] if args else None, (list, tuple)):  # cat([box, box], dim)
            boxes += [a for a in args[0] if self.is_box(a)]
        if not boxes or name in SHAPE:
            return func(*args, **kwargs)
        if name == "conv2d":
            return self.conv(func, args, kwargs)
        if name == "linear":
            a = bind(args, kwargs, SIGNATURES["linear"])
            return self.affine(a["input"], lambda x: F.linear(x, a["weight"], a.get("bias")),
                               lambda r: F.linear(r, a["weight"].abs()))
        if name == "batch_norm":
            return self.batch_norm(args, kwargs)
        if name in ("add", "sub", "rsub", "mul", "div", "truediv", "neg"):
            return self.arithmetic(name, func, args, kwargs)
        if name in INCREASING or name in MOVES:
            self.check_batch_dim(name, args, kwargs)  # (dropout: `ceiling` checks the model is in eval mode)
            return self.mark(func(*args, **kwargs))
        raise ViscnnError(f"cannot bound the model's output through {name!r}: the ceiling supports ops that are "
                          "increasing in their input (ReLU, pooling...), convs, linear layers, BN and arithmetic")

    def check_batch_dim(self, name: str, args: tuple, kwargs: dict) -> None:
        """Ops that would mix the lower and upper bounds (they run along the batch dim) are errors."""
        dim: Any = None
        if name in BATCH_DIM_ARG:
            key = BATCH_DIM_ARG[name]
            dim = kwargs.get(key, args[1] if len(args) > 1 and not isinstance(args[1], torch.Tensor) else None)
            if name in ("sum", "mean", "amax", "amin") and dim is None:
                dim = 0  # a reduction over everything mixes them
            if name == "cat":
                dim = kwargs.get("dim", args[1] if len(args) > 1 else 0)
            if name == "split" or name == "chunk":
                dim = kwargs.get("dim", args[2] if len(args) > 2 else 0)
        elif name == "__getitem__":
            index = args[1] if isinstance(args[1], tuple) else (args[1],)
            first = index[0] if index else slice(None)
            dim = None if first is Ellipsis or first == slice(None) else 0
        dims = dim if isinstance(dim, (tuple, list)) else (dim,)
        if any(d is not None and int(d) == 0 for d in dims):
            raise ViscnnError(f"cannot bound through {name!r} along the batch dimension")

    def affine(self, x: torch.Tensor, centre_op: TensorOp, radius_op: TensorOp) -> torch.Tensor:
        lower, upper = x.chunk(2)
        centre, radius = centre_op((lower + upper) / 2), radius_op((upper - lower) / 2)
        return self.box(centre - radius, centre + radius)

    def conv(self, func: Callable[..., torch.Tensor], args: tuple, kwargs: dict) -> torch.Tensor:
        a = bind(args, kwargs, SIGNATURES["conv2d"])
        layer = self.layers[self.count] if self.count < len(self.layers) else None
        self.count += 1
        rest = {k: a[k] for k in ("stride", "padding", "dilation", "groups") if k in a}
        out = self.affine(a["input"], lambda x: func(x, a["weight"], a.get("bias"), **rest),
                          lambda r: func(r, a["weight"].abs(), None, **rest))
        if self.target is not None and layer is not None and layer.name == self.target.layer:
            lower, upper = a["input"].chunk(2)
            call = ConvCall(layer, (lower + upper) / 2, a["weight"], a.get("bias"), pair(a.get("stride", 1), 1),
                            a.get("padding", 0), pair(a.get("dilation", 1), 1), int(a.get("groups", 1) or 1), out)
            self.target.call, self.target.radius = call, (upper - lower) / 2
            if layer.batchnorm is None:
                raise _Stop
            self.pending = out
        return out

    def batch_norm(self, args: tuple, kwargs: dict) -> torch.Tensor:
        bn = bind(args, kwargs, BN_ARGS)
        affine = bn_affine(bn)
        if affine is None:
            raise ViscnnError("cannot bound through a BatchNorm in training mode: put the model in eval mode")
        scale, shift = affine
        shape = (-1, *[1] * (bn["input"].dim() - 2))
        out = self.affine(bn["input"], lambda x: x * scale.view(shape) + shift.view(shape),
                          lambda r: r * scale.abs().view(shape))
        reached = self.target.call if self.target is not None else None
        if self.pending is not None and bn["input"] is self.pending and reached is not None:
            reached.bn_scale, reached.bn_shift = scale, shift
            raise _Stop
        return out

    def arithmetic(self, name: str, func: Callable[..., torch.Tensor], args: tuple, kwargs: dict) -> torch.Tensor:
        if name == "neg":
            lower, upper = args[0].chunk(2)
            return self.box(-upper, -lower)
        a: Any = args[0]  # each a box, a tensor or a number
        b: Any = args[1] if len(args) > 1 else kwargs.get("other")
        if name == "rsub":
            a, b, name = b, a, "sub"
        if name == "add" or (name == "sub" and not self.is_box(b)):
            if kwargs.get("alpha", 1) not in (1, None) or (len(args) > 2):
                raise ViscnnError(f"cannot bound through {name!r} with alpha")
            return self.mark(func(*args, **kwargs))  # box + box or box +- constant: per bound
        if name == "sub":  # (constant or box) - box
            b_lower, b_upper = b.chunk(2)
            if self.is_box(a):
                a_lower, a_upper = a.chunk(2)
                return self.box(a_lower - b_upper, a_upper - b_lower)
            return self.box(a - b_upper, a - b_lower)
        if name in ("div", "truediv"):
            if self.is_box(b) or kwargs.get("rounding_mode"):
                raise ViscnnError("cannot bound a division by an interval")
            b = 1 / b if isinstance(b, torch.Tensor) else 1 / float(b)
        # mul (or div by a constant): the extreme products of the bounds
        a_lower, a_upper = a.chunk(2) if self.is_box(a) else (a, a)
        b_lower, b_upper = b.chunk(2) if self.is_box(b) else (b, b)
        products = torch.stack(torch.broadcast_tensors(*(torch.as_tensor(x * y) for x in (a_lower, a_upper)
                                                         for y in (b_lower, b_upper))))
        return self.box(products.amin(0), products.amax(0))


def ceiling(module: nn.Module, graph: Graph, preprocess: Preprocess, objective: Target,
            size: int | None = None) -> float:
    """An upper bound on `objective` over every 0-1 image of `size` px (see the module docstring)."""
    check_objective(objective)
    size = size or preprocess.size
    shape = (1, preprocess.channels, size, size)
    lower = preprocess.normalize(torch.zeros(shape))
    upper = preprocess.normalize(torch.ones(shape))
    lower, upper = torch.minimum(lower, upper), torch.maximum(lower, upper)
    training = [m for m in module.modules() if m.training]
    if training:
        raise ViscnnError(f"put the model in eval mode first ({type(training[0]).__name__} is training)")
    layer = None if objective.kind == "logit" else objective.map_layer
    mode = IntervalMode(graph, layer)
    with torch.no_grad():
        box = mode.box(lower, upper)
        try:
            with mode:
                output = module(box)
        except _Stop:
            output = None
    if layer is None:
        out_lower, out_upper = output.chunk(2)
        return float((-out_lower if objective.negative else out_upper)[0, objective.logit_class])
    reached = mode.target
    if reached is None or reached.call is None or reached.radius is None:
        raise ViscnnError(f"the forward pass never reached layer {layer}")
    call, radius = reached.call, reached.radius
    # exact over the box: the objective is affine in its conv's input
    centre = call.input.detach().requires_grad_(True)
    call.input = centre
    call.output = F.conv2d(centre, call.weight, call.bias, call.stride, call.padding, call.dilation, call.groups)
    scale, shift = call.bn_scale, call.bn_shift
    call.node_map = call.output if scale is None or shift is None else call.output * scale.view(-1, 1, 1) + shift.view(-1, 1, 1)
    value = evaluate([objective], {layer: call}, None)[0]
    (grad,) = torch.autograd.grad(value, centre)
    return float(value.detach()) + float((grad.abs() * radius).sum())
