"""Inspection views: a layer's kernels, one kernel, an image's activation maps, a unit's receptive field.

Functions return numpy arrays (for the server's JSON) or PIL images (for PNGs). Kernels are shown
BN-folded (scaled by gamma / sqrt(var + eps) of the BatchNorm on the conv's output, so a kernel's size
is its real effect on the node's map) unless `fold_bn=False`. Signed values use a blue-white-red map
centred at 0; the scale (per layer, per filter or per kernel) is written in the picture's title.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import nn

from viscnn.errors import ViscnnError
from viscnn.graph import INPUT, Graph, Layer
from viscnn.graph.kernels import bn_scale, folded_kernels
from viscnn.graph.recorder import Recorder
from viscnn.inspection import draw
from viscnn.inspection.examples import check_layers
from viscnn.models.preprocess import Preprocess
from viscnn.store.cache import cached_image

if TYPE_CHECKING:
    from viscnn.models import LoadedModel
    from viscnn.store import Store

Scaling = Literal["layer", "filter", "kernel"]
MapScaling = Literal["layer", "map"]
CLIP_PERCENTILE = 99.5  # per-layer scale of activation grids
MAX_SIDE = 2048  # largest picture side the grids aim for (kernels are zoomed by whole factors below it)


def conv_layer(graph: Graph, name: str) -> Layer:
    """The conv layer `name` of `graph`; a ViscnnError listing some layers if there is none."""
    return graph[check_layers(graph, [name])[0]]


def kernels(model: nn.Module, graph: Graph, layer: str, *, fold_bn: bool = True) -> np.ndarray:
    """The layer's kernels as float32 [C_out, C_in / groups, kh, kw], BN-folded unless `fold_bn` is False."""
    spec = conv_layer(graph, layer)
    try:
        weight = folded_kernels(model, graph, spec.name) if fold_bn else graph.kernels(model, spec.name).float().cpu()
    except KeyError as exc:
        raise ViscnnError(f"layer {layer} computes its weight at run time: there are no kernels to show") from exc
    return weight.detach().numpy()


def _scale(values: np.ndarray, scaling: str, axes: dict[str, tuple[int, ...]]) -> np.ndarray | float:
    if scaling not in axes:
        raise ViscnnError(f"unknown scaling {scaling!r}: use {', '.join(axes)}")
    if not axes[scaling]:
        return float(np.abs(values).max(initial=0.0)) or 1.0
    scale = np.abs(values).max(axis=axes[scaling], keepdims=True)
    return np.where(scale > 0, scale, 1.0)


def _ticks(canvas: Image.Image, count: int, pitch: float, origin: tuple[int, int], vertical: bool) -> None:
    """Channel numbers along one side of a grid, spaced at least 32 px apart."""
    step = next(s for s in (1, 2, 4, 5, 8, 10, 16, 20, 32, 50, 64, 100, 128, 256, 512, 1024, 4096) if s * pitch >= 32 or s >= count)
    painter = ImageDraw.Draw(canvas)
    for channel in range(0, count, step):
        text = str(channel)
        if vertical:
            y = origin[1] + int(channel * pitch + pitch / 2) - 5
            painter.text((origin[0] - draw.text_width(text, 10) - 2, y), text, fill=(90, 90, 90), font=draw.font(10))
        else:
            x = origin[0] + int(channel * pitch + pitch / 2) - draw.text_width(text, 10) // 2
            painter.text((x, origin[1] - 12), text, fill=(90, 90, 90), font=draw.font(10))


def _with_ticks(body: np.ndarray, rows: int, cols: int, row_pitch: float, col_pitch: float) -> Image.Image:
    """`body` with row numbers on its left and column numbers above it."""
    left = draw.text_width(str(max(rows - 1, 0)), 10) + 4
    top = 14
    canvas = Image.new("RGB", (body.shape[1] + left, body.shape[0] + top), draw.BACKGROUND)
    canvas.paste(Image.fromarray(body), (left, top))
    _ticks(canvas, rows, row_pitch, (left, top), vertical=True)
    _ticks(canvas, cols, col_pitch, (left, top), vertical=False)
    return canvas


def _select(count: int, chosen: Sequence[int] | None, what: str) -> np.ndarray:
    if chosen is None:
        return np.arange(count)
    picked = np.asarray(list(chosen), dtype=np.int64)
    bad = picked[(picked < 0) | (picked >= count)]
    if picked.size == 0 or bad.size:
        raise ViscnnError(f"{what} {int(bad[0]) if bad.size else '(none)'} is out of range: there are {count}")
    return picked


def kernel_grid(model: nn.Module, graph: Graph, layer: str, scaling: Scaling = "filter", *, fold_bn: bool = True,
                outs: Sequence[int] | None = None, max_side: int = MAX_SIDE) -> Image.Image:
    """A picture of a layer's kernels.

    A first layer reading an RGB image shows each filter as a colour patch (0.5 grey = 0, each colour
    channel's weight added). Depthwise layers show one kernel per channel in a square grid. Other
    layers show a matrix: output channels down, input channels across, one kernel per cell.
    `scaling`: 'filter' (each output channel's kernels share a scale: which inputs matter most to
    it stays visible; the default), 'layer' (one scale for all, with a colour bar: a few strong
    filters can wash out the rest) or 'kernel' (each 2D kernel its own; for RGB filters, per filter). `outs` picks output channels (default all).
    """
    spec = conv_layer(graph, layer)
    weight = kernels(model, graph, layer, fold_bn=fold_bn)
    picked = _select(spec.out_channels, outs, "output channel")
    weight = weight[picked]
    n_out, n_in, kh, kw = weight.shape
    folded = "BN-folded " if fold_bn and bn_scale(model, graph, layer) is not None else ""
    rgb = n_in == 3 and spec.groups == 1 and spec.source_layers == [INPUT]
    if rgb:
        scale = _scale(weight, scaling, {"layer": (), "filter": (1, 2, 3), "kernel": (1, 2, 3)})
        cells = np.clip(0.5 + weight.transpose(0, 2, 3, 1) / (2 * np.reshape(scale, (-1, 1, 1, 1) if np.ndim(scale) else ())), 0, 1)
        cells = (cells * 255).round().astype(np.uint8)
        columns = int(math.ceil(math.sqrt(n_out)))
        zoom = draw.fit_factor(columns * kw, max_side // 2, most=24)
        body = draw.tile(draw.upscale(cells, zoom), columns, gap=2)
        what = f"{n_out} RGB filters {kh}x{kw} (grey = 0, red/green/blue = positive weight on that input channel)"
        picture = Image.fromarray(body)
    elif spec.in_per_group == 1:
        scale = _scale(weight, scaling, {"layer": (), "filter": (1, 2, 3), "kernel": (1, 2, 3)})
        cells = draw.diverging(weight[:, 0], np.reshape(scale, (-1, 1, 1)) if np.ndim(scale) else scale)
        columns = int(math.ceil(math.sqrt(n_out)))
        zoom = draw.fit_factor(columns * (kw + 1), max_side // 2, most=16)
        body = draw.tile(draw.upscale(cells, zoom), columns, gap=2, gap_colour=draw.DARK_GAP)
        kind = "depthwise kernels" if spec.groups > 1 else f"filters on {spec.in_channels} input channel,"
        what = f"{n_out} {kind} {kh}x{kw}, channel c at row c // {columns}, column c % {columns}"
        picture = Image.fromarray(body)
    else:
        scale = _scale(weight, scaling, {"layer": (), "filter": (1, 2, 3), "kernel": (2, 3)})
        colours = draw.diverging(weight, scale)  # [O, I, kh, kw, 3]
        gap = 0 if kh == kw == 1 else 1
        zoom = max(1, min(draw.fit_factor(n_in * (kw + gap), max_side, 16), draw.fit_factor(n_out * (kh + gap), max_side, 16)))
        gap = 2 if gap and zoom >= 4 else gap
        cells = np.full((n_out, n_in, kh * zoom + gap, kw * zoom + gap, 3), draw.DARK_GAP, np.uint8)
        cells[:, :, :kh * zoom, :kw * zoom] = draw.upscale(colours, zoom)
        body = cells.transpose(0, 2, 1, 3, 4).reshape(n_out * (kh * zoom + gap), n_in * (kw * zoom + gap), 3)
        picture = _with_ticks(body, n_out, n_in, kh * zoom + gap, kw * zoom + gap)
        what = f"{n_out} x {n_in} kernels {kh}x{kw}" + (f" (group of {spec.in_per_group} inputs per output)" if spec.groups > 1 else "")
    if scaling == "layer":
        footer = None if rgb else draw.colorbar(float(scale), caption="weight")
        scale_text = f"one scale for the layer, max |w| = {float(scale):.3g}"
    else:
        footer, scale_text = None, f"each {'filter' if scaling == 'filter' or rgb else 'kernel'} scaled to its own max |w|"
    title = f"{layer}: {folded}{what}; {scale_text}"
    if outs is not None:
        title += f"; output channels {_ranges(picked)}"
    if rgb or spec.in_per_group == 1:
        return draw.framed(picture, title, footer)
    return draw.framed(picture, title, footer, left_label="output channel", top_label="input channel (of this group)"
                       if spec.groups > 1 else "input channel")


def cached_kernel_grid(store: Store, loaded: LoadedModel, graph: Graph, layer: str, scaling: Scaling = "filter", *,
                       fold_bn: bool = True) -> tuple[Path, dict]:
    """`kernel_grid` as a PNG in the store (path, metadata), drawn once per model, layer and settings."""
    spec = conv_layer(graph, layer)
    parts = {"model": loaded.fingerprint(), "layer": spec.name, "scaling": scaling, "fold_bn": fold_bn, "version": 1}

    def render() -> tuple[Image.Image, dict]:
        picture = kernel_grid(loaded.module, graph, spec.name, scaling, fold_bn=fold_bn)
        return picture, {"layer": spec.name, "scaling": scaling, "fold_bn": fold_bn, "out_channels": spec.out_channels,
                         "in_per_group": spec.in_per_group, "kernel_size": list(spec.kernel_size)}

    return cached_image(store, "kernel-grid", parts, render)


def _ranges(values: np.ndarray) -> str:
    ordered = sorted({int(v) for v in values})
    parts: list[str] = []
    start: int | None = ordered[0]
    for prev, cur in zip(ordered, [*ordered[1:], None]):
        if cur != prev + 1:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = cur
    return ",".join(parts)


def kernel_heatmap(model: nn.Module, graph: Graph, layer: str, out: int, inp: int, *, fold_bn: bool = True,
                   cell: int = 40) -> Image.Image:
    """One kernel (edge `layer:out<-inp`, `inp` an absolute input channel) as a labelled heatmap with its values."""
    spec = conv_layer(graph, layer)
    if not 0 <= out < spec.out_channels:
        raise ViscnnError(f"output channel {out} is out of range: layer {layer} has {spec.out_channels}")
    if not 0 <= inp < spec.in_channels:
        raise ViscnnError(f"input channel {inp} is out of range: layer {layer} has {spec.in_channels}")
    group = out // spec.out_per_group
    local = inp - group * spec.in_per_group
    if not 0 <= local < spec.in_per_group:
        first = group * spec.in_per_group
        raise ViscnnError(f"there is no kernel {layer}:{out}<-{inp}: output channel {out} of this grouped conv reads "
                          f"input channels {first}-{first + spec.in_per_group - 1} only")
    kernel = kernels(model, graph, layer, fold_bn=fold_bn)[out, local]
    scale = float(np.abs(kernel).max(initial=0.0)) or 1.0
    kh, kw = kernel.shape
    cell = max(cell, 12, 120 // max(kh, kw))  # a 1x1 kernel still gets a readable square
    body = Image.fromarray(draw.upscale(draw.diverging(kernel, scale), cell))
    if kh * kw <= 121:
        painter = ImageDraw.Draw(body)
        for (y, x), value in np.ndenumerate(kernel):
            text = f"{value:.2g}"
            colour = (255, 255, 255) if abs(value) > 0.6 * scale else (0, 0, 0)
            painter.text((x * cell + (cell - draw.text_width(text, 10)) // 2, y * cell + cell // 2 - 6), text,
                         fill=colour, font=draw.font(10))
    folded = " BN-folded" if fold_bn and bn_scale(model, graph, layer) is not None else ""
    return draw.framed(body, f"{layer}:{out}<-{inp}{folded}", draw.colorbar(scale, width=max(120, body.width - 2)))


def activation_maps(model: nn.Module, graph: Graph, x: torch.Tensor, layers: Sequence[str] | None = None
                    ) -> dict[str, np.ndarray]:
    """Every (named) conv layer's BN-folded node maps for one model input `x` [C, H, W] or [1, C, H, W]:
    {layer: float32 [C, h, w]}, in call order; the forward pass stops after the last layer asked for."""
    names = check_layers(graph, layers)
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4 or x.shape[0] != 1:
        raise ViscnnError(f"activation maps take one image, not a tensor of shape {list(x.shape)}")
    expected = tuple(graph[INPUT].output_shape)
    if tuple(x.shape[1:]) != expected:
        raise ViscnnError(f"the model takes inputs of shape {list(expected)}, not {list(x.shape[1:])}")
    wanted, maps = set(names), {}

    def keep(layer: str, node_map: torch.Tensor) -> torch.Tensor:
        if layer in wanted:
            maps[layer] = node_map.detach()[0].float().cpu().numpy().copy()
        return node_map

    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    with torch.no_grad():
        Recorder(graph, stop_at=names[-1], edit_node=keep, keep=set(), copy=False).run(model, x.to(device))
    return {name: maps[name] for name in names if name in maps}


def image_input(image: Image.Image, preprocess: Preprocess) -> tuple[torch.Tensor, np.ndarray]:
    """(model input [C, S, S], the same as 0-1 pixels [S, S, C] for display) of a PIL image."""
    pixels = preprocess.pil_to_pixels(image)
    return preprocess.normalize(pixels), pixels.permute(1, 2, 0).numpy()


def activation_grid(maps: np.ndarray, layer: str = "", scaling: MapScaling = "layer", *, channels: int | None = None,
                    cell: int = 56) -> Image.Image:
    """A layer's maps [C, h, w] for one image as a grid of heatmaps (blue < 0 < red), channel c at
    row c // columns; `scaling` 'layer' (one scale for all maps: the 99.5th percentile of |a|, beyond which
    colours saturate; with a colour bar) or 'map' (each map scaled to its own max |a|)."""
    if maps.ndim != 3 or maps.shape[0] == 0:
        raise ViscnnError(f"activation maps must be [C, h, w] with C > 0, not shape {list(maps.shape)}")
    maps = maps[:channels] if channels else maps
    n, h, w = maps.shape
    if scaling == "layer":
        # a few extreme units would wash every map out to white: scale to a high percentile and clip
        scale: float | np.ndarray = float(np.percentile(np.abs(maps), CLIP_PERCENTILE)) or float(np.abs(maps).max()) or 1.0
    elif scaling == "map":
        scale = np.abs(maps).max(axis=(1, 2), keepdims=True)
        scale = np.where(scale > 0, scale, 1.0)
    else:
        raise ViscnnError(f"unknown scaling {scaling!r}: use layer or map")
    columns = int(math.ceil(math.sqrt(n)))
    zoom = max(1, min(cell // max(h, w), MAX_SIDE // (columns * max(h, w))))
    body = draw.tile(draw.upscale(draw.diverging(maps, scale), zoom), columns, gap=2, gap_colour=draw.DARK_GAP)
    if scaling == "layer":
        clipped = float(np.mean(np.abs(maps) > scale)) * 100
        footer = draw.colorbar(float(scale), caption="activation")
        scale_text = (f"one scale: {CLIP_PERCENTILE:g}th percentile of |a| = {float(scale):.3g} "
                      f"({clipped:.2g}% of units beyond it, up to {float(np.abs(maps).max()):.3g}, shown at full colour)")
    else:
        footer, scale_text = None, "each map scaled to its own max |a|"
    title = f"{layer}: {n} maps {h}x{w} (BN-folded, before any activation), channel c at row c // {columns}; {scale_text}"
    return draw.framed(Image.fromarray(body), title, footer)


def receptive_box(graph: Graph, layer: str, y: int, x: int, *, clip: bool = True) -> tuple[float, float, float, float]:
    """(top, left, bottom, right) in input pixels of unit (y, x) of `layer`'s map (clipped to the image)."""
    spec = conv_layer(graph, layer)
    height, width = spec.output_shape[-2:]
    if not (0 <= y < height and 0 <= x < width):
        raise ViscnnError(f"unit {y},{x} is outside the {height}x{width} map of layer {layer}")
    size = graph[INPUT].output_shape[-2:]
    rf = spec.receptive_field
    box = (0.0, 0.0, float(size[0]), float(size[1])) if rf is None or rf.whole_image else rf.box(y, x)
    if clip:
        box = (max(box[0], 0.0), max(box[1], 0.0), min(box[2], float(size[0])), min(box[3], float(size[1])))
    return box


def draw_box(pixels: np.ndarray | Image.Image, box: tuple[float, float, float, float], zoom: int = 2,
             colour: tuple[int, int, int] = (255, 40, 40)) -> Image.Image:
    """The image (0-1 [H, W, C] array or PIL) enlarged `zoom` times with `box` outlined."""
    image = pixels if isinstance(pixels, Image.Image) else Image.fromarray(
        (np.clip(pixels, 0, 1) * 255).round().astype(np.uint8).squeeze())
    image = image.convert("RGB").resize((image.width * zoom, image.height * zoom), Image.Resampling.NEAREST)
    top, left, bottom, right = (v * zoom for v in box)
    ImageDraw.Draw(image).rectangle([left, top, right - 1, bottom - 1], outline=colour, width=max(1, zoom))
    return image
