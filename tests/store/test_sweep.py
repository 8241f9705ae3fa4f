"""Temp files of killed writes are swept when a store opens; a live writer's temp file is left to finish."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from viscnn.store import Store

from .conftest import worker
from .worker import check

pytestmark = pytest.mark.skipif(os.name != "posix", reason="needs SIGKILL and pids")


def temp_files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*~*") if p.is_file()}


def test_a_killed_writers_temp_file_is_gone_after_open(tmp_path: Path) -> None:
    root = tmp_path / "store"
    Store(root).put_bytes("crash", "k", b"the old value")
    child = worker("inject", root, "mid-write", "k", stderr=subprocess.PIPE)
    child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL
    left = temp_files(root)
    assert len(left) == 1 and f"~{child.pid}-" in left.pop().name  # the killed write's half file
    store = Store(root)
    assert store.swept == 1 and temp_files(root) == set()
    assert store.get_bytes("crash", "k") == b"the old value"


def test_open_sweeps_dead_and_stale_temp_files_and_keeps_live_ones(tmp_path: Path) -> None:
    root = tmp_path / "store"
    kept = Store(root).put_bytes("scores", "kept", b"a stored file")
    folder = kept.parent
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead = folder / f"kept~{gone.pid}-0a0b0c0d0e0f.bin"
        stale = folder / f"kept~{alive.pid}-111111111111.bin"  # a live pid, but two hours old: a reused pid
        live_other = folder / f"kept~{alive.pid}-222222222222.bin"
        live_ours = folder / f"kept~{os.getpid()}-333333333333.bin"  # another thread of this process
        for path in (dead, stale, live_other, live_ours):
            path.write_bytes(b"half a file")
        long_ago = time.time() - 7200
        os.utime(stale, (long_ago, long_ago))
        store = Store(root)
        assert store.swept == 2
        assert temp_files(root) == {live_other, live_ours}
        assert store.get_bytes("scores", "kept") == b"a stored file"
    finally:
        alive.kill()
        alive.wait()


def test_a_concurrent_writer_finishes_while_another_process_opens_the_store(tmp_path: Path) -> None:
    root = tmp_path / "store"
    Store(root)
    child = worker("hold", root, "held", stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline() == "writing\n"
        assert len(temp_files(root)) == 1
        store = Store(root)  # opens (and sweeps) while the child's write is half done
        assert store.swept == 0 and len(temp_files(root)) == 1
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline() == "done\n"
        assert child.wait(timeout=60) == 0
        assert check("held", store.get_bytes("crash", "held")) == "held"
        assert temp_files(root) == set()
    finally:
        child.kill()
        child.wait()
