"""`viscnn examples`: per node, the image patches of a set that excite and inhibit it most.

Under torchrun (`torchrun --nproc_per_node=N -m viscnn examples ...`) each process goes through its share of
the images, the per-node tops are merged by value, and rank 0 alone reads and writes the store and the
output folder (docs/scaling.md).
"""
from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import time
from collections.abc import Iterable

from viscnn.commands.common import add_images_arguments, add_model_arguments, load_with_graph, open_set, output_folder


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("examples", help="top-k exciting and inhibiting image patches of every node of some layers")
    add_model_arguments(parser)
    add_images_arguments(parser)
    parser.add_argument("--input", default="overall", help="which set of --images to use (a set name)")
    parser.add_argument("--layer", action="append", dest="layers", metavar="LAYER",
                        help="a conv layer (repeat for several; default all)")
    parser.add_argument("--nodes", default="0-15", help="channels to write per layer: '0-15' (default), '3,7,20-23' or 'all'")
    parser.add_argument("--k", type=int, default=9, help="examples per node and side (one per image)")
    parser.add_argument("--cell", type=int, default=80, help="pixel size of a patch in the PNGs")
    parser.add_argument("--no-png", action="store_true", help="write the JSON only")
    parser.add_argument("--batch-size", type=int, help="images per batch (default: 32 on a CPU, by memory on a GPU)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="writes examples.json, LAYER/examples.json, LAYER/node_C.png and LAYER/sheet.png")
    parser.add_argument("--store", metavar="DIR", help="cache folder (default $VISCNN_STORE or the user cache)")
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write cached examples")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(run=run)


def parse_channels(text: str, count: int, layer: str) -> list[int]:
    """'all', or a comma list of channels and ranges ('0-15,31') checked against `count` channels."""
    from viscnn.errors import ViscnnError

    if text.strip() == "all":
        return list(range(count))
    channels: list[int] = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not match:
            raise ViscnnError(f"cannot read nodes {text!r}: use 'all' or channels and ranges like 0-15,31")
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        if last < first:
            raise ViscnnError(f"empty channel range {part.strip()!r} in --nodes {text!r}")
        if last >= count:
            raise ViscnnError(f"channel {last} is out of range: layer {layer} has {count} channels "
                              "(--nodes applies to every layer named; 'all' takes each layer's own)")
        channels.extend(range(first, last + 1))
    return list(dict.fromkeys(channels))


def run(args: argparse.Namespace) -> int:
    from viscnn import distributed

    with distributed.session(args.device) as device:
        args.device = device
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from viscnn import distributed
    from viscnn.errors import ViscnnError
    from viscnn.inspection.examples import (
        PixelCache,
        check_layers,
        dataset_examples,
        examples_png,
        layer_sheet,
        node_grid,
        patch_size,
    )
    from viscnn.pipeline.devices import batch_size
    from viscnn.store import Store

    if args.k < 1:
        raise ViscnnError(f"--k must be at least 1, not {args.k}")
    if args.cell < 8:
        raise ViscnnError(f"--cell must be at least 8 pixels, not {args.cell}")
    if args.batch_size is not None and args.batch_size < 1:
        raise ViscnnError(f"--batch-size must be at least 1, not {args.batch_size}")
    main_process = distributed.is_main()
    store = None if args.no_cache else distributed.on_main(lambda: Store(args.store))
    loaded, graph = load_with_graph(args)
    args.batch_size = batch_size(args.batch_size, graph, args.device, cpu=32, gradients=False)
    layers = check_layers(graph, args.layers)
    chosen = {name: parse_channels(args.nodes, graph[name].out_channels, name) for name in layers}
    image_set = open_set(args, loaded, args.input)
    out = distributed.on_main(lambda: output_folder(args.out))

    start = time.perf_counter()
    batches = math.ceil(len(image_set) / args.batch_size / distributed.world())

    def progress(items: Iterable) -> Iterable:
        return tqdm(items, desc=f"examples over {image_set.name}", total=batches, unit="batch",
                    disable=args.quiet or not main_process)

    found = dataset_examples(store, loaded, graph, image_set, layers, k=args.k, batch_size=args.batch_size,
                             progress=progress, split=True)
    seconds = time.perf_counter() - start
    if out is None:  # not rank 0: the output is rank 0's to write
        return 0
    image_hw = loaded.input_shape[1:]
    index = {"model": loaded.name, "images": f"{args.images}:{args.input}", "image_count": len(image_set),
             "k": min(args.k, len(image_set)), "seconds": round(seconds, 2), "layers": {}}
    pixels = PixelCache(image_set, loaded.preprocess)
    for name in layers:
        examples, rf = found[name], graph[name].receptive_field
        folder = out / name
        folder.mkdir(exist_ok=True)
        nodes = [examples.node(c, rf, image_set) for c in chosen[name]]
        for channel, node in zip(tqdm(chosen[name], desc=f"patches {name}", unit="node", disable=args.quiet), nodes):
            if args.no_png:
                break
            target = folder / f"node_{channel}.png"
            if store is not None:
                path, _ = examples_png(store, loaded, graph, image_set, examples, channel, cell=args.cell, pixels=pixels)
                shutil.copyfile(path, target)
            else:
                node_grid(examples, rf, channel, pixels, image_hw, cell=args.cell, set_name=image_set.name).save(target)
            node["png"] = target.name
        if not args.no_png:
            layer_sheet(examples, rf, pixels, image_hw, chosen[name], set_name=image_set.name).save(folder / "sheet.png")
        (folder / "examples.json").write_text(json.dumps({"layer": name, "nodes": nodes}))
        index["layers"][name] = {"channels": examples.channels, "written": len(nodes), "map_size": list(examples.map_size),
                                 "patch_size": list(patch_size(rf, image_hw)), "file": f"{name}/examples.json"}
        best = int(examples.excite.values[:, 0].argmax())
        print(f"{name}: {examples.channels} nodes, maps {examples.map_size[0]}x{examples.map_size[1]}, patches "
              f"{'x'.join(map(str, patch_size(rf, image_hw)))} px; strongest node {best} "
              f"({examples.excite.values[best, 0]:.3g} on image {int(examples.excite.images[best, 0])})")
    (out / "examples.json").write_text(json.dumps(index, indent=1))
    cached = "" if store is None else f" (store {store.root})"
    print(f"{loaded.name}: top {index['k']} of {len(image_set)} images for {sum(found[n].channels for n in layers)} nodes "
          f"of {len(layers)} layers in {seconds:.1f} s{cached}; wrote {out}/examples.json"
          f"{'' if args.no_png else ', LAYER/node_C.png, LAYER/sheet.png'}")
    return 0
