"""`viscnn data`: build the bundled demo image set; list the image sets a spec opens."""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

_SPEC_HELP = "a folder (class subfolders or loose images), an image, a tensor file (.pt .pth .npy .safetensors), 'demo', or 'fashion-mnist[:test|:train][:N]'"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `data` command and its subcommands to the CLI."""
    parser = subparsers.add_parser("data", help="image sets: build the demo set, list what a spec opens",
                                   description="Image sets for viscnn: the bundled demo photos and your own images.")
    commands = parser.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")

    build = commands.add_parser("build-demo", help="assemble the demo photo set from installed packages (no download)",
                                description="Assemble the demo image set (ImageFolder layout, ImageNet labels) from photos "
                                            "that ship inside installed packages. Does nothing if it is up to date.")
    build.add_argument("--dest", type=Path, default=None, help="where to build it (default: $VISCNN_HOME/demo-images)")
    build.add_argument("--force", action="store_true", help="rebuild even if the set is up to date")
    build.add_argument("--quiet", action="store_true", help="print nothing but warnings")
    build.set_defaults(run=_build_demo)

    show = commands.add_parser("list", help="list the image sets a spec opens, with sizes and labels",
                               description="List the image sets SPEC opens: each set's name, size and labels.")
    show.add_argument("spec", metavar="SPEC", help=_SPEC_HELP)
    show.add_argument("--classes", choices=["imagenet", "fashion-mnist", "none"], default=None,
                      help="class names for labels (default: fashion-mnist for fashion-mnist, imagenet for demo, else none)")
    show.set_defaults(run=_list)


def _build_demo(args: argparse.Namespace) -> int:
    from viscnn.data.demo import MANIFEST, build_demo_set

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dest = build_demo_set(args.dest, force=args.force)
    for warning in caught:
        print(f"viscnn data: warning: {warning.message}", file=sys.stderr)
    if not args.quiet:
        folders = sorted(p for p in dest.iterdir() if p.is_dir())
        count = sum(1 for folder in folders for p in folder.iterdir() if p.is_file())
        print(f"demo set: {count} photos in {len(folders)} folders at {dest} (sources in {dest / MANIFEST})")
    return 0


def _vocabulary(choice: str | None, spec: str) -> str | None:
    """The class names to show labels with: the --classes choice, else the spec's own."""
    if choice is None:
        choice = "fashion-mnist" if spec.startswith("fashion-mnist") else "imagenet" if spec == "demo" else "none"
    return None if choice == "none" else choice


def _describe_labels(labels: list[int], names: list[str] | None) -> str:
    distinct = sorted(set(labels))

    def one(label: int) -> str:
        if label < 0:
            return "unknown"
        return f"{label} ({names[label]})" if names and label < len(names) else str(label)

    if len(distinct) == 1:
        return f"label {one(distinct[0])}"
    known = [label for label in distinct if label >= 0]
    shown = ", ".join(one(label) for label in known[:4]) + (", ..." if len(known) > 4 else "")
    unknown = labels.count(-1)
    return f"{len(known)} labels: {shown}" + (f"; {unknown} unknown" if unknown else "")


def _list(args: argparse.Namespace) -> int:
    from viscnn.data.sources import open_image_sets
    from viscnn.models import class_names

    names = class_names(_vocabulary(args.classes, args.spec))
    sets = open_image_sets(args.spec, names)
    width = max(len(name) for name in sets)
    count = len(sets) - 1
    print(f"{args.spec}: {count} set{'s' if count != 1 else ''}, {len(sets['overall'])} images")
    for name, image_set in sets.items():
        size = f"{len(image_set)} image{'s' if len(image_set) != 1 else ''}"
        print(f"  {name:<{width}}  {size:>12}  {_describe_labels(image_set.labels, names)}")
    return 0
