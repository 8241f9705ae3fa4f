"""Class names of a model's outputs, by the name of their vocabulary (`LoadedModel.classes`)."""
from __future__ import annotations

from viscnn.errors import ViscnnError

VOCABULARIES = ("imagenet", "fashion-mnist")


def class_names(vocabulary: str | None) -> list[str] | None:
    """The class names in output order for "imagenet" or "fashion-mnist"; None for None (unnamed classes)."""
    if vocabulary is None:
        return None
    if vocabulary == "imagenet":
        from viscnn.data import imagenet_classes

        return imagenet_classes()
    if vocabulary == "fashion-mnist":
        from viscnn.data import FASHION_MNIST_CLASSES

        return list(FASHION_MNIST_CLASSES)
    raise ViscnnError(f"unknown class names {vocabulary!r}: choose from {', '.join(VOCABULARIES)}")
