"""Routes: image sets, images (as the model sees them) and uploads."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Query, UploadFile
from fastapi.responses import Response

from viscnn.server.responses import answers
from viscnn.server.security import check_upload
from viscnn.server.state import NotFound, ServerState
from viscnn.server.views import image_png


def routes(state: ServerState) -> APIRouter:
    router = APIRouter(tags=["images"])

    def describe(image_id: str, set_name: str) -> dict:
        ref = state.image(image_id)
        return {"id": ref.id, "set": set_name, "label": ref.label, "label_name": state.label_name(ref.label),
                "name": ref.name}

    @router.get("/sets", summary="the image sets (names usable in expressions) and their sizes", responses=answers())
    def sets() -> list[dict]:
        return [{"name": name, "count": len(image_set)} for name, image_set in state.image_sets.items()]

    @router.get("/images", summary="the images of one set, with their ids", responses=answers(404))
    def images(set: str = Query("overall", description="a set name from /api/sets"),
               offset: int = Query(0, ge=0), limit: int = Query(1000, ge=1, le=10000)) -> list[dict]:
        members = state.members.get(set)
        if members is None:
            raise NotFound(f"unknown image set {set[:100]!r}: choose from {', '.join(state.image_sets)}")
        return [describe(image_id, set) for image_id in members[offset:offset + limit]]

    @router.get("/images/{image_id}.png", summary="an image as the model sees it (resized, cropped; not normalised)",
                response_class=Response, responses=answers(404, body="png"))
    def image(image_id: str) -> Response:
        ref = state.image(image_id)
        return Response(image_png(state.pixels(ref)), media_type="image/png",
                        headers={"Cache-Control": "private, max-age=3600"})

    @router.post("/images", summary="upload an image (at most the server's size limit; must decode as an image)",
                 responses=answers(415, 503, write=True))
    async def upload(file: Annotated[UploadFile, File(description="the image file")]) -> dict:
        data = await file.read(state.max_upload_bytes + 1)
        check_upload(data, state.max_upload_bytes)
        ref = state.add_upload(data, _safe_name(file.filename))
        return describe(ref.id, ref.set)

    return router


def _safe_name(filename: str | None) -> str:
    """A display name only (files are stored under their hash): the last path part, printable, short."""
    name = (filename or "upload").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable())[:100]
    return name or "upload"
