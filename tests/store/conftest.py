"""Fixtures for the store tests: a fresh store per test, and a way to run tests/store/worker.py."""
from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from viscnn.store import Store

WORKER = Path(__file__).with_name("worker.py")


def worker(*args: object, **popen: object) -> subprocess.Popen:
    """Start worker.py with `args` in a child Python process."""
    return subprocess.Popen([sys.executable, str(WORKER), *map(str, args)], **popen)  # type: ignore[call-overload]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "store") as opened:
        yield opened
