"""Renders in the store: their cache key and what a stored render says about itself.

`viscnn visualize`, the server and `viscnn prepare` all build keys here, so a render made by one is
found by the others (a key built differently would be a silent cache miss: the render done again).

    setup = render_setup(loaded, settings, fingerprint=fp)   # what every render of a run shares
    path = store.get_path(KIND, render_key(render_parts(setup, objective)))
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from viscnn.store.cache import cache_key

if TYPE_CHECKING:
    from viscnn.featurevis.render import RenderSettings
    from viscnn.models import LoadedModel

KIND = "render"


def render_setup(loaded: LoadedModel, settings: RenderSettings, *, fingerprint: str,
                 circuit: str | None = None) -> dict[str, Any]:
    """Everything a render depends on besides its objective: the model (name and `fingerprint`), the circuit
    (a hash of its file; None for the whole model), the settings that decide the image, and its size."""
    return {"model": loaded.name, "fingerprint": fingerprint, "circuit": circuit, "settings": settings.to_json(),
            "size": settings.size or loaded.preprocess.size}


def render_parts(setup: dict[str, Any], objective: object) -> dict[str, Any]:
    """The cache parts of one render: the setup and the objective's text."""
    return {**setup, "objective": str(objective)}


def render_key(parts: dict[str, Any]) -> str:
    """The store key (kind `KIND`) of the render made from `parts`."""
    return cache_key(KIND, parts)


def render_meta(objective: object, values: Sequence[float], initial: float, settings: RenderSettings) -> dict[str, Any]:
    """The metadata stored with a render: the objective, its value on each copy and on the starting image."""
    return {"objective": str(objective), "values": [float(v) for v in values], "initial": float(initial),
            "steps": settings.steps, "copies": settings.copies}
