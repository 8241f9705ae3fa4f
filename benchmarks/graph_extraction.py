"""Graph extraction time, replay-check time and counts per model, measured side by side in one run.

    .venv/bin/python benchmarks/graph_extraction.py [--models a,b] [--repeats 3]

Ratios are against a plain forward pass of the same model on the same single image, so the numbers
survive a noisy, shared machine: 'trace / forward' is what following every op costs.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from viscnn.graph import build_graph
from viscnn.graph.replay import replay_check
from viscnn.models import ZOO, load_model

DEFAULT = "efficientnet-lite0,fmnist-convnet,alexnet,vgg16,resnet18,googlenet"


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default=DEFAULT)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    print("| model | conv layers | nodes | edges | forward (s) | trace (s) | trace / forward | replay (s) | replay / forward | replay rel. error |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.models.split(","):
        if name not in ZOO:
            raise SystemExit(f"unknown model {name}")
        loaded = load_model(name)
        x = torch.randn(1, *loaded.input_shape, generator=torch.Generator().manual_seed(0))
        forward = timed(lambda loaded=loaded, x=x: loaded.module(x), args.repeats)
        trace = timed(lambda loaded=loaded, name=name: build_graph(loaded.module, loaded.input_shape, name), args.repeats)
        graph = build_graph(loaded.module, loaded.input_shape, name)
        start = time.perf_counter()
        results = replay_check(loaded.module, graph, x)
        replay = time.perf_counter() - start
        worst = max(r.relative_error for r in results)
        print(f"| {name} | {len(graph.conv_layers)} | {graph.num_nodes:,} | {graph.num_edges:,} | {forward:.3f} | "
              f"{trace:.3f} | {trace / forward:.1f}x | {replay:.2f} | {replay / forward:.0f}x | {worst:.1e} |")


if __name__ == "__main__":
    main()
