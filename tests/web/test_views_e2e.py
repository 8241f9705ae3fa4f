"""The page's views end to end in headless Chromium against `viscnn serve` (web/e2e/views.mjs): a kernel budget that
tells queries apart, ranked lists, go to node, maps with colour bars and values on hover, inhibiting examples, two
queries overlaid (Fig 5a), circuit export and a node through its circuit (Fig 9), composition, faithfulness (Fig 8),
sub-features (Fig 10), a layer's renders, scores export, and the page under a notebook proxy's path.

Skips as tests/web/test_web.py does without Node.js or Chromium; `VISCNN_SCREENSHOTS=docs/screenshots` refreshes
the committed views-*.png screenshots.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.web.test_web import BUDGET, CHROMIUM, WEB, _free_port, _wait_for_url, node_modules  # noqa: F401 (a fixture)

SHOTS = ("views-query.png", "views-node.png", "views-edge.png", "views-overlay.png", "views-circuit.png", "views-through.png",
         "views-composition.png", "views-faithfulness.png", "views-subfeatures.png", "views-grid.png")


def test_views_end_to_end(node_modules: Path, tmp_path: Path) -> None:  # noqa: F811 (the fixture above)
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (Debian package 'chromium')")
    deadline = time.monotonic() + BUDGET
    dist = tmp_path / "dist"
    built = subprocess.run(["node", str(node_modules / "vite" / "bin" / "vite.js"), "build", "--outDir", str(dist), "--logLevel", "error"],
                           cwd=WEB, capture_output=True, text=True, timeout=BUDGET)
    assert built.returncode == 0, f"vite build failed:\n{built.stdout}\n{built.stderr}"
    shots = Path(os.environ.get("VISCNN_SCREENSHOTS") or tmp_path / "screenshots").resolve()
    port = _free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    server = subprocess.Popen(
        [sys.executable, "-m", "viscnn", "serve", "--model", "fmnist-convnet", "--images", "fashion-mnist:test:20",
         "--port", str(port), "--store", str(tmp_path / "store"), "--web", str(dist), "--prepare", "none", "--render-steps", "16"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        url = _wait_for_url(server, deadline)
        left = max(60.0, deadline - time.monotonic())
        walk = subprocess.run(["node", str(WEB / "e2e" / "views.mjs"), url, str(shots)], cwd=WEB, capture_output=True, text=True,
                              timeout=left + 60, env={**os.environ, "VISCNN_E2E_SECONDS": str(round(left))})
        assert walk.returncode == 0, f"views walk failed:\n{walk.stdout[-3000:]}\n{walk.stderr[-3000:]}"
        report = json.loads(walk.stdout.strip().splitlines()[-1])
        assert report["ok"] and len(report["steps"]) == 14
        for name in SHOTS:
            assert (shots / name).stat().st_size > 10_000, f"{name} is empty"
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
