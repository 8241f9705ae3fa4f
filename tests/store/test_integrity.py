"""Damaged, missing and tampered files are dropped, never served."""
from __future__ import annotations

import os
import sqlite3

from viscnn.store import Store


def test_truncated_file_is_dropped(store: Store) -> None:
    path = store.put_bytes("scores", "k", b"0123456789" * 100, meta={"a": 1})
    with open(path, "r+b") as handle:
        handle.truncate(500)
    assert store.get_path("scores", "k") is None
    assert store.get_bytes("scores", "k") is None
    assert store.entries() == [] and not path.exists()
    assert ("scores", "k") not in store and store.meta("scores", "k") is None


def test_truncation_is_seen_by_every_reader(store: Store) -> None:
    for reader in (store.get_bytes, store.meta, lambda kind, key: (kind, key) in store or None):
        path = store.put_bytes("scores", "k", b"abcdef")
        path.write_bytes(b"abc")
        assert not reader("scores", "k")
        assert store.entries() == []


def test_same_size_corruption_is_caught_by_the_hash(store: Store) -> None:
    path = store.put_bytes("scores", "k", b"abcdef")
    path.write_bytes(b"abcdeX")
    assert store.get_bytes("scores", "k") is None and store.entries() == []
    path = store.put_bytes("scores", "k", b"abcdef")
    path.write_bytes(b"Xbcdef")
    assert store.get_path("scores", "k") is None and store.entries() == []


def test_missing_file_is_dropped(store: Store) -> None:
    path = store.put_bytes("scores", "k", b"abc")
    os.remove(path)
    assert store.get_path("scores", "k") is None and store.entries() == []
    store.put_bytes("scores", "k", b"again")
    assert store.get_bytes("scores", "k") == b"again"


def test_file_replaced_by_a_folder_is_dropped(store: Store) -> None:
    path = store.put_bytes("scores", "k", b"abc")
    os.remove(path)
    path.mkdir()
    assert store.get_bytes("scores", "k") is None and store.get_path("scores", "k") is None


def test_tampered_index_path_never_leaves_the_root(store: Store, tmp_path) -> None:
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"secret")
    store.put_bytes("scores", "k", b"secret")
    conn = sqlite3.connect(store.root / "index.sqlite")
    with conn:
        conn.execute("UPDATE entries SET path = ?", ("../outside.bin",))
    conn.close()
    assert store.get_bytes("scores", "k") is None and store.get_path("scores", "k") is None
    assert outside.read_bytes() == b"secret"
    store.put_bytes("scores", "k2", b"secret")
    conn = sqlite3.connect(store.root / "index.sqlite")
    with conn:
        conn.execute("UPDATE entries SET path = ?", (str(outside),))
    conn.close()
    assert store.delete("scores", "k2") is True and outside.read_bytes() == b"secret"
