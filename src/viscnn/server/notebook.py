"""`viscnn.show(model, images)`: the microscope inside a Jupyter cell (an IFrame of a background server)."""
from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING

from viscnn.server.launch import Running, build_state, serve_background

if TYPE_CHECKING:
    from viscnn.models import LoadedModel
    from viscnn.server.state import ServerState

# Re-running a notebook cell must reuse the server (and the model in memory), not start another one.
_RUNNING: dict[tuple[object, ...], Running] = {}


class Shown:
    """What `show` returns: renders as the page in an IFrame; `.url`, `.stop()`."""

    def __init__(self, running: Running, width: str, height: int) -> None:
        self.running = running
        self.url = running.url
        self.width = width
        self.height = height

    def _repr_html_(self) -> str:
        return (f'<iframe src="{html.escape(self.url)}" width="{html.escape(self.width)}" height="{self.height}" '
                f'style="border:1px solid #ccc" loading="lazy"></iframe>')

    def __repr__(self) -> str:
        return f"viscnn server at {self.url}"

    def stop(self) -> None:
        self.running.stop()
        for key, running in list(_RUNNING.items()):
            if running is self.running:
                del _RUNNING[key]


def show(model: str | LoadedModel = "efficientnet-lite0", images: str | None = None, *, port: int | None = None,
         height: int = 800, width: str = "100%", store: str | Path | None = None, weights: str | None = None,
         prepare: str | None = "umap") -> Shown:
    """Start (or reuse) a background server for `model` (a zoo name, `file.py:factory`, or a LoadedModel)
    on the image-set spec `images` (default: the model's own kind of images), and return an object a notebook displays as the page.

    `prepare`: the layout to precompute in the background (None: only the grid layout, on demand the rest)."""
    from viscnn.models import LoadedModel

    key: tuple[object, ...]
    if isinstance(model, LoadedModel):
        key = ("loaded", id(model), images)
    else:
        key = (str(model), weights, images, str(store))
    running = _RUNNING.get(key)
    if running is None or not running.thread.is_alive():
        if isinstance(model, LoadedModel):
            state = _state_for(model, images, store)
        else:
            state = build_state(str(model), images, weights=weights, store=store)
        running = serve_background(state, port=port, prepare=prepare)
        _RUNNING[key] = running
    return Shown(running, width, height)


def _state_for(loaded: LoadedModel, images: str | None, store: str | Path | None) -> ServerState:
    from viscnn.graph import build_graph
    from viscnn.server.state import ServerState
    from viscnn.store import Store

    graph = build_graph(loaded.module, loaded.input_shape, loaded.name)
    the_store = Store(store)
    return ServerState(loaded, graph, images or loaded.default_images(), store=the_store,
                       upload_dir=the_store.root / "uploads")
