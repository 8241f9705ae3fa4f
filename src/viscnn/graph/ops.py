"""What the tracer knows about torch ops: their names, their argument lists, and their kind.

Ops are matched by name (the same for `torch.add`, `Tensor.add`, `Tensor.__iadd__`, `F.relu`...),
so every spelling of an op lands on one rule. An op with a float output that is in none of these
sets stops the trace with an error naming it: a silently wrong graph is worse than no graph.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

# Elementwise ops: output channel c depends on channel c of each (broadcast) input.
POINTWISE = frozenset(["add", "sub", "rsub", "mul", "div", "truediv", "true_divide", "floor_divide", "floordiv", "remainder", "mod", "neg", "negative", "pow", "abs", "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sqrt", "rsqrt", "square", "sin", "cos", "tan", "tanh", "sigmoid", "logit", "erf", "relu", "relu6", "hardtanh", "silu", "swish", "gelu", "elu", "selu", "celu", "leaky_relu", "rrelu", "prelu", "glu", "softplus", "mish", "hardswish", "hardsigmoid", "logsigmoid", "softsign", "tanhshrink", "hardshrink", "softshrink", "threshold", "clamp", "clip", "clamp_min", "clamp_max", "maximum", "minimum", "fmax", "fmin", "where", "lerp", "addcmul", "addcdiv", "sign", "reciprocal", "nan_to_num", "masked_fill", "dropout", "dropout1d", "dropout2d", "dropout3d", "feature_dropout", "alpha_dropout", "feature_alpha_dropout", "batch_norm", "instance_norm", "layer_norm", "group_norm", "local_response_norm", "normalize", "softmax", "log_softmax", "softmin", "copy", "fill_", "zero_"])
# Ops that hand back the same data (maybe another dtype or device).
SAME_DATA = frozenset(["to", "float", "double", "half", "bfloat16", "type", "type_as", "cpu", "cuda", "contiguous", "clone", "detach", "requires_grad", "__get__", "data", "alias"])
# Ops that move elements around without computing: followed exactly on id tensors.
DATA_MOVEMENT = frozenset(["view", "view_as", "reshape", "reshape_as", "permute", "transpose", "t", "swapaxes", "swapdims", "movedim", "moveaxis", "flatten", "unflatten", "squeeze", "unsqueeze", "expand", "expand_as", "broadcast_to", "repeat", "tile", "__getitem__", "getitem", "narrow", "select", "index_select", "gather", "cat", "concat", "concatenate", "stack", "hstack", "vstack", "split", "split_with_sizes", "chunk", "unbind", "tensor_split", "flip", "roll", "pixel_shuffle", "pixel_unshuffle", "channel_shuffle", "native_channel_shuffle", "__setitem__", "setitem"])
REDUCTIONS = frozenset(["sum", "mean", "amax", "amin", "max", "min", "std", "var", "norm", "prod", "logsumexp", "median", "nansum", "nanmean"])
WINDOW_POOLS = frozenset(["max_pool2d", "max_pool2d_with_indices", "avg_pool2d", "lp_pool2d"])
ADAPTIVE_POOLS = frozenset(["adaptive_avg_pool2d", "adaptive_max_pool2d", "adaptive_max_pool2d_with_indices"])
# Ops whose output does not carry the input's data: never tracked.
UNTRACKED = frozenset(["zeros_like", "ones_like", "empty_like", "full_like", "rand_like", "randn_like", "randint_like", "new_zeros", "new_ones", "new_empty", "new_full", "new_tensor", "argmax", "argmin", "argsort", "topk", "sort", "eq", "ne", "gt", "lt", "ge", "le", "isnan", "isinf", "isfinite", "size", "dim", "numel"])

SIGNATURES: dict[str, list[str]] = {
    "conv2d": ["input", "weight", "bias", "stride", "padding", "dilation", "groups"],
    "linear": ["input", "weight", "bias"],
    "pad": ["input", "pad", "mode", "value"],
    "max_pool2d": ["input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"],
    "max_pool2d_with_indices": ["input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"],
    "avg_pool2d": ["input", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"],
    "lp_pool2d": ["input", "norm_type", "kernel_size", "stride", "ceil_mode"],
    "interpolate": ["input", "size", "scale_factor", "mode", "align_corners"],
    "upsample": ["input", "size", "scale_factor", "mode", "align_corners"],
    "reduction": ["input", "dim", "keepdim"],
}
SIGNATURES["upsample_bilinear"] = SIGNATURES["upsample_nearest"] = SIGNATURES["upsample"]

_DUNDER_PREFIXED = {"iadd", "radd", "isub", "rsub", "imul", "rmul", "itruediv", "rtruediv", "ifloordiv", "rfloordiv",
                    "ipow", "rpow", "imod", "rmod", "iand", "rand", "ior", "ror"}


def op_name(func: Callable[..., Any]) -> str:
    """The plain name of an op: `Tensor.__iadd__` -> 'add', `torch.relu_` -> 'relu', `Tensor.sub_` -> 'sub'."""
    name = getattr(func, "__name__", "") or ""
    if name in ("__getitem__", "__setitem__", "__get__"):
        return name
    if name.startswith("__") and name.endswith("__"):
        core = name[2:-2]
        if core == "rsub":
            return "rsub"
        return core[1:] if core in _DUNDER_PREFIXED else core
    if name.endswith("_") and not name.startswith("_") and name not in ("fill_", "zero_"):
        return name[:-1]
    return name


def qualified(func: Callable[..., Any]) -> str:
    """A readable full name for error messages."""
    module = getattr(func, "__module__", None) or "torch.Tensor"
    return f"{module}.{getattr(func, '__name__', repr(func))}"


def bind(args: tuple, kwargs: dict, names: list[str]) -> dict[str, Any]:
    """Positional and keyword arguments of a call, by parameter name."""
    bound = dict(zip(names, args))
    bound.update(kwargs)
    return bound


def pair(value: Any, default: int | None = None) -> tuple[int, int]:
    """An int or a 1-/2-sequence as (h, w); None/[] gives `default` twice."""
    if value is None or (isinstance(value, (list, tuple)) and len(value) == 0):
        if default is None:
            raise ValueError("missing size")
        return (default, default)
    if isinstance(value, (list, tuple)):
        return (int(value[0]), int(value[-1]))
    return (int(value), int(value))


def padding4(value: Any, kernel: tuple[int, int], dilation: tuple[int, int]) -> tuple[int, int, int, int]:
    """A conv's padding argument (int, pair, 'same' or 'valid') as (top, bottom, left, right)."""
    if isinstance(value, str):
        if value == "valid":
            return (0, 0, 0, 0)
        total = [dilation[a] * (kernel[a] - 1) for a in range(2)]
        return (total[0] // 2, total[0] - total[0] // 2, total[1] // 2, total[1] - total[1] // 2)
    h, w = pair(value, 0)
    return (h, h, w, w)
