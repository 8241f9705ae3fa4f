"""The page: its unit tests (vitest) and an end-to-end walk in headless Chromium against `viscnn serve`.

Both need Node.js (and the e2e test Debian's Chromium); they skip with the reason when those are absent.
`npm ci` runs here when web/node_modules is missing (the versions come from web/package-lock.json).
Screenshots go to a temporary folder; `VISCNN_SCREENSHOTS=docs/screenshots` refreshes the committed ones.
`VISCNN_E2E_SECONDS` (default 900) is each test's overall deadline.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
CHROMIUM = os.environ.get("VISCNN_CHROMIUM", "/usr/bin/chromium")
# What a test may take in all (build, server start and walk): its waits poll for their conditions until then, so a
# loaded machine makes it slower, not failed. Generous: the walk takes one to two minutes on a quiet machine.
BUDGET = float(os.environ.get("VISCNN_E2E_SECONDS") or 900)


def _need_node() -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("Node.js (node and npm) is not installed: the page cannot be built or tested")


@pytest.fixture(scope="module")
def node_modules() -> Path:
    _need_node()
    if not (WEB / "node_modules" / ".package-lock.json").is_file():
        done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=WEB, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"npm ci failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return WEB / "node_modules"


def test_unit(node_modules: Path) -> None:
    """vitest: URL state, set-name completion, geometry, colours, circuit layout, API client."""
    done = subprocess.run(["node", str(node_modules / "vitest" / "vitest.mjs"), "run", "--reporter=dot"], cwd=WEB,
                          capture_output=True, text=True, timeout=BUDGET)
    assert done.returncode == 0, f"vitest failed:\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}"
    assert "passed" in done.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_url(server: subprocess.Popen, deadline: float) -> str:
    assert server.stdout is not None
    lines = []
    while time.monotonic() < deadline:
        line = server.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "open http" in line:
            return line.split("open ", 1)[1].split()[0]
    raise AssertionError(f"viscnn serve did not start (within VISCNN_E2E_SECONDS={BUDGET:g} in all):\n" + "".join(lines))


def _walk(node_modules: Path, tmp_path: Path, script: str, render_steps: int) -> tuple[dict, Path]:
    """Build the page, start `viscnn serve` on fmnist-convnet (a fresh store), run the walk `e2e/SCRIPT`; its report
    and the screenshot folder."""
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (Debian package 'chromium')")
    deadline = time.monotonic() + BUDGET
    dist = tmp_path / "dist"  # a private build: the shared web/dist may be served by someone else right now
    built = subprocess.run(["node", str(node_modules / "vite" / "bin" / "vite.js"), "build", "--outDir", str(dist), "--logLevel", "error"],
                           cwd=WEB, capture_output=True, text=True, timeout=BUDGET)
    assert built.returncode == 0, f"vite build failed:\n{built.stdout}\n{built.stderr}"
    shots = Path(os.environ.get("VISCNN_SCREENSHOTS") or tmp_path / "screenshots").resolve()
    port = _free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    server = subprocess.Popen(
        [sys.executable, "-m", "viscnn", "serve", "--model", "fmnist-convnet", "--images", "fashion-mnist:test:20",
         "--port", str(port), "--store", str(tmp_path / "store"), "--web", str(dist), "--prepare", "none",
         "--render-steps", str(render_steps)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        url = _wait_for_url(server, deadline)
        left = max(60.0, deadline - time.monotonic())  # the walk's own deadline; its process gets a minute more
        walk = subprocess.run(["node", str(WEB / "e2e" / script), url, str(shots)], cwd=WEB, capture_output=True, text=True,
                              timeout=left + 60, env={**os.environ, "VISCNN_E2E_SECONDS": str(round(left))})
        assert walk.returncode == 0, f"e2e walk {script} failed:\n{walk.stdout[-3000:]}\n{walk.stderr[-3000:]}"
        return json.loads(walk.stdout.strip().splitlines()[-1]), shots
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


def test_end_to_end(node_modules: Path, tmp_path: Path) -> None:
    """Load, query, hover/click a node, pick an image, click a unit (receptive field), Back, extract a circuit, jobs that
    do not move the graph, reload, cancel a job from the jobs view and one from its own progress line."""
    report, shots = _walk(node_modules, tmp_path, "e2e.mjs", 16)
    assert report["ok"] and len(report["steps"]) == 18
    for name in ("query.png", "node.png", "circuit.png", "jobs.png"):
        assert (shots / name).stat().st_size > (3_000 if name == "jobs.png" else 10_000), f"{name} is empty"


def test_the_page_follows_attention(node_modules: Path, tmp_path: Path) -> None:
    """A node's own work first and its input renders lazily; another click cancels the first node's queued work at once;
    the jobs list with cancel buttons; steps and time left; asking before a query; sampling; Back/Forward restore the
    graph; image labels after a reload (renders slow enough to queue: 200 steps)."""
    report, shots = _walk(node_modules, tmp_path, "attention.mjs", 200)
    assert report["ok"] and len(report["steps"]) == 9
    for name in ("progress", "jobs", "faithfulness-progress", "ask", "sample", "history"):
        assert (shots / f"attention-{name}.png").stat().st_size > 3_000, f"attention-{name}.png is empty"
