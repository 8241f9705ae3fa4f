"""Trace any CNN into its kernel graph by watching every torch op of one real forward pass.

A `TorchFunctionMode` sees each op as it runs (inside any module, through any Python control flow),
so nothing about the model's structure is assumed. Each tensor carries its channel provenance and
receptive field; a conv call becomes a layer whose input channels are mapped to the filters they
come from. Unknown ops that would hide a channel mixing stop the trace with an error naming them.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten, tree_map

from viscnn.errors import ViscnnError
from viscnn.graph import ops, provenance, receptive
from viscnn.graph.provenance import Provenance
from viscnn.graph.types import INPUT, Layer, ReceptiveField

_META = "_viscnn_meta"


@dataclass
class _Pad:
    source: torch.Tensor
    top: int
    bottom: int
    left: int
    right: int
    mode: str
    value: float


@dataclass
class _Meta:
    prov: Provenance
    rf: ReceptiveField | None
    pad: _Pad | None = None
    conv_output: str | None = None
    # exact id tensors, kept when dim 1 is not the channel axis (e.g. the [N, g, C/g, H, W] middle of a
    # channel shuffle), so that the next data-movement op still knows where every element came from
    exact: dict[str, list[torch.Tensor | None]] | None = None
    node_of: str | None = None  # this tensor is the map of that layer's nodes (conv output, or its BN's output)


@dataclass
class Capture:
    """A conv call's tensors, kept for the replay check: its input before any folded padding, its output."""

    input: torch.Tensor
    output: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor | None


@dataclass
class TraceResult:
    layers: list[Layer]
    heads: list[Layer]
    outputs: list[tuple[str, np.ndarray]]
    captures: dict[str, Capture] = field(default_factory=dict)
    unsupported: list[str] = field(default_factory=list)  # with survey=True: every op the trace could not follow


class UnsupportedOp(ViscnnError):
    """The trace met an op it cannot follow without guessing how it mixes channels."""


def _meta(value: Any) -> _Meta | None:
    return getattr(value, _META, None) if isinstance(value, torch.Tensor) else None


def _set_meta(tensor: torch.Tensor, meta: _Meta | None) -> None:
    if meta is None:
        if hasattr(tensor, _META):
            delattr(tensor, _META)
    else:
        setattr(tensor, _META, meta)


def _hw(tensor: torch.Tensor) -> tuple[int, int]:
    return int(tensor.shape[-2]), int(tensor.shape[-1])


def _trackable(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and value.is_floating_point() and value.dim() >= 2


class _Tracer(TorchFunctionMode):
    def __init__(self, model: nn.Module, capture: bool, survey: bool = False) -> None:
        super().__init__()
        self.survey = survey
        self.unsupported_ops: list[str] = []
        self.param_names = {id(p): n for n, p in model.named_parameters()}
        self.module_types = dict(model.named_modules())
        self.stack: list[str] = []
        self.layers: list[Layer] = []
        self.heads: list[Layer] = []
        self.names: set[str] = set()
        self.capture = capture
        self.captures: dict[str, Capture] = {}

    # --- bookkeeping (hooks must return None, or they would replace the module's input/output) ---
    def enter(self, name: str) -> None:
        self.stack.append(name)

    def leave(self) -> None:
        self.stack.pop()

    def where(self) -> str:
        return self.stack[-1] if self.stack and self.stack[-1] else "<model>"

    def unsupported(self, func: Any, tensor: torch.Tensor, why: str = "") -> UnsupportedOp:
        reason = why or "viscnn can only follow ops that keep, move or convolve channels"
        return UnsupportedOp(f"unsupported op {ops.qualified(func)} in module '{self.where()}' "
                             f"on a tensor of shape {list(tensor.shape)}: {reason}")

    def unique_name(self, base: str) -> str:
        name, k = base, 1
        while name in self.names:
            k += 1
            name = f"{base}@{k}"
        self.names.add(name)
        return name

    def layer_name(self, weight: torch.Tensor, kind: str) -> tuple[str, str | None]:
        weight_name = self.param_names.get(id(weight))
        if weight_name is not None:
            base = weight_name[: -len(".weight")] if weight_name.endswith(".weight") else weight_name
        else:
            base = self.stack[-1] if self.stack and self.stack[-1] else kind
        return self.unique_name(base), weight_name

    # --- the mode ----------------------------------------------------------------------------------
    def __torch_function__(self, func: Callable[..., Any], types: Iterable[type], args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        metas_before = [(t, meta) for t in tree_flatten((args, kwargs))[0] if (meta := _meta(t)) is not None]
        out = func(*args, **kwargs)
        if metas_before:
            try:
                self.follow(func, args, kwargs, out, metas_before)
            except UnsupportedOp as exc:
                if not self.survey:
                    raise
                # note it and go on with the op's output untracked: later ops that can be followed still are
                self.unsupported_ops.append(str(exc))
                for tensor in tree_flatten(out)[0]:
                    if isinstance(tensor, torch.Tensor):
                        _set_meta(tensor, None)
        return out

    def follow(self, func: Any, args: tuple, kwargs: dict, out: Any, tracked: list[tuple[torch.Tensor, _Meta]]) -> None:
        name = ops.op_name(func)
        outputs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        for tensor, meta in tracked:
            if meta.node_of is not None and any(o is tensor for o in outputs):  # an in-place op on a node map
                for layer in self.layers:
                    if layer.name == meta.node_of:
                        layer.rewritten = True
        if name in ops.UNTRACKED or not any(t.is_floating_point() for t in outputs):
            for tensor in outputs:
                if any(tensor is t for t, _ in tracked):
                    _set_meta(tensor, None)  # an in-place op that erased the data (zero_, fill_)
            return
        if name == "conv2d":
            self.on_conv(func, args, kwargs, out)
        elif name == "linear":
            self.on_linear(func, args, kwargs, out)
        elif name == "pad":
            self.on_pad(func, args, kwargs, out, tracked)
        elif name in ops.WINDOW_POOLS:
            self.on_window_pool(name, args, kwargs, outputs, tracked)
        elif name in ops.ADAPTIVE_POOLS:
            first = tracked[0][0]
            rf = receptive.through_adaptive_pool(tracked[0][1].rf, _hw(first), _hw(outputs[0]))
            _set_meta(outputs[0], _Meta(tracked[0][1].prov, rf))
        elif name in ("interpolate", "upsample", "upsample_bilinear", "upsample_nearest"):
            self.on_resize(args, kwargs, outputs[0], tracked)
        elif name in ops.SAME_DATA:
            self.on_same_data(func, outputs, tracked)
        elif name in ops.POINTWISE:
            self.on_pointwise(name, outputs, tracked)
        elif name in ops.REDUCTIONS:
            self.on_reduction(func, args, kwargs, outputs, tracked)
        elif name in ops.DATA_MOVEMENT:
            self.on_data_movement(func, args, kwargs, out, tracked)
        else:
            raise self.unsupported(func, tracked[0][0])

    # --- rules -------------------------------------------------------------------------------------
    def on_conv(self, func: Any, args: tuple, kwargs: dict, out: torch.Tensor) -> None:
        call = ops.bind(args, kwargs, ops.SIGNATURES["conv2d"])
        x, weight, bias = call["input"], call["weight"], call.get("bias")
        if weight.dim() != 4:
            raise self.unsupported(func, x, "conv2d with a weight that is not 4D")
        meta = _meta(x) or _Meta({}, receptive.image())
        kernel = (int(weight.shape[2]), int(weight.shape[3]))
        stride, dilation = ops.pair(call.get("stride", 1), 1), ops.pair(call.get("dilation", 1), 1)
        padding = own_padding = ops.padding4(call.get("padding", 0), kernel, dilation)
        groups = int(call.get("groups", 1) or 1)
        conv_input, padding_mode = x, "zeros"
        pad = meta.pad
        zero_pad = pad is not None and pad.mode == "constant" and pad.value == 0
        other_pad = pad is not None and pad.mode != "constant" and padding == (0, 0, 0, 0)
        # a non-zero constant pad stays a separate op (replay uses the padded input)
        if pad is not None and (zero_pad or other_pad):
            # fold the F.pad that produced the conv's input (TF 'same' padding, reflect padding_mode...)
            padding = (padding[0] + pad.top, padding[1] + pad.bottom, padding[2] + pad.left, padding[3] + pad.right)
            padding_mode = "zeros" if pad.mode == "constant" else pad.mode
            conv_input = pad.source
        name, weight_name = self.layer_name(weight, "conv")
        rf = receptive.through_window(meta.rf, kernel, stride, dilation, (own_padding[0], own_padding[2]))
        layer = Layer(
            name=name, kind="conv", index=len(self.layers) + 1, out_channels=int(weight.shape[0]),
            in_channels=int(x.shape[1]), groups=groups, kernel_size=kernel, stride=stride, padding=padding,
            dilation=dilation, padding_mode=padding_mode, bias=bias is not None, module=self.where(),
            weight_name=weight_name, input_shape=tuple(conv_input.shape[1:]), output_shape=tuple(out.shape[1:]),
            receptive_field=rf, sources=[(src, a) for src, arrays in meta.prov.items() for a in arrays],
        )
        self.layers.append(layer)
        _set_meta(out, _Meta(provenance.fresh(name, layer.out_channels), rf, conv_output=name, node_of=name))
        if self.capture:
            # clones: a later in-place op (ReLU(inplace=True)) would otherwise rewrite what we keep
            self.captures[name] = Capture(conv_input.detach().clone(), out.detach().clone(), weight.detach(),
                                          None if bias is None else bias.detach())

    def on_linear(self, func: Any, args: tuple, kwargs: dict, out: torch.Tensor) -> None:
        call = ops.bind(args, kwargs, ops.SIGNATURES["linear"])
        x, weight = call["input"], call["weight"]
        if x.dim() != 2:
            raise self.unsupported(func, x, "a linear layer over a map's channels (channels-last MLP) is not a "
                                            "kernel graph; only a linear head on flattened features is")
        meta = _meta(x)
        if meta is None:  # only the weight or bias comes from the image: channels mixed in an unknown way
            raise self.unsupported(func, x, "a linear layer whose input does not come from the image")
        name, weight_name = self.layer_name(weight, "linear")
        head = Layer(name=name, kind="linear", index=len(self.heads), out_channels=int(weight.shape[0]),
                     in_channels=int(weight.shape[1]), bias=call.get("bias") is not None, module=self.where(),
                     weight_name=weight_name, input_shape=tuple(x.shape[1:]), output_shape=tuple(out.shape[1:]),
                     receptive_field=receptive.whole_image(),
                     sources=[(src, a) for src, arrays in meta.prov.items() for a in arrays])
        self.heads.append(head)
        _set_meta(out, _Meta(provenance.fresh(name, head.out_channels), receptive.whole_image()))

    def on_pad(self, func: Any, args: tuple, kwargs: dict, out: torch.Tensor, tracked: list) -> None:
        call = ops.bind(args, kwargs, ops.SIGNATURES["pad"])
        x, amounts = call["input"], list(call["pad"])
        meta = _meta(x)
        if meta is None or x.dim() != 4 or len(amounts) not in (2, 4):
            self.on_data_movement(func, args, kwargs, out, tracked)
            return
        left, right = amounts[0], amounts[1]
        top, bottom = (amounts[2], amounts[3]) if len(amounts) == 4 else (0, 0)
        mode, value = call.get("mode", "constant") or "constant", call.get("value", 0.0) or 0.0
        rf = receptive.through_pad(meta.rf, top, left)
        _set_meta(out, _Meta(meta.prov, rf, pad=_Pad(x, top, bottom, left, right, mode, float(value))))

    def on_window_pool(self, name: str, args: tuple, kwargs: dict, outputs: list, tracked: list) -> None:
        call = ops.bind(args, kwargs, ops.SIGNATURES[name])
        kernel = ops.pair(call["kernel_size"])
        stride = ops.pair(call.get("stride"), None) if call.get("stride") not in (None, []) else kernel
        padding = ops.pair(call.get("padding", 0), 0)
        dilation = ops.pair(call.get("dilation", 1), 1)
        meta = tracked[0][1]
        _set_meta(outputs[0], _Meta(meta.prov, receptive.through_window(meta.rf, kernel, stride, dilation, padding)))

    def on_resize(self, args: tuple, kwargs: dict, out: torch.Tensor, tracked: list) -> None:
        call = ops.bind(args, kwargs, ops.SIGNATURES["upsample"])
        x, meta = tracked[0]
        smooth = (call.get("mode") or "nearest") not in ("nearest", "nearest-exact")
        rf = receptive.through_resize(meta.rf, _hw(x), _hw(out), smooth=smooth)
        _set_meta(out, _Meta(meta.prov, rf))

    def on_same_data(self, func: Any, outputs: list, tracked: list) -> None:
        source, meta = tracked[0]
        for tensor in outputs:
            if tensor.shape != source.shape:
                raise self.unsupported(func, source, "it changed the tensor's shape")
            _set_meta(tensor, _Meta(meta.prov, meta.rf))

    def on_pointwise(self, name: str, outputs: list, tracked: list) -> None:
        target = outputs[0]
        if target.dim() < 2:
            return
        provs = [provenance.broadcast(m.prov, t.shape, target.shape) for t, m in tracked if t.dim() >= 2]
        meta = _Meta(provenance.merge(provs), receptive.union([m.rf for _, m in tracked]))
        if name == "batch_norm":
            _source, source_meta = tracked[0]
            if source_meta.conv_output is not None and source_meta.prov.keys() == {source_meta.conv_output}:
                for layer in self.layers:
                    if layer.name == source_meta.conv_output and layer.batchnorm is None:
                        layer.batchnorm = self.where()
                        meta.node_of = layer.name
        _set_meta(target, meta)

    def on_reduction(self, func: Any, args: tuple, kwargs: dict, outputs: list, tracked: list) -> None:
        call = ops.bind(args, kwargs, ops.SIGNATURES["reduction"])
        x, meta = tracked[0]
        target = outputs[0]
        dims = call.get("dim")
        if dims is None or target.dim() < 2:
            return  # a full reduction (a loss, a norm): not part of the feature pathway
        dims = {d % x.dim() for d in (dims if isinstance(dims, (list, tuple)) else [dims])}
        if 0 in dims:
            return
        spatial = set(range(2, x.dim()))
        rf = receptive.whole_image() if dims >= spatial else meta.rf
        if 1 in dims:  # a mean/max over channels: every output channel depends on all of them
            _set_meta(target, _Meta(provenance.all_of(meta.prov, target.shape[1]), rf))
            return
        _set_meta(target, _Meta(meta.prov, rf))

    def on_data_movement(self, func: Any, args: tuple, kwargs: dict, out: Any, tracked: list) -> None:
        outputs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        keys = {(layer, k) for _, m in tracked for layer, arrays in m.prov.items() for k in range(len(arrays))}
        results: list[Provenance] = [{} for _ in outputs]
        exact: list[dict[str, list[torch.Tensor | None]]] = [{} for _ in outputs]
        pad_value = {"value": -1} if ops.op_name(func) == "pad" else {}
        for layer, k in sorted(keys):
            def to_ids(value: Any, layer: str = layer, k: int = k) -> Any:
                if not (isinstance(value, torch.Tensor) and value.is_floating_point()):
                    return value
                if value.dim() < 2:
                    return torch.full(value.shape, -1, dtype=torch.int64)
                meta = _meta(value)
                kept = meta.exact.get(layer, []) if meta and meta.exact else []
                exact_ids = kept[k] if k < len(kept) else None
                if exact_ids is not None and exact_ids.shape == value.shape:
                    return exact_ids
                arrays = meta.prov.get(layer, []) if meta else []
                array = arrays[k] if k < len(arrays) else np.full(value.shape[1], -1)
                return provenance.lift(array, value.shape)

            id_args, id_kwargs = tree_map(to_ids, (args, {**kwargs, **pad_value}))
            id_out = [t for t in tree_flatten(func(*id_args, **id_kwargs))[0] if isinstance(t, torch.Tensor)]
            for i, ids in enumerate(id_out[: len(outputs)]):
                if ids.dim() < 2:
                    continue
                ids = ids.long()
                array = provenance.lower(ids)
                if np.any(array != -1) or bool((ids >= 0).any()):
                    results[i].setdefault(layer, []).append(array)
                    lossy = bool(np.any(array == -2)) and not bool((ids == -2).any())
                    exact[i].setdefault(layer, []).append(ids.clone() if lossy else None)
        rf = receptive.union([m.rf for _, m in tracked])
        for tensor, prov, kept in zip(outputs, results, exact):
            if not _trackable(tensor):
                continue
            same_space = any(tensor.dim() == t.dim() and tensor.shape[2:] == t.shape[2:] for t, _ in tracked)
            keep = {layer: ids for layer, ids in kept.items() if any(t is not None for t in ids)} or None
            _set_meta(tensor, _Meta(prov, rf if same_space else receptive.whole_image(), exact=keep))


def trace(model: nn.Module, example: torch.Tensor, *, capture: bool = False, survey: bool = False) -> TraceResult:
    """Run `model` on `example` once, following every op, and return its conv layers in call order.

    An op the trace cannot follow raises UnsupportedOp; with `survey`, it is listed in the result's
    `unsupported` instead and the trace goes on (the graph is then incomplete: for `viscnn check` only).
    """
    tracer = _Tracer(model, capture, survey)
    handles = []
    for name, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(lambda _m, _a, name=name: tracer.enter(name)))
        handles.append(module.register_forward_hook(lambda _m, _a, _o: tracer.leave()))
    example = example.detach().clone()
    channels = int(example.shape[1])
    tracer.names.add(INPUT)
    _set_meta(example, _Meta(provenance.fresh(INPUT, channels), receptive.image()))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), tracer:
            output = model(example)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    outputs: list[tuple[str, np.ndarray]] = []
    for tensor in tree_flatten(output)[0]:
        meta = _meta(tensor)
        if meta is not None:
            outputs.extend((src, a) for src, arrays in meta.prov.items() for a in arrays)
    return TraceResult(tracer.layers, tracer.heads, outputs, tracer.captures, tracer.unsupported_ops)
