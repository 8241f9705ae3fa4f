"""Receptive-field arithmetic, tracked through the trace op by op (per spatial axis).

A field is carried as (size, stride, centre of unit 0) in input pixels; pixel i spans [i, i + 1).
"""
from __future__ import annotations

import math

from viscnn.graph.types import ReceptiveField

Pair = tuple[float, float]


def image() -> ReceptiveField:
    """The field of an input pixel: itself."""
    return ReceptiveField((1.0, 1.0), (1.0, 1.0), (0.0, 0.0))


def whole_image() -> ReceptiveField:
    return ReceptiveField((math.inf, math.inf), (0.0, 0.0), (-math.inf, -math.inf), whole_image=True)


def _centre(rf: ReceptiveField) -> Pair:
    return (rf.offset[0] + rf.size[0] / 2, rf.offset[1] + rf.size[1] / 2)


def _make(size: Pair, stride: Pair, centre: Pair) -> ReceptiveField:
    return ReceptiveField(size, stride, (centre[0] - size[0] / 2, centre[1] - size[1] / 2))


def through_window(rf: ReceptiveField | None, kernel: tuple[int, int], stride: tuple[int, int],
                   dilation: tuple[int, int], pad_top_left: tuple[int, int]) -> ReceptiveField | None:
    """After a sliding window (conv or pool) with the given geometry; padding is the top/left amount."""
    if rf is None or rf.whole_image:
        return rf
    centre = _centre(rf)
    size = tuple(rf.size[a] + (kernel[a] - 1) * dilation[a] * rf.stride[a] for a in range(2))
    new_centre = tuple(centre[a] + ((kernel[a] - 1) * dilation[a] / 2 - pad_top_left[a]) * rf.stride[a] for a in range(2))
    new_stride = tuple(rf.stride[a] * stride[a] for a in range(2))
    return _make(size, new_stride, new_centre)  # type: ignore[arg-type]


def through_pad(rf: ReceptiveField | None, top: int, left: int) -> ReceptiveField | None:
    """After padding: unit 0 now sits `top`/`left` units before the old unit 0."""
    return through_window(rf, (1, 1), (1, 1), (1, 1), (top, left))


def through_resize(rf: ReceptiveField | None, in_hw: tuple[int, int], out_hw: tuple[int, int], *, smooth: bool) -> ReceptiveField | None:
    """After interpolation from in_hw to out_hw (align_corners=False geometry)."""
    if rf is None or rf.whole_image:
        return rf
    scale = (in_hw[0] / out_hw[0], in_hw[1] / out_hw[1])
    centre = _centre(rf)
    new_centre = tuple(centre[a] + (scale[a] - 1) / 2 * rf.stride[a] for a in range(2))
    size = tuple(rf.size[a] + (rf.stride[a] if smooth else 0.0) for a in range(2))
    return _make(size, (rf.stride[0] * scale[0], rf.stride[1] * scale[1]), new_centre)  # type: ignore[arg-type]


def through_adaptive_pool(rf: ReceptiveField | None, in_hw: tuple[int, int], out_hw: tuple[int, int]) -> ReceptiveField | None:
    """After adaptive pooling: exact when the sizes divide, otherwise the widest window."""
    if rf is None or rf.whole_image:
        return rf
    if out_hw == (1, 1):
        return whole_image()
    kernel = tuple(math.ceil(in_hw[a] / out_hw[a]) for a in range(2))
    stride = tuple(max(1, in_hw[a] // out_hw[a]) for a in range(2))
    return through_window(rf, kernel, stride, (1, 1), (0, 0))  # type: ignore[arg-type]


def union(fields: list[ReceptiveField | None]) -> ReceptiveField | None:
    """The field of an elementwise combination: the widest of its inputs'."""
    known = [f for f in fields if f is not None]
    if not known:
        return None
    if any(f.whole_image for f in known):
        return whole_image()
    return max(known, key=lambda f: f.size[0] * f.size[1])
