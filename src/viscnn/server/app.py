"""The FastAPI app: the JSON API under /api, the built page (web/dist) at /, errors as 4xx with one message."""
from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from viscnn import __version__
from viscnn.errors import ViscnnError
from viscnn.server import (
    api_circuits,
    api_composition,
    api_featurevis,
    api_images,
    api_model,
    api_query,
    streams,
)
from viscnn.server.attention import ReadAttention
from viscnn.server.jobs import Busy
from viscnn.server.layouts import Layouts
from viscnn.server.middleware import DEFAULT_MAX_BODY_MB, BodyLimit, SameOrigin
from viscnn.server.prune import KernelFacts
from viscnn.server.responses import http_error, install_openapi
from viscnn.server.security import COOKIE, BadToken, Forbidden, NotAnImage, TooLarge, token_matches
from viscnn.server.state import NotFound, ServerState, Unavailable
from viscnn.server.views import Maps

LOCAL_NAMES = ("127.0.0.1", "localhost", "::1")
STATUS = [(NotFound, 404), (TooLarge, 413), (NotAnImage, 415), (BadToken, 401), (Forbidden, 403), (Busy, 429),
          (Unavailable, 503), (ViscnnError, 400)]
NO_PAGE = """<!doctype html><meta charset="utf-8"><title>viscnn</title>
<p>The viscnn page is not built ({where} is missing): run <code>bash scripts/setup.sh</code>.
The API is up: see <a href="/api/docs">/api/docs</a>.</p>"""


def default_web_dir() -> Path:
    """web/dist of the source tree (an editable install), or $VISCNN_WEB."""
    return Path(os.environ.get("VISCNN_WEB") or Path(__file__).resolve().parents[3] / "web" / "dist")


def _status(exc: ViscnnError) -> int:
    return next(code for kind, code in STATUS if isinstance(exc, kind))


def _validation_message(exc: RequestValidationError) -> str:
    """Pydantic's list of faults as one line: 'body.keep: Input should be a valid number; ...'."""
    parts = []
    for error in exc.errors()[:3]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path"))
        parts.append(f"{where or 'request'}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def create_app(state: ServerState, web_dir: Path | None = None, render_steps: int = 256,
               prepare: str | None = None, *, max_body_mb: float = DEFAULT_MAX_BODY_MB) -> FastAPI:
    """The app for one `ServerState` (one model, one image-set spec).

    `render_steps`: optimisation steps of a feature visualization; `prepare`: a layout kind to start
    preparing in the background at once (with the dataset examples), so the page finds it ready;
    `max_body_mb`: the largest request body any route takes (413 over it, found while reading).
    """
    if not max_body_mb > 0:
        raise ViscnnError(f"--max-body must be a positive number of MB, not {max_body_mb}")
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if prepare:
            layouts.start(prepare)
        yield
        state.close()

    app = FastAPI(title="viscnn", lifespan=lifespan, version=__version__, docs_url="/api/docs", redoc_url=None,
                  openapi_url="/api/openapi.json",
                  description="A CNN microscope: query, see and click through a network's circuits. See docs/api.md.")
    app.state.viscnn = state
    facts = KernelFacts(state.loaded.module, state.graph)
    maps = Maps(state)
    layouts = Layouts(state)
    app.include_router(api_model.routes(state, facts, maps, layouts), prefix="/api")
    app.include_router(api_images.routes(state), prefix="/api")
    app.include_router(api_query.routes(state, facts), prefix="/api")
    app.include_router(api_circuits.routes(state), prefix="/api")
    app.include_router(api_composition.routes(state), prefix="/api")
    app.include_router(api_featurevis.routes(state, render_steps), prefix="/api")
    app.include_router(streams.routes(state.jobs), prefix="/api")
    install_openapi(app, token=bool(state.token))

    @app.exception_handler(ViscnnError)
    async def viscnn_error(request: Request, exc: ViscnnError) -> JSONResponse:
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, Busy) else None
        return JSONResponse({"detail": str(exc)}, status_code=_status(exc), headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_message(exc)}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def starlette_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return http_error(request, exc)  # 404s, and 405s with their Allow header

    if not state.token:
        @app.middleware("http")
        async def local_hosts_only(request: Request, call_next: Callable) -> Response:
            # without a token the server trusts whoever reaches it, so only by a local name: a web page whose
            # DNS name was rebound to 127.0.0.1 arrives with its own Host header and is turned away
            host = request.url.hostname or ""
            if host not in LOCAL_NAMES:
                return JSONResponse({"detail": f"host {host[:60]!r} is not this machine's local name: open "
                                               f"http://127.0.0.1:PORT/ (or start the server with --token)"}, status_code=400)
            return await call_next(request)

    token = state.token
    if token:
        @app.middleware("http")
        async def require_token(request: Request, call_next: Callable) -> Response:
            given = request.query_params.get("token") or request.cookies.get(COOKIE)
            header = request.headers.get("authorization", "")
            if header.lower().startswith("bearer "):
                given = header[7:].strip()
            ok = token_matches(token, given)
            if not ok and (request.url.path.startswith("/api") or request.url.path == "/"):
                return JSONResponse({"detail": str(BadToken("this server needs its token: open the URL it printed "
                                                            "(with ?token=...) or send 'Authorization: Bearer TOKEN'"))},
                                    status_code=401)
            response = await call_next(request)
            if ok and request.query_params.get("token"):
                response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
            return response

    # outermost last: every request meets the body limit first, then the same-origin rule, then the above
    app.add_middleware(ReadAttention)  # the page's X-Viscnn-* headers: which panel asks, how urgently
    app.add_middleware(SameOrigin)
    app.add_middleware(BodyLimit, max_bytes=int(max_body_mb * 1e6))

    web = web_dir or default_web_dir()
    if (web / "index.html").is_file():
        app.mount("/", StaticFiles(directory=web, html=True), name="page")
    else:
        @app.get("/", include_in_schema=False)
        def no_page() -> Response:
            return Response(NO_PAGE.format(where=web), media_type="text/html")

    return app
