"""Kill writers with SIGKILL mid-write: the store serves only whole, verified entries, and keeps working."""
from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from viscnn.store import Store, Vacuumed

from .conftest import worker
from .worker import check, payload

pytestmark = pytest.mark.skipif(os.name != "posix", reason="needs SIGKILL")


def temp_files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*~*") if p.is_file()}


def served(store: Store) -> dict[str, str]:
    """Every entry the index serves, checked byte for byte: {key: tag of the write it came from}."""
    tags = {}
    for entry in store.entries("crash"):
        data = store.get_bytes("crash", entry.key)
        if data is not None:
            tags[entry.key] = check(entry.key, data)
    return tags


def integrity_ok(root: Path) -> bool:
    conn = sqlite3.connect(root / "index.sqlite")
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()


def test_kill_at_random_moments(tmp_path: Path) -> None:
    root = tmp_path / "store"
    rng = random.Random(7)
    temps_seen: set[Path] = set()
    dropped = 0
    for round_ in range(8):
        child = worker("churn", root, round_, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert child.stdout is not None and child.stdout.readline() == b"ready\n"
        time.sleep(rng.uniform(0.05, 0.5))
        if round_ % 2:  # aim: kill as soon as a temp file shows, i.e. while the child is writing it
            deadline = time.monotonic() + 10
            while not temp_files(root) - temps_seen and child.poll() is None and time.monotonic() < deadline:
                time.sleep(0.001)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        assert child.returncode == -signal.SIGKILL, child.stderr.read().decode()[-2000:] if child.stderr else ""
        child.stdout.close()
        child.stderr.close()  # type: ignore[union-attr]
        left = temp_files(root)
        temps_seen |= left
        assert integrity_ok(root)
        store = Store(root)
        assert store.swept == len(left) and not temp_files(root)  # the killed writes' temp files: swept at open
        before = len(store.entries("crash"))
        tags = served(store)  # raises if any served entry is not one whole payload
        dropped += before - len(tags)
        store.close()
    assert temps_seen, "no kill landed mid-write"
    assert dropped == 0  # a kill between rename and commit is recovered from the write's intent
    store = Store(root)
    assert len(served(store)) >= 6
    result = store.vacuum(verify=True)
    print(f"8 kills: {len(temps_seen)} mid-write temp files, {len(served(store))} entries served, {result}")
    assert result.temp_files == 0 and result.dropped_rows == 0  # the opens swept them
    # A kill between the rename of a new path (new key, or new suffix) and the commit leaves the old
    # entry (or none) served, and a file nothing names; every such file comes with its stale intent.
    assert result.orphan_files <= result.stale_intents
    assert not temp_files(root) and store.vacuum(verify=True) == Vacuumed(0, 0, 0, 0)
    data = payload("after", 1 << 20, tag="after")
    store.put_bytes("crash", "after", data)
    assert store.get_bytes("crash", "after") == data
    files = {p.name.split(".")[0] for p in (root / "crash").rglob("*") if p.is_file()}
    assert files == {e.key for e in store.entries("crash")}


def kill_while_writing(tmp_path: Path, mode: str, key: str = "k") -> tuple[Store, Path]:
    """A store holding k ("old") and other; a child then overwrites `key` and dies at point `mode`."""
    root = tmp_path / "store"
    store = Store(root)
    store.put_bytes("crash", "k", payload("k", 1 << 20, tag="old"))
    store.put_bytes("crash", "other", payload("other", 1000, tag="other"))
    child = worker("inject", root, mode, key, stderr=subprocess.PIPE)
    _, err = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL, err.decode()[-2000:]
    assert integrity_ok(root)
    return store, root


def still_works(store: Store) -> None:
    assert store.vacuum(verify=True) == Vacuumed(0, 0, 0, 0)
    store.put_bytes("crash", "k", payload("k", 1000, tag="next"))
    assert served(store)["k"] == "next"


@pytest.mark.parametrize("mode", ["mid-write", "before-replace"])
def test_kill_before_the_rename_keeps_the_old_entry(tmp_path: Path, mode: str) -> None:
    store, root = kill_while_writing(tmp_path, mode)
    assert len(temp_files(root)) == 1
    assert served(store) == {"k": "old", "other": "other"}
    intents = 1 if mode == "before-replace" else 0
    assert store.vacuum() == Vacuumed(temp_files=1, orphan_files=0, dropped_rows=0, stale_intents=intents)
    still_works(store)


def test_kill_between_rename_and_commit_recovers_the_new_entry(tmp_path: Path) -> None:
    # The new file is in place but `entries` still records the old one; the write's intent, committed
    # before the rename, matches the file's sha256, so the new entry is served (with its own meta).
    store, root = kill_while_writing(tmp_path, "after-replace")
    assert not temp_files(root)
    assert served(store) == {"k": "new", "other": "other"}
    assert store.meta("crash", "k") == {"from": "inject"}
    still_works(store)


def test_kill_between_rename_and_commit_recovers_on_any_reader(tmp_path: Path) -> None:
    store, _ = kill_while_writing(tmp_path, "after-replace")
    assert ("crash", "k") in store  # size differs from the old row: recovered by the cheap check too
    assert store.entries("crash")[0].meta == {"from": "inject"}
    assert store.vacuum(verify=True) == Vacuumed(0, 0, 0, 0)


def test_kill_between_rename_and_commit_of_a_new_key(tmp_path: Path) -> None:
    # No old entry: the key stays absent, and vacuum removes the unrecorded file and the intent.
    store, root = kill_while_writing(tmp_path, "after-replace", key="fresh")
    assert (root / "crash" / "fr" / "fresh.bin").is_file()
    assert store.get_path("crash", "fresh") is None
    assert served(store) == {"k": "old", "other": "other"}
    assert store.vacuum() == Vacuumed(temp_files=0, orphan_files=1, dropped_rows=0, stale_intents=1)
    still_works(store)
