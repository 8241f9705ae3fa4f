"""`viscnn check`: what viscnn will feed a model and why, its graph, and every op the trace cannot follow."""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from viscnn.commands.common import add_images_arguments, add_model_arguments, load_from_args, open_sets

if TYPE_CHECKING:
    from viscnn.models import LoadedModel


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("check", help="say what viscnn will feed a model and why, and whether it can "
                                                 "follow every op")
    add_model_arguments(parser)
    add_images_arguments(parser)
    parser.set_defaults(run=run)


def describe_input(loaded: LoadedModel) -> list[str]:
    """Lines saying what each image becomes before the model sees it, and where that was decided."""
    pre = loaded.preprocess
    geometry = (f"shorter side resized to {pre.resize} px ({pre.interpolation}), centre crop {pre.size}x{pre.size}"
                if pre.resize else f"resized to {pre.size}x{pre.size} ({pre.interpolation}) where it differs")
    source = loaded.extra.get("preprocess_source") or (
        "PREPROCESS in the model file" if ".py:" in loaded.name else f"viscnn's zoo entry for {loaded.name}")
    weights = (f"weights from {loaded.weights_file}" if loaded.weights_file else
               "published weights" if loaded.pretrained else "RANDOM weights (no --weights or --pretrained)")
    return [f"model:   {loaded.name}, {weights}",
            f"input:   {pre.channels}x{pre.size}x{pre.size}; image files: {geometry}; tensors: taken as they are",
            f"         0-1 pixels normalised with mean {_numbers(pre.mean)}, std {_numbers(pre.std)}",
            f"         (from {source})"]


def _numbers(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:g}" for v in values) + ")"


def run(args: argparse.Namespace) -> int:
    import torch

    from viscnn.errors import ViscnnError
    from viscnn.graph.graph import from_trace
    from viscnn.graph.trace import trace

    loaded: LoadedModel = load_from_args(args)
    for line in describe_input(loaded):
        print(line)
    chosen = "given" if args.images else "the model's default"
    sets = open_sets(args, loaded)
    spec = args.images
    overall = sets["overall"]
    print(f"images:  {spec} ({chosen}): {len(overall)} images in {len(sets) - 1} set(s); shapes "
          + ", ".join(f"{c}x{h}x{w}" for c, h, w in sorted(overall.shapes())[:4]))
    x, _ = next(overall.batches(loaded.preprocess, batch_size=min(4, len(overall))))
    print(f"         the first batch goes in as {list(x.shape)}")
    names = loaded.class_names
    classes = loaded.classes or (f"{len(names)} class names" if names else "no class names (targets use logit:K)")
    print(f"classes: {classes}")
    device = next((p.device for p in loaded.module.parameters()), torch.device("cpu"))
    example = torch.randn((1, *loaded.input_shape), generator=torch.Generator().manual_seed(0)).to(device)
    result = trace(loaded.module, example, survey=True)
    if result.unsupported:
        print(f"graph:   {len(result.unsupported)} op(s) viscnn cannot follow:")
        for message in result.unsupported:
            print(f"  - {message}")
        raise ViscnnError(f"{loaded.name} uses {len(result.unsupported)} op(s) viscnn cannot follow (listed above)")
    graph = from_trace(result, tuple(loaded.input_shape), loaded.name)
    print(f"graph:   every op followed; {len(graph.conv_layers)} conv layers, {graph.num_nodes:,} filter nodes, "
          f"{graph.num_edges:,} kernel edges")
    return 0
