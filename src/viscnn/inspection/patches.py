"""Image patches of dataset examples: receptive-field windows, model-input pixels, node grids, layer sheets.

A patch is the unit's receptive field (from the graph) in the model's input pixels, cut as a window
of the field's size centred on the field (capped at the image's size, so the deep layers' fields of
hundreds of pixels show the whole image around the unit), with the parts outside the image grey:
every patch of a layer has the same size and the unit sits at its centre.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw

from viscnn.data.imageset import ImageSet
from viscnn.errors import ViscnnError
from viscnn.graph.types import ReceptiveField
from viscnn.inspection import draw
from viscnn.models.preprocess import Preprocess

if TYPE_CHECKING:
    from viscnn.inspection.examples import LayerExamples, TopK


def patch_size(rf: ReceptiveField | None, image_hw: tuple[int, int]) -> tuple[int, int]:
    """The common (h, w) of a layer's patches: its field's size, capped at the image's."""
    if rf is None or rf.whole_image:
        return image_hw
    return (min(int(math.ceil(rf.size[0])), image_hw[0]), min(int(math.ceil(rf.size[1])), image_hw[1]))


def patch_window(rf: ReceptiveField | None, y: int, x: int, image_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) in input pixels of unit (y, x)'s patch: `patch_size` centred on its field.

    It may reach outside the image (those pixels are shown grey)."""
    if rf is None or rf.whole_image:
        return (0, 0, image_hw[0], image_hw[1])
    h, w = patch_size(rf, image_hw)
    top_f, left_f, bottom_f, right_f = rf.box(y, x)
    top = int(math.floor((top_f + bottom_f - h) / 2 + 0.5))
    left = int(math.floor((left_f + right_f - w) / 2 + 0.5))
    return (top, left, top + h, left + w)


def cut(pixels: np.ndarray, window: tuple[int, int, int, int], fill: float = draw.OUTSIDE) -> np.ndarray:
    """The [h, w, C] window of an [H, W, C] image, the parts outside it set to `fill`."""
    top, left, bottom, right = window
    height, width, channels = pixels.shape
    out = np.full((bottom - top, right - left, channels), fill, pixels.dtype)
    y0, x0, y1, x1 = max(top, 0), max(left, 0), min(bottom, height), min(right, width)
    if y1 > y0 and x1 > x0:
        out[y0 - top:y1 - top, x0 - left:x1 - left] = pixels[y0:y1, x0:x1]
    return out


def model_pixels(image_set: ImageSet, preprocess: Preprocess, indices: Iterable[int],
                 batch_size: int = 32) -> dict[int, np.ndarray]:
    """The model-input pixels [S, S, C] (0-1, after resize and crop, before normalising) of the given images."""
    order = sorted({int(i) for i in indices})
    subset = ImageSet(image_set.name, [image_set.items[i] for i in order], image_set.tensor)
    pixels: dict[int, np.ndarray] = {}
    for x, _ in subset.batches(preprocess, batch_size):
        for image in preprocess.to_pixels(x):
            pixels[order[len(pixels)]] = image.permute(1, 2, 0).numpy()
    return pixels


class PixelCache:
    """Model-input pixels of an image set's images, loaded in batches on demand; the `capacity` most recently
    used are kept (float32 [S, S, C], about 0.6 MB each at 224 px)."""

    def __init__(self, image_set: ImageSet, preprocess: Preprocess, capacity: int = 256, batch_size: int = 32) -> None:
        self.image_set, self.preprocess = image_set, preprocess
        self.capacity, self.batch_size = max(1, capacity), batch_size
        self._pixels: OrderedDict[int, np.ndarray] = OrderedDict()

    def fetch(self, indices: Iterable[int]) -> dict[int, np.ndarray]:
        """{index: pixels} for the given images (loading those not held)."""
        wanted = list(dict.fromkeys(int(i) for i in indices))
        missing = [i for i in wanted if i not in self._pixels]
        if missing:
            self._pixels.update(model_pixels(self.image_set, self.preprocess, missing, self.batch_size))
        for i in wanted:
            self._pixels.move_to_end(i)
        found = {i: self._pixels[i] for i in wanted}
        while len(self._pixels) > max(self.capacity, len(wanted)):
            self._pixels.popitem(last=False)
        return found

    def __getitem__(self, index: int) -> np.ndarray:
        return self.fetch([index])[int(index)]


Pixels = Mapping[int, np.ndarray] | PixelCache


def node_patches(examples: LayerExamples, rf: ReceptiveField | None, channel: int, pixels: Pixels,
                 image_hw: tuple[int, int]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The exciting and the inhibiting patches ([h, w, C] 0-1 arrays) of one node, best first."""
    if isinstance(pixels, PixelCache):
        pixels = pixels.fetch(examples.excite.images[channel].tolist() + examples.inhibit.images[channel].tolist())

    def side(top: TopK) -> list[np.ndarray]:
        return [cut(pixels[int(top.images[channel, r])],
                    patch_window(rf, int(top.ys[channel, r]), int(top.xs[channel, r]), image_hw)) for r in range(top.k)]

    return side(examples.excite), side(examples.inhibit)


def _field_text(rf: ReceptiveField | None, patch_hw: tuple[int, int]) -> str:
    h, w = patch_hw
    if rf is not None and not rf.whole_image and (rf.size[0] > h or rf.size[1] > w):
        return f"receptive field {rf.size[0]:g} px, shown {h}x{w} px around the unit (red: its {rf.stride[0]:g} px cell)"
    return f"receptive field {h}x{w} px"


def mark_unit(tile: Image.Image, rf: ReceptiveField | None, patch_hw: tuple[int, int]) -> Image.Image:
    """Outline the unit's own cell (its map stride, at the patch centre) when its field was cut to the image's
    size: such patches hold far more than the unit mostly looks at."""
    if rf is None or rf.whole_image or (rf.size[0] <= patch_hw[0] and rf.size[1] <= patch_hw[1]):
        return tile
    sy, sx = tile.height / patch_hw[0], tile.width / patch_hw[1]
    half_h, half_w = max(rf.stride[0], 2.0) / 2 * sy, max(rf.stride[1], 2.0) / 2 * sx
    cy, cx = tile.height / 2, tile.width / 2
    ImageDraw.Draw(tile).rectangle([cx - half_w, cy - half_h, cx + half_w - 1, cy + half_h - 1], outline=(255, 40, 40))
    return tile


def node_grid(examples: LayerExamples, rf: ReceptiveField | None, channel: int, pixels: Pixels,
              image_hw: tuple[int, int], *, cell: int = 80, set_name: str = "") -> Image.Image:
    """One node's examples as a PNG-ready picture: exciting patches above, inhibiting ones (those that drive it
    below 0) below, each captioned with its activation and image index. A node that no image drives below 0
    gets a line saying so (and its lowest value) instead of least-exciting patches passed off as inhibiting."""
    excite, inhibit = node_patches(examples, rf, channel, pixels, image_hw)
    k = examples.excite.k
    negative = [r for r in range(examples.inhibit.k) if examples.inhibit.values[channel, r] < 0]
    h, w = excite[0].shape[:2]
    scale = cell / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    caption = 12
    label_w = max(draw.text_width("inhibit", 11), draw.text_width("excite", 11)) + 8
    body = Image.new("RGB", (label_w + k * (size[0] + 4), 2 * (size[1] + caption + 6)), draw.BACKGROUND)
    canvas = ImageDraw.Draw(body)
    rows = (("excite", excite, examples.excite, list(range(k))),
            ("inhibit", inhibit, examples.inhibit, negative))
    for row, (name, patches, top, ranks) in enumerate(rows):
        y0 = row * (size[1] + caption + 6)
        canvas.text((0, y0 + size[1] // 2 - 6), name, fill=(0, 0, 0), font=draw.font(11))
        for r in ranks:
            array = (np.clip(patches[r], 0, 1) * 255).round().astype(np.uint8)
            tile = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
            resample = Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.BILINEAR
            tile = mark_unit(tile.convert("RGB").resize(size, resample), rf, (h, w))
            x0 = label_w + r * (size[0] + 4)
            body.paste(tile, (x0, y0))
            text = f"{top.values[channel, r]:.3g} #{int(top.images[channel, r])}"
            canvas.text((x0, y0 + size[1] + 1), text, fill=(40, 40, 40), font=draw.font(10))
    if not negative:
        lowest = float(examples.inhibit.values[channel, 0])
        y0 = size[1] + caption + 6
        for line, text in enumerate(draw.wrap(f"no image drives it below 0: its lowest value is {lowest:.3g}",
                                              body.width - label_w - 4, 11)):
            canvas.text((label_w, y0 + size[1] // 2 - 12 + 14 * line), text, fill=(90, 90, 90), font=draw.font(11))
    where = f" ({set_name})" if set_name else ""
    windows = [patch_window(rf, int(top.ys[channel, r]), int(top.xs[channel, r]), image_hw)
               for _, _, top, ranks in rows for r in ranks]
    outside = any(top < 0 or left < 0 or bottom > image_hw[0] or right > image_hw[1] for top, left, bottom, right in windows)
    title = (f"{examples.layer}:{channel}  top {k} exciting / {len(negative)} inhibiting (below 0) of "
             f"{examples.image_count} images{where}; {_field_text(rf, (h, w))}{'; grey: outside the image' if outside else ''}")
    return draw.framed(body, title)


def layer_sheet(examples: LayerExamples, rf: ReceptiveField | None, pixels: Pixels, image_hw: tuple[int, int],
                channels: Sequence[int] | None = None, *, cell: int = 48, set_name: str = "") -> Image.Image:
    """One cell per node: its most exciting patch, numbered: a contact sheet of what a layer's nodes like."""
    chosen = list(range(examples.channels)) if channels is None else [int(c) for c in channels]
    bad = [c for c in chosen if not 0 <= c < examples.channels]
    if bad:
        raise ViscnnError(f"channel {bad[0]} is out of range: layer {examples.layer} has {examples.channels} channels")
    if not chosen:
        raise ViscnnError("no channels to draw")
    top = examples.excite
    if isinstance(pixels, PixelCache):
        pixels = pixels.fetch(top.images[chosen, 0].tolist())
    label = 11
    tiles = np.empty((len(chosen), cell + label, cell, 3), np.uint8)
    tiles[:] = draw.BACKGROUND
    for k, channel in enumerate(chosen):
        window = patch_window(rf, int(top.ys[channel, 0]), int(top.xs[channel, 0]), image_hw)
        patch = (np.clip(cut(pixels[int(top.images[channel, 0])], window), 0, 1) * 255).round().astype(np.uint8)
        tile = Image.fromarray(patch[:, :, 0] if patch.shape[2] == 1 else patch).convert("RGB")
        tile = tile.resize((cell, cell), Image.Resampling.NEAREST if tile.width <= cell else Image.Resampling.BILINEAR)
        tiles[k, :cell] = np.asarray(mark_unit(tile, rf, patch.shape[:2]))
    columns = max(1, min(len(chosen), int(math.ceil(math.sqrt(len(chosen) * (cell + label) / cell)))))
    body = Image.fromarray(draw.tile(tiles, columns, gap=3, gap_colour=draw.BACKGROUND))
    painter = ImageDraw.Draw(body)
    for k, channel in enumerate(chosen):
        x0, y0 = 3 + (k % columns) * (cell + 3), 3 + (k // columns) * (cell + label + 3) + cell
        painter.text((x0, y0), str(channel), fill=(60, 60, 60), font=draw.font(9))
    where = f" ({set_name})" if set_name else ""
    return draw.framed(body, f"{examples.layer}: each node's most exciting patch of {examples.image_count} images{where}; "
                             f"{_field_text(rf, patch_size(rf, image_hw))}")
