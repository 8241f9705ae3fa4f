"""`viscnn composition`: which lower units compose a unit's activation on one image, with saliency maps."""
from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from viscnn.commands.common import add_model_arguments, load_with_graph, output_folder

if TYPE_CHECKING:
    from viscnn.circuits.composition import CompositionNode

PARENT_COLOUR = (0, 170, 0)
UNIT_COLOUR = (255, 140, 0)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("composition", help="the lower units that compose a unit's activation on one image")
    add_model_arguments(parser)
    parser.add_argument("--image", required=True, help="an image file (or any image-set spec; see --index)")
    parser.add_argument("--index", type=int, default=0, help="which image of the spec's overall set (default 0)")
    parser.add_argument("--unit", required=True, help="LAYER:CHANNEL[:Y,X]; without Y,X the channel's peak on the image")
    parser.add_argument("--top-k", type=int, default=3, help="children per unit")
    parser.add_argument("--depth", type=int, default=3, help="layers to follow below the root")
    parser.add_argument("--out", required=True, metavar="DIR", help="writes composition.json and one saliency PNG per unit")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:

    from viscnn.circuits.composition import compose, field_box, saliency_image
    from viscnn.data import ImageSet, open_image_sets
    from viscnn.errors import ViscnnError
    from viscnn.graph.ids import parse_unit

    loaded, graph = load_with_graph(args)
    unit = parse_unit(args.unit, graph)  # a bad unit fails before the image is read
    images = open_image_sets(args.image)["overall"]
    if not 0 <= args.index < len(images):
        raise ViscnnError(f"image index {args.index} is out of range: {args.image} holds {len(images)} images")
    item = images.items[args.index]
    x, _ = next(ImageSet("one", [item], images.tensor).batches(loaded.preprocess, 1))
    name = str(item.source) if not isinstance(item.source, int) else f"{args.image}[{args.index}]"
    result = compose(loaded.module, graph, x[0], unit, top_k=args.top_k, depth=args.depth, model_name=loaded.name,
                     image_name=name)
    out = output_folder(args.out)
    pixels = loaded.preprocess.to_pixels(x[0])
    scale = max(1, 192 // max(pixels.shape[-2:]))
    files: dict[int, str] = {}

    def draw(node: CompositionNode, parent: CompositionNode | None) -> None:
        path = "_".join(str(k) for k in trail) if (trail := paths[id(node)]) else "root"
        boxes = [(b, c) for b, c in ((field_box(graph, parent.unit) if parent else None, PARENT_COLOUR),
                                     (field_box(graph, node.unit), UNIT_COLOUR)) if b]
        what = f"{parent.unit} through {node.unit.layer}:{node.unit.channel}" if parent else f"{node.unit}"
        files[id(node)] = f"saliency_{path}.png"
        saliency_image(pixels, node.saliency, boxes, scale, f"d {what} / d input").save(out / files[id(node)])
        for child in node.children:
            draw(child, node)

    paths = {id(node): path for path, node in result.root.walk()}
    draw(result.root, None)
    (out / "composition.json").write_text(json.dumps(result.to_json(files), indent=1))
    print(f"{loaded.name} {result.root.unit} on {name}: activation {result.root.activation:.3f}")
    for path, node in result.root.walk():
        if path:
            print(f"{'  ' * len(path)}{node.unit}  act x grad {node.contribution:.4g} (peak {node.peak:.4g})")
    print(f"wrote {out}/composition.json and {len(files)} saliency PNGs")
    return 0
