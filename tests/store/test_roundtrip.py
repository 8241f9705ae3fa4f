"""Put and get bytes, files and meta; the on-disk layout; overwrite, delete, clear."""
from __future__ import annotations

import hashlib
import pickle
import sqlite3
from pathlib import Path

import pytest

from viscnn.store import Entry, Store


def test_bytes_round_trip(store: Store) -> None:
    key = Store.key("scores", layer="conv1", images=8)
    path = store.put_bytes("scores", key, b"\x00\x01abc", meta={"layer": "conv1", "shape": [2, 3]})
    assert path == store.root / "scores" / key[:2] / f"{key}.bin"
    assert path.read_bytes() == b"\x00\x01abc"
    assert store.get_bytes("scores", key) == b"\x00\x01abc"
    assert store.get_path("scores", key) == path
    assert store.meta("scores", key) == {"layer": "conv1", "shape": [2, 3]}
    assert ("scores", key) in store
    assert ("scores", "other") not in store
    assert store.get_bytes("scores", "other") is None and store.get_path("other", key) is None
    assert store.meta("scores", "other") is None


def test_empty_bytes_and_no_meta(store: Store) -> None:
    store.put_bytes("k", "empty", b"", suffix="")
    assert store.get_bytes("k", "empty") == b""
    assert store.meta("k", "empty") == {}
    assert store.get_path("k", "empty") == store.root / "k" / "em" / "empty"


def test_put_file_writes_a_temp_file_beside_the_target(store: Store) -> None:
    seen: list[Path] = []

    def write(tmp: Path) -> None:
        seen.append(tmp)
        assert not tmp.exists()
        tmp.write_text("a picture")

    path = store.put_file("featurevis", "unit-3", write, meta={"size": 9}, suffix=".png")
    assert seen[0].parent == path.parent and seen[0].suffix == ".png" and seen[0] != path
    assert not seen[0].exists()
    assert path.read_text() == "a picture" and store.get_path("featurevis", "unit-3") == path
    assert store.meta("featurevis", "unit-3") == {"size": 9}
    assert sorted(p.name for p in path.parent.iterdir()) == ["unit-3.png"]


def test_failing_writer_stores_nothing(store: Store) -> None:
    def write(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise KeyError("boom")

    with pytest.raises(KeyError):
        store.put_file("fv", "k1", write)
    with pytest.raises(RuntimeError, match="did not create"):
        store.put_file("fv", "k1", lambda tmp: None)
    assert store.get_path("fv", "k1") is None and store.entries() == []
    assert list((store.root / "fv" / "k1").iterdir()) == []


def test_entries(store: Store) -> None:
    store.put_bytes("b", "x1", b"one", meta={"n": 1})
    store.put_bytes("a", "x2", b"two", suffix=".npy")
    entries = store.entries()
    assert [(e.kind, e.key) for e in entries] == [("a", "x2"), ("b", "x1")]
    entry = store.entries("b")[0]
    assert isinstance(entry, Entry)
    assert entry.path == store.root / "b" / "x1" / "x1.bin" and entry.size == 3
    assert entry.sha256 == hashlib.sha256(b"one").hexdigest() and entry.meta == {"n": 1}
    assert entry.created == pytest.approx(entry.path.stat().st_mtime, abs=5)
    with pytest.raises(AttributeError):
        entry.size = 4  # type: ignore[misc]


def test_overwrite_last_wins_and_suffix_change_removes_old_file(store: Store) -> None:
    first = store.put_bytes("img", "k", b"first", meta={"v": 1}, suffix=".png")
    second = store.put_bytes("img", "k", b"second", meta={"v": 2}, suffix=".jpg")
    assert not first.exists() and second.exists()
    assert store.get_bytes("img", "k") == b"second" and store.meta("img", "k") == {"v": 2}
    store.put_bytes("img", "k", b"third", suffix=".jpg")
    assert store.get_bytes("img", "k") == b"third" and store.meta("img", "k") == {}
    assert len(store.entries()) == 1


def test_delete_and_clear(store: Store) -> None:
    paths = [store.put_bytes(kind, f"k{i}", b"x") for kind in ("a", "b") for i in range(3)]
    assert store.delete("a", "k0") is True and store.delete("a", "k0") is False
    assert not paths[0].exists()
    assert store.clear("a") == 2 and not any(p.exists() for p in paths[:3])
    assert [e.kind for e in store.entries()] == ["b"] * 3
    assert store.clear() == 3 and store.entries() == [] and not any(p.exists() for p in paths)


def test_index_is_sqlite_in_wal_mode(store: Store) -> None:
    store.put_bytes("a", "k", b"x", meta={"m": True})
    conn = sqlite3.connect(store.root / "index.sqlite")
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        row = conn.execute("SELECT kind, key, path, size, meta FROM entries").fetchone()
    finally:
        conn.close()
    assert row == ("a", "k", "a/k/k.bin", 1, '{"m": true}')
    assert (store.root / "viscnn-store.txt").is_file()


def test_reopen_and_pickle(store: Store) -> None:
    store.put_bytes("a", "k", b"kept")
    store.close()
    assert Store(store.root).get_bytes("a", "k") == b"kept"
    assert store.get_bytes("a", "k") == b"kept"  # reopens after close
    copy = pickle.loads(pickle.dumps(store))
    assert copy.root == store.root and copy.get_bytes("a", "k") == b"kept"


def test_meta_must_be_json(store: Store) -> None:
    with pytest.raises(TypeError):
        store.put_bytes("a", "k", b"x", meta={"path": Path("/x")})
    with pytest.raises(TypeError):
        store.put_bytes("a", "k", b"x", meta=[1, 2])  # type: ignore[arg-type]
    assert store.entries() == []
