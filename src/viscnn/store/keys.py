"""Names in the store: kind, key and suffix checks, and the canonical digest behind `Store.key`."""
from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from viscnn.errors import ViscnnError

KIND = re.compile(r"[a-z0-9_-]{1,64}")
KEY = re.compile(r"[A-Za-z0-9_.-]{1,200}")
SUFFIX = re.compile(r"(\.[A-Za-z0-9_-]{1,16}){0,2}")
TEMP = "~"  # never in a kind, key or suffix, so a file name holding it is a temp file


def check_kind(kind: str) -> str:
    """`kind` if it is a valid kind name (`[a-z0-9_-]`, 1-64 chars), else a ViscnnError."""
    if not isinstance(kind, str) or not KIND.fullmatch(kind):
        raise ViscnnError(f"invalid store kind {kind!r}: use 1-64 characters from a-z, 0-9, '_' and '-'")
    return kind


def check_key(key: str) -> str:
    """`key` if it is a valid key (`[A-Za-z0-9_.-]`, 1-200 chars, no '..', no leading '.'), else a ViscnnError."""
    if not isinstance(key, str) or not KEY.fullmatch(key) or ".." in key or key.startswith("."):
        raise ViscnnError(f"invalid store key {key!r}: use 1-200 characters from A-Z, a-z, 0-9, '_', '-' "
                          "and '.', not starting with '.' and without '..'")
    return key


def check_suffix(suffix: str) -> str:
    """`suffix` if it is '' or one or two parts like '.png', '.tar.gz', else a ViscnnError."""
    if not isinstance(suffix, str) or not SUFFIX.fullmatch(suffix):
        raise ViscnnError(f"invalid store suffix {suffix!r}: use '' or up to two parts like '.png', '.tar.gz'")
    return suffix


def _canonical(value: Any, where: str) -> Any:
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        return [_canonical(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, dict):
        for name in value:
            if not isinstance(name, str):
                raise TypeError(f"store key part {where}: dict keys must be str, not {type(name).__name__}")
        return {name: _canonical(item, f"{where}.{name}") for name, item in value.items()}
    raise TypeError(f"store key part {where}: {type(value).__name__} is not str/int/float/bool/None/list/dict")


def make_key(kind: str, parts: dict[str, Any]) -> str:
    """sha256 hex of the canonical JSON of `{"kind": kind, "parts": parts}` (sorted keys, tuples as lists)."""
    check_kind(kind)
    try:
        text = json.dumps({"kind": kind, "parts": _canonical(parts, "parts")}, sort_keys=True,
                          separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    except ValueError as exc:
        raise ValueError(f"store key parts of kind {kind!r}: NaN and infinity are not allowed") from exc
    return hashlib.sha256(text.encode("ascii")).hexdigest()
