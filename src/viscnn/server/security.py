"""The server's guards: the access token, upload checks, and which hosts count as local."""
from __future__ import annotations

import hmac
import io
import ipaddress
import secrets
import warnings

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
