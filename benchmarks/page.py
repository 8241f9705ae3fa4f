"""The page in headless Chromium on efficientnet-lite0 (21,008 nodes): first paint, and frames per second
while orbiting with 0, 10^4 and 10^5 highlighted edges, measured side by side in one run.

    .venv/bin/python benchmarks/page.py [--model efficientnet-lite0] [--orbit-ms 4000] [--screenshot FILE]

It builds the page into a temporary folder, starts `viscnn serve` (one torch thread, a fresh store, no
background preparation), computes the query once (criterion `weight`, top 5% of each layer's kernels, so
more than 10^5 kernels qualify) and then opens the page three times with `max_edges` 10^5, 10^4 and 0.
Each time it orbits the camera twice: once as a drag does (the strongest edges that keep ~30 frames
per second while moving, all of them once the camera stops), once drawing every edge in every frame.
Chromium runs with --disable-gpu here, so WebGL is SwiftShader on the CPU: a lower bound for a GPU.
Needs node, npm's web/node_modules and /usr/bin/chromium.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WEB = ROOT / "web"
QUERY = {"images": "overall", "target": "loss", "criterion": "weight", "node_fraction": 0.1, "node_cumulative": None,
         "edge_fraction": 0.05, "edge_cumulative": None, "max_edges": 100000}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=600) as response:
        return json.load(response)


def _wait(base: str, seconds: float = 120) -> None:
    """The URL is printed just before the server listens."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(base + "api/model", timeout=10):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def _warm(base: str) -> float:
    """Computes the query once (a job), so the page loads below get it from the cache."""
    _wait(base)
    t0 = time.perf_counter()
    answer = _post(base + "api/query", QUERY)
    while answer.get("job"):
        time.sleep(0.5)
        with urllib.request.urlopen(f"{base}api/jobs/{answer['job']}", timeout=60) as response:
            job = json.load(response)
        if job["state"] in ("done", "error", "cancelled"):
            if job["state"] != "done":
                raise SystemExit(f"query failed: {job.get('error') or job['state']}")
            break
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--images", default="demo")
    parser.add_argument("--orbit-ms", type=int, default=4000)
    parser.add_argument("--screenshot", default=None, help="PNG of the page with 10^5 edges (default: none kept)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        dist = Path(tmp) / "dist"
        subprocess.run(["node", str(WEB / "node_modules" / "vite" / "bin" / "vite.js"), "build", "--outDir", str(dist), "--logLevel", "error"],
                       cwd=WEB, check=True)
        port = _free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "viscnn", "serve", "--model", args.model, "--images", args.images, "--port", str(port),
             "--store", str(Path(tmp) / "store"), "--web", str(dist), "--prepare", "none"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
        try:
            assert server.stdout is not None
            base = None
            for line in server.stdout:
                if "open http" in line:
                    base = line.split("open ", 1)[1].split()[0]
                    break
            if base is None:
                raise SystemExit("viscnn serve did not start")
            warm = _warm(base)
            env = dict(os.environ, BENCH_SCREENSHOT=args.screenshot or str(Path(tmp) / "bench.png"))
            done = subprocess.run(["node", str(WEB / "e2e" / "bench.mjs"), base, str(args.orbit_ms)], cwd=WEB, env=env,
                                  capture_output=True, text=True, timeout=900, check=False)
            if done.returncode:
                raise SystemExit(f"bench.mjs failed:\n{done.stdout}\n{done.stderr}")
            report = json.loads(done.stdout.strip().splitlines()[-1])
        finally:
            server.terminate()
            server.wait(timeout=30)
    runs = {r["max_edges"]: r for r in report["runs"]}
    base_fps = runs[0]["fps_all_edges"]
    print(f"model {args.model}, renderer {runs[0]['renderer']}; query computed once in {warm:.1f} s (not part of the page figures)")
    print(f"{'max_edges':>9} {'segments':>9} {'first frame':>11} {'query drawn':>11} {'orbit fps':>9} {'edges/frame':>11} "
          f"{'fps, all edges':>14} {'vs no edges':>11}")
    for max_edges in (100000, 10000, 0):
        r = runs[max_edges]
        print(f"{max_edges:>9,} {r['segments']:>9,} {r['graph_first_frame_ms'] / 1000:>10.2f}s {r['draw_query_ms'] / 1000:>10.2f}s "
              f"{r['fps']:>9.1f} {r['edges_per_frame']:>11,.0f} {r['fps_all_edges']:>14.2f} {r['fps_all_edges'] / base_fps:>10.2f}x")
    frames = sorted(r["graph_first_frame_ms"] / 1000 for r in runs.values())
    paints = sorted(r["first_contentful_paint_ms"] / 1000 for r in runs.values())
    print(f"first contentful paint: median {paints[1]:.2f} s; first frame with every node drawn: "
          f"median {frames[1]:.2f} s, worst {frames[2]:.2f} s of 3 loads (target < 2 s)")
    if report["errors"]:
        print("page errors:", *report["errors"], sep="\n  ")


if __name__ == "__main__":
    main()
