"""Several processes (and threads) writing the same store at once."""
from __future__ import annotations

import multiprocessing
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from viscnn.store import Store, Vacuumed

from .conftest import worker
from .worker import check


def run_together(tmp_path: Path, jobs: list[tuple[str, int, int, str]]) -> None:
    """Start one worker per (prefix, count, size, tag) on a new store, release them at once, wait for all."""
    start = tmp_path / "go"
    children = [worker("write", tmp_path / "store", start, prefix, count, size, tag,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE) for prefix, count, size, tag in jobs]
    start.touch()
    for child in children:
        _out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err.decode()[-2000:]


def test_two_processes_writing_different_keys(tmp_path: Path) -> None:
    # Both processes also create the (new) store at the same moment.
    run_together(tmp_path, [("a", 40, 1 << 16, "A"), ("b", 40, 1 << 16, "B")])
    store = Store(tmp_path / "store")
    entries = store.entries("load")
    assert len(entries) == 80
    for entry in entries:
        data = store.get_bytes("load", entry.key)
        assert data is not None
        assert check(entry.key, data) == entry.meta["tag"] == entry.key[0].upper()
    assert store.vacuum(verify=True) == Vacuumed(0, 0, 0, 0)


def test_two_processes_writing_the_same_keys(tmp_path: Path) -> None:
    # Each writes same0..same9 several times over (even i via put_file, odd via put_bytes).
    run_together(tmp_path, [("same", 10, 1 << 16, "A"), ("same", 10, 1 << 16, "B"), ("same", 10, 1 << 16, "C")])
    store = Store(tmp_path / "store")
    entries = store.entries("load")
    assert sorted(e.key for e in entries) == [f"same{i}" for i in range(10)]
    for entry in entries:
        data = store.get_bytes("load", entry.key)
        assert data is not None, entry
        assert check(entry.key, data) == entry.meta["tag"]  # the file and the row come from the same write
    files = sorted(p.name for p in (tmp_path / "store" / "load").rglob("*") if p.is_file())
    assert files == sorted(f"same{i}.bin" for i in range(10))  # no temp or stale file left behind
    assert store.vacuum(verify=True) == Vacuumed(0, 0, 0, 0)


def test_many_processes_creating_one_store_at_once(tmp_path: Path) -> None:
    run_together(tmp_path, [(f"p{n}-", 2, 1000, f"T{n}") for n in range(6)])
    store = Store(tmp_path / "store")
    assert len(store.entries("load")) == 12
    assert all(store.get_bytes("load", e.key) is not None for e in store.entries())


def test_threads_sharing_one_store(store: Store) -> None:
    def write(i: int) -> bytes | None:
        store.put_bytes("t", f"k{i % 8}", f"{i}".encode() * 1000, meta={"i": i})
        return store.get_bytes("t", f"k{i % 8}")

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(write, range(64)))
    assert all(result is not None for result in results)
    for entry in store.entries("t"):
        assert store.get_bytes("t", entry.key) == f"{entry.meta['i']}".encode() * 1000
    assert len(store.entries()) == 8


def _forked_writer(store: Store, name: str) -> None:
    for i in range(10):
        store.put_bytes("fork", f"{name}{i}", name.encode() * 100)
    assert store.get_bytes("fork", f"{name}0") == name.encode() * 100


def test_forked_children_reuse_an_open_store(store: Store) -> None:
    # The children inherit a Store whose connection is open; each must open its own.
    store.put_bytes("fork", "parent", b"p")
    context = multiprocessing.get_context("fork")
    children = [context.Process(target=_forked_writer, args=(store, name)) for name in ("x", "y")]
    for child in children:
        child.start()
    store.put_bytes("fork", "parent2", b"q")
    for child in children:
        child.join(timeout=60)
        assert child.exitcode == 0
    assert len(store.entries("fork")) == 22 and store.get_bytes("fork", "y9") == b"y" * 100
    assert store.vacuum(verify=True) == Vacuumed(0, 0, 0, 0)
