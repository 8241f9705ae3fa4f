"""Does the page follow the user's attention? A click on a node on efficientnet-lite0, in headless Chromium: the
time until that node's own render and its dataset examples are on screen, with other panels' work queued and
running, side by side with the time of that work alone.

    .venv/bin/python benchmarks/attention.py [--render-steps 256] [--node _blocks.6._expand_conv:3]
                                             [--other _blocks.6._expand_conv:5] [--images demo]

Each of the two runs starts its own `viscnn serve` (one torch thread, a fresh store, no background preparation),
so neither finds the other's renders stored. The page loads, its own query runs and ends (not part of the
figures), the dataset examples are computed (one job for every node, which the other node's panel asks for first
in the queued run; so both runs time the same work: the node's render, and its stored examples), then:
- alone: a click on --node; nothing else is queued;
- queued: first a click on --other (its render and dataset examples, then its incoming-edge renders queue) and on
  its first incoming edge (the edge panel's render queues), and once some of that work runs, a click on --node.
Printed per run: the seconds from the click until the render is shown, until the examples are shown, and until
both are; then queued / alone for both (target: at most 1.10: the node's own work waits for nothing, neither
behind the queued renders nor behind the one running when the click came, which yields at its next conv call).
Needs node, npm's web/node_modules and /usr/bin/chromium. `--render-steps 8` proves the script quickly.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WEB = ROOT / "web"
TARGET = 1.10


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(mode: str, args: argparse.Namespace, dist: Path, tmp: Path) -> dict:
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "viscnn", "serve", "--model", args.model, "--images", args.images, "--port", str(port),
         "--store", str(tmp / f"store-{mode}"), "--web", str(dist), "--prepare", "none",
         "--render-steps", str(args.render_steps)],
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
        done = subprocess.run(["node", str(WEB / "e2e" / "attention-bench.mjs"), base, mode, args.node, args.other],
                              cwd=WEB, capture_output=True, text=True, timeout=args.timeout, check=False)
        if done.returncode:
            raise SystemExit(f"attention-bench.mjs ({mode}) failed:\n{done.stdout}\n{done.stderr}")
        return json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--images", default="demo")
    parser.add_argument("--render-steps", type=int, default=256)
    parser.add_argument("--node", default="_blocks.6._expand_conv:3", help="the node clicked and timed")
    parser.add_argument("--other", default="_blocks.6._expand_conv:5", help="the node whose panel's work is queued first")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds each browser run may take")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        dist = tmp / "dist"
        subprocess.run(["node", str(WEB / "node_modules" / "vite" / "bin" / "vite.js"), "build", "--outDir", str(dist),
                        "--logLevel", "error"], cwd=WEB, check=True)
        runs = {mode: _run(mode, args, dist, tmp) for mode in ("alone", "queued")}
    print(f"model {args.model} on {args.images}, {args.render_steps} render steps; click on {args.node}")
    print("queued before the click:", *runs["queued"]["queued_before"] or ["nothing"], sep="\n  ")
    print(f"{'':>8} {'render shown':>13} {'examples shown':>15} {'both shown':>11}")
    for mode in ("alone", "queued"):
        r = runs[mode]
        print(f"{mode:>8} {r['render_ms'] / 1000:>12.2f}s {r['examples_ms'] / 1000:>14.2f}s {r['both_ms'] / 1000:>10.2f}s")
    ratio = runs["queued"]["both_ms"] / runs["alone"]["both_ms"]
    print(f"queued / alone: {ratio:.2f} (target at most {TARGET:.2f}: {'met' if ratio <= TARGET else 'NOT met'})")
    for mode in ("alone", "queued"):
        for work in runs[mode]["work"]:
            print(f"  {mode}: {work['what']}: {work['state']} in {work['seconds']:.2f} s")
        if runs[mode]["errors"]:
            print(f"  {mode}: page errors:", *runs[mode]["errors"], sep="\n    ")


if __name__ == "__main__":
    main()
