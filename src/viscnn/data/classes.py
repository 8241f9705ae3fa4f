"""Class names: ImageNet's (offline, from torchvision's metadata), file-friendly slugs, and label lookup."""
from __future__ import annotations

import re
from functools import lru_cache

_LEADING_INDEX = re.compile(r"^(\d+)(?:[-_ ].*)?$")


@lru_cache(maxsize=1)
def _imagenet_classes() -> tuple[str, ...]:
    from torchvision.models import AlexNet_Weights  # metadata only: no weights are fetched

    return tuple(AlexNet_Weights.IMAGENET1K_V1.meta["categories"])


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet class names in index order (0 = 'tench'), read offline from torchvision."""
    return list(_imagenet_classes())


def slugify(name: str) -> str:
    """A file-name-friendly form of a class name: 'T-shirt/top' -> 't-shirt_top', 'Ankle boot' -> 'ankle_boot'."""
    return re.sub(r"[^a-z0-9-]+", "_", name.lower()).strip("_") or "unnamed"


def _match_key(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", name.lower())


def label_from_name(name: str, class_names: list[str] | None = None) -> int:
    """The label a folder name stands for, or -1.

    A leading integer ('243-bull_mastiff', '243_bull_mastiff', '243') is the class index; otherwise the
    name is matched against ``class_names`` ignoring case, spaces, underscores and punctuation.
    """
    match = _LEADING_INDEX.match(name)
    if match:
        return int(match.group(1))
    if class_names:
        key = _match_key(name)
        for index, class_name in enumerate(class_names):
            if key and _match_key(class_name) == key:
                return index
    return -1
