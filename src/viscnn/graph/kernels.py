"""A layer's kernels as the node maps see them: BN folded in, and each kernel's sign.

The sign says whether a 2D kernel is mostly excitatory (1), mostly inhibitory (-1) or mixed (0): the
ratio sum(w) / sum(|w|) of its BN-folded weights against `SIGN_THRESHOLD`. The page colours edges by it.
"""
from __future__ import annotations

import torch
from torch import nn

from viscnn.graph.graph import Graph

SIGN_THRESHOLD = 1 / 3  # |sum(w)| / sum(|w|) above this: the kernel is mostly excitatory (or inhibitory)


def bn_scale(model: nn.Module, graph: Graph, layer: str) -> torch.Tensor | None:
    """gamma / sqrt(running_var + eps) of the BatchNorm applied to `layer`'s output (float32, CPU), or None."""
    name = graph[layer].batchnorm
    if not name:
        return None
    bn = model.get_submodule(name)
    if not isinstance(bn, nn.modules.batchnorm._BatchNorm) or bn.running_var is None:
        return None
    gamma = bn.weight.detach() if bn.weight is not None else torch.ones_like(bn.running_var)
    return (gamma / torch.sqrt(bn.running_var + bn.eps)).detach().float().cpu()


def folded_kernels(model: nn.Module, graph: Graph, layer: str) -> torch.Tensor:
    """The layer's kernels [C_out, C_in / groups, kh, kw] (float32, CPU) with the BN scale folded in.

    Raises KeyError for a conv whose weight is computed at run time (no parameter holds it)."""
    weight = graph.kernels(model, layer).detach().float().cpu()
    scale = bn_scale(model, graph, layer)
    return weight if scale is None else weight * scale.view(-1, 1, 1, 1)


def kernel_signs(folded: torch.Tensor) -> torch.Tensor:
    """int8 [C_out, C_in / groups]: 1 mostly excitatory, -1 mostly inhibitory, 0 mixed (see the module docstring)."""
    total = folded.sum(dim=(2, 3))
    magnitude = folded.abs().sum(dim=(2, 3)).clamp_min(1e-30)
    ratio = total / magnitude
    signs = torch.zeros_like(ratio, dtype=torch.int8)
    signs[ratio > SIGN_THRESHOLD] = 1
    signs[ratio < -SIGN_THRESHOLD] = -1
    return signs
