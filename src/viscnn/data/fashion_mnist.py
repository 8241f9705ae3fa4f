"""Fashion-MNIST from Debian's `dataset-fashion-mnist` package (idx files, gzip)."""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import torch

from viscnn.errors import ViscnnError

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
_FILES = {"train": "train", "test": "t10k"}


def dataset_dir() -> Path:
    """The folder with the idx files; `VISCNN_FASHION_MNIST` overrides the Debian location."""
    return Path(os.environ.get("VISCNN_FASHION_MNIST") or DEFAULT_DIR)


def _read_idx(path: Path, magic: int) -> np.ndarray:
    if not path.is_file():
        raise ViscnnError(f"Fashion-MNIST file {path} is missing: install it with `apt-get install dataset-fashion-mnist`")
    with gzip.open(path, "rb") as handle:
        data = handle.read()
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise ViscnnError(f"{path} is not an idx file (magic {found:#x}, expected {magic:#x})")
    ndim = magic & 0xFF
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_fashion_mnist(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """(images uint8 [N, 28, 28], labels int64 [N]) of the 'train' (60k) or 'test' (10k) split."""
    if split not in _FILES:
        raise ViscnnError(f"unknown Fashion-MNIST split {split!r}: use 'train' or 'test'")
    prefix = dataset_dir() / _FILES[split]
    images = _read_idx(Path(f"{prefix}-images-idx3-ubyte.gz"), 0x803)
    labels = _read_idx(Path(f"{prefix}-labels-idx1-ubyte.gz"), 0x801)
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))
