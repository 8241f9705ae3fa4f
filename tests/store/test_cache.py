"""The render cache: stored once under a key made of the parts, served from the store afterwards."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from viscnn.errors import ViscnnError
from viscnn.store import Store
from viscnn.store import cache as cache_module
from viscnn.store.cache import cache_key, cached_arrays, cached_image, cached_json, read_png_meta, to_pil


@pytest.fixture
def store(tmp_path: Path):
    with Store(tmp_path / "store") as opened:
        yield opened


def counting(result):
    calls = []

    def render():
        calls.append(1)
        return result

    return render, calls


def test_image_rendered_once_and_served_from_store(store: Store) -> None:
    image = np.zeros((8, 10, 3), np.uint8)
    image[2:5, 3:7] = (255, 10, 20)
    render, calls = counting((image, {"activation": 12.5}))
    parts = {"model": "abc123", "objective": "features.3:5", "steps": 64}
    path1, meta1 = cached_image(store, "render", parts, render)
    path2, meta2 = cached_image(store, "render", dict(reversed(parts.items())), render)  # order-free key
    assert calls == [1]
    assert path1 == path2 and path1.suffix == ".png" and path1.is_relative_to(store.root)
    assert meta1 == meta2 == {"activation": 12.5}
    assert np.array_equal(np.asarray(Image.open(path1)), image)
    assert read_png_meta(path1) == {"activation": 12.5}
    assert store.meta("render", cache_key("render", parts))["parts"] == parts


def test_other_parts_render_again(store: Store) -> None:
    render, calls = counting((np.ones((4, 4)), {}))
    cached_image(store, "render", {"model": "a", "steps": 64}, render)
    cached_image(store, "render", {"model": "a", "steps": 65}, render)
    cached_image(store, "view", {"model": "a", "steps": 64}, render)
    assert len(calls) == 3


def test_survives_reopening_the_store(tmp_path: Path) -> None:
    render, calls = counting((Image.new("L", (5, 5), 128), {"n": 1}))
    with Store(tmp_path / "s") as first:
        cached_image(first, "render", {"x": 1}, render)
    with Store(tmp_path / "s") as second:
        path, meta = cached_image(second, "render", {"x": 1}, render)
    assert calls == [1] and meta == {"n": 1} and Image.open(path).size == (5, 5)


def test_damaged_file_is_rendered_again(store: Store) -> None:
    render, calls = counting((np.zeros((4, 4)), {}))
    path, _ = cached_image(store, "render", {"x": 1}, render)
    path.write_bytes(b"garbage")
    path2, _ = cached_image(store, "render", {"x": 1}, render)
    assert len(calls) == 2 and Image.open(path2).size == (4, 4)


def test_threads_render_once(store: Store) -> None:
    calls = []

    def slow():
        calls.append(1)
        time.sleep(0.2)
        return np.zeros((4, 4)), {}

    threads = [threading.Thread(target=cached_image, args=(store, "render", {"x": 2}, slow)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == [1]
    assert not cache_module._LOCKS  # no lock outlives its users


def test_json_and_arrays(store: Store) -> None:
    compute, calls = counting({"ids": [3, 1], "acts": [2.5, 1.0]})
    assert cached_json(store, "examples", {"k": 2}, compute)[1] == {"ids": [3, 1], "acts": [2.5, 1.0]}
    assert cached_json(store, "examples", {"k": 2}, compute)[1]["ids"] == [3, 1]
    arrays = {"maps": np.arange(12, dtype=np.float32).reshape(3, 4)}
    compute2, calls2 = counting((arrays, {"layer": "a"}))
    for _ in range(2):
        got, meta = cached_arrays(store, "maps", {"k": 2}, compute2)
        assert np.array_equal(got["maps"], arrays["maps"]) and meta == {"layer": "a"}
    assert calls == [1] and calls2 == [1]


def test_bad_inputs(store: Store, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="HxW"):
        to_pil(np.zeros((2, 3, 5)))
    with pytest.raises(ValueError):  # NaN metadata is refused before anything is stored
        cached_image(store, "render", {"x": 3}, lambda: (np.zeros((2, 2)), {"a": float("nan")}))
    assert not store.entries("render")
    with pytest.raises(TypeError):
        cached_image(store, "render", {"x": object()}, lambda: (np.zeros((2, 2)), {}))
    with pytest.raises(ViscnnError, match="invalid store kind"):
        cached_image(store, "Bad Kind", {}, lambda: (np.zeros((2, 2)), {}))
    (tmp_path / "notastore").mkdir()
    (tmp_path / "notastore" / "somefile.txt").write_text("x")
    with pytest.raises(ViscnnError, match="not a"):
        Store(tmp_path / "notastore")


def test_float_arrays_scale_to_bytes() -> None:
    image = to_pil(np.array([[0.0, 0.5], [1.0, 2.0]]))
    assert image.mode == "L" and np.asarray(image).tolist() == [[0, 128], [255, 255]]
