"""`viscnn activations`: an image's activation maps through every conv layer, and a unit's receptive field."""
from __future__ import annotations

import argparse
from pathlib import Path

from viscnn.commands.common import add_model_arguments, load_with_graph, output_folder


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("activations", help="an image's (BN-folded) activation maps, layer by layer")
    add_model_arguments(parser)
    parser.add_argument("--image", required=True, help="an image file")
    parser.add_argument("--layer", action="append", dest="layers", metavar="LAYER",
                        help="a conv layer (repeat for several; default all)")
    parser.add_argument("--scaling", default="layer", choices=["layer", "map"],
                        help="one colour scale per layer (default) or per map")
    parser.add_argument("--unit", action="append", default=[], metavar="LAYER:Y,X",
                        help="outline the receptive field of unit (Y, X) of LAYER's maps on the image (repeatable)")
    parser.add_argument("--no-arrays", action="store_true", help="do not write maps.npz")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="writes input.png, NN_LAYER.png per layer, maps.npz and rf_LAYER_Y_X.png per --unit")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from viscnn.data.imageset import read_image
    from viscnn.graph.ids import parse_position
    from viscnn.inspection.views import activation_grid, activation_maps, draw_box, image_input, receptive_box
    from viscnn.store.cache import to_pil

    loaded, graph = load_with_graph(args)
    units = [parse_position(text, graph, what="--unit") for text in args.unit]
    boxes = [(unit, receptive_box(graph, *unit)) for unit in units]  # checks layers and positions first
    x, pixels = image_input(read_image(Path(args.image)), loaded.preprocess)
    maps = activation_maps(loaded.module, graph, x, args.layers)
    out = output_folder(args.out)
    to_pil(pixels.squeeze()).save(out / "input.png")
    width = len(str(len(graph.conv_layers)))
    order = {layer.name: k for k, layer in enumerate(graph.conv_layers, 1)}
    for name, values in maps.items():
        activation_grid(values, name, args.scaling).save(out / f"{order[name]:0{width}d}_{name}.png")
    if not args.no_arrays:
        np.savez_compressed(out / "maps.npz", allow_pickle=False, **maps)  # float maps: nothing to pickle
    for (layer, y, xx), box in boxes:
        draw_box(pixels, box).save(out / f"rf_{layer}_{y}_{xx}.png")
        print(f"{layer} unit {y},{xx}: receptive field rows {box[0]:g}-{box[2]:g}, columns {box[1]:g}-{box[3]:g}")
    count = sum(a.size for a in maps.values())
    print(f"{loaded.name}: {len(maps)} layers of maps for {args.image} ({count:,} values); wrote {out}/input.png, "
          f"NN_LAYER.png{', maps.npz' if not args.no_arrays else ''}{', rf_*.png' if boxes else ''}")
    return 0
