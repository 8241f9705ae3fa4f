"""Scoring speed and memory vs a plain forward+backward, measured side by side in one run.

    .venv/bin/python benchmarks/scoring.py [--model efficientnet-lite0] [--images 32] [--repeats 3]

Each method runs in its own fresh process (so its peak RSS is its own), once to warm up and once
timed; the methods take turns, `--repeats` times, and the median time of each is divided by the
median forward+backward time.
The 'dissected reference' computes every single-kernel map of a layer at once, as the original
tool's dissected Conv2d did, then the same |map * grad| means.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import statistics
import time

METHODS = ["forward+backward", "nodes + signed edges", "exact |taylor| edges", "dissected reference"]


def _images(loaded, count: int):
    import torch

    from viscnn.data import open_image_sets

    spec = "fashion-mnist:test:10" if loaded.preprocess.channels == 1 else "demo"
    pool = open_image_sets(spec)["overall"]
    xs, ys = [], []
    for x, y in pool.batches(loaded.preprocess, batch_size=count):
        xs.append(x)
        ys.append(y)
    x, y = torch.cat(xs), torch.cat(ys)
    repeat = -(-count // len(x))
    return x.repeat(repeat, 1, 1, 1)[:count], y.repeat(repeat)[:count]


def _dissected(loaded, graph, x, y) -> None:
    import torch

    from viscnn.graph.dissect import kernel_maps
    from viscnn.graph.recorder import Recorder
    from viscnn.scoring.criteria import geometry
    from viscnn.scoring.targets import Target

    recorder = Recorder(graph)
    x = x.clone().requires_grad_(True)
    with recorder:
        out = loaded.module(x)
    values = Target("loss").from_output(out, y)
    names = list(recorder.calls)
    grads = torch.autograd.grad(values.sum(), [recorder.calls[n].output for n in names])
    with torch.no_grad():
        for name, grad in zip(names, grads):
            call = recorder.calls[name]
            geo = geometry(call)
            weight = call.weight.detach()
            maps = kernel_maps(geo.pad(call.input.detach()), weight, geo, 0, call.input.shape[1])  # all at once
            in_pg = weight.shape[1]
            group = torch.arange(call.input.shape[1]) // in_pg
            out_pg = weight.shape[0] // call.groups
            g = grad.view(grad.shape[0], call.groups, out_pg, *grad.shape[-2:])[:, group]
            (maps * g).abs().mean(dim=(3, 4)).sum(0)


def _worker(model: str, count: int, method: str, queue) -> None:
    import torch
    import torch.nn.functional as F

    from viscnn.graph import build_graph
    from viscnn.models import load_model
    from viscnn.scoring import parse_target, score_batches

    torch.manual_seed(0)
    loaded = load_model(model)
    graph = build_graph(loaded.module, loaded.input_shape, model)
    x, y = _images(loaded, count)
    target = parse_target("loss", graph)

    def run() -> None:
        if method == "forward+backward":
            for p in loaded.module.parameters():
                p.requires_grad_(True)
                p.grad = None
            F.cross_entropy(loaded.module(x), torch.where(y >= 0, y, 0)).backward()
        elif method == "nodes + signed edges":
            score_batches(loaded.module, graph, [(x, y)], target, ("taylor", "taylor_signed"), edges=("taylor_signed",))
        elif method == "exact |taylor| edges":
            score_batches(loaded.module, graph, [(x, y)], target, ("taylor",), edges=True)
        else:
            _dissected(loaded, graph, x, y)

    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if method != "dissected reference":  # warm-up (kernel selection, allocator); the reference is too slow to repeat
        run()
    start = time.perf_counter()
    run()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    queue.put((seconds, (peak - base_rss) / 1024, peak / 1024))


def measure(model: str, count: int, method: str) -> tuple[float, float, float]:
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_worker, args=(model, count, method, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-reference", action="store_true")
    args = parser.parse_args()
    methods = METHODS[:-1] if args.skip_reference else METHODS
    runs: dict[str, list[tuple[float, float, float]]] = {m: [] for m in methods}
    for _ in range(args.repeats):
        for method in methods:
            runs[method].append(measure(args.model, args.images, method))
    base = statistics.median(r[0] for r in runs["forward+backward"])
    print(f"{args.model}, {args.images} images, median of {args.repeats} runs each (methods interleaved)")
    print("| method | time (s) | / forward+backward | peak RSS above start (MiB) | peak RSS (MiB) |")
    print("|---|---:|---:|---:|---:|")
    for method in methods:
        t = statistics.median(r[0] for r in runs[method])
        extra = max(r[1] for r in runs[method])
        peak = max(r[2] for r in runs[method])
        print(f"| {method} | {t:.2f} | {t / base:.2f}x | {extra:.0f} | {peak:.0f} |")
    if "dissected reference" in runs:
        exact = statistics.median(r[0] for r in runs["exact |taylor| edges"])
        ref = statistics.median(r[0] for r in runs["dissected reference"])
        print(f"exact |taylor| edges vs dissected reference: {ref / exact:.1f}x faster")


if __name__ == "__main__":
    main()
