"""`viscnn demo`: the default model on the bundled photos: accuracy, graph, and the most active filters."""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from viscnn.commands.common import add_images_arguments, add_model_arguments, load_with_graph, open_sets


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="classify the demo photos, print the graph and its top-scoring filters")
    add_model_arguments(parser)
    add_images_arguments(parser)
    parser.add_argument("--top", type=int, default=10, help="how many filters to list")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:

    loaded, graph = load_with_graph(args)
    print(graph.summary().splitlines()[-1])
    overall = open_sets(args, loaded)["overall"]
    modules = dict(loaded.module.named_modules())
    sums: dict[str, torch.Tensor] = {}

    def keep(name: str) -> Callable[[nn.Module, Any, torch.Tensor], None]:
        def hook(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
            sums[name] = sums.get(name, 0) + output.detach().float().mean(dim=(2, 3)).sum(dim=0).cpu()
        return hook

    handles = [modules[layer.module].register_forward_hook(keep(layer.name)) for layer in graph.conv_layers
               if layer.module in modules and "@" not in layer.name]
    right = labelled = 0
    start = time.perf_counter()
    try:
        with torch.no_grad():
            for x, labels in overall.batches(loaded.preprocess, batch_size=16):
                predicted = loaded.module(x.to(args.device)).argmax(dim=1).cpu()
                known = labels >= 0
                right += int((predicted[known] == labels[known]).sum())
                labelled += int(known.sum())
    finally:
        for handle in handles:
            handle.remove()
    print(f"{loaded.name}: top-1 {right}/{labelled} on the labelled photos of {args.images!r} "
          f"({len(overall)} images, {time.perf_counter() - start:.1f} s)")
    scores = [(float(value) / len(overall), f"{layer}:{channel}") for layer, means in sums.items()
              for channel, value in enumerate(means)]
    scores.sort(reverse=True)
    print(f"top {args.top} filters by mean activation over the photos:")
    for value, node in scores[: args.top]:
        print(f"  {node:<40} {value:8.3f}")
    return 0
