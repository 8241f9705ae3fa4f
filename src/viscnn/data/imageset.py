"""`ImageSet`: a named list of images (files, or rows of an in-memory tensor) with integer labels."""
from __future__ import annotations

import hashlib
import struct
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from viscnn.errors import ViscnnError

if TYPE_CHECKING:
    from viscnn.models.preprocess import Preprocess

# The one list of file extensions viscnn treats as images (lower case, with the dot).
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"})
UNKNOWN = -1
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, Image.DecompressionBombError)
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F"}


def is_image_file(path: Path) -> bool:
    """True if the file's extension is one of IMAGE_EXTENSIONS (the content is not checked)."""
    return path.suffix.lower() in IMAGE_EXTENSIONS


def _reason(exc: BaseException) -> str:
    if isinstance(exc, Image.UnidentifiedImageError):
        return "not a readable image (unknown or corrupt format)"
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def check_image(path: Path) -> None:
    """Raise ViscnnError unless the file's header identifies an image (cheap: no full decode)."""
    try:
        with Image.open(path) as image:
            image.verify()
    except _DECODE_ERRORS as exc:
        raise ViscnnError(f"cannot read image {path}: {_reason(exc)}") from exc


def read_image(path: Path) -> Image.Image:
    """Decode an image file fully (EXIF rotation applied); any fault is a ViscnnError naming the file."""
    try:
        with Image.open(path) as image:
            image.load()
            return ImageOps.exif_transpose(image)
    except _DECODE_ERRORS as exc:
        raise ViscnnError(f"cannot read image {path}: {_reason(exc)}") from exc


@dataclass(frozen=True)
class ImageItem:
    """One image: a file path, or an index into its set's tensor; label -1 means unknown."""

    source: Path | int
    label: int = UNKNOWN


def _fit(pixels: torch.Tensor, preprocess: Preprocess) -> torch.Tensor:
    """0-1 pixels [C, H, W] -> [channels, size, size], with the same geometry as Preprocess.pil_to_pixels."""
    pixels = _match_channels(pixels, preprocess.channels)
    size = preprocess.size
    batch = pixels.unsqueeze(0)
    if preprocess.resize:
        h, w = pixels.shape[1:]
        scale = preprocess.resize / min(h, w)
        new = (max(1, round(h * scale)), max(1, round(w * scale)))
        if new != (h, w):
            batch = F.interpolate(batch, size=new, mode="bicubic", align_corners=False, antialias=True)
        h, w = batch.shape[2:]
        if h >= size and w >= size:
            top, left = (h - size) // 2, (w - size) // 2
            batch = batch[:, :, top:top + size, left:left + size]
    if batch.shape[2:] != (size, size):
        batch = F.interpolate(batch, size=(size, size), mode="bicubic", align_corners=False, antialias=True)
    return batch[0].clamp(0, 1)


def _match_channels(pixels: torch.Tensor, channels: int) -> torch.Tensor:
    if pixels.shape[0] == channels:
        return pixels
    if channels == 1:
        weights = torch.tensor([0.299, 0.587, 0.114], dtype=pixels.dtype).view(3, 1, 1)
        return (pixels * weights).sum(0, keepdim=True)
    return pixels.expand(channels, -1, -1)


class ImageSet:
    """A named list of images with integer labels (-1 = unknown).

    Items are file paths, or indices into ``tensor`` (uint8 or 0-1 float pixels, [N, C, H, W]), which
    several sets may share. Tensor images are taken as they are: a tensor whose height and width differ
    from the model's input is an error unless ``resize`` allows resizing it (as image files are: shorter
    side to the model's resize, centre crop); a channel count that differs is converted and said once.
    """

    def __init__(self, name: str, items: Sequence[ImageItem], tensor: torch.Tensor | None = None, *,
                 resize: bool = False) -> None:
        if tensor is None and any(isinstance(item.source, int) for item in items):
            raise ValueError(f"image set {name!r} has tensor items but no tensor")
        self.name = name
        self.items = list(items)
        self.tensor = tensor
        self.resize = resize
        self._said: set[str] = set()

    def subset(self, items: Sequence[ImageItem], name: str | None = None) -> ImageSet:
        """Another set over some of these items (same tensor, same resize permission)."""
        return ImageSet(self.name if name is None else name, items, self.tensor, resize=self.resize)

    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        return f"ImageSet({self.name!r}, {len(self)} images)"

    @property
    def labels(self) -> list[int]:
        """The label of each item, in order (-1 = unknown)."""
        return [item.label for item in self.items]

    def _tensor_pixels(self, index: int) -> torch.Tensor:
        assert self.tensor is not None
        row = self.tensor[index]
        return row.float() / 255.0 if row.dtype == torch.uint8 else row.float()

    def shapes(self) -> set[tuple[int, int, int]]:
        """The distinct (channels, height, width) of the images, read from file headers (no decoding)."""
        found: set[tuple[int, int, int]] = set()
        if self.tensor is not None and any(isinstance(item.source, int) for item in self.items):
            c, h, w = (int(v) for v in self.tensor.shape[1:4])
            found.add((c, h, w))
        for item in self.items:
            if isinstance(item.source, int):
                continue
            try:
                with Image.open(item.source) as image:
                    found.add((1 if image.mode in _GRAY_MODES else 3, image.height, image.width))
            except _DECODE_ERRORS as exc:
                raise ViscnnError(f"cannot read image {item.source}: {_reason(exc)}") from exc
        return found

    def load_pixels(self, i: int) -> torch.Tensor:
        """Image ``i`` as 0-1 float pixels [C, H, W] at its own size (C is 1 for grey images, else 3)."""
        source = self.items[i].source
        if isinstance(source, int):
            return self._tensor_pixels(source)
        image = read_image(source)
        image = image.convert("L" if image.mode in _GRAY_MODES else "RGB")
        array = np.asarray(image, dtype=np.float32) / 255.0
        if array.ndim == 2:
            array = array[:, :, None]
        return torch.from_numpy(array.copy()).permute(2, 0, 1)

    def _model_input(self, item: ImageItem, preprocess: Preprocess) -> torch.Tensor:
        if isinstance(item.source, int):
            pixels = self._tensor_pixels(item.source)
            self._check_tensor(pixels, preprocess)
            if not self.resize:
                return preprocess.normalize(_match_channels(pixels, preprocess.channels))
            return preprocess.normalize(_fit(pixels, preprocess))
        return preprocess(read_image(item.source))

    def _check_tensor(self, pixels: torch.Tensor, preprocess: Preprocess) -> None:
        c, h, w = pixels.shape
        if (h, w) != (preprocess.size, preprocess.size) and not self.resize:
            raise ViscnnError(f"image set {self.name!r} holds {h}x{w} tensor images but the model takes "
                              f"{preprocess.size}x{preprocess.size} inputs: resize them yourself, or pass --resize "
                              f"to let viscnn resize them as it does image files")
        if c != preprocess.channels and "channels" not in self._said:
            self._said.add("channels")
            how = "converted to grey (luminance)" if preprocess.channels == 1 else \
                f"repeated on all {preprocess.channels} channels"
            print(f"viscnn: note: image set {self.name!r} holds {c}-channel tensor images; the model takes "
                  f"{preprocess.channels}: each is {how}", file=sys.stderr)

    def batches(self, preprocess: Preprocess, batch_size: int = 32) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield ``(x, labels)``: x the normalised model input [B, C, H, W], labels int64 [B]."""
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        for start in range(0, len(self.items), batch_size):
            chunk = self.items[start:start + batch_size]
            x = torch.stack([self._model_input(item, preprocess) for item in chunk])
            yield x, torch.tensor([item.label for item in chunk], dtype=torch.int64)

    def hash(self) -> str:
        """A stable hash of the content: each image's file bytes or tensor bytes, and its label, in order."""
        digest = hashlib.sha256()
        for item in self.items:
            if isinstance(item.source, int):
                assert self.tensor is not None
                row = self.tensor[item.source].contiguous()
                digest.update(f"tensor {row.dtype} {tuple(row.shape)}\n".encode())
                digest.update(row.numpy().tobytes())
            else:
                try:
                    data = item.source.read_bytes()
                except OSError as exc:
                    raise ViscnnError(f"cannot read image {item.source}: {exc.strerror or exc}") from exc
                digest.update(f"file {len(data)}\n".encode())
                digest.update(data)
            digest.update(f"label {item.label}\n".encode())
        return digest.hexdigest()[:16]
