"""Layouts for the page: the grid at once; projections (umap, mds, weights) from `viscnn prepare`'s results
in the store, or computed by a background job that runs the same preparation steps."""
from __future__ import annotations

import math
import threading
from typing import TYPE_CHECKING, Any

import numpy as np
from fastapi.responses import Response

from viscnn.errors import ViscnnError
from viscnn.server.jobs import JobContext
from viscnn.server.responses import FastJSON, pending
from viscnn.server.state import ServerState, Unavailable

if TYPE_CHECKING:
    from viscnn.pipeline.prepare import Preparer

KINDS = ("grid", "umap", "mds", "weights")


class _Bar:
    """The tqdm-like bar `Preparer.run` drives, reporting to a job instead of a terminal."""

    def __init__(self, context: JobContext, total: float) -> None:
        self.context, self.total, self.done, self.name = context, max(total, 1e-9), 0.0, "prepare"

    def set_description(self, text: str) -> None:
        self.name = text
        self.context.report(self.done / self.total, text)

    def update(self, amount: float) -> None:
        self.done += amount
        self.context.report(self.done / self.total, self.name)

    def close(self) -> None:
        return None


class Layouts:
    """One layout per kind: the grid (always), the others once prepared."""

    def __init__(self, state: ServerState) -> None:
        from viscnn.layout import assemble, grid_projections

        self.state = state
        grid = assemble(state.graph, grid_projections(state.graph), smooth=False, rotate=False, projection="grid",
                        model=state.loaded.name, fingerprint=state.fingerprint)
        self._ready: dict[str, dict] = {"grid": self._wrap("grid", grid.to_json())}  # kind -> the answer
        self._lock = threading.Lock()

    def _preparer(self, kind: str, context: JobContext | None = None) -> Preparer:
        from viscnn.pipeline.prepare import Preparer, Settings

        state = self.state
        progress = (lambda total, **_: _Bar(context, total)) if context is not None else None
        echo = (lambda text: context.report(message=text)) if context is not None else (lambda text: None)
        return Preparer(state.loaded, state.graph, {"overall": state.image_sets["overall"]}, state.store,
                        Settings(projection=kind, batch_size=state.batch_size), state.images_spec, progress, echo)

    def answer(self, kind: str, *, background: bool = False) -> Response:
        if kind not in KINDS:
            raise ViscnnError(f"unknown layout {kind[:40]!r}: choose from {', '.join(KINDS)}")
        with self._lock:
            ready = self._ready.get(kind)
        if ready is not None:
            return FastJSON(ready)
        if self.state.store is None:
            raise Unavailable(f"layout {kind!r} needs a store to prepare it in (this server runs with --no-cache)")
        preparer = self._preparer(kind)
        if ("layout", preparer.layout_key()) in self.state.store:
            return FastJSON(self._remember(kind, preparer.layout().to_json()))

        def work(context: JobContext) -> dict:
            prepared = self._preparer(kind, context)
            prepared.run()
            return self._remember(kind, prepared.layout().to_json())

        return pending(self.state.jobs.submit("layout", work, f"{kind} layout (with dataset examples)", key=f"layout|{kind}",
                                              background=background))

    def start(self, kind: str) -> None:
        """Prepare `kind` in the background now (viscnn serve does this so the page finds it ready)."""
        if kind != "grid":
            self.answer(kind, background=True)

    def _remember(self, kind: str, data: dict) -> dict:
        answer = self._wrap(kind, data)
        with self._lock:
            self._ready[kind] = answer
        return answer

    @staticmethod
    def _wrap(kind: str, data: dict[str, Any]) -> dict:
        """The layout JSON of docs/layout.md, with positions in node units (see `node_units`)."""
        layers = {name: node_units(entry) for name, entry in data["layers"].items()}
        return {**data, "layers": layers, "kind": kind, "kinds": list(KINDS)}


def node_units(entry: dict) -> dict:
    """A layer's unit-disc positions scaled so neighbouring nodes sit about one unit apart.

    n nodes spread evenly over a disc of radius r are about sqrt(pi r^2 / n) apart, so r = sqrt(n / pi)
    makes that 1: a layer of 1280 filters is then wider than one of 16, as on the page it should be.
    """
    scale = max(1.0, math.sqrt(len(entry["positions"]) / math.pi))
    positions = (np.asarray(entry["positions"], dtype=np.float64).reshape(-1, 2) * scale).round(4)
    return {**entry, "positions": positions.tolist(), "scale": round(scale, 6)}
