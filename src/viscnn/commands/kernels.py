"""`viscnn kernels`: a layer's kernels as a picture, or one kernel as a heatmap."""
from __future__ import annotations

import argparse
import re
from pathlib import Path

from viscnn.commands.common import add_model_arguments, load_with_graph


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("kernels", help="draw a layer's (BN-folded) kernels, or one kernel")
    add_model_arguments(parser)
    parser.add_argument("--layer", required=True, help="a conv layer, e.g. _blocks.3._project_conv")
    parser.add_argument("--scaling", default="filter", choices=["filter", "layer", "kernel"],
                        help="colour scale per output filter (default), for the whole layer, or per kernel")
    parser.add_argument("--nodes", default="all", help="output channels to draw: 'all' (default) or e.g. '0-63,100'")
    parser.add_argument("--kernel", metavar="OUT,IN", help="draw only the kernel from input channel IN to output channel OUT")
    parser.add_argument("--no-bn-fold", action="store_true", help="the raw weights, without the BatchNorm scale")
    parser.add_argument("--out", required=True, metavar="FILE", help="PNG file to write")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from viscnn.commands.examples import parse_channels
    from viscnn.errors import ViscnnError
    from viscnn.inspection.views import conv_layer, kernel_grid, kernel_heatmap

    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise ViscnnError(f"--out must name a .png file, not {args.out!r}")
    loaded, graph = load_with_graph(args)
    spec = conv_layer(graph, args.layer)
    fold = not args.no_bn_fold
    if args.kernel:
        match = re.fullmatch(r"\s*(\d+)\s*,\s*(\d+)\s*", args.kernel)
        if not match:
            raise ViscnnError(f"cannot read --kernel {args.kernel!r}: use OUT,IN, e.g. 5,12")
        picture = kernel_heatmap(loaded.module, graph, spec.name, int(match.group(1)), int(match.group(2)), fold_bn=fold)
        what = f"kernel {spec.name}:{match.group(1)}<-{match.group(2)}"
    else:
        outs = None if args.nodes.strip() == "all" else parse_channels(args.nodes, spec.out_channels, spec.name)
        picture = kernel_grid(loaded.module, graph, spec.name, args.scaling, fold_bn=fold, outs=outs)
        what = f"{spec.name}: {len(outs) if outs is not None else spec.out_channels} x {spec.in_per_group} kernels " \
               f"{spec.kernel_size[0]}x{spec.kernel_size[1]}, {args.scaling} scaling"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        picture.save(out)
    except OSError as exc:
        raise ViscnnError(f"cannot write {out}: {exc.strerror or exc}") from exc
    print(f"{loaded.name} {what}{'' if fold else ' (raw weights)'}: wrote {out} ({picture.width}x{picture.height})")
    return 0
