"""Helpers for the data tests: small real image files written into tmp_path."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from viscnn.data.fashion_mnist import dataset_dir


def _write_image(path: Path, color: tuple[int, int, int] = (200, 30, 90), size: tuple[int, int] = (40, 30), noise: int = 0) -> Path:
    """Write a real image file (format from the extension): a flat colour, plus seeded noise if asked."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.empty((size[1], size[0], 3), dtype=np.uint8)
    pixels[:] = color
    if noise:
        rng = np.random.default_rng(noise)
        pixels = rng.integers(0, 256, pixels.shape, dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """An ImageFolder layout: labels by index, by name, unknown; plus clutter that must be skipped."""
    root = tmp_path / "images"
    _write_image(root / "243-bull_mastiff" / "a.jpg")
    _write_image(root / "243-bull_mastiff" / "b.png", (10, 20, 30))
    _write_image(root / "7_seven" / "nested" / "c.png")
    _write_image(root / "12" / "d.bmp")
    _write_image(root / "Ankle Boot" / "e.png")
    _write_image(root / "mystery" / "f.png")
    (root / "empty").mkdir()
    (root / "README.txt").write_text("not an image\n")
    (root / ".DS_Store").write_bytes(b"\x00\x01junk")
    (root / "mystery" / "notes.txt").write_text("skip me\n")
    (root / "mystery" / ".hidden.png").write_bytes(b"not even a png")
    return root


@pytest.fixture
def write_image():
    """The image writer: write_image(path, color=(r, g, b), size=(w, h), noise=seed) -> path."""
    return _write_image


@pytest.fixture
def fashion_mnist() -> None:
    """Skip unless Debian's Fashion-MNIST files are installed (scripts/setup.sh installs them)."""
    if not (dataset_dir() / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("Fashion-MNIST (apt package dataset-fashion-mnist) is not installed")
