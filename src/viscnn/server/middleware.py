"""ASGI middleware every request passes first: the request body limit and the same-origin rule.

Both are plain ASGI (not `BaseHTTPMiddleware`), so they see the body as it arrives and answer before any
route, form parser or JSON decoder has read it.
"""
from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from viscnn.server.security import foreign_origin, queueing_refused

DEFAULT_MAX_BODY_MB = 12.0  # the largest upload (10 MiB of image, security.check_upload) and its form around it
MAX_OTHER_BODY = 1_000_000  # any other body (a query's JSON is a few hundred bytes; a big one costs many times its size)
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def _headers(scope: Scope) -> dict[str, str]:
    return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope.get("headers", ())}


async def _answer(send: Send, status: int, detail: str, *, close: bool = False) -> None:
    body = orjson.dumps({"detail": detail})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:  # the client may still be sending a body nobody will read: end the connection after the answer
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """At most `max_bytes` of request body for an upload (multipart/form-data), at most `max_other` (or
    `max_bytes` if smaller) for any other request, on every route: 413 with a JSON message otherwise.

    A declared `Content-Length` over the limit is refused before a byte of the body is read (the server holds
    a body to its declared length). A chunked body is read here, counted, and refused as soon as it passes
    the limit; one within the limit is handed to the route as it came. So no more than the limit of a
    request is ever held, and no route, JSON decoder or multipart parser sees a body over it.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, max_other: int = MAX_OTHER_BODY) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_other = min(max_other, max_bytes)

    def _too_large(self, size: int | None, limit: int) -> str:
        said = f"the request body is {size / 1e6:.1f} MB" if size is not None else f"the request body is over {limit / 1e6:g} MB"
        upload = f"{self.max_bytes / 1e6:g} MB for an image upload; " if limit < self.max_bytes else ""
        return f"{said}; the limit is {limit / 1e6:g} MB ({upload}viscnn serve --max-body)"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        upload = headers.get("content-type", "").lower().startswith("multipart/form-data")
        limit = self.max_bytes if upload else self.max_other
        length = headers.get("content-length", "").strip()
        if length.isdigit():
            if int(length) > limit:
                await _answer(send, 413, self._too_large(int(length), limit), close=True)
                return
            await self.app(scope, receive, send)
            return
        if "chunked" not in headers.get("transfer-encoding", "").lower():
            await self.app(scope, receive, send)  # no body
            return
        messages: list[Message] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left while sending: nobody to answer
            total += len(message.get("body", b""))
            if total > limit:
                await _answer(send, 413, self._too_large(None, limit), close=True)
                return
            messages.append(message)
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


class SameOrigin:
    """A request from another site's page (see `security.foreign_origin`) may read but not write or queue work.

    Its POST, PUT, PATCH and DELETE get 403 here; its GETs are answered, but any job they would queue is
    refused (403) where jobs are queued (`JobManager.submit`), so no GET from an `<img>` or a link on another
    site can make this server work.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        reason = foreign_origin(_headers(scope), scope.get("scheme", "http"))
        if reason is not None and scope["method"] not in SAFE_METHODS:
            await _answer(send, 403, f"{reason} may read this server but not write to it or make it work: "
                                     f"use the page this server serves")
            return
        with queueing_refused(reason):
            await self.app(scope, receive, send)
