"""`viscnn.show(model, images)`: the microscope inside a Jupyter cell (an IFrame of a background server).

The page is reached directly (http://127.0.0.1:PORT/) when the browser runs on the kernel's machine, or
through the notebook server's proxy (jupyter-server-proxy's `/proxy/PORT/`) when it does not: JupyterHub
(`$JUPYTERHUB_SERVICE_PREFIX` is set), `proxy=True` with the notebook server's `base_url`, or a `proxy`
template of your own. A proxied server gets a token of its own (the proxy forwards the browser's host name,
which a server without a token refuses), carried in the IFrame's URL.

What `show` returns is also the door to the Python objects behind the page: `.loaded`, `.graph` and
`.image_sets` (in memory), `.scores()` (the page's last query) and `.circuits()` (the circuits it extracted).
"""
from __future__ import annotations

import html
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from viscnn.errors import ViscnnError
from viscnn.server.launch import Running, build_state, serve_background

if TYPE_CHECKING:
    from viscnn.circuits import Circuit
    from viscnn.data import ImageSet
    from viscnn.graph import Graph
    from viscnn.models import LoadedModel
    from viscnn.scoring import Scores
    from viscnn.server.state import ServerState

# Re-running a notebook cell must reuse the server (and the model in memory), not start another one.
_RUNNING: dict[tuple[object, ...], Running] = {}
HUB_PREFIX = "JUPYTERHUB_SERVICE_PREFIX"  # JupyterHub sets it for the user's server and its kernels


def proxy_url(port: int, proxy: bool | str | None, base_url: str | None, token: str | None) -> str | None:
    """Where the browser finds the page through the notebook server's proxy, or None to reach it directly.

    `proxy`: None: through jupyter-server-proxy when running under JupyterHub; True: through it at
    `base_url` (default: JupyterHub's prefix, else "/"); a string: a URL or path template with `{port}`
    (e.g. "/user/me/proxy/{port}/" or "https://lab.example.org/proxy/{port}/"); False: directly."""
    hub = os.environ.get(HUB_PREFIX)
    if proxy is False or (proxy is None and not hub and base_url is None):
        return None
    if isinstance(proxy, str):
        if "{port}" not in proxy:
            raise ViscnnError(f"proxy {proxy!r} has no '{{port}}' for the server's port, e.g. '/user/me/proxy/{{port}}/'")
        path = proxy.format(port=port)
    else:
        base = base_url if base_url is not None else hub or "/"
        path = f"{base.rstrip('/')}/proxy/{port}/"
    if not path.endswith("/"):
        path += "/"  # the page's files and API are found relative to it
    return path + (f"?token={token}" if token else "")


class Shown:
    """What `show` returns: renders as the page in an IFrame; `.url`, `.stop()`, and the Python objects behind
    the page (`.loaded`, `.graph`, `.image_sets`, `.scores()`, `.circuits()`)."""

    def __init__(self, running: Running, width: str, height: int, url: str | None = None) -> None:
        self.running = running
        self.url = url or running.url
        self.width = width
        self.height = height

    @property
    def state(self) -> ServerState:
        return self.running.state

    def _repr_html_(self) -> str:
        return (f'<iframe src="{html.escape(self.url)}" width="{html.escape(self.width)}" height="{self.height}" '
                f'style="border:1px solid #ccc" loading="lazy"></iframe>')

    def __repr__(self) -> str:
        return f"viscnn server at {self.url}"

    @property
    def loaded(self) -> LoadedModel:
        """The page's model, in memory (`viscnn.load(...)` gives the same objects with their methods)."""
        return self.state.loaded

    @property
    def graph(self) -> Graph:
        return self.state.graph

    @property
    def image_sets(self) -> dict[str, ImageSet]:
        return self.state.image_sets

    def scores(self) -> Scores:
        """Every node's and edge's scores of the query the page ran last (a `Scores`)."""
        scores = self.state.queries.latest()
        if scores is None:
            raise ViscnnError("the page has run no query yet: run one (or use .microscope.score(...))")
        return scores

    def circuits(self) -> list[Circuit]:
        """The circuits extracted on this page's model (the page's and sub-features'), newest first."""
        from viscnn.server.api_featurevis import model_circuits

        return [through.circuit for through in model_circuits(self.state)]

    def circuit(self) -> Circuit:
        """The circuit extracted last."""
        found = self.circuits()
        if not found:
            raise ViscnnError("no circuit was extracted yet: extract one on the page (or use .microscope.circuit(...))")
        return found[0]

    def stop(self) -> None:
        self.running.stop()
        for key, running in list(_RUNNING.items()):
            if running is self.running:
                del _RUNNING[key]


def show(model: str | LoadedModel = "efficientnet-lite0", images: str | None = None, *, port: int | None = None,
         height: int = 800, width: str = "100%", store: str | Path | None = None, weights: str | None = None,
         prepare: str | None = "umap", proxy: bool | str | None = None, base_url: str | None = None) -> Shown:
    """Start (or reuse) a background server for `model` (a zoo name, `file.py:factory`, or a LoadedModel)
    on the image-set spec `images` (default: the model's own kind of images), and return an object a notebook
    displays as the page (and that gives the Python objects behind it: see `Shown`).

    `prepare`: the layout to precompute in the background (None: only the grid layout, on demand the rest).
    `proxy`, `base_url`: how a browser on another machine than the kernel reaches the page (see `proxy_url`):
    by default through jupyter-server-proxy under JupyterHub, else directly."""
    from viscnn.models import LoadedModel

    proxied = proxy is not False and (proxy is not None or base_url is not None or bool(os.environ.get(HUB_PREFIX)))
    key: tuple[object, ...]
    if isinstance(model, LoadedModel):
        key = ("loaded", id(model), images, proxied)
    else:
        key = (str(model), weights, images, str(store), proxied)
    running = _RUNNING.get(key)
    if running is None or not running.thread.is_alive():
        token = secrets.token_urlsafe(18) if proxied else None
        if isinstance(model, LoadedModel):
            state = _state_for(model, images, store, token)
        else:
            state = build_state(str(model), images, weights=weights, store=store, token=token)
        running = serve_background(state, port=port, prepare=prepare)
        _RUNNING[key] = running
    return Shown(running, width, height, proxy_url(running.port, proxy, base_url, running.state.token) if proxied else None)


def _state_for(loaded: LoadedModel, images: str | None, store: str | Path | None, token: str | None) -> ServerState:
    from viscnn.graph import build_graph
    from viscnn.server.state import ServerState
    from viscnn.store import Store

    graph = build_graph(loaded.module, loaded.input_shape, loaded.name)
    the_store = Store(store)
    return ServerState(loaded, graph, images or loaded.default_images(), store=the_store, token=token,
                       upload_dir=the_store.root / "uploads")
