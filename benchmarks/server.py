"""Server round trips over real HTTP: a new query (scored in a job, progress streamed), then the same and
related queries answered from memory and from the store, side by side in one run.

    .venv/bin/python benchmarks/server.py [--model efficientnet-lite0] [--photos 16] [--threads 1] [--repeats 5]

A real uvicorn server runs in a background thread on a fresh store; the client is httpx. Targets (issue 7):
a query over cached sets < 300 ms round trip, a new query on Lite0 with 16 photos < 5 s with progress
visible. Also prints the answer's size and what orjson saves over json.dumps on the same answer.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path


def photo_folder(count: int, root: Path) -> Path:
    """`count` demo photos split into two sets, set_a and set_b (ImageFolder layout)."""
    from viscnn.data import build_demo_set

    photos = sorted(p for p in build_demo_set().rglob("*") if p.is_file() and p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if len(photos) < count:
        raise SystemExit(f"only {len(photos)} demo photos")
    for k, photo in enumerate(photos[:count]):
        folder = root / ("set_a" if k < count // 2 else "set_b")
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(photo, folder / f"{k:02d}{photo.suffix.lower()}")
    return root


def follow(client, base: str, job: str) -> tuple[float | None, int, dict]:
    """Read the job's event stream to the end: (seconds to the first progress event, events, final job)."""
    start = time.perf_counter()
    first, count, final, name = None, 0, {}, ""
    with client.stream("GET", f"{base}/api/jobs/{job}/events", timeout=600) as stream:
        for line in stream.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
                count += 1
                if name == "progress" and first is None:
                    first = time.perf_counter() - start
            elif line.startswith("data: ") and name in ("done", "error", "cancelled"):
                final = json.loads(line[6:])
    return first, count, final


def timed_post(client, url: str, body: dict) -> tuple[float, object]:
    start = time.perf_counter()
    answer = client.post(url, json=body, timeout=600)
    return time.perf_counter() - start, answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--photos", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-edges", type=int, default=100_000)
    args = parser.parse_args()

    import httpx
    import orjson
    import torch

    from viscnn.server import build_state, serve_background

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="viscnn-bench-server-"))
    try:
        folder = photo_folder(args.photos, work / "photos")
        started = time.perf_counter()
        state = build_state(args.model, str(folder), store=work / "store")
        running = serve_background(state)
        base = running.url.rstrip("/")
        print(f"{args.model}: {state.graph.num_nodes:,} nodes, {state.graph.num_edges:,} edges; {args.photos} photos; "
              f"torch threads {args.threads}; server up in {time.perf_counter() - started:.1f} s")
        body = {"images": "overall", "target": "loss", "criterion": "taylor", "node_fraction": 0.1,
                "edge_fraction": 0.05, "max_edges": args.max_edges}
        rows = []
        with httpx.Client() as client:
            # 1. a new query: POST answers at once with a job; its events stream until done
            start = time.perf_counter()
            answer = client.post(f"{base}/api/query", json=body, timeout=600)
            post_seconds = time.perf_counter() - start
            first, events, final = follow(client, base, answer.json()["job"])
            new_seconds = time.perf_counter() - start
            result = final["result"]
            rows.append(("new query (scored in a job)", new_seconds, "< 5 s"))
            print(f"new query: POST answered in {post_seconds * 1000:.0f} ms with job {answer.json()['job']}; "
                  f"first progress event after {first if first is None else round(first, 2)} s; {events} events; "
                  f"done in {new_seconds:.2f} s; {result['num_edges']:,} edges drawn of {result['num_edges_total']:,}")

            def repeat(label: str, make_body) -> float:
                times = []
                for k in range(args.repeats):
                    seconds, reply = timed_post(client, f"{base}/api/query", make_body(k))
                    assert reply.status_code == 200 and reply.json()["job"] is None, reply.text[:200]
                    times.append(seconds)
                median = statistics.median(times)
                rows.append((label, median, "< 300 ms"))
                return median

            repeat("same query again (memory)", lambda k: body)
            image = client.get(f"{base}/api/images").json()[0]["id"]
            layer = "_blocks.10._expand_conv" if "_blocks.10._expand_conv" in state.graph else state.graph.conv_layers[-1].name
            gets = {"GET /api/model": "/api/model", "GET /api/layout (grid)": "/api/layout",
                    "GET node + top 20 incoming (by query)": f"/api/nodes/{layer}/5?query={result['key']}",
                    "GET activation map (JSON)": f"/api/activation?image={image}&layer={layer}&channel=5",
                    "GET single-kernel output PNG": f"/api/edges/{layer}/5/3/output.png?image={image}"}
            for label, path in gets.items():
                times = []
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    reply = client.get(f"{base}{path}", timeout=600)
                    times.append(time.perf_counter() - start)
                    assert reply.status_code == 200, reply.text[:200]
                rows.append((f"{label} ({len(reply.content) / 1e3:,.0f} kB)", statistics.median(times), "-"))
            repeat("new thresholds (re-pruned)", lambda k: {**body, "edge_fraction": 0.01 + 0.01 * k})
            size = len(client.post(f"{base}/api/query", json=body, timeout=600).content)
            # 2. the sets' scores are now in the store: a fresh server (empty memory) answers from it
            running.stop()
            state.close()
            state = build_state(args.model, str(folder), store=work / "store")
            running = serve_background(state)
            base = running.url.rstrip("/")
            repeat("fresh server, sets in the store", lambda k: {**body, "max_edges": args.max_edges - k})
            # 3. an expression over two sets scored for the first time, then over them again
            contrast = {**body, "images": "set_a - set_b"}
            start = time.perf_counter()
            answer = client.post(f"{base}/api/query", json=contrast, timeout=600)
            follow(client, base, answer.json()["job"])
            rows.append(("set_a - set_b, new sets (job)", time.perf_counter() - start, "-"))
            repeat("set_b - set_a, cached sets", lambda k: {**contrast, "images": "set_b - set_a",
                                                            "node_fraction": 0.1 + 0.01 * k})
        running.stop()
        state.close()

        start = time.perf_counter()
        for _ in range(args.repeats):
            orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY)
        fast = (time.perf_counter() - start) / args.repeats
        plain = json.loads(orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY))
        start = time.perf_counter()
        for _ in range(args.repeats):
            json.dumps(plain)
        slow = (time.perf_counter() - start) / args.repeats

        print()
        print("| round trip | median | target | vs new query |")
        print("|---|---|---|---|")
        for label, seconds, target in rows:
            print(f"| {label} | {seconds * 1000:,.0f} ms | {target} | {seconds / new_seconds:.3f} |")
        print()
        print(f"answer: {size / 1e6:.2f} MB of JSON for {result['num_edges']:,} edges + {state.graph.num_nodes:,} node scores; "
              f"serialised by orjson in {fast * 1000:.1f} ms vs json.dumps {slow * 1000:.1f} ms ({slow / fast:.0f}x)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
