"""Renders, views and examples cached in the store as PNG / JSON / NPZ files plus metadata.

    path, meta = cached_image(store, "render", {"model": fp, "objective": "features.3:5", "steps": 256},
                              lambda: (image, {"activation": 12.3}))

The key is `cache_key(kind, parts)` (sha256 of the canonical JSON of `parts`; `Store.key` underneath),
so everything that changes the result (model fingerprint, objective, settings, seed) belongs in `parts`.
The file is written with the store's atomic put and the metadata is kept as the entry's meta in the
index (and, for PNGs, also in the file's `viscnn` text chunk, so a saved copy still says what it is).
A hit returns the stored file without calling `render`. Within one process, concurrent calls for the
same key wait for each other, so a server's threads never render the same thing twice; two processes
missing the same key at once may both render, and the last atomic write wins (same bytes either way).
"""
from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin

from viscnn.store import Store

PNG_TEXT_KEY = "viscnn"
_LOCKS: dict[tuple[str, str, str], list] = {}  # key -> [lock, holders and waiters]
_LOCKS_GUARD = threading.Lock()

ImageLike = Image.Image | np.ndarray


def cache_key(kind: str, parts: dict[str, Any]) -> str:
    """The store key of a cached result of `kind` made from `parts` (JSON-able values only)."""
    return Store.key(kind, parts=parts)


@contextmanager
def _key_lock(store: Store, kind: str, key: str) -> Iterator[None]:
    """Serialise work on one (store, kind, key) within this process."""
    ident = (str(store.root), kind, key)
    with _LOCKS_GUARD:
        entry = _LOCKS.setdefault(ident, [threading.Lock(), 0])
        entry[1] += 1  # holders and waiters: the last one out forgets the lock, so the table stays small
    try:
        with entry[0]:
            yield
    finally:
        with _LOCKS_GUARD:
            entry[1] -= 1
            if entry[1] == 0:
                del _LOCKS[ident]


def to_pil(image: ImageLike) -> Image.Image:
    """A PIL image from a PIL image or an array: HxW (grey), HxWx3 (RGB) or HxWx4 (RGBA).

    uint8 arrays are taken as they are; float arrays must hold values in [0, 1] (clipped).
    """
    if isinstance(image, Image.Image):
        return image
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ValueError(f"an image array must be HxW, HxWx3 or HxWx4, not shape {array.shape}")
    if array.dtype != np.uint8:
        array = np.round(np.clip(np.nan_to_num(array.astype(np.float64)), 0.0, 1.0) * 255.0).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(array))


def png_bytes(image: ImageLike, meta: dict[str, Any] | None = None) -> bytes:
    """PNG bytes of `image`, with `meta` as JSON in the `viscnn` text chunk if given."""
    info = PngImagePlugin.PngInfo()
    if meta is not None:
        info.add_text(PNG_TEXT_KEY, json.dumps(meta, sort_keys=True))
    buffer = io.BytesIO()
    to_pil(image).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def _cached(store: Store, kind: str, parts: dict[str, Any], suffix: str,
            compute: Callable[[], tuple[bytes, dict[str, Any]]]) -> tuple[Path, dict[str, Any]]:
    key = cache_key(kind, parts)
    with _key_lock(store, kind, key):
        path = store.get_path(kind, key)
        if path is not None:
            meta = store.meta(kind, key)
            if meta is not None:
                return path, meta.get("meta", {})
        data, meta = compute()
        json.dumps(meta, allow_nan=False)  # fail before writing if the metadata is not plain JSON
        path = store.put_bytes(kind, key, data, meta={"meta": meta, "parts": parts}, suffix=suffix)
        return path, meta


def cached_image(store: Store, kind: str, parts: dict[str, Any],
                 render: Callable[[], tuple[ImageLike, dict[str, Any]]]) -> tuple[Path, dict[str, Any]]:
    """The PNG path and metadata of `render()`'s image, rendered only if not stored under `parts` yet.

    `render` returns (image, metadata): a PIL image or an array (see `to_pil`) and a JSON-able dict.
    """
    def compute() -> tuple[bytes, dict[str, Any]]:
        image, meta = render()
        return png_bytes(image, meta), meta

    return _cached(store, kind, parts, ".png", compute)


def cached_json(store: Store, kind: str, parts: dict[str, Any],
                compute: Callable[[], Any]) -> tuple[Path, Any]:
    """The JSON file path and value of `compute()`, computed only if not stored under `parts` yet."""
    def wrapped() -> tuple[bytes, dict[str, Any]]:
        value = compute()
        return json.dumps(value, sort_keys=True, allow_nan=False).encode(), {}

    path, _ = _cached(store, kind, parts, ".json", wrapped)
    return path, json.loads(path.read_text())


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An .npz file's bytes holding `arrays` (no pickles)."""
    buffer = io.BytesIO()
    # Any: mypy would otherwise check the ** against savez's own `allow_pickle: bool`
    named: dict[str, Any] = {name: np.asarray(value) for name, value in arrays.items()}
    np.savez(buffer, **named)
    return buffer.getvalue()


def load_arrays(store: Store, kind: str, parts: dict[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    """The arrays and metadata stored under `parts` by `store_arrays`/`cached_arrays`, or None."""
    key = cache_key(kind, parts)
    path = store.get_path(kind, key)
    meta = store.meta(kind, key) if path is not None else None
    if path is None or meta is None:
        return None
    try:
        with np.load(path, allow_pickle=False) as loaded:
            return {name: loaded[name] for name in loaded.files}, meta.get("meta", {})
    except FileNotFoundError:
        return None  # replaced between the lookup and the read


def store_arrays(store: Store, kind: str, parts: dict[str, Any], arrays: dict[str, np.ndarray], *,
                 meta: dict[str, Any] | None = None) -> Path:
    """Store named arrays (an .npz file) and metadata under `parts`; returns the file's path."""
    meta = meta or {}
    json.dumps(meta, allow_nan=False)
    return store.put_bytes(kind, cache_key(kind, parts), npz_bytes(arrays), meta={"meta": meta, "parts": parts},
                           suffix=".npz")


def cached_arrays(store: Store, kind: str, parts: dict[str, Any],
                  compute: Callable[[], tuple[dict[str, np.ndarray], dict[str, Any]]]
                  ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Named numpy arrays (an .npz file) and metadata of `compute()`, computed only if not stored yet."""
    def wrapped() -> tuple[bytes, dict[str, Any]]:
        arrays, meta = compute()
        return npz_bytes(arrays), meta

    with _key_lock(store, kind, cache_key(kind, parts)):
        found = load_arrays(store, kind, parts)
    if found is not None:
        return found
    path, meta = _cached(store, kind, parts, ".npz", wrapped)
    with np.load(path, allow_pickle=False) as loaded:
        return {name: loaded[name] for name in loaded.files}, meta


def read_png_meta(path: str | Path) -> dict[str, Any] | None:
    """The metadata a cached PNG carries in its `viscnn` text chunk, or None."""
    with Image.open(path) as image:
        text = image.info.get(PNG_TEXT_KEY) if hasattr(image, "info") else None
    return json.loads(text) if text else None
