"""Image parametrisations: a Fourier-space image with 1/f scaling and decorrelated colour (Lucid's).

Pixels are optimised through their 2D spectrum, each frequency scaled by 1/f^decay so that every
frequency band learns at a similar rate (a plain pixel image piles up high-frequency noise). For RGB
models the three channels are parametrised in a decorrelated colour basis (the square root of the
ImageNet colour covariance, as in Lucid) and mapped back to RGB before a sigmoid makes 0-1 pixels.
1-channel models are parametrised in grey directly.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

# sqrt of ImageNet's RGB colour covariance (Lucid's `color_correlation_svd_sqrt`)
COLOR_CORRELATION_SVD_SQRT = torch.tensor([[0.26, 0.09, 0.02],
                                           [0.27, 0.00, -0.05],
                                           [0.27, -0.09, 0.03]])
_MAX_NORM = float(COLOR_CORRELATION_SVD_SQRT.norm(dim=0).max())


def _noise(shape: tuple[int, ...], batch: int, generators: Sequence[torch.Generator] | None) -> torch.Tensor:
    """[batch, *shape] standard normal noise, image k drawn from generators[k] (so it does not depend on batch)."""
    if generators is None:
        return torch.randn((batch, *shape))
    if len(generators) != batch:
        raise ValueError(f"{len(generators)} generators for {batch} images")
    return torch.stack([torch.randn(shape, generator=g) for g in generators])


def frequencies(height: int, width: int) -> torch.Tensor:
    """|f| of every entry of an rfft2 spectrum of an image of this size, [height, width // 2 + 1]."""
    fy = torch.fft.fftfreq(height)[:, None]
    fx = torch.fft.rfftfreq(width)[None, :]
    return torch.sqrt(fx * fx + fy * fy)


class FFTImage(nn.Module):
    """`batch` images of `channels` x `size` x `size` 0-1 pixels, parametrised by a scaled spectrum.

    Calling the module returns pixels [batch, channels, size, size]; `parameters()` is what to optimise.
    `generators` (one per image) seed the initial spectrum: small noise, so renders start from grey.
    """

    scale: torch.Tensor  # buffers (registered in __init__)
    colour: torch.Tensor

    def __init__(self, batch: int, channels: int, size: int | tuple[int, int], *, sd: float = 0.01,
                 decay_power: float = 1.0, decorrelate: bool = True, generators: Sequence[torch.Generator] | None = None,
                 device: str | torch.device = "cpu") -> None:
        super().__init__()
        height, width = (size, size) if isinstance(size, int) else size
        self.shape = (batch, channels, height, width)
        freqs = frequencies(height, width)
        scale = 1.0 / torch.clamp(freqs, min=1.0 / max(height, width)) ** decay_power
        # with an orthonormal inverse FFT this is Lucid's scaling (its sqrt(w*h) undoes TF's 1/(w*h) irfft)
        self.register_buffer("scale", scale.to(device))
        init = _noise((channels, *freqs.shape, 2), batch, generators) * sd
        self.spectrum = nn.Parameter(init.to(device))
        self.decorrelate = decorrelate and channels == 3
        self.register_buffer("colour", (COLOR_CORRELATION_SVD_SQRT / _MAX_NORM).to(device))

    def forward(self) -> torch.Tensor:
        height, width = self.shape[-2:]
        spectrum = torch.view_as_complex(self.spectrum) * self.scale
        image = torch.fft.irfft2(spectrum, s=(height, width), norm="ortho") / 4.0
        if self.decorrelate:
            image = torch.einsum("nchw,dc->ndhw", image, self.colour)
        return torch.sigmoid(image)


class PixelImage(nn.Module):
    """The naive parametrisation (pixels through a sigmoid), kept for comparisons and tests."""

    def __init__(self, batch: int, channels: int, size: int, *, sd: float = 0.01,
                 generators: Sequence[torch.Generator] | None = None, device: str | torch.device = "cpu") -> None:
        super().__init__()
        self.shape = (batch, channels, size, size)
        self.logits = nn.Parameter((_noise(self.shape[1:], batch, generators) * sd).to(device))

    def forward(self) -> torch.Tensor:
        return torch.sigmoid(self.logits)


def image_param(batch: int, channels: int, size: int, *, kind: str = "fft", seeds: Sequence[int] | None = None,
                device: str | torch.device = "cpu", **options: Any) -> nn.Module:
    """A parametrised batch of images: `kind` "fft" (default) or "pixel"; image k seeded by seeds[k]
    (default 0, 1, ...). `options` go to the parametrisation (FFTImage: sd, decay_power, decorrelate; PixelImage: sd)."""
    generators = [torch.Generator().manual_seed(s) for s in (seeds if seeds is not None else range(batch))]
    if kind == "fft":
        return FFTImage(batch, channels, size, generators=generators, device=device, **options)
    if kind == "pixel":
        return PixelImage(batch, channels, size, generators=generators, device=device, **options)
    raise ValueError(f"unknown image parametrisation {kind!r}: use fft or pixel")
