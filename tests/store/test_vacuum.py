"""Store.vacuum: temp files of dead writers, files without rows, rows without (good) files."""
from __future__ import annotations

import os
import subprocess
import sys
import time

from viscnn.store import Store, Vacuumed


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_vacuum(store: Store) -> None:
    keep = store.put_bytes("scores", "keep", b"kept", meta={"m": 1})
    gone = store.put_bytes("scores", "gone", b"file removed")
    short = store.put_bytes("img", "short", b"will be truncated", suffix=".png")
    flipped = store.put_bytes("img", "flipped", b"same size")
    os.remove(gone)
    short.write_bytes(b"trunc")
    flipped.write_bytes(b"SAME SIZE")
    folder = keep.parent
    dead_temp = folder / f"keep~{dead_pid()}-0a0b0c0d.bin"
    live_temp = folder / f"other~{os.getpid()}-0a0b0c0d.png"
    old_temp = folder / f"old~{os.getpid()}-01234567.bin"
    orphan = folder / "orphan.bin"
    for path in (dead_temp, live_temp, old_temp, orphan):
        path.write_bytes(b"partial")
    long_ago = time.time() - 7200
    os.utime(old_temp, (long_ago, long_ago))
    (store.root / "notes").mkdir()  # a kind folder with a stray sub-folder: left alone
    (store.root / "notes" / "ab" / "sub").mkdir(parents=True)
    stray_top = store.root / "README.user"  # not in a kind folder: left alone
    stray_top.write_text("mine")

    result = store.vacuum()
    assert result == Vacuumed(temp_files=2, orphan_files=1, dropped_rows=2)
    assert not dead_temp.exists() and not old_temp.exists() and not orphan.exists() and not short.exists()
    assert live_temp.exists() and stray_top.exists() and (store.root / "notes" / "ab" / "sub").is_dir()
    assert [e.key for e in store.entries()] == ["flipped", "keep"]  # size matches: only verify=True hashes
    assert store.vacuum(verify=True) == Vacuumed(temp_files=0, orphan_files=0, dropped_rows=1)
    assert not flipped.exists()
    assert store.vacuum(temp_age=0) == Vacuumed(temp_files=1, orphan_files=0, dropped_rows=0)
    assert [e.key for e in store.entries()] == ["keep"] and store.get_bytes("scores", "keep") == b"kept"
    assert store.vacuum() == Vacuumed(0, 0, 0, 0)


def test_vacuum_keeps_everything_in_a_clean_store(store: Store) -> None:
    for i in range(20):
        store.put_bytes(f"k{i % 3}", f"key{i}", bytes([i]) * i, suffix=".npy")
    before = sorted(store.root.rglob("*"))
    assert store.vacuum(verify=True) == Vacuumed(0, 0, 0, 0)
    assert sorted(store.root.rglob("*")) == before and len(store.entries()) == 20
