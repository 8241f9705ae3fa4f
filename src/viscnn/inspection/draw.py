"""Small drawing helpers shared by the inspection views and the dataset-example grids.

Everything works on whole arrays (a layer's kernels or maps are tiled with one reshape, never one
kernel at a time in Python) and returns uint8 RGB arrays or PIL images.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFont

BACKGROUND = (255, 255, 255)
GAP_COLOUR = (235, 235, 235)
EMPTY = (248, 248, 248)  # grid cells with nothing in them
DARK_GAP = (150, 150, 150)  # between cells of a blue-white-red grid, where light gaps vanish
OUTSIDE = 0.5  # grey for the parts of a patch that lie outside the image
DIVERGING = "RdBu_r"  # signed values: blue < 0 (white) < red; the page's web/src/palettes.ts holds the same table
SEQUENTIAL = "viridis"  # values of one sign: dark (low) to yellow (high)


@lru_cache(maxsize=4)
def _lut(name: str) -> np.ndarray:
    import matplotlib

    return (matplotlib.colormaps[name](np.linspace(0.0, 1.0, 256))[:, :3] * 255).round().astype(np.uint8)


def palette(name: str) -> np.ndarray:
    """The 256 colours (uint8 [256, 3]) of a matplotlib colour map, as every map of viscnn is drawn with them."""
    return _lut(name).copy()


def diverging(values: np.ndarray, scale: float | np.ndarray | None = None) -> np.ndarray:
    """RGB uint8 of `values` on a blue-white-red map (RdBu_r): -scale is blue, 0 white, +scale red (clipped).

    `scale` is a number or an array broadcasting against `values` (per-kernel scaling); None: the largest
    |value|. NaN is drawn as 0. The one diverging map of viscnn: the views, grids and the server's PNGs.
    """
    values = np.nan_to_num(np.asarray(values, dtype=np.float64))
    if scale is None:
        scale = float(np.abs(values).max()) if values.size else 1.0
    scale = np.where(np.asarray(scale) > 0, scale, 1.0)
    index = np.clip(np.round((values / scale + 1.0) * 127.5), 0, 255).astype(np.intp)
    return _lut(DIVERGING)[index]


def sequential(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """RGB uint8 of `values` on the sequential map (viridis) from `low` (dark) to `high` (yellow), clipped.
    NaN is drawn as `low`; a flat range (low == high) is all dark."""
    values = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=low)
    span = high - low
    t = (values - low) / span if span > 0 else np.zeros_like(values)
    return _lut(SEQUENTIAL)[np.clip(np.round(t * 255.0), 0, 255).astype(np.intp)]


@dataclass(frozen=True)
class ColourScale:
    """How values become colours: `diverging` (RdBu_r, -limit..+limit, white at 0) for signed values,
    `sequential` (viridis, low..high) for values of one sign. `flat`: every value is the same."""

    kind: Literal["diverging", "sequential"]
    low: float
    high: float
    flat: bool = False

    def to_json(self) -> dict:
        return {"kind": self.kind, "colormap": DIVERGING if self.kind == "diverging" else SEQUENTIAL,
                "low": self.low, "high": self.high, "flat": self.flat}


def choose_scale(values: np.ndarray) -> ColourScale:
    """The scale for a map: diverging (symmetric about 0) when it holds both signs, else sequential over its
    range, so an all-positive map shows its structure instead of a block of one red. NaN is ignored."""
    array = np.asarray(values, dtype=np.float64)
    finite = array[np.isfinite(array)]
    if finite.size == 0:
        return ColourScale("sequential", 0.0, 0.0, flat=True)
    low, high = float(finite.min()), float(finite.max())
    if low < 0.0 < high:
        limit = max(-low, high)
        return ColourScale("diverging", -limit, limit)
    return ColourScale("sequential", low, high, flat=low == high)


def colours(values: np.ndarray, scale: ColourScale | None = None) -> np.ndarray:
    """RGB uint8 of `values` on `scale` (default: `choose_scale(values)`)."""
    scale = scale or choose_scale(values)
    if scale.kind == "diverging":
        return diverging(values, scale.high if scale.high > 0 else None)
    return sequential(values, scale.low, scale.high)


def grey(values: np.ndarray) -> np.ndarray:
    """RGB uint8 of 0-1 values."""
    channel = np.clip(np.round(np.asarray(values) * 255.0), 0, 255).astype(np.uint8)
    return np.repeat(channel[..., None], 3, axis=-1)


@lru_cache(maxsize=8)
def font(size: int = 11) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's built-in font at `size` px (a bitmap font if FreeType is missing)."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()


def text_width(text: str, size: int = 11) -> int:
    left, _, right, _ = font(size).getbbox(text)
    return int(math.ceil(right - left))


def tile(cells: np.ndarray, columns: int, gap: int = 1, gap_colour: tuple[int, int, int] = GAP_COLOUR) -> np.ndarray:
    """[n, h, w, 3] uint8 cells -> one [rows*(h+gap)+gap, columns*(w+gap)+gap, 3] array, row-major."""
    n, h, w, _ = cells.shape
    rows = max(1, math.ceil(n / columns))
    padded = np.empty((rows * columns, h + gap, w + gap, 3), np.uint8)
    padded[:] = gap_colour
    padded[:n, :h, :w] = cells
    padded[n:] = EMPTY
    grid = padded.reshape(rows, columns, h + gap, w + gap, 3).transpose(0, 2, 1, 3, 4)
    grid = grid.reshape(rows * (h + gap), columns * (w + gap), 3)
    out = np.empty((grid.shape[0] + gap, grid.shape[1] + gap, 3), np.uint8)
    out[:] = gap_colour
    out[gap:, gap:] = grid
    return out


def upscale(array: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement of an [..., h, w, 3] array by an integer factor."""
    if factor <= 1:
        return array
    return np.repeat(np.repeat(array, factor, axis=-3), factor, axis=-2)


def fit_factor(pixels: int, target: int, most: int = 16) -> int:
    """The integer zoom that brings `pixels` nearest to `target` from below (1 to `most`)."""
    return int(max(1, min(most, target // max(1, pixels))))


def colorbar(scale: float | ColourScale, width: int = 160, height: int = 10, caption: str = "") -> Image.Image:
    """A horizontal bar of a colour scale (a number: blue-white-red from -scale to +scale), with its end
    values and a caption."""
    size = 10
    the_scale = scale if isinstance(scale, ColourScale) else ColourScale("diverging", -float(scale), float(scale))
    bar = colours(np.tile(np.linspace(the_scale.low, the_scale.high, width), (height, 1)), the_scale)
    image = Image.new("RGB", (width + 2, height + size + 6), BACKGROUND)
    image.paste(Image.fromarray(bar), (1, 0))
    draw = ImageDraw.Draw(image)
    low, high = f"{the_scale.low:.3g}", f"{the_scale.high:.3g}"
    draw.text((1, height + 2), low, fill=(0, 0, 0), font=font(size))
    draw.text((width + 1 - text_width(high, size), height + 2), high, fill=(0, 0, 0), font=font(size))
    if caption:
        draw.text(((width - text_width(caption, size)) // 2, height + 2), caption, fill=(60, 60, 60), font=font(size))
    return image


def wrap(text: str, width: int, size: int = 13) -> list[str]:
    """`text` broken at spaces (after '; ' first) into lines at most `width` px wide where possible."""
    lines: list[str] = []
    for part in text.split("; "):
        piece = part if not lines else None
        if lines and text_width(f"{lines[-1]}; {part}", size) <= width:
            lines[-1] = f"{lines[-1]}; {part}"
            continue
        line = ""
        for word in (piece or part).split(" "):
            candidate = f"{line} {word}" if line else word
            if line and text_width(candidate, size) > width:
                lines.append(line)
                line = word
            else:
                line = candidate
        lines.append(line)
    return lines or [""]


def framed(body: Image.Image, title: str, footer: Image.Image | None = None, *, margin: int = 6,
           left_label: str = "", top_label: str = "") -> Image.Image:
    """`body` under a title line (and optional axis labels), with an optional footer (e.g. a colorbar) below."""
    title_size, label_size = 13, 11
    side = label_size + 6 if left_label else 0
    lines = wrap(title, max(body.width + side, 480), title_size)
    head = len(lines) * (title_size + 4) + 2 + (label_size + 4 if top_label else 0)
    width = max([body.width + side, footer.width if footer else 0] + [text_width(line, title_size) for line in lines]) + 2 * margin
    height = head + body.height + (footer.height + margin if footer else 0) + 2 * margin
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for row, line in enumerate(lines):
        draw.text((margin, margin + row * (title_size + 4)), line, fill=(0, 0, 0), font=font(title_size))
    if top_label:
        draw.text((margin + side, margin + len(lines) * (title_size + 4)), top_label, fill=(60, 60, 60), font=font(label_size))
    image.paste(body, (margin + side, margin + head))
    if left_label:
        label = Image.new("RGB", (text_width(left_label, label_size) + 2, label_size + 4), BACKGROUND)
        ImageDraw.Draw(label).text((1, 0), left_label, fill=(60, 60, 60), font=font(label_size))
        rotated = label.rotate(90, expand=True)
        image.paste(rotated, (margin, margin + head + max(0, (body.height - rotated.height) // 2)))
    if footer is not None:
        image.paste(footer, (margin + side, margin + head + body.height + margin))
    return image
