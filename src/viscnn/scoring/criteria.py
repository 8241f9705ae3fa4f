"""Criteria: how a node's map (or an edge's single-kernel map) and its gradient become one number.

Per image, then summed over the batch (the engine divides by the image count):
    activation      mean of the map
    gradient        mean of dT/d(map)
    taylor          mean of |map * dT/d(map)|   (Molchanov et al. 2017; the paper's equation 4)
    taylor_signed   sum of map * dT/d(map)      (first-order change of T if the map were removed)
    weight          filter / kernel L2 norm with BN folded in (no images needed)

Edge maps are never all materialised where the math allows: the signed and activation forms are
W * dT/dW, from one weight-gradient convolution (or a matrix product for 1x1 kernels); the |.| form needs the maps, but for 1x1 kernels
|w * x * g| = |w| * |x| * |g| turns it into one matrix product, for depthwise kernels the map is the
conv's own output, and only the remaining kxk kernels' maps are computed, in chunks of input channels
(one grouped convolution per chunk, summed in place).
"""
from __future__ import annotations

import torch
from torch.nn.grad import conv2d_weight

from viscnn.graph.dissect import ConvGeometry, iter_kernel_maps
from viscnn.graph.ops import padding4
from viscnn.graph.recorder import ConvCall

CRITERIA = ("activation", "gradient", "taylor", "taylor_signed", "weight")
NEEDS_GRADIENT = {"gradient", "taylor", "taylor_signed"}


def geometry(call: ConvCall) -> ConvGeometry:
    kernel = (int(call.weight.shape[2]), int(call.weight.shape[3]))
    return ConvGeometry(call.stride, padding4(call.padding, kernel, call.dilation), call.dilation, call.groups)


def node_sums(criteria: set[str], node_map: torch.Tensor, grad: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """{criterion: [C]}: each channel of `node_map` [N, C, H, W] scored, summed over images.

    The map * gradient product is materialised at most once per layer: the signed sum is an einsum.
    """
    positions = node_map.shape[2] * node_map.shape[3]
    result = {}
    if "activation" in criteria:
        result["activation"] = node_map.sum(dim=(0, 2, 3)) / positions
    if grad is None:
        return result
    if "gradient" in criteria:
        result["gradient"] = grad.sum(dim=(0, 2, 3)) / positions
    if "taylor_signed" in criteria:
        result["taylor_signed"] = torch.einsum("nchw,nchw->c", node_map, grad)
    if "taylor" in criteria:
        result["taylor"] = (node_map * grad).abs_().sum(dim=(0, 2, 3)) / positions
    return result


def _signed_edges(call: ConvCall, grad: torch.Tensor) -> torch.Tensor:
    """[C_out, C_in/g]: sum over images and positions of grad_j * (W_ji conv x_i).

    This is W * dT/dW (summed over taps). Depthwise and 1x1 kernels take direct routes: a grouped
    weight-gradient convolution is slow on CPU, and for them it is not needed.
    """
    weight, x = call.weight.detach(), call.input.detach()
    c_out, in_pg, kh, kw = weight.shape
    n, _, h, w = grad.shape
    if in_pg == 1:
        bias = call.bias.detach().view(1, -1, 1, 1) if call.bias is not None else 0.0
        return ((call.output.detach() - bias) * grad).sum(dim=(2, 3)).sum(0).view(c_out, 1)
    geo = geometry(call)
    if (kh, kw) == (1, 1):
        groups, out_pg = call.groups, c_out // call.groups
        xs = geo.pad(x)[:, :, :: geo.stride[0], :: geo.stride[1]][:, :, :h, :w].reshape(n, groups, in_pg, h * w)
        total = torch.einsum("ngop,ngip->goi", grad.reshape(n, groups, out_pg, h * w), xs)
        return total.reshape(c_out, in_pg) * weight.view(c_out, in_pg)
    weight_grad = conv2d_weight(geo.pad(x), weight.shape, grad, geo.stride, 0, geo.dilation, geo.groups)
    return (weight * weight_grad).sum(dim=(2, 3))


def _abs_taylor_edges(call: ConvCall, grad: torch.Tensor, max_bytes: int) -> torch.Tensor:
    """sum over images of mean over positions of |g_j * (W_ji conv x_i)|, exactly."""
    weight, x = call.weight.detach(), call.input.detach()
    c_out, in_pg, kh, kw = weight.shape
    groups = call.groups
    out_pg = c_out // groups
    n, _, h, w = grad.shape
    positions = h * w
    if in_pg == 1:  # depthwise (with any multiplier): the conv's own output is the one edge's map
        bias = call.bias.detach().view(1, -1, 1, 1) if call.bias is not None else 0.0
        edge_map = call.output.detach() - bias
        return (edge_map * grad).abs().mean(dim=(2, 3)).sum(0).view(c_out, 1)
    geo = geometry(call)
    if (kh, kw) == (1, 1):
        xs = geo.pad(x)[:, :, :: geo.stride[0], :: geo.stride[1]][:, :, :h, :w]
        xs = xs.abs().reshape(n, groups, in_pg, positions)
        gs = grad.abs().reshape(n, groups, out_pg, positions)
        total = torch.einsum("ngop,ngip->goi", gs, xs).reshape(c_out, in_pg)
        return total * weight.abs().view(c_out, in_pg) / positions
    # kxk kernels: per chunk of input channels, one grouped convolution gives the chunk's single-kernel
    # maps (dissect.kernel_maps); |map| * |g| is summed in place, so a chunk costs one buffer
    grad_abs = grad.abs().view(n, groups, out_pg, h, w)
    total = weight.new_zeros(c_out, in_pg)
    for start, stop, maps in iter_kernel_maps(x, weight, geo, max_bytes):
        channels = torch.arange(start, stop, device=weight.device)
        group, local = channels // in_pg, channels % in_pg
        sums = maps.abs_().mul_(grad_abs[:, group]).sum(dim=(0, 3, 4))  # [k, out_pg]
        rows = group[:, None] * out_pg + torch.arange(out_pg, device=weight.device)[None, :]
        total[rows, local[:, None].expand_as(rows)] += sums
    return total / positions


def edge_sums(criterion: str, call: ConvCall, grad: torch.Tensor | None, max_bytes: int = 256 << 20) -> torch.Tensor:
    """[C_out, C_in / groups]: the criterion of each kernel's map, summed over images.

    `grad` is dT/d(conv output) (before BN: the edge scores do not change when BN is folded in).
    """
    weight = call.weight.detach()
    out = call.output
    _n, _, h, w = out.shape
    if criterion == "activation":
        return _signed_edges(call, out.new_full(out.shape, 1.0 / (h * w)))
    assert grad is not None
    if criterion == "gradient":
        return grad.mean(dim=(2, 3)).sum(0)[:, None].expand(weight.shape[0], weight.shape[1]).clone()
    if criterion == "taylor_signed":
        return _signed_edges(call, grad)
    if criterion == "taylor":
        return _abs_taylor_edges(call, grad, max_bytes)
    raise ValueError(criterion)


def weight_scores(call: ConvCall) -> tuple[torch.Tensor, torch.Tensor]:
    """(filter norms [C_out], kernel norms [C_out, C_in/groups]) of the BN-folded weights."""
    weight = call.weight.detach()
    scale = call.bn_scale if call.bn_scale is not None else torch.ones(weight.shape[0], device=weight.device)
    kernels = weight.flatten(2).norm(dim=2) * scale.abs()[:, None]
    return kernels.norm(dim=1), kernels
