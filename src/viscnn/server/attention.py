"""Who asks for work, and how urgently: the page's `X-Viscnn-*` request headers, read once per request.

The page names, with every request that may queue a job, the panel that asked (`X-Viscnn-Panel`, e.g.
"node"), how urgent it is (`X-Viscnn-Priority`, a number: lower runs first; see `jobs.DEFAULT_PRIORITY`
for what a request without one gets) and which page it is (`X-Viscnn-Client`, a random id per page, the
one its event stream names) and which showing of that panel (`X-Viscnn-Hold`, e.g. "node-17": a panel
shown again for another node is another hold), so the job queue can order work by what is on screen and a
page can let go of the work of a panel it closed (`POST /api/release`) without cancelling what another page,
or the panel it opened since, waits for.
The headers are read by a plain ASGI middleware into a context variable that `JobManager.submit` reads, so
no route has to pass them along.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

PRIORITY_RANGE = 1000.0  # priorities outside [-1000, 1000] are clipped
MAX_NAME = 64  # characters of a panel name or client id that are kept


@dataclass(frozen=True)
class Attention:
    """What a request says about the work it may queue: `priority` None means the kind's default."""

    priority: float | None = None
    panel: str = ""
    client: str = ""
    hold: str = ""


NONE = Attention()
_ATTENTION: ContextVar[Attention | None] = ContextVar("viscnn_attention", default=None)


def current() -> Attention:
    """The attention of the request being answered (defaults outside a request, or without the headers)."""
    return _ATTENTION.get() or NONE


@contextmanager
def asking(attention: Attention) -> Iterator[None]:
    """While inside, jobs submitted in this context carry `attention` (tests, and the middleware)."""
    token = _ATTENTION.set(attention)
    try:
        yield
    finally:
        _ATTENTION.reset(token)


def _name(text: str) -> str:
    return "".join(ch for ch in text if ch.isprintable())[:MAX_NAME]


def parse(headers: dict[str, str]) -> Attention:
    """The attention the headers give; a malformed priority is ignored (the kind's default applies)."""
    priority: float | None = None
    raw = headers.get("x-viscnn-priority", "").strip()
    if raw:
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if math.isfinite(value):
            priority = max(-PRIORITY_RANGE, min(PRIORITY_RANGE, value))
    return Attention(priority, _name(headers.get("x-viscnn-panel", "")), _name(headers.get("x-viscnn-client", "")),
                     _name(headers.get("x-viscnn-hold", "")))


class ReadAttention:
    """ASGI middleware: each HTTP request's `X-Viscnn-*` headers become the `current()` attention."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope.get("headers", ())
                   if name.lower().startswith(b"x-viscnn-")}
        with asking(parse(headers)):
            await self.app(scope, receive, send)
