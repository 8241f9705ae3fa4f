"""Random, differentiable, batched image transforms that make renders robust (Lucid's recipe).

Each image of a batch gets its own random pad offset, scale, rotation and jitter, drawn from a
seeded `torch.Generator` on the CPU (so a seed gives the same renders on any device). Given one
generator per image, image k's draws come from its own generator only, so they do not depend on which
other images share the batch (renders are then the same whatever the batch size). Everything is
torch ops on 0-1 pixels, so gradients flow back to the image parameters. The standard chain pads,
jitters, scales and rotates, jitters again, and resizes back to the size the model is fed.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F


Generators = torch.Generator | Sequence[torch.Generator]  # one for the batch, or one per image


class Transform(Protocol):
    def __call__(self, x: torch.Tensor, generator: Generators) -> torch.Tensor: ...


def draw(high: int, count: int, generator: Generators) -> torch.Tensor:
    """[count] random ints in [0, high): from one generator, or image k's from generator[k]."""
    if isinstance(generator, torch.Generator):
        return torch.randint(high, (count,), generator=generator)
    if len(generator) != count:
        raise ValueError(f"{len(generator)} generators for {count} images")
    return torch.cat([torch.randint(high, (1,), generator=g) for g in generator])


@dataclass(frozen=True)
class Pad:
    """Pad every side by `pixels` with a constant grey (0.5) or by reflection."""

    pixels: int
    mode: str = "constant"
    value: float = 0.5

    def __call__(self, x: torch.Tensor, generator: Generators) -> torch.Tensor:
        if self.pixels <= 0:
            return x
        p = self.pixels
        if self.mode == "constant":
            return F.pad(x, (p, p, p, p), mode="constant", value=self.value)
        return F.pad(x, (p, p, p, p), mode=self.mode)


@dataclass(frozen=True)
class Jitter:
    """Crop each image at its own random offset in [0, d]: the result is `d` pixels smaller."""

    pixels: int

    def __call__(self, x: torch.Tensor, generator: Generators) -> torch.Tensor:
        d = self.pixels
        if d <= 0:
            return x
        n, _, h, w = x.shape
        dy = draw(d + 1, n, generator).to(x.device)
        dx = draw(d + 1, n, generator).to(x.device)
        rows = dy[:, None] + torch.arange(h - d, device=x.device)[None, :]  # [n, h-d]
        cols = dx[:, None] + torch.arange(w - d, device=x.device)[None, :]  # [n, w-d]
        batch = torch.arange(n, device=x.device)[:, None, None]
        # advanced indexing puts the indexed dims first: [n, h-d, w-d, C]
        return x.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


@dataclass(frozen=True)
class ScaleRotate:
    """Zoom each image by a random factor from `scales` and turn it by a random angle (degrees).

    One affine resampling (bilinear, border pixels extended) does both; the size does not change.
    """

    scales: Sequence[float] = tuple(1 + (i - 5) / 50 for i in range(11))
    angles: Sequence[float] = tuple(range(-10, 11)) + (0,) * 5

    def __call__(self, x: torch.Tensor, generator: Generators) -> torch.Tensor:
        n = x.shape[0]
        scale = torch.tensor(self.scales, dtype=x.dtype)[draw(len(self.scales), n, generator)]
        angle = torch.tensor(self.angles, dtype=x.dtype)[draw(len(self.angles), n, generator)]
        theta = angle * (math.pi / 180)
        cos, sin = torch.cos(theta) / scale, torch.sin(theta) / scale
        zero = torch.zeros_like(cos)
        matrix = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1).to(x.device)
        grid = F.affine_grid(matrix, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


@dataclass(frozen=True)
class Resize:
    """Resize to `size` x `size` (bilinear), so the model gets the input size it was built for."""

    size: int

    def __call__(self, x: torch.Tensor, generator: Generators) -> torch.Tensor:
        if tuple(x.shape[-2:]) == (self.size, self.size):
            return x
        return F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)


def standard_transforms(size: int, strong: bool = False) -> list[Transform]:
    """Lucent's standard chain (pad 12, jitter 8, scale 0.9-1.1, rotate +-10 deg, jitter 4 at 224 px),
    scaled to `size`, then a resize back to `size`.

    `strong` doubles the jitter and widens scale (0.85-1.15) and rotation (+-15 deg): class logits come
    out as more recognisable objects (see docs/featurevis-lite0-sheet.png), at some cost in the value
    reached for single nodes.
    """
    unit = size / 224
    if strong:
        return [Pad(max(1, round(16 * unit))), Jitter(max(1, round(16 * unit))),
                ScaleRotate(scales=tuple(0.85 + 0.03 * i for i in range(11)), angles=tuple(range(-15, 16)) + (0,) * 5),
                Jitter(max(1, round(8 * unit))), Resize(size)]
    return [Pad(max(1, round(12 * unit))), Jitter(max(1, round(8 * unit))), ScaleRotate(),
            Jitter(max(1, round(4 * unit))), Resize(size)]


TRANSFORMS = ("standard", "strong", "none")


def apply(transforms: Sequence[Transform], x: torch.Tensor, generator: Generators) -> torch.Tensor:
    """Run the chain on a batch of pixels."""
    for transform in transforms:
        x = transform(x, generator)
    return x
