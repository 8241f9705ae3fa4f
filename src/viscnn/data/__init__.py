"""Image sets: folders, single images, tensor files, the bundled demo photos and Fashion-MNIST.

The names below load on first use (PEP 562), so `viscnn data build-demo` need not import torch.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from viscnn.data.classes import imagenet_classes
    from viscnn.data.demo import build_demo_set
    from viscnn.data.fashion_mnist import CLASSES as FASHION_MNIST_CLASSES
    from viscnn.data.fashion_mnist import load_fashion_mnist
    from viscnn.data.imageset import IMAGE_EXTENSIONS, ImageItem, ImageSet
    from viscnn.data.sources import open_image_sets

_EXPORTS = {
    "ImageSet": ("viscnn.data.imageset", "ImageSet"),
    "ImageItem": ("viscnn.data.imageset", "ImageItem"),
    "IMAGE_EXTENSIONS": ("viscnn.data.imageset", "IMAGE_EXTENSIONS"),
    "open_image_sets": ("viscnn.data.sources", "open_image_sets"),
    "build_demo_set": ("viscnn.data.demo", "build_demo_set"),
    "imagenet_classes": ("viscnn.data.classes", "imagenet_classes"),
    "load_fashion_mnist": ("viscnn.data.fashion_mnist", "load_fashion_mnist"),
    "FASHION_MNIST_CLASSES": ("viscnn.data.fashion_mnist", "CLASSES"),
}
__all__ = ["FASHION_MNIST_CLASSES", "IMAGE_EXTENSIONS", "ImageItem", "ImageSet", "build_demo_set", "imagenet_classes",
           "load_fashion_mnist", "open_image_sets"]
assert sorted(_EXPORTS) == __all__


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'viscnn.data' has no attribute {name!r}")
    module, attribute = _EXPORTS[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
