"""Arguments shared by the subcommands."""
from __future__ import annotations

import argparse

from viscnn.models import DEFAULT_MODEL, LoadedModel, load_model


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help=f"a zoo name (default {DEFAULT_MODEL}; see `viscnn models`) or path/to/file.py:factory")
    parser.add_argument("--weights", metavar="FILE", help="state dict to load (.safetensors, or a torch file read with weights_only)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")


def load_from_args(args: argparse.Namespace) -> LoadedModel:
    return load_model(args.model, args.weights, args.device)
