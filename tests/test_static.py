"""Lint and type checks as tests, so CI (which runs only pytest) runs them: any report from ruff or mypy fails."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # ruff and mypy come with `pip install -e '.[test]'`, next to this Python


def _run(tool: str, *args: str) -> subprocess.CompletedProcess:
    exe = BIN / tool
    assert exe.exists(), f"{exe} is missing: install the test extras (pip install -e '.[test]')"
    return subprocess.run([str(exe), *args], cwd=ROOT, capture_output=True, text=True, timeout=900)


def test_ruff_reports_nothing():
    done = _run("ruff", "check", "src", "tests", "benchmarks")
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
def test_mypy_reports_nothing():
    # the files and options are pyproject.toml's [tool.mypy]; the cache (gitignored) makes a rerun take seconds
    done = _run("mypy", "--cache-dir", str(ROOT / ".mypy_cache"))
    assert done.returncode == 0, done.stdout + done.stderr
