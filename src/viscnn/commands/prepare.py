"""`viscnn prepare`: precompute what the browser shows (scores, class-wise scores, layout, examples, renders).

Resumable: every step's result is written atomically to the store, and a rerun skips the steps whose
results are there, so a killed run restarts where it stopped. Runs under torchrun too
(`torchrun --nproc_per_node=N -m viscnn prepare ...`): every step's work is split across the processes and
rank 0 alone reads and writes the store and the output files (docs/scaling.md).
"""
from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from viscnn.commands.common import add_images_arguments, add_model_arguments, load_with_graph, open_sets, seed_value

if TYPE_CHECKING:
    from tqdm import tqdm

    from viscnn.layout.placement import Layout
    from viscnn.pipeline.prepare import Preparer


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("prepare", help="precompute scores, class-wise layout, examples and renders for the GUI")
    add_model_arguments(parser)
    add_images_arguments(parser)
    parser.add_argument("--store", metavar="DIR", help="cache folder (default $VISCNN_STORE or the user cache)")
    parser.add_argument("--projection", default="umap", choices=["umap", "mds", "weights", "grid", "featurevis"],
                        help="how nodes are placed within a layer: umap (default) or mds of class-wise importance, "
                             "weights (filter similarity), grid, or featurevis (each node's response to the renders "
                             "of its layer's nodes: renders every node)")
    parser.add_argument("--mode", default="auto", choices=["auto", "loss", "logit"],
                        help="class-wise target: each class's loss on its own images, or its logit on all images "
                             "(auto: logit when some class has fewer than 5 images)")
    parser.add_argument("--examples", type=int, default=9, metavar="K", help="dataset examples per node (0: none)")
    parser.add_argument("--renders", type=int, default=16, metavar="N",
                        help="render the N top nodes by overall score (0: none; default 16)")
    parser.add_argument("--render-steps", type=int, default=256,
                        help="optimisation steps per render (default 256, as viscnn serve's, whose cache then finds them)")
    parser.add_argument("--batch-size", type=int, help="images per batch (default: 32 on a CPU, by memory on a GPU)")
    parser.add_argument("--seed", type=seed_value, default=0)
    parser.add_argument("--out", metavar="FILE", help="also write the layout JSON here")
    parser.add_argument("--figure", metavar="PNG", help="also draw the layout's quality figure here")
    parser.add_argument("--picture", metavar="PNG", help="also draw the layout: every layer's disc, nodes coloured by class")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from viscnn import distributed

    with distributed.session(args.device) as device:
        args.device = device
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from viscnn import distributed
    from viscnn.errors import ViscnnError
    from viscnn.layout import quality
    from viscnn.pipeline.devices import batch_size
    from viscnn.pipeline.prepare import Preparer, Settings
    from viscnn.store import Store

    for option in ("examples", "renders", "render_steps", "batch_size"):
        value = getattr(args, option)
        if value is not None and value < (1 if option in ("render_steps", "batch_size") else 0):
            raise ViscnnError(f"--{option.replace('_', '-')} must be at least {1 if option in ('render_steps', 'batch_size') else 0}")
    store = distributed.on_main(lambda: Store(args.store))
    loaded, graph = load_with_graph(args)
    image_sets = open_sets(args, loaded)
    settings = Settings(args.projection, args.mode, batch_size(args.batch_size, graph, args.device, cpu=32), args.seed,
                        args.examples, args.renders, args.render_steps, args.device)

    def progress(**kwargs: Any) -> tqdm:
        return tqdm(**kwargs, disable=args.quiet, bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}")

    def echo(text: str) -> None:
        tqdm.write(text)
        sys.stdout.flush()  # one line per finished step, seen at once even through a pipe

    preparer = Preparer(loaded, graph, image_sets, store, settings, args.images, progress, echo)
    manifest = preparer.run()
    layout = preparer.layout()
    if args.picture:  # what the picture needs, fetched by every process (rank 0 may ask the others for it)
        preparer.overall()
        if preparer.uses_classes:
            preparer.class_scores()
    if not distributed.is_main():
        return 0
    edge = layout.quality.get("edge_length", {})
    trust = layout.quality.get("trustworthiness", {})
    if edge:
        print(f"layout {args.projection}: importance-weighted edge length {edge['layout']:.3f} vs random "
              f"{edge['random']:.3f} (ratio {edge['ratio']:.2f})"
              + (f"; trustworthiness {trust['layout']:.3f} (projection {trust['projection']:.3f}, random "
                 f"{trust['random']:.3f})" if trust.get("layout") is not None and trust.get("projection") is not None else ""))
    if args.out:
        layout.save(args.out)
        print(f"wrote {args.out}")
    if args.figure:
        if "trustworthiness" not in layout.quality:
            raise ViscnnError(f"the {args.projection} layout has no trustworthiness to plot: use umap, mds or weights")
        quality.plot(layout.quality, args.figure, f"{loaded.name} ({args.projection})")
        print(f"wrote {args.figure}")
    if args.picture:
        _picture(preparer, layout, args.picture)
        print(f"wrote {args.picture}")
    print(f"manifest: prepared/{preparer.manifest_key()} ({len(manifest['results'])} results)")
    return 0


def _picture(preparer: Preparer, layout: Layout, path: str) -> None:
    """Nodes coloured by the class they serve most relative to the layer's mean, sized by overall score."""
    from viscnn.layout.figure import plot_layout

    colours = None
    if preparer.uses_classes:
        colours = {name: (v / v.mean(0).clamp(min=1e-12)).argmax(1).numpy()
                   for name, v in preparer.class_scores().nodes.items()}
    sizes = {name: v.numpy() for name, v in preparer.overall().nodes.items()}
    plot_layout(layout, preparer.graph, path, colours=colours, sizes=sizes, edge_weights=preparer.edge_weights(),
                title=f"{preparer.loaded.name}: {preparer.settings.projection} layout")
