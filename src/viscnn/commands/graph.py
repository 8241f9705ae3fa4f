"""`viscnn graph`: trace a model, print its layers and counts, optionally write JSON and replay-check it."""
from __future__ import annotations

import argparse
import sys
import time

import torch

from viscnn.commands.common import add_model_arguments, load_with_graph

REPLAY_TOLERANCE = 1e-4


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("graph", help="print a model's kernel graph (layers, nodes, edges)")
    add_model_arguments(parser)
    parser.add_argument("--json", metavar="FILE", help="write the graph as JSON")
    parser.add_argument("--replay", action="store_true",
                        help="rebuild every conv output from its single kernels and compare with the forward pass")
    parser.add_argument("--replay-size", type=int, default=None, metavar="PX",
                        help="image size for the replay check (default: the model's input size)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from viscnn.graph.replay import replay_check

    loaded, graph = load_with_graph(args)
    print(graph.summary())
    if args.json:
        graph.save_json(args.json)
        print(f"wrote {args.json}")
    if args.replay:
        channels, height, _width = loaded.input_shape
        size = args.replay_size or height
        images = torch.randn(1, channels, size, size, generator=torch.Generator().manual_seed(0)).to(args.device)
        start = time.perf_counter()
        results = replay_check(loaded.module, graph, images)
        worst = max(results, key=lambda r: r.relative_error)
        ok = worst.relative_error < REPLAY_TOLERANCE
        print(f"replay check: {len(results)} conv layers rebuilt from their kernels in {time.perf_counter() - start:.1f} s; "
              f"worst relative error {worst.relative_error:.2e} at {worst.layer}: {'PASS' if ok else 'FAIL'}")
        if not ok:
            print(f"viscnn graph: replay check failed at layer {worst.layer}", file=sys.stderr)
            return 1
    return 0
