"""Augmented training images for methods that optimise over many inputs (`learned`).

A few dozen photos make a few dozen inputs; random crops, flips and colour jitter
(torchvision.transforms.v2, each image its own draw) make thousands. Images arrive and leave in the
model's input space: they are un-normalised to 0-1 pixels with the model's mean and std, transformed,
and normalised again. A crop is resized to `size` pixels, which may be smaller than the model's input:
a conv net's kernels do not care about the map's size, and fewer pixels make every training step cheaper.
Held-out images are never augmented: only the images a method trains on pass through here.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torchvision.transforms import v2

from viscnn.errors import ViscnnError

AUGMENT_BELOW = 256  # training sets smaller than this are augmented by default (`augmentation_for`)
TRAIN_SIDE = 128  # ...on crops at most this many pixels wide


@dataclass(frozen=True)
class Augment:
    """Random crop (a share `scale` of the image's area, resized to `size` px), horizontal flip, colour jitter."""

    mean: Sequence[float]
    std: Sequence[float]
    size: int | None = None  # output side in pixels; None: the input's side
    scale: tuple[float, float] = (0.35, 1.0)
    flip: bool = True
    jitter: float = 0.3  # brightness, contrast and saturation factors in [1 - jitter, 1 + jitter] (no hue: slow)

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.std) or not self.mean:
            raise ViscnnError(f"augmentation needs one mean and one std per channel, not {list(self.mean)} and {list(self.std)}")
        if self.size is not None and self.size < 8:
            raise ViscnnError(f"augmented images must be at least 8 pixels wide, not {self.size}")
        if not 0 < self.scale[0] <= self.scale[1] <= 1:
            raise ViscnnError(f"crop scale must be 0 < low <= high <= 1, not {self.scale}")

    def transform(self, side: int) -> v2.Compose:
        steps: list[v2.Transform] = [v2.RandomResizedCrop(self.size or side, scale=self.scale, antialias=True)]
        if self.flip:
            steps.append(v2.RandomHorizontalFlip())
        if self.jitter > 0:
            colour = len(self.mean) == 3
            steps.append(v2.ColorJitter(brightness=self.jitter, contrast=self.jitter,
                                        saturation=self.jitter if colour else None))
        return v2.Compose(steps)

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """A fresh augmented copy of `images` [N, C, H, W] (model input space), one random draw per image,
        reproducible from `generator`."""
        if images.shape[1] != len(self.mean):
            raise ViscnnError(f"images have {images.shape[1]} channels but the augmentation's mean has {len(self.mean)}")
        mean = torch.tensor(self.mean, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
        pixels = (images * std + mean).clamp(0, 1)
        transform = self.transform(images.shape[-1])
        seed = int(torch.randint(2 ** 62, (1,), generator=generator))
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(seed)
            out = torch.stack([transform(image) for image in pixels])
        return (out - mean) / std


def augmentation_for(mean: Sequence[float], std: Sequence[float], side: int, count: int) -> Augment | None:
    """The default augmentation for `count` training images of `side` pixels in a model's input space (mean
    and std from its preprocessing): none for AUGMENT_BELOW images or more; else crops resized to at most
    TRAIN_SIDE pixels, flips and colour jitter."""
    if count >= AUGMENT_BELOW:
        return None
    return Augment(tuple(mean), tuple(std), size=min(side, TRAIN_SIDE))
