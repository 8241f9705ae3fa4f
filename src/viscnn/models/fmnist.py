"""fmnist-convnet: a small AlexNet-like CNN for 1x28x28 Fashion-MNIST, and where its weights live.

Five plain convolutions (ReLU and max-pooling only: no batch norm, no residuals), so every node of
the kernel graph is one filter and every edge one 2D kernel. ``viscnn train`` trains it (dense, or
with hierarchical group sparsity on the 2D kernels) and the package ships both trained weight files.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from viscnn import paths
from viscnn.errors import ViscnnError

# Normalisation of 0-1 pixels; must equal the zoo's Preprocess for the fmnist models.
MEAN = 0.2860
STD = 0.3530
NUM_CLASSES = 10
MODEL_NAMES = ("fmnist-convnet", "fmnist-convnet-sparse")

_WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


class FmnistConvNet(nn.Module):
    """conv5x5(32)-pool, conv5x5(64)-pool, conv3x3(96), conv3x3(96), conv3x3(64)-pool, fc(128), fc(10).

    Input: normalised images [N, 1, 28, 28]; output: logits [N, 10].
    """

    def __init__(self, hidden: int = 128, dropout: float = 0.3) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, kernel_size=5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),   # 14x14
            nn.Conv2d(32, 64, kernel_size=5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),  # 7x7
            nn.Conv2d(64, 96, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(96, 96, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(96, 64, kernel_size=3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),  # 3x3
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(64 * 3 * 3, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, NUM_CLASSES),
        )
        for module in self.modules():  # He init: trains much faster than the default without batch norm
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def model_name(*, sparse: bool) -> str:
    """'fmnist-convnet' or 'fmnist-convnet-sparse'."""
    return MODEL_NAMES[1] if sparse else MODEL_NAMES[0]


def home_weights_path(*, sparse: bool = False) -> Path:
    """Where `viscnn train` writes by default: ``<viscnn home>/models/<name>.safetensors``."""
    return paths.home() / "models" / f"{model_name(sparse=sparse)}.safetensors"


def packaged_weights_path(*, sparse: bool = False) -> Path:
    """The weights committed with the package (``viscnn/models/weights/<name>.safetensors``)."""
    return _WEIGHTS_DIR / f"{model_name(sparse=sparse)}.safetensors"


def find_weights(*, sparse: bool = False) -> Path:
    """The user's own trained weights if present, else the packaged ones; ViscnnError if neither."""
    for path in (home_weights_path(sparse=sparse), packaged_weights_path(sparse=sparse)):
        if path.is_file():
            return path
    name = model_name(sparse=sparse)
    raise ViscnnError(f"no weights for {name} (looked in {home_weights_path(sparse=sparse)} and {packaged_weights_path(sparse=sparse)}): "
                      f"run `viscnn train --model {name}`")


def load_fmnist_convnet(*, sparse: bool = False) -> nn.Module:
    """An FmnistConvNet (eval mode, CPU) with trained weights; see `find_weights` for the lookup order."""
    from viscnn.models.zoo import apply_weights, read_weights  # zoo imports this module lazily

    path = find_weights(sparse=sparse)
    model = FmnistConvNet()
    apply_weights(model, read_weights(path), str(path), model_name(sparse=sparse))
    return model.eval()
