"""Arguments shared by the subcommands."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from viscnn.models import DEFAULT_MODEL, LoadedModel, load_model

if TYPE_CHECKING:
    from viscnn.data import ImageSet
    from viscnn.graph import Graph


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help=f"a zoo name (default {DEFAULT_MODEL}), tv:NAME (any torchvision classification model), "
                             "timm:NAME (any timm model) or path/to/file.py:factory")
    parser.add_argument("--pretrained", action="store_true",
                        help="tv:/timm: models: load the library's published weights from its local cache")
    parser.add_argument("--weights", metavar="FILE", help="state dict to load (.safetensors, or a torch file read with weights_only)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")


def load_from_args(args: argparse.Namespace) -> LoadedModel:
    return load_model(args.model, args.weights, args.device, pretrained=getattr(args, "pretrained", False),
                      images=getattr(args, "images", None))


def load_with_graph(args: argparse.Namespace) -> tuple[LoadedModel, Graph]:
    """The model named by the arguments and its traced kernel graph."""
    from viscnn.graph import build_graph

    loaded = load_from_args(args)
    return loaded, build_graph(loaded.module, loaded.input_shape, loaded.name)


MAX_SEED = 2**32 - 1  # every random generator takes it (torch's gives "Overflow" past 2**64 - 1)


def seed_value(text: str) -> int:
    """argparse type of --seed: an integer in 0..MAX_SEED."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not an integer") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be between 0 and {MAX_SEED}, not {text[:40]}")
    return value


SPEC_HELP = "image-set spec: folder, image, tensor file, demo, fashion-mnist[:test|:train][:N]"


def add_images_arguments(parser: argparse.ArgumentParser, *, required: bool = False, help: str = SPEC_HELP) -> None:
    """--images (default: the model's own kind of images) and --resize (for tensor images of another size)."""
    parser.add_argument("--images", required=required,
                        help=help if required else f"{help} (default: the model's own kind of images)")
    parser.add_argument("--resize", action="store_true",
                        help="let viscnn resize tensor images whose size differs from the model's input")


def open_sets(args: argparse.Namespace, loaded: LoadedModel) -> dict[str, ImageSet]:
    """The image sets of --images, or of the model's own kind (then named in args.images for later messages)."""
    from viscnn.data import open_image_sets

    args.images = args.images or loaded.default_images()
    return open_image_sets(args.images, loaded.class_names, resize=args.resize)


def open_set(args: argparse.Namespace, loaded: LoadedModel, name: str) -> ImageSet:
    """One named image set of --images; an unknown name is an error listing the known ones."""
    from viscnn.errors import ViscnnError

    sets = open_sets(args, loaded)
    if name not in sets:
        raise ViscnnError(f"unknown image set {name!r}: choose from {', '.join(sorted(sets))}")
    return sets[name]


def output_folder(path: str | Path) -> Path:
    """`path` as a folder that exists (created with its parents); a ViscnnError when it cannot be."""
    from viscnn.errors import ViscnnError

    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ViscnnError(f"cannot create output folder {folder}: {exc.strerror or exc}") from exc
    return folder
