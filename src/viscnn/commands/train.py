"""`viscnn train`: train fmnist-convnet (dense or group-sparse) and write its weights where the zoo finds them."""
from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

import torch

from viscnn.commands.common import seed_value
from viscnn.errors import ViscnnError
from viscnn.models.fmnist import MODEL_NAMES, home_weights_path
from viscnn.train.loop import DEFAULT_EPOCHS, DEFAULT_LAMBDA, TrainReport

TRAIN_THREADS = 2  # fixed, so a seed gives the same weights bit for bit (on the same CPU type and torch)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `train` subcommand."""
    parser = subparsers.add_parser(
        "train", help="train fmnist-convnet or fmnist-convnet-sparse on Fashion-MNIST",
        description="Train a zoo model on Fashion-MNIST (CPU, deterministic for a given seed) and save its weights "
                    "as safetensors, with a JSON record of the run next to them.")
    parser.add_argument("--model", required=True, help=f"one of: {', '.join(MODEL_NAMES)}")
    parser.add_argument("--epochs", type=int, default=None, help=f"epochs over the 60k training images (default {DEFAULT_EPOCHS})")
    parser.add_argument("--seed", type=seed_value, default=0, help="seed for initialisation, shuffling and dropout (default 0)")
    parser.add_argument("--lambda", dest="group_lambda", type=float, default=None,
                        help=f"strength of the hierarchical group-sparse penalty (default: 0 dense, {DEFAULT_LAMBDA:g} sparse)")
    parser.add_argument("--out", type=Path, default=None,
                        help="weights file to write (default: <viscnn home>/models/<model>.safetensors)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def canonical_command(args: argparse.Namespace, epochs: int, group_lambda: float, out: Path) -> str:
    """The command line that reproduces this run."""
    parts = ["viscnn", "train", "--model", args.model, "--epochs", str(epochs), "--seed", str(args.seed),
             "--lambda", repr(group_lambda), "--out", str(out)]
    if args.device != "cpu":
        parts += ["--device", args.device]
    return shlex.join(parts)


def format_report(report: TrainReport) -> str:
    """A one-screen summary of a TrainReport."""
    lines = [
        f"{report.model}: test accuracy {report.test_accuracy:.2%} on {report.test_images} images",
        f"trained {report.epochs} epochs ({report.steps} steps, batch {report.batch_size}, lr {report.lr}, "
        f"lambda {report.group_lambda}, seed {report.seed}) in {report.seconds:.0f} s",
        f"zero 2D kernels (norm <= {report.threshold_rel:g} x layer max): {report.zero_fraction:.1%} overall, "
        f"{report.exact_zero_fraction:.1%} exactly zero",
        f"  {'layer':<12}{'kernels':>8}{'zero':>8}{'dead filters':>14}",
    ]
    for name, fraction in report.layer_zero_fractions.items():
        lines.append(f"  {name:<12}{report.layer_kernels[name]:>8}{fraction:>8.1%}{report.dead_filters[name]:>14}")
    if report.weights_path:
        lines.append(f"weights: {report.weights_path}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Train, print the report, write the weights and `<weights>.json` describing the run."""
    if args.model not in MODEL_NAMES:
        raise ViscnnError(f"cannot train model {args.model!r}: choose one of {', '.join(MODEL_NAMES)}")
    from viscnn.train import loop  # looked up at call time so tests can shorten runs


    sparse = args.model.endswith("-sparse")
    epochs = DEFAULT_EPOCHS if args.epochs is None else args.epochs
    out = args.out if args.out is not None else home_weights_path(sparse=sparse)
    if out.suffix != ".safetensors" or out.is_dir():
        raise ViscnnError(f"--out {out} must be a file name ending in .safetensors")
    report = loop.train_fmnist(sparse=sparse, epochs=epochs, seed=args.seed, group_lambda=args.group_lambda, out=out,
                               progress=not args.quiet, device=args.device, threads=TRAIN_THREADS)
    print(format_report(report))
    record = {"command": canonical_command(args, epochs, report.group_lambda, out), **report.to_dict(),
              "torch": torch.__version__, "train_threads": TRAIN_THREADS}
    record_path = out.with_suffix(".json")
    try:
        record_path.write_text(json.dumps(record, indent=2) + "\n")
    except OSError as exc:
        raise ViscnnError(f"cannot write {record_path}: {exc.strerror or exc}") from exc
    return 0
