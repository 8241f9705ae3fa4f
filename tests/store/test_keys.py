"""Store.key: a stable digest of kind + parts, the same in every process, different for different parts."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from viscnn.errors import ViscnnError
from viscnn.store import Store

from .conftest import WORKER

PARTS = {"model": "lite0", "layer": "features.3", "images": 64, "norm": [0.5, 0.25], "opts": {"b": True, "a": None}}
# Pinned: changing the key recipe silently orphans every cached result, so it must be deliberate.
GOLDEN = "4da54561a57bd120efe2125b9f11ebb6d0c99c9f49335a195bc23123ed00b6ec"


def test_key_is_pinned_and_order_free() -> None:
    assert Store.key("scores", **PARTS) == GOLDEN
    shuffled = {"opts": {"a": None, "b": True}, "norm": (0.5, 0.25), "images": 64, "layer": "features.3",
                "model": "lite0"}
    assert Store.key("scores", **shuffled) == GOLDEN
    key = Store.key("scores", **PARTS)
    assert len(key) == 64 and int(key, 16) >= 0


@pytest.mark.parametrize("seed", ["0", "12345"])
def test_key_is_the_same_in_another_process(seed: str) -> None:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    out = subprocess.run([sys.executable, str(WORKER), "key", ".", "scores", json.dumps(PARTS)], env=env,
                         capture_output=True, text=True, check=True, timeout=30)
    assert out.stdout.strip() == GOLDEN


def test_different_parts_give_different_keys() -> None:
    variants = [
        Store.key("scores"),
        Store.key("featurevis"),
        Store.key("scores", layer="a"),
        Store.key("scores", layer="b"),
        Store.key("scores", layr="a"),
        Store.key("scores", n=1),
        Store.key("scores", n=1.0),
        Store.key("scores", n="1"),
        Store.key("scores", n=True),
        Store.key("scores", n=None),
        Store.key("scores", n=[1]),
        Store.key("scores", n={"1": 1}),
        Store.key("scores", n=[1, 2]),
        Store.key("scores", n=[2, 1]),
        Store.key("scores", n=0.1 + 0.2),
        Store.key("scores", n=0.3),
        Store.key("scores", a="1", b="2"),
        Store.key("scores", a="1,b=2"),
    ]
    assert len(set(variants)) == len(variants)


def test_bad_parts_and_kinds() -> None:
    with pytest.raises(TypeError, match="parts.p"):
        Store.key("scores", p={1, 2})
    with pytest.raises(TypeError, match="dict keys"):
        Store.key("scores", p={1: "x"})
    with pytest.raises(TypeError, match=r"parts.p\[1\]"):
        Store.key("scores", p=[1, b"x"])
    with pytest.raises(ValueError, match="NaN"):
        Store.key("scores", p=float("nan"))
    with pytest.raises(ViscnnError):
        Store.key("../scores")


def test_key_is_usable_as_a_store_key(tmp_path) -> None:
    store = Store(tmp_path / "s")
    key = store.key("scores", **PARTS)
    store.put_bytes("scores", key, b"x")
    assert store.get_bytes("scores", key) == b"x"
