"""Circuit faithfulness, all methods side by side in one run (the paper's Fig. 8 on held-out images).

    .venv/bin/python benchmarks/circuits.py [--models fmnist-convnet,efficientnet-lite0] [--out DIR]

fmnist-convnet: random node targets in features.6, features.8 and features.10 (--per-layer each),
circuits extracted on Fashion-MNIST training images (--train-per-class per class) and measured on test
images (--held-out-per-class per class), at every fraction of --fractions.

efficientnet-lite0: node targets in early and middle blocks (--lite0-targets), on the 39 demo photos:
a seeded shuffle, --lite0-held-out of them held out, circuits extracted on the rest. Lite0 is costly
on a CPU (a forward+backward of a few photos takes seconds), so it runs fewer fractions
(--lite0-fractions) and `learned` with --lite0-steps steps of --lite0-batch photos.

Prints, per model, the median Pearson r (over targets) for each method and kept fraction, and the
area under median r vs log10(kept fraction) normalised by the axis span; writes DIR/<model>.json and
DIR/<model>.png.
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import torch

from viscnn.circuits.evaluate import evaluate
from viscnn.circuits.methods import learned as learned_module
from viscnn.data import open_image_sets
from viscnn.graph import build_graph
from viscnn.models import load_model
from viscnn.scoring import parse_target

METHODS = ["actgrad", "actgrad_signed", "snip", "force", "magnitude", "random", "worst", "ablation", "learned"]


def batches_of(x: torch.Tensor, y: torch.Tensor, size: int) -> list:
    return [(x[i:i + size], y[i:i + size]) for i in range(0, len(x), size)]


def load_all(spec: str, preprocess, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    batches = list(open_image_sets(spec)["overall"].batches(preprocess, batch_size))
    return torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches])


def report(evaluation, out: Path, name: str, note: str) -> None:
    evaluation.save(out / f"{name}.json")
    evaluation.plot(out / f"{name}.png")
    print(f"\n### {name}\n\n{note}\n")
    print(evaluation.table(markdown=True))
    print(f"\n(wrote {out / name}.json and .png; {evaluation.seconds:.0f} s)", flush=True)


def fmnist(args: argparse.Namespace, out: Path) -> None:
    loaded = load_model("fmnist-convnet")
    graph = build_graph(loaded.module, loaded.input_shape, loaded.name)
    rng = random.Random(args.seed)
    targets = []
    for layer in args.fmnist_layers.split(","):
        channels = sorted(rng.sample(range(graph[layer].out_channels), args.per_layer))
        targets += [parse_target(f"{layer}:{c}", graph) for c in channels]
    x, y = load_all(f"fashion-mnist:train:{args.train_per_class}", loaded.preprocess, 256)
    hx, hy = load_all(f"fashion-mnist:test:{args.held_out_per_class}", loaded.preprocess, 256)
    fractions = [float(f) for f in args.fractions.split(",")]
    evaluation = evaluate(loaded.module, graph, batches_of(x, y, 256), batches_of(hx, hy, 256), targets, METHODS,
                          fractions, seed=args.seed, progress=print if args.verbose else None, model_name=loaded.name)
    note = (f"{len(targets)} random node targets ({args.per_layer} in each of {args.fmnist_layers}: "
            f"{', '.join(evaluation.targets)}); {evaluation.train_images} Fashion-MNIST training images to extract, "
            f"{evaluation.held_out_images} test images to measure r.")
    report(evaluation, out, loaded.name, note)


def lite0(args: argparse.Namespace, out: Path) -> None:
    loaded = load_model("efficientnet-lite0")
    graph = build_graph(loaded.module, loaded.input_shape, loaded.name)
    targets = [parse_target(t, graph) for t in args.lite0_targets.split(",")]
    x, y = load_all("demo", loaded.preprocess, 16)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(args.seed))
    held, train = order[:args.lite0_held_out], order[args.lite0_held_out:]
    fractions = [float(f) for f in args.lite0_fractions.split(",")]
    learned_module.STEPS, learned_module.BATCH = args.lite0_steps, args.lite0_batch
    learned_module.MAX_SECONDS = args.lite0_learned_seconds
    evaluation = evaluate(loaded.module, graph, batches_of(x[train], y[train], 16), batches_of(x[held], y[held], 16),
                          targets, METHODS, fractions, seed=args.seed, progress=print if args.verbose else None,
                          model_name=loaded.name)
    note = (f"{len(targets)} node targets ({', '.join(evaluation.targets)}); demo photos: {evaluation.train_images} "
            f"to extract, {evaluation.held_out_images} held out; `learned` with {args.lite0_steps} steps of "
            f"{args.lite0_batch} photos (at most {args.lite0_learned_seconds:g} s of steps per circuit).")
    report(evaluation, out, loaded.name, note)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="fmnist-convnet,efficientnet-lite0")
    parser.add_argument("--fractions", default="0.005,0.01,0.02,0.05,0.1,0.2,0.5")
    parser.add_argument("--fmnist-layers", default="features.6,features.8,features.10")
    parser.add_argument("--per-layer", type=int, default=3, help="random node targets per fmnist layer")
    parser.add_argument("--train-per-class", type=int, default=50)
    parser.add_argument("--held-out-per-class", type=int, default=20)
    parser.add_argument("--lite0-targets", default="_blocks.2._project_conv:5,_blocks.5._project_conv:17")
    parser.add_argument("--lite0-fractions", default="0.01,0.05,0.2,0.5")
    parser.add_argument("--lite0-held-out", type=int, default=12)
    parser.add_argument("--lite0-steps", type=int, default=150)
    parser.add_argument("--lite0-batch", type=int, default=8)
    parser.add_argument("--lite0-learned-seconds", type=float, default=600.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="/tmp/viscnn-circuits-benchmark")
    parser.add_argument("--verbose", action="store_true", help="a line per circuit")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    print(f"torch threads: {torch.get_num_threads()}; methods: {', '.join(METHODS)}", flush=True)
    for name in args.models.split(","):
        {"fmnist-convnet": fmnist, "efficientnet-lite0": lite0}[name](args, out)
    print(f"\ntotal {time.perf_counter() - start:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
