"""Random, differentiable, batched image transforms that make renders robust (Lucid's recipe).

Each image of a batch gets its own random pad offset, scale, rotation and jitter, drawn from a
seeded `torch.Generator` on the CPU (so a seed gives the same renders on any device). Given one
generator per image, image k's draws come from its own generator only, so they do not depend on which
other images share the batch (renders are then the same whatever the batch size). Everything is
torch ops on 0-1 pixels, so gradients flow back to the image parameters. The standard chain pads,
jitters, scales and rotates, jitters again, and resizes back to the size the model is fed.

`apply` runs such a chain as ONE bilinear resampling: every transform here but a reflection pad is an
affine map of pixel coordinates (`Affine.inverse`), so their composition is too. That draws the same
random numbers as running them one by one and gives the same image up to interpolation (one bilinear
step instead of two); at 224 px it is 4x cheaper than the chain, forward and backward (the crops'
indexing and the resize are gone). `sequential` runs the chain one transform at a time.
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


class Affine(Transform, Protocol):
    def inverse(self, n: int, h: int, w: int, generator: Generators) -> tuple[torch.Tensor, tuple[int, int]]:
        """[n, 3, 3] maps from output to input pixel coordinates (x, y, 1; pixel centres at integers),
        drawing what `__call__` draws, and the output's (height, width)."""
        ...


def _translation(n: int, dx: torch.Tensor | float, dy: torch.Tensor | float) -> torch.Tensor:
    m = torch.eye(3).repeat(n, 1, 1)
    m[:, 0, 2], m[:, 1, 2] = dx, dy
    return m


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

    def inverse(self, n: int, h: int, w: int, generator: Generators) -> tuple[torch.Tensor, tuple[int, int]]:
        p = max(0, self.pixels)
        return _translation(n, -p, -p), (h + 2 * p, w + 2 * p)


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

    def inverse(self, n: int, h: int, w: int, generator: Generators) -> tuple[torch.Tensor, tuple[int, int]]:
        d = max(0, self.pixels)
        if d == 0:
            return torch.eye(3).repeat(n, 1, 1), (h, w)
        dy, dx = draw(d + 1, n, generator), draw(d + 1, n, generator)
        return _translation(n, dx.float(), dy.float()), (h - d, w - d)


@dataclass(frozen=True)
class ScaleRotate:
    """Zoom each image by a random factor from `scales` and turn it by a random angle (degrees).

    One affine resampling (bilinear, border pixels extended) does both; the size does not change.
    """

    scales: Sequence[float] = tuple(1 + (i - 5) / 50 for i in range(11))
    angles: Sequence[float] = tuple(range(-10, 11)) + (0,) * 5

    def _normalised(self, n: int, generator: Generators) -> torch.Tensor:
        """[n, 2, 2]: output to input in grid_sample's normalised coordinates."""
        scale = torch.tensor(self.scales)[draw(len(self.scales), n, generator)]
        angle = torch.tensor(self.angles)[draw(len(self.angles), n, generator)]
        theta = angle * (math.pi / 180)
        cos, sin = torch.cos(theta) / scale, torch.sin(theta) / scale
        return torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)

    def __call__(self, x: torch.Tensor, generator: Generators) -> torch.Tensor:
        n = x.shape[0]
        matrix = F.pad(self._normalised(n, generator), (0, 1)).to(x.device, x.dtype)
        grid = F.affine_grid(matrix, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def inverse(self, n: int, h: int, w: int, generator: Generators) -> tuple[torch.Tensor, tuple[int, int]]:
        to_unit = torch.diag(torch.tensor([2 / w, 2 / h]))  # pixels from the centre -> normalised
        linear = torch.linalg.inv(to_unit) @ self._normalised(n, generator) @ to_unit
        centre = torch.tensor([(w - 1) / 2, (h - 1) / 2])
        m = torch.eye(3).repeat(n, 1, 1)
        m[:, :2, :2] = linear
        m[:, :2, 2] = centre - (linear @ centre)
        return m, (h, w)


@dataclass(frozen=True)
class Resize:
    """Resize to `size` x `size` (bilinear), so the model gets the input size it was built for."""

    size: int

    def __call__(self, x: torch.Tensor, generator: Generators) -> torch.Tensor:
        if tuple(x.shape[-2:]) == (self.size, self.size):
            return x
        return F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)

    def inverse(self, n: int, h: int, w: int, generator: Generators) -> tuple[torch.Tensor, tuple[int, int]]:
        sx, sy = w / self.size, h / self.size  # align_corners=False: in = (out + 0.5) * scale - 0.5
        m = torch.diag(torch.tensor([sx, sy, 1.0])).repeat(n, 1, 1)
        m[:, 0, 2], m[:, 1, 2] = 0.5 * sx - 0.5, 0.5 * sy - 0.5
        return m, (self.size, self.size)


def standard_transforms(size: int, *, strong: bool = False) -> list[Transform]:
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


def sequential(transforms: Sequence[Transform], x: torch.Tensor, generator: Generators) -> torch.Tensor:
    """Run the chain on a batch of pixels, one transform after another."""
    for transform in transforms:
        x = transform(x, generator)
    return x


def _affine(transform: Transform, leading: bool) -> bool:
    if isinstance(transform, Pad):  # only a grey pad opening a run: it then says what lies outside the image
        return leading and transform.mode == "constant"
    return hasattr(transform, "inverse")


def resample(x: torch.Tensor, run: Sequence[Affine], generator: Generators) -> torch.Tensor:
    """A run of affine transforms as one bilinear resampling of `x`. Outside the image: the leading
    Pad's value if the run opens with a grey Pad, else the nearest border pixel (as ScaleRotate does)."""
    n, _, h, w = x.shape
    matrix, (out_h, out_w) = torch.eye(3).repeat(n, 1, 1), (h, w)
    for transform in run:  # output -> input maps compose right to left: input = M1 M2 ... Mk output
        step, (out_h, out_w) = transform.inverse(n, out_h, out_w, generator)
        matrix = matrix @ step
    ys, xs = torch.meshgrid(torch.arange(out_h, dtype=torch.float32), torch.arange(out_w, dtype=torch.float32),
                            indexing="ij")
    m = matrix[:, :2, :, None, None]  # elementwise, not a matmul: an image's grid must not depend on the batch
    source_x = m[:, 0, 0] * xs + m[:, 0, 1] * ys + m[:, 0, 2]  # input pixel coordinates [n, out_h, out_w]
    source_y = m[:, 1, 0] * xs + m[:, 1, 1] * ys + m[:, 1, 2]
    grid = torch.stack([(2 * source_x + 1) / w - 1, (2 * source_y + 1) / h - 1], -1).to(x.device, x.dtype)
    lead = run[0]
    if isinstance(lead, Pad) and lead.pixels > 0:
        shifted = F.grid_sample(x - lead.value, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return shifted + lead.value
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def apply(transforms: Sequence[Transform], x: torch.Tensor, generator: Generators) -> torch.Tensor:
    """Run the chain on a batch of pixels; each run of two or more affine transforms is one resampling."""
    k = 0
    while k < len(transforms):
        end = k
        while end < len(transforms) and _affine(transforms[end], end == k):
            end += 1
        if end - k >= 2:
            x = resample(x, transforms[k:end], generator)  # type: ignore[arg-type]
            k = end
        else:
            x = transforms[k](x, generator)
            k += 1
    return x
