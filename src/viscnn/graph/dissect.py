"""Single-kernel outputs of a conv layer, exactly, in memory-bounded chunks.

The map an edge (kernel W[o, i]) outputs is W[o, i] convolved with input channel i alone. All of a
chunk of input channels' maps come out of ONE grouped convolution: every input channel becomes its
own group, holding the kernels that read it. The original tool's 'dissected Conv2d' built all
C_in x C_out maps at once; here memory is bounded by `max_bytes`.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from viscnn.graph.types import Layer


@dataclass(frozen=True)
class ConvGeometry:
    """What a conv call does besides its weights: (top, bottom, left, right) padding and the rest."""

    stride: tuple[int, int]
    padding: tuple[int, int, int, int]
    dilation: tuple[int, int]
    groups: int
    padding_mode: str = "zeros"

    @classmethod
    def of(cls, layer: Layer) -> ConvGeometry:
        return cls(layer.stride, layer.padding, layer.dilation, layer.groups, layer.padding_mode)

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom, left, right = self.padding
        if not any(self.padding):
            return x
        mode = "constant" if self.padding_mode == "zeros" else self.padding_mode
        return F.pad(x, (left, right, top, bottom), mode=mode)

    def conv(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """The whole conv, from the un-padded input."""
        return F.conv2d(self.pad(x), weight, bias, self.stride, 0, self.dilation, self.groups)


def chunk_size(batch: int, out_per_group: int, out_hw: tuple[int, int], max_bytes: int, itemsize: int = 4) -> int:
    """How many input channels' single-kernel maps fit in `max_bytes` at once (at least one)."""
    per_channel = batch * out_per_group * out_hw[0] * out_hw[1] * itemsize
    return max(1, max_bytes // max(1, per_channel))


def kernel_maps(x_padded: torch.Tensor, weight: torch.Tensor, geometry: ConvGeometry, start: int, stop: int) -> torch.Tensor:
    """Maps of the kernels reading input channels [start, stop): [N, stop - start, C_out / groups, H', W'].

    Entry [:, c, o] is the output of kernel weight[g * C_out/g + o, (start + c) - g * C_in/g] alone,
    where g is the group of input channel start + c.
    """
    c_out = weight.shape[0]
    in_per_group = weight.shape[1]
    out_per_group = c_out // geometry.groups
    channels = torch.arange(start, stop, device=weight.device)
    group = channels // in_per_group
    local = channels - group * in_per_group
    rows = group[:, None] * out_per_group + torch.arange(out_per_group, device=weight.device)[None, :]
    kernels = weight[rows, local[:, None]]  # [k, out_per_group, kh, kw]
    kernels = kernels.reshape(-1, 1, *weight.shape[2:])
    maps = F.conv2d(x_padded[:, start:stop], kernels, None, geometry.stride, 0, geometry.dilation, stop - start)
    return maps.view(x_padded.shape[0], stop - start, out_per_group, *maps.shape[-2:])


def iter_kernel_maps(x: torch.Tensor, weight: torch.Tensor, geometry: ConvGeometry,
                     max_bytes: int = 256 << 20) -> Iterator[tuple[int, int, torch.Tensor]]:
    """(start, stop, maps) over all input channels of `x` (un-padded), in chunks within `max_bytes`."""
    x_padded = geometry.pad(x)
    out_per_group = weight.shape[0] // geometry.groups
    probe = F.conv2d(x_padded[:1, :1], weight[:1, :1], None, geometry.stride, 0, geometry.dilation)
    out_hw = (int(probe.shape[-2]), int(probe.shape[-1]))
    step = chunk_size(x.shape[0], out_per_group, out_hw, max_bytes, x.element_size())
    for start in range(0, x.shape[1], step):
        stop = min(start + step, x.shape[1])
        yield start, stop, kernel_maps(x_padded, weight, geometry, start, stop)


def replay_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, geometry: ConvGeometry,
                max_bytes: int = 256 << 20) -> torch.Tensor:
    """The conv's output rebuilt as the sum of its single-kernel maps plus the bias."""
    in_per_group = weight.shape[1]
    out_per_group = weight.shape[0] // geometry.groups
    total = None
    for start, stop, maps in iter_kernel_maps(x, weight, geometry, max_bytes):
        if total is None:
            total = maps.new_zeros(maps.shape[0], geometry.groups, out_per_group, *maps.shape[-2:])
        group = torch.arange(start, stop, device=maps.device) // in_per_group
        total.index_add_(1, group, maps)
    assert total is not None
    out = total.reshape(total.shape[0], -1, *total.shape[-2:])
    return out if bias is None else out + bias.view(1, -1, 1, 1)
