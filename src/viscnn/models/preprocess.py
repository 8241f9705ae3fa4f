"""Per-model input preprocessing, so callers never guess mean, std or size."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# EfficientNet-Lite was trained with TF's (x - 127) / 128 on 0-255 pixels.
TF_MEAN = (0.498, 0.498, 0.498)
TF_STD = (0.502, 0.502, 0.502)
INTERPOLATIONS = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
                  "bicubic": Image.Resampling.BICUBIC,
                  "lanczos": Image.Resampling.LANCZOS, "box": Image.Resampling.BOX, "hamming": Image.Resampling.HAMMING}


@dataclass(frozen=True)
class Preprocess:
    """How a model wants its images: resize shorter side, centre crop, scale to 0-1, normalise."""

    size: int = 224
    resize: int | None = 256
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    channels: int = 3
    interpolation: str = "bicubic"  # how images are resized (as the model's library evaluates it)

    def __post_init__(self) -> None:
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"unknown interpolation {self.interpolation!r}: use one of {', '.join(INTERPOLATIONS)}")

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.size, self.size)

    def pil_to_pixels(self, image: Image.Image) -> torch.Tensor:
        """A PIL image -> float tensor [C, size, size] of 0-1 pixels (not yet normalised)."""
        image = image.convert("L" if self.channels == 1 else "RGB")
        if self.resize:
            # shorter side to `resize` (as the model's library evaluates it), then centre crop
            w, h = image.size
            scale = self.resize / min(w, h)
            w, h = max(self.size, round(w * scale)), max(self.size, round(h * scale))
            image = image.resize((w, h), INTERPOLATIONS[self.interpolation])
            left, top = (w - self.size) // 2, (h - self.size) // 2
            image = image.crop((left, top, left + self.size, top + self.size))
        elif image.size != (self.size, self.size):
            image = image.resize((self.size, self.size), INTERPOLATIONS[self.interpolation])
        array = np.asarray(image, dtype=np.float32) / 255.0
        if array.ndim == 2:
            array = array[:, :, None]
        return torch.from_numpy(array.copy()).permute(2, 0, 1)

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        """0-1 pixels [..., C, H, W] -> the model's input space."""
        mean = torch.tensor(self.mean, dtype=pixels.dtype, device=pixels.device).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=pixels.dtype, device=pixels.device).view(-1, 1, 1)
        return (pixels - mean) / std

    def to_pixels(self, x: torch.Tensor) -> torch.Tensor:
        """The inverse of `normalize`: the model's input [..., C, H, W] -> 0-1 pixels (clamped)."""
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(-1, 1, 1)
        return (x * std + mean).clamp(0, 1)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return self.normalize(self.pil_to_pixels(image))
