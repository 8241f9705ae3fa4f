"""The server's guards: the access token, upload checks, which hosts count as local, and which requests
come from another site's page (they may read, but neither write nor queue work)."""
from __future__ import annotations

import hmac
import io
import ipaddress
import secrets
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from urllib.parse import urlsplit

from viscnn.errors import ViscnnError

COOKIE = "viscnn_token"
MAX_PIXELS = 40_000_000  # a decompression bomb is small on the wire and huge in memory
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


class TooLarge(ViscnnError):
    """An upload over the size limit: a 413."""


class NotAnImage(ViscnnError):
    """An upload that does not decode as an image: a 415."""


class BadToken(ViscnnError):
    """A request without the server's token: a 401."""


class Forbidden(ViscnnError):
    """A request from another site's page that would write or queue work: a 403."""


# Why the request being answered may not queue work (None: it may). Set per request by the SameOrigin
# middleware; a context variable, so it follows the request into the thread that runs its route.
_REFUSAL: ContextVar[str | None] = ContextVar("viscnn_queue_refusal", default=None)
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _netloc(scheme: str, host: str, port: int | None) -> str:
    port = port if port is not None else DEFAULT_PORTS.get(scheme)
    return f"{host.lower().strip('[]')}:{port}"


def foreign_origin(headers: dict[str, str], scheme: str = "http") -> str | None:
    """Why a request comes from another site's page, or None (from this server's page, or not from a page).

    `headers`: lower-case names. A browser says where a request comes from by `Sec-Fetch-Site` (which a
    page cannot change; it alone decides when present), else by `Origin` (every POST, PUT and DELETE), else
    by `Referer`, compared with the request's `Host`. A request with none of them (curl, a script, an old browser's plain GET) is not from a page.
    Host and port are compared, not the scheme, so a TLS proxy in front of the server changes nothing.
    """
    site = headers.get("sec-fetch-site")
    if site is not None:  # the browser's own word: "none" is the user typing the URL or opening a bookmark
        return None if site in ("same-origin", "none") else f"a {site} request (Sec-Fetch-Site: {site[:20]})"
    host = headers.get("host", "")
    try:
        parts = urlsplit(f"//{host}")
        own = _netloc(scheme, parts.hostname or "", parts.port)
    except ValueError:
        return f"a request to the malformed host {host[:60]!r}"
    for name in ("origin", "referer"):
        given = headers.get(name)
        if given is None:
            continue
        try:
            parts = urlsplit(given)
            theirs = _netloc(parts.scheme, parts.hostname or "", parts.port) if parts.hostname else None
        except ValueError:
            theirs = None
        if theirs != own:
            return f"a request from {given[:80]!r} ({name.capitalize()})"
        return None
    return None


@contextmanager
def queueing_refused(reason: str | None) -> Iterator[None]:
    """Inside: `check_may_queue` raises `Forbidden` naming `reason` (None: it passes)."""
    token = _REFUSAL.set(reason)
    try:
        yield
    finally:
        _REFUSAL.reset(token)


def check_may_queue() -> None:
    """Raise `Forbidden` if the request being answered comes from another site's page (see `foreign_origin`)."""
    reason = _REFUSAL.get()
    if reason is not None:
        raise Forbidden(f"{reason} may read this server but not make it work: open the page this server serves")


def is_local(host: str) -> bool:
    """True for loopback hosts only (what `--host` may be without a token)."""
    if host in LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_host(host: str, token: str | None) -> None:
    """A non-local host needs a token: anyone on the network could otherwise drive the model."""
    if not is_local(host) and not token:
        raise ViscnnError(f"--host {host} makes the server reachable from other machines: give --token "
                          f"(e.g. --token {secrets.token_urlsafe(16)})")
    if token is not None and len(token) < 8:
        raise ViscnnError("the token must be at least 8 characters long")


def token_matches(expected: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())


def check_upload(data: bytes, limit: int) -> tuple[int, int]:
    """(width, height) of an uploaded image; TooLarge or NotAnImage otherwise. Decodes it fully once."""
    from PIL import Image, UnidentifiedImageError

    if len(data) > limit:
        raise TooLarge(f"the upload is {len(data) / 1e6:.1f} MB; the limit is {limit / 1e6:.0f} MB")
    if not data:
        raise NotAnImage("the upload is empty")
    try:
        with warnings.catch_warnings():  # our own pixel limit below speaks instead of PIL's warning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
        with image:
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise TooLarge(f"the image is {width}x{height} pixels; the limit is {MAX_PIXELS / 1e6:.0f} megapixels")
            image.load()
    except TooLarge:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise NotAnImage(f"the upload is not an image this server can read ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else 'unreadable'})") from exc
    return width, height
