"""Image-specific composition paths (seed: visualizing-feature-composition.txt).

For one image and a root unit (layer, channel, y, x): which channels of the layers below drive it,
by activation x gradient of the root unit (summed over each channel's map), followed layer by layer:
each chosen channel becomes a unit at the position where its activation x gradient peaks, and the
channels of its own source layers that most drive that unit are its children.

Each child carries a 'local visualization path' saliency: the gradient of its parent unit with
respect to the input, with the gradient at the child's layer masked to the child's channel (the
other channels' gradient maps set to zero; the forward pass is left intact). It is what the parent
sees through that one channel, so it stays inside the parent unit's receptive field. The root's
saliency is its plain input gradient.

Maps are the graph's node maps (conv output, BatchNorm folded in, before the nonlinearity). A layer
fed by several conv layers (a residual add, a concat) draws its children from all of them.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from viscnn.errors import ViscnnError
from viscnn.graph import Graph, Unit
from viscnn.graph.ids import check_unit
from viscnn.graph.recorder import Recorder

if TYPE_CHECKING:
    from PIL import Image

Box = tuple[float, float, float, float]


@dataclass
class CompositionNode:
    """A unit in the composition tree.

    `activation` is the unit's value; `contribution` the sum over its channel's map of activation x
    gradient of the parent unit (for the root: its activation); `peak` that product at this unit's
    position. `saliency` [C, H, W] is the parent's input gradient through this channel only (the
    root's: its own input gradient).
    """

    unit: Unit
    activation: float
    contribution: float
    peak: float
    saliency: torch.Tensor = field(repr=False)
    children: list[CompositionNode] = field(default_factory=list)

    def walk(self, path: tuple[int, ...] = ()) -> Iterator[tuple[tuple[int, ...], CompositionNode]]:
        """(path of child indices from the root, node), depth first, the root first."""
        yield path, self
        for k, child in enumerate(self.children):
            yield from child.walk(path + (k,))

    def to_json(self, names: dict[int, str] | None = None) -> dict:
        data = {"unit": str(self.unit), "layer": self.unit.layer, "channel": self.unit.channel, "y": self.unit.y,
                "x": self.unit.x, "activation": self.activation, "contribution": self.contribution, "peak": self.peak}
        if names and id(self) in names:
            data["saliency"] = names[id(self)]
        data["children"] = [child.to_json(names) for child in self.children]
        return data


@dataclass
class Composition:
    """The composition tree of a root unit on one image, and the root's top channels in every lower layer."""

    model: str
    image: str
    top_k: int
    depth: int
    root: CompositionNode
    layers: dict[str, list[dict]]  # layer -> [{"channel", "contribution", "y", "x"}], best first

    def paths(self) -> list[list[str]]:
        """Every root-to-leaf path as unit names."""
        result: list[list[str]] = []

        def down(node: CompositionNode, prefix: list[str]) -> None:
            prefix = prefix + [str(node.unit)]
            if not node.children:
                result.append(prefix)
            for child in node.children:
                down(child, prefix)

        down(self.root, [])
        return result

    def to_json(self, saliency_files: dict[int, str] | None = None) -> dict:
        """The tree (with saliency file names when given), the paths and the per-layer top channels."""
        return {"model": self.model, "image": self.image, "root": str(self.root.unit), "top_k": self.top_k,
                "depth": self.depth, "tree": self.root.to_json(saliency_files), "paths": self.paths(),
                "layers": self.layers}


def _forward(model: nn.Module, graph: Graph, x: torch.Tensor, layer: str) -> dict[str, torch.Tensor]:
    recorder = Recorder(graph, stop_at=layer)
    with torch.enable_grad():
        recorder.run(model, x)
    return {name: call.ready_map() for name, call in recorder.calls.items()}


def _sources(graph: Graph, layer: str, maps: dict[str, torch.Tensor]) -> list[str]:
    return [name for name in graph[layer].source_layers if name in maps and graph[name].kind == "conv"]


def compose(model: nn.Module, graph: Graph, image: torch.Tensor, unit: Unit, *, top_k: int = 3, depth: int = 3,
            model_name: str = "", image_name: str = "") -> Composition:
    """The composition tree of `unit` on `image` (a preprocessed model input [C, H, W]).

    `unit` comes from `viscnn.graph.ids.parse_unit`; without a position it is where the channel's map
    peaks on this image. Each node gets at most `top_k` children: the channels of its source layers
    with the largest signed contributions, zero ones left out (so a negative one appears only when
    fewer than `top_k` are positive, e.g. below a depthwise conv, where one channel feeds each unit).
    The tree goes `depth` levels below the root.
    """
    if top_k < 1:
        raise ViscnnError(f"top-k must be at least 1, not {top_k}")
    if depth < 0:
        raise ViscnnError(f"depth must be at least 0, not {depth}")
    check_unit(unit, graph)
    layer, channel, position = unit.layer, unit.channel, unit.position
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    x = image[None].to(device).float().requires_grad_(True)
    maps = _forward(model, graph, x, layer)
    height, width = maps[layer].shape[-2:]
    if position is None:
        position = divmod(int(maps[layer][0, channel].argmax()), width)
    if not (0 <= position[0] < height and 0 <= position[1] < width):
        raise ViscnnError(f"position {position[0]},{position[1]} is outside the {height}x{width} map of layer {layer}")
    root_unit = Unit(layer, channel, *position)
    value = maps[layer][0, channel, position[0], position[1]]
    upstream = [name for name in graph.upstream(layer) if name in maps and graph[name].kind == "conv"]
    grads = torch.autograd.grad(value, [maps[n] for n in upstream] + [x], retain_graph=True, allow_unused=True)
    layers = {}
    for name, grad in zip(upstream, grads[:-1]):
        if grad is not None:
            product = (maps[name] * grad)[0].detach()
            scores = product.sum(dim=(1, 2))
            best = scores.topk(min(top_k, scores.numel()))
            layers[name] = [_entry(product, int(c), float(s)) for s, c in zip(best.values, best.indices)]
    activation = float(value.detach())
    root = CompositionNode(root_unit, activation, activation, activation, grads[-1][0].detach().cpu())
    _expand(root, graph, maps, x, top_k, depth)
    return Composition(model_name, image_name, top_k, depth, root, layers)


def _entry(product: torch.Tensor, channel: int, score: float) -> dict:
    y, x = divmod(int(product[channel].argmax()), product.shape[-1])
    return {"channel": channel, "contribution": score, "y": y, "x": x}


def _expand(node: CompositionNode, graph: Graph, maps: dict[str, torch.Tensor], x: torch.Tensor, top_k: int,
            remaining: int) -> None:
    sources = _sources(graph, node.unit.layer, maps)
    if remaining <= 0 or not sources:
        return
    unit = node.unit
    value = maps[unit.layer][0, unit.channel, unit.y, unit.x]
    grads = torch.autograd.grad(value, [maps[s] for s in sources], retain_graph=True, allow_unused=True)
    candidates: list[tuple[float, int, int]] = []  # (contribution, source index, channel)
    products = []
    for k, (source, grad) in enumerate(zip(sources, grads)):
        grad = grad if grad is not None else torch.zeros_like(maps[source])
        product = (maps[source] * grad)[0].detach()
        products.append((grad, product))
        candidates.extend((float(s), k, c) for c, s in enumerate(product.sum(dim=(1, 2)).tolist()))
    candidates.sort(key=lambda item: (-item[0], item[1], item[2]))
    for contribution, k, channel in [c for c in candidates if c[0] != 0.0][:top_k]:
        source = sources[k]
        grad, product = products[k]
        sign = 1.0 if contribution > 0 else -1.0  # the peak: the strongest point of the contribution's own sign
        y, xx = divmod(int((product[channel] * sign).argmax()), product.shape[-1])
        masked = torch.zeros_like(grad)
        masked[:, channel] = grad[:, channel]
        saliency = torch.autograd.grad(maps[source], x, grad_outputs=masked, retain_graph=True)[0][0].detach().cpu()
        child = CompositionNode(Unit(source, channel, y, xx), float(maps[source][0, channel, y, xx].detach()), contribution,
                                float(product[channel, y, xx]), saliency)
        node.children.append(child)
        _expand(child, graph, maps, x, top_k, remaining - 1)


def saliency_image(pixels: torch.Tensor, saliency: torch.Tensor, boxes: Sequence[tuple[Box, tuple[int, int, int]]] = (),
                   scale: int = 1, title: str = "") -> Image.Image:
    """A PIL image: the input (0-1 pixels [C, H, W]) and its saliency, side by side, with `boxes` (input
    pixels, colour) drawn on both (e.g. the receptive fields of the parent and of the unit).

    RGB saliency is drawn as a gradient image (0.5 + 0.5 g / s per colour); grey saliency in red
    (positive) and blue (negative) on white; s is the 99.5th percentile of |g| (a few pixels saturate).
    """
    from PIL import Image, ImageDraw

    g = saliency.float()
    if g.shape[0] == 3:
        heat = (0.5 + 0.5 * g / _scale(g)).clamp(0, 1)
    else:
        h = (g.sum(0) / _scale(g.sum(0))).clamp(-1, 1)
        pos, neg = h.clamp(min=0), (-h).clamp(min=0)
        heat = torch.stack([1 - neg, 1 - h.abs(), 1 - pos]).clamp(0, 1)
    panels = [pixels.expand(3, -1, -1), heat]
    height, width = pixels.shape[-2:]
    header = 14 if title else 0
    canvas = Image.new("RGB", (2 * width * scale + 6, height * scale + 4 + header), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for k, panel in enumerate(panels):
        array = (panel.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        left = 2 + k * (width * scale + 2)
        canvas.paste(Image.fromarray(array).resize((width * scale, height * scale), Image.Resampling.NEAREST), (left, header + 2))
        for box, colour in boxes:
            top, lft, bottom, right = (max(0.0, min(v, limit)) * scale for v, limit in zip(box, (height, width, height, width)))
            draw.rectangle([left + lft, header + 2 + top, left + right - 1, header + 2 + bottom - 1], outline=colour)
    if title:
        draw.text((2, 1), title, fill=(0, 0, 0))
    return canvas


def field_box(graph: Graph, unit: Unit) -> Box | None:
    """`unit`'s receptive field (top, left, bottom, right) in input pixels, not clipped; None when it sees
    the whole image or its position is left open (every unit of a composition tree has one)."""
    rf = graph[unit.layer].receptive_field
    position = unit.position
    return None if rf is None or rf.whole_image or position is None else rf.box(*position)


def _scale(g: torch.Tensor) -> float:
    """The 99.5th percentile of |g| (the largest value when that is 0; 1 for an all-zero g)."""
    values = g.abs().flatten()
    scale = float(values.quantile(0.995)) if values.numel() <= 1 << 24 else float(values.max())
    return scale or float(values.max()) or 1.0
