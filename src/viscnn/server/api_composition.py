"""Routes: composition paths of one unit on one image (a job; the tree and its saliency maps are stored)."""
from __future__ import annotations

import hashlib
import io
import json
import re
from typing import TYPE_CHECKING

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, Response

from viscnn.graph.ids import parse_unit
from viscnn.server.jobs import JobContext
from viscnn.server.responses import answers, done, pending
from viscnn.server.state import NotFound, ServerState
from viscnn.store import Store

if TYPE_CHECKING:
    import torch

    from viscnn.circuits.composition import Composition

SALIENCY = "composition-saliency"
PARENT_COLOUR = (0, 170, 0)  # as `viscnn composition` draws them
UNIT_COLOUR = (255, 140, 0)
_KEY = re.compile(r"[0-9a-f]{64}")


def routes(state: ServerState) -> APIRouter:
    router = APIRouter(tags=["composition"])

    @router.get("/composition", summary="the units composing one unit's response to one image (a job)",
                responses=answers(404, body="job"))
    def composition(image: str, unit: str = Query(..., max_length=500), top_k: int = Query(3, ge=1, le=10),
                    depth: int = Query(3, ge=0, le=6)) -> Response:
        from viscnn.circuits.composition import compose

        ref = state.image(image)
        parsed = parse_unit(unit, state.graph)
        pixels = state.pixels(ref)
        image_hash = hashlib.sha256(pixels.numpy().tobytes()).hexdigest()[:16]
        key = Store.key("server-composition", model=state.fingerprint, image=image_hash, unit=str(parsed), top_k=top_k,
                        depth=depth)
        if state.store is not None and (data := state.store.get_bytes("composition", key)) is not None:
            return done(json.loads(data))

        def work(context: JobContext) -> dict:
            context.report(0.1, f"composing {parsed} on {ref.name}")
            result = compose(state.loaded.module, state.graph, state.model_input(ref), parsed, top_k=top_k, depth=depth,
                             model_name=state.loaded.name, image_name=ref.id)
            names = _saliency_maps(state, state.store, result, pixels, image_hash, context) if state.store is not None else {}
            data = {**result.to_json(names), "image_id": ref.id, "key": key}
            if state.store is not None:
                state.store.put_bytes("composition", key, json.dumps(data).encode(), suffix=".json")
            return data

        return pending(state.jobs.submit("composition", work, f"composition of {parsed} on {ref.name}",
                                         key=f"composition|{key}"))

    @router.get("/composition/saliency/{key}.png", summary="a composition node's input saliency (image | saliency)",
                response_class=Response, responses=answers(404, body="png"))
    def saliency(key: str) -> Response:
        path = state.store.get_path(SALIENCY, key) if state.store is not None and _KEY.fullmatch(key) else None
        if path is None:
            raise NotFound(f"unknown saliency map {key[:70]!r}: use a URL from a composition result")
        return FileResponse(path, media_type="image/png", headers={"Cache-Control": "private, max-age=86400"})

    return router


def _saliency_maps(state: ServerState, store: Store, result: Composition, pixels: torch.Tensor, image_hash: str,
                   context: JobContext) -> dict[int, str]:
    """Each tree node's saliency picture (input and d unit / d input, receptive fields boxed), put in `store`;
    id(node) -> URL."""
    from viscnn.circuits.composition import field_box, saliency_image

    nodes = dict(result.root.walk())
    scale = max(1, 192 // max(pixels.shape[-2:]))
    names: dict[int, str] = {}
    for k, (path, node) in enumerate(nodes.items()):
        context.report(0.5 + 0.5 * k / len(nodes), f"saliency maps: {k}/{len(nodes)}")
        parent = nodes[path[:-1]] if path else None
        boxes = [(b, c) for b, c in ((field_box(state.graph, parent.unit) if parent else None, PARENT_COLOUR),
                                     (field_box(state.graph, node.unit), UNIT_COLOUR)) if b]
        what = f"{parent.unit} through {node.unit.layer}:{node.unit.channel}" if parent else f"{node.unit}"
        buffer = io.BytesIO()
        saliency_image(pixels, node.saliency, boxes, scale, f"d {what} / d input").save(buffer, format="PNG")
        key = Store.key(SALIENCY, model=state.fingerprint, image=image_hash, unit=str(node.unit),
                        parent=str(parent.unit) if parent else None)
        store.put_bytes(SALIENCY, key, buffer.getvalue(), suffix=".png")
        names[id(node)] = f"/api/composition/saliency/{key}.png"
    return names
