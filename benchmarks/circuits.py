"""Circuit faithfulness, all methods side by side in one run (the paper's Fig. 8 on held-out images).

    .venv/bin/python benchmarks/circuits.py [--models fmnist-convnet,efficientnet-lite0] [--methods ...] [--out DIR]

fmnist-convnet: random node targets in features.6, features.8 and features.10 (--per-layer each),
circuits extracted on Fashion-MNIST training images (--train-per-class per class) and measured on test
images (--held-out-per-class per class), at every fraction of --fractions.

efficientnet-lite0: random node targets (--lite0-per-layer each) in the project convs of blocks at several
depths (--lite0-layers), on the 39 demo photos: a seeded shuffle, --lite0-held-out of them held out,
circuits extracted on the rest at --lite0-fractions. `learned` trains on augmented photos (random crops
resized to 128 px, flips, colour jitter: viscnn.circuits.augment; the held-out photos are never
augmented) for --lite0-steps steps, at most --lite0-learned-seconds each. Its seconds per circuit are
summarised apart (the issue's target: under 60 s on this CPU); time them alone with `--methods learned`.

Prints, per model, the median Pearson r (over targets) for each method and kept fraction, and the
area under median r vs log10(kept fraction) normalised by the axis span; writes DIR/<model>.json,
DIR/<model>.png (every method) and DIR/<model>-fig8.png (the best method against random and worst,
as the paper's Fig. 8).
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import torch

from viscnn.circuits.augment import augmentation_for
from viscnn.circuits.evaluate import Evaluation, evaluate
from viscnn.circuits.methods import all_methods
from viscnn.circuits.methods import learned as learned_module
from viscnn.data import open_image_sets
from viscnn.graph import Graph, build_graph
from viscnn.models import load_model
from viscnn.scoring import parse_target

METHODS = ["actgrad", "actgrad_signed", "snip", "force", "magnitude", "random", "worst", "ablation", "learned"]
LITE0_LAYERS = ",".join(f"_blocks.{b}._project_conv" for b in (1, 3, 5, 8, 11, 14))


def batches_of(x: torch.Tensor, y: torch.Tensor, size: int) -> list:
    return [(x[i:i + size], y[i:i + size]) for i in range(0, len(x), size)]


def load_all(spec: str, preprocess, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    batches = list(open_image_sets(spec)["overall"].batches(preprocess, batch_size))
    return torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches])


def random_targets(graph: Graph, layers: str, per_layer: int, seed: int) -> list:
    rng = random.Random(seed)
    targets = []
    for layer in layers.split(","):
        channels = sorted(rng.sample(range(graph[layer].out_channels), per_layer))
        targets += [parse_target(f"{layer}:{c}", graph) for c in channels]
    return targets


def report(evaluation: Evaluation, out: Path, name: str, note: str) -> None:
    evaluation.save(out / f"{name}.json")
    evaluation.plot(out / f"{name}.png")
    if evaluation.best_method() or {"random", "worst"} & set(evaluation.methods):
        evaluation.plot_controls(out / f"{name}-fig8.png")
    print(f"\n### {name}\n\n{note}\n")
    print(evaluation.table(markdown=True))
    for fraction in (0.05, 0.2):
        if any(abs(fraction - f) < 1e-9 for f in evaluation.fractions):
            medians = ", ".join(f"{m} {evaluation.median_r(m, fraction):.3f}" for m in evaluation.methods
                                if evaluation.median_r(m, fraction) is not None)
            print(f"\nmedian r at {fraction:g}: {medians}")
    learned = [row.seconds for row in evaluation.results if row.method == "learned"]
    if learned:
        print(f"\nlearned: {len(learned)} circuits, seconds per circuit min {min(learned):.1f} / median "
              f"{statistics.median(learned):.1f} / max {max(learned):.1f}")
    print(f"\n(wrote {out / name}.json, .png and -fig8.png; {evaluation.seconds:.0f} s)", flush=True)


def fmnist(args: argparse.Namespace, out: Path) -> None:
    loaded = load_model("fmnist-convnet")
    graph = build_graph(loaded.module, loaded.input_shape, loaded.name)
    targets = random_targets(graph, args.fmnist_layers, args.per_layer, args.seed)
    x, y = load_all(f"fashion-mnist:train:{args.train_per_class}", loaded.preprocess, 256)
    hx, hy = load_all(f"fashion-mnist:test:{args.held_out_per_class}", loaded.preprocess, 256)
    fractions = [float(f) for f in args.fractions.split(",")]
    evaluation = evaluate(loaded.module, graph, batches_of(x, y, 256), batches_of(hx, hy, 256), targets, args.methods,
                          fractions, seed=args.seed, progress=print if args.verbose else None, model_name=loaded.name,
                          options={"learned": {"steps": args.fmnist_steps}} if "learned" in args.methods else None)
    note = (f"{len(targets)} random node targets ({args.per_layer} in each of {args.fmnist_layers}: "
            f"{', '.join(evaluation.targets)}); {evaluation.train_images} Fashion-MNIST training images to extract, "
            f"{evaluation.held_out_images} test images to measure r; `learned` with {args.fmnist_steps} steps.")
    report(evaluation, out, loaded.name, note)


def lite0(args: argparse.Namespace, out: Path) -> None:
    loaded = load_model("efficientnet-lite0")
    graph = build_graph(loaded.module, loaded.input_shape, loaded.name)
    targets = random_targets(graph, args.lite0_layers, args.lite0_per_layer, args.seed)
    x, y = load_all("demo", loaded.preprocess, 16)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(args.seed))
    held, train = order[:args.lite0_held_out], order[args.lite0_held_out:]
    fractions = [float(f) for f in args.lite0_fractions.split(",")]
    learned_module.BATCH = args.lite0_batch
    preprocess = loaded.preprocess
    augment = augmentation_for(preprocess.mean, preprocess.std, preprocess.size, len(train))
    options = {"learned": {"steps": args.lite0_steps, "seconds": args.lite0_learned_seconds, "augment": augment}}
    evaluation = evaluate(loaded.module, graph, batches_of(x[train], y[train], 16), batches_of(x[held], y[held], 16),
                          targets, args.methods, fractions, seed=args.seed, progress=print if args.verbose else None,
                          model_name=loaded.name, options=options if "learned" in args.methods else None)
    note = (f"{len(targets)} node targets ({', '.join(evaluation.targets)}); demo photos: {evaluation.train_images} "
            f"to extract, {evaluation.held_out_images} held out; `learned` with {args.lite0_steps} steps of "
            f"{args.lite0_batch} augmented photos ({augment.size if augment else preprocess.size} px; at most "
            f"{args.lite0_learned_seconds:g} s of steps per circuit); torch threads {torch.get_num_threads()}.")
    report(evaluation, out, loaded.name, note)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="fmnist-convnet,efficientnet-lite0")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--fractions", default="0.005,0.01,0.02,0.05,0.1,0.2,0.5")
    parser.add_argument("--fmnist-layers", default="features.6,features.8,features.10")
    parser.add_argument("--per-layer", type=int, default=3, help="random node targets per fmnist layer")
    parser.add_argument("--train-per-class", type=int, default=50)
    parser.add_argument("--held-out-per-class", type=int, default=20)
    parser.add_argument("--fmnist-steps", type=int, default=learned_module.STEPS)
    parser.add_argument("--lite0-layers", default=LITE0_LAYERS)
    parser.add_argument("--lite0-per-layer", type=int, default=1, help="random node targets per Lite0 layer")
    parser.add_argument("--lite0-fractions", default="0.05,0.2")
    parser.add_argument("--lite0-held-out", type=int, default=12)
    parser.add_argument("--lite0-steps", type=int, default=learned_module.STEPS)
    parser.add_argument("--lite0-batch", type=int, default=8)
    parser.add_argument("--lite0-learned-seconds", type=float, default=60.0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="/tmp/viscnn-circuits-benchmark")
    parser.add_argument("--verbose", action="store_true", help="a line per circuit")
    args = parser.parse_args()
    args.methods = args.methods.split(",")
    unknown = sorted(set(args.methods) - set(all_methods()))
    if unknown:
        parser.error(f"unknown methods: {', '.join(unknown)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    print(f"torch threads: {torch.get_num_threads()}; methods: {', '.join(args.methods)}", flush=True)
    for name in args.models.split(","):
        {"fmnist-convnet": fmnist, "efficientnet-lite0": lite0}[name](args, out)
    print(f"\ntotal {time.perf_counter() - start:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
