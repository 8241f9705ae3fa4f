"""`viscnn evaluate`: how faithful each method's circuits are, on held-out images, at each kept fraction.

Writes DIR/evaluation.json (every circuit's r, the median-r table and the AUC per method) and
DIR/faithfulness.png (median r vs kept fraction, one line per method), and prints the table.
Under torchrun (`torchrun --nproc_per_node=N -m viscnn evaluate ...`) the targets x methods (x fractions for
force and learned) are dealt across the processes and rank 0 alone writes DIR (docs/scaling.md).
"""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from viscnn.commands.common import add_images_arguments, add_model_arguments, open_set, output_folder, seed_value

if TYPE_CHECKING:
    import torch

    from viscnn.data import ImageSet
    from viscnn.graph import Graph
    from viscnn.models.preprocess import Preprocess
    from viscnn.scoring.engine import Batch
    from viscnn.scoring.targets import Target

DEFAULT_FRACTIONS = "0.005,0.01,0.02,0.05,0.1,0.2,0.5"
DEFAULT_METHODS = "actgrad,actgrad_signed,snip,force,magnitude,random,worst,ablation,learned"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("evaluate", help="faithfulness of circuits (Pearson r on held-out images) per method and size")
    add_model_arguments(parser)
    add_images_arguments(parser, help="image-set spec the circuits are extracted on")
    parser.add_argument("--input", default="overall", help="which set of --images to use (a set name)")
    parser.add_argument("--held-out", metavar="SPEC",
                        help="image-set spec to measure faithfulness on (its 'overall' set); default: hold out "
                             "--split of --images")
    parser.add_argument("--split", type=float, default=0.25,
                        help="without --held-out, the fraction of --images held out (seeded shuffle); default 0.25")
    targets = parser.add_mutually_exclusive_group(required=True)
    targets.add_argument("--targets", help="comma-separated targets, e.g. 'features.10:5,features.6:3'")
    targets.add_argument("--random-targets", type=int, metavar="N", help="N random node targets in each of --layers")
    parser.add_argument("--layers", help="comma-separated conv layers for --random-targets")
    parser.add_argument("--methods", default=DEFAULT_METHODS, help=f"comma-separated (default {DEFAULT_METHODS})")
    parser.add_argument("--fractions", default=DEFAULT_FRACTIONS, help=f"kept fractions in (0, 1] (default {DEFAULT_FRACTIONS})")
    parser.add_argument("--batch-size", type=int, help="images per batch (default: 64 on a CPU, by memory on a GPU)")
    parser.add_argument("--seed", type=seed_value, default=0)
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for evaluation.json and faithfulness.png")
    parser.add_argument("--quiet", action="store_true", help="no per-circuit progress lines")
    parser.set_defaults(run=run)


def parse_fractions(text: str) -> list[float]:
    from viscnn.circuits.evaluate import check_fractions
    from viscnn.errors import ViscnnError

    values = []
    for part in (p.strip() for p in text.split(",")):
        try:
            values.append(float(part))
        except ValueError:
            raise ViscnnError(f"cannot read kept fraction {part!r}: give numbers in (0, 1] like 0.05,0.2") from None
    return check_fractions(values)


def parse_methods(text: str) -> list[str]:
    from viscnn.circuits.methods import all_methods
    from viscnn.errors import ViscnnError

    known = all_methods()
    methods = [m.strip() for m in text.split(",") if m.strip()]
    if not methods:
        raise ViscnnError("give at least one method")
    for method in methods:
        if method not in known:
            raise ViscnnError(f"unknown circuit method {method!r}: choose from {', '.join(sorted(known))}")
    return list(dict.fromkeys(methods))


def pick_targets(args: argparse.Namespace, graph: Graph, *, class_names: list[str] | None = None) -> list[Target]:
    import random

    from viscnn.errors import ViscnnError
    from viscnn.scoring.targets import Target, check_scorable, parse_target

    if args.targets is not None:
        texts = [t.strip() for t in args.targets.split(",") if t.strip()]
        if not texts:
            raise ViscnnError("--targets is empty")
        return [check_scorable(parse_target(t, graph, class_names)) for t in texts]
    if args.random_targets < 1:
        raise ViscnnError(f"--random-targets must be at least 1, not {args.random_targets}")
    if not args.layers:
        raise ViscnnError("--random-targets needs --layers (comma-separated conv layer names)")
    conv = [layer.name for layer in graph.conv_layers]
    rng = random.Random(args.seed)
    targets = []
    for name in (n.strip() for n in args.layers.split(",") if n.strip()):
        if name not in conv:
            raise ViscnnError(f"unknown layer {name!r}: not a conv layer of the model (first ones: {', '.join(conv[:5])}...)")
        channels = graph[name].out_channels
        for channel in sorted(rng.sample(range(channels), min(args.random_targets, channels))):
            targets.append(Target("node", name, channel))
    return targets


def split_batches(image_set: ImageSet, preprocess: Preprocess, batch_size: int, held_fraction: float,
                  seed: int) -> tuple[list[Batch], list[Batch]]:
    """Shuffle one image set (seeded) and cut it into train and held-out batches."""
    import torch

    from viscnn.errors import ViscnnError

    if not 0 < held_fraction < 1:
        raise ViscnnError(f"--split must be in (0, 1), not {held_fraction}")
    batches = list(image_set.batches(preprocess, batch_size))
    x, y = torch.cat([b for b, _ in batches]), torch.cat([labels for _, labels in batches])
    if len(x) < 2:
        raise ViscnnError(f"cannot hold out part of {len(x)} image: give more images or --held-out")
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    held = max(1, min(len(x) - 1, round(held_fraction * len(x))))
    return (chunk(x[order[held:]], y[order[held:]], batch_size), chunk(x[order[:held]], y[order[:held]], batch_size))


def chunk(x: torch.Tensor, y: torch.Tensor, batch_size: int) -> list[Batch]:
    return [(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, len(x), batch_size)]


def run(args: argparse.Namespace) -> int:
    from viscnn import distributed

    with distributed.session(args.device) as device:
        args.device = device
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from viscnn import distributed
    from viscnn.circuits.evaluate import evaluate
    from viscnn.commands.common import load_with_graph
    from viscnn.data import open_image_sets
    from viscnn.errors import ViscnnError
    from viscnn.pipeline.devices import batch_size

    fractions = parse_fractions(args.fractions)  # bad input fails before any work
    methods = parse_methods(args.methods)
    if args.batch_size is not None and args.batch_size < 1:
        raise ViscnnError(f"--batch-size must be at least 1, not {args.batch_size}")
    if args.random_targets is not None and not args.layers:
        raise ViscnnError("--random-targets needs --layers (comma-separated conv layer names)")
    loaded, graph = load_with_graph(args)
    args.batch_size = batch_size(args.batch_size, graph, args.device, cpu=64)
    targets = pick_targets(args, graph, class_names=loaded.class_names)
    images = open_set(args, loaded, args.input)
    if args.held_out:
        train = list(images.batches(loaded.preprocess, args.batch_size))
        held_out = open_image_sets(args.held_out, loaded.class_names, resize=args.resize)["overall"]
        held = list(held_out.batches(loaded.preprocess, args.batch_size))
    else:
        train, held = split_batches(images, loaded.preprocess, args.batch_size, args.split, args.seed)
    out = distributed.on_main(lambda: output_folder(args.out))
    evaluation = evaluate(loaded.module, graph, train, held, targets, methods, fractions, seed=args.seed,
                          device=args.device, progress=None if args.quiet or out is None else print,
                          model_name=loaded.name, split=True)
    if out is None:  # not rank 0: the output is rank 0's to write
        return 0
    evaluation.save(out / "evaluation.json")
    evaluation.plot(out / "faithfulness.png")
    print(f"{loaded.name}: {len(targets)} targets, {evaluation.train_images} train / {evaluation.held_out_images} "
          f"held-out images, {evaluation.seconds:.0f} s. Median Pearson r on held-out images (AUC over log10 kept fraction):")
    print(evaluation.table(markdown=False))
    print(f"wrote {out / 'evaluation.json'} and {out / 'faithfulness.png'}")
    return 0
