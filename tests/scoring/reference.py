"""Slow, obviously-correct reference scores, kept only for tests.

Module hooks capture each conv's input and output (and the BN output when one follows), autograd
gives the gradients, and every edge's map is computed by its own single-kernel convolution in an
explicit loop over (out, in).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from viscnn.graph import Graph


def _pad(module: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    static = getattr(module, "static_padding", None)  # EfficientNet's Conv2dStaticSamePadding
    return static(x) if static is not None else x


def reference_scores(model: nn.Module, graph: Graph, x: torch.Tensor, target_fn, layers: list[str]) -> dict:
    """{criterion: {"nodes": {layer: [C]}, "edges": {layer: [C_out, C_in/g]}}} summed over images / N.

    `target_fn(outputs, node_maps) -> [N]` computes the per-image target from the model output and the
    dict of node maps. Every layer must be an nn.Conv2d module named like its graph layer, called once.
    """
    modules = dict(model.named_modules())
    conv_in, conv_out, node_maps, handles = {}, {}, {}, []
    for name in layers:
        conv = modules[name]

        def keep(_m, inputs, output, name=name):
            conv_in[name] = inputs[0]
            conv_out[name] = output
            node_maps.setdefault(name, output)
            return output.clone()  # the model continues on a copy: in-place ReLUs must not touch what we keep
        handles.append(conv.register_forward_hook(keep))
        bn = graph[name].batchnorm
        if bn:
            def keep_bn(_m, _i, out, name=name):
                node_maps[name] = out
                return out.clone()
            handles.append(modules[bn].register_forward_hook(keep_bn))
    x = x.clone().requires_grad_(True)
    try:
        output = model(x)
    finally:
        for h in handles:
            h.remove()
    values = target_fn(output, node_maps)
    wanted = [node_maps[n] for n in layers] + [conv_out[n] for n in layers]
    grads = torch.autograd.grad(values.sum(), wanted, allow_unused=True)
    n = x.shape[0]
    result = {c: {"nodes": {}, "edges": {}} for c in ("activation", "gradient", "taylor", "taylor_signed")}
    for k, name in enumerate(layers):
        conv = modules[name]
        a = node_maps[name].detach()
        g = grads[k] if grads[k] is not None else torch.zeros_like(a)
        g_out = grads[len(layers) + k] if grads[len(layers) + k] is not None else torch.zeros_like(conv_out[name])
        result["activation"]["nodes"][name] = a.mean((2, 3)).sum(0) / n
        result["gradient"]["nodes"][name] = g.mean((2, 3)).sum(0) / n
        result["taylor"]["nodes"][name] = (a * g).abs().mean((2, 3)).sum(0) / n
        result["taylor_signed"]["nodes"][name] = (a * g).sum((2, 3)).sum(0) / n
        xin = _pad(conv, conv_in[name].detach())
        weight = conv.weight.detach()
        c_out, in_pg = weight.shape[:2]
        out_pg = c_out // conv.groups
        edges = {c: torch.zeros(c_out, in_pg) for c in result}
        for o in range(c_out):
            for i in range(in_pg):
                channel = (o // out_pg) * in_pg + i
                edge_map = F.conv2d(xin[:, channel: channel + 1], weight[o: o + 1, i: i + 1], None,
                                    conv.stride, conv.padding, conv.dilation)[:, 0]
                go = g_out[:, o]
                edges["activation"][o, i] = edge_map.mean((1, 2)).sum() / n
                edges["gradient"][o, i] = go.mean((1, 2)).sum() / n
                edges["taylor"][o, i] = (edge_map * go).abs().mean((1, 2)).sum() / n
                edges["taylor_signed"][o, i] = (edge_map * go).sum((1, 2)).sum() / n
        for c in result:
            result[c]["edges"][name] = edges[c]
    return result
