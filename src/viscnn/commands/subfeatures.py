"""`viscnn subfeatures`: split a polysemantic node into sub-feature circuits (the preprint's section 4.2)."""
from __future__ import annotations

import argparse
import json
import time

from viscnn.commands.common import (
    add_images_arguments,
    add_model_arguments,
    load_with_graph,
    open_set,
    output_folder,
    seed_value,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("subfeatures", help="cluster a node's top patches and extract one circuit per cluster")
    add_model_arguments(parser)
    add_images_arguments(parser, required=True)
    parser.add_argument("--input", default="overall", help="which set of --images to use (a set name)")
    parser.add_argument("--node", required=True, help="LAYER:CHANNEL, e.g. features.8:5")
    parser.add_argument("--top-n", type=int, default=300, help="most exciting patches to cluster, one per image")
    parser.add_argument("--min-cluster-size", type=int, default=20, help="HDBSCAN's minimum cluster size")
    parser.add_argument("--keep", type=float, default=0.05, help="fraction of the node's upstream kernels each circuit keeps")
    parser.add_argument("--method", default="actgrad", help="circuit method (actgrad, actgrad_signed stream; others take one batch)")
    parser.add_argument("--scrambles", type=int, default=1, help="scrambled controls to average")
    parser.add_argument("--patches", type=int, default=16, help="top patches shown per cluster PNG")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=seed_value, default=0)
    parser.add_argument("--out", required=True, metavar="DIR", help="writes clusters.json, cluster_K.png, circuit_K.json")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from viscnn.circuits.subfeatures import find_subfeatures, patch_crops, patch_grid
    from viscnn.graph.ids import parse_node

    loaded, graph = load_with_graph(args)
    node = parse_node(args.node, graph)
    image_set = open_set(args, loaded, args.input)
    out = output_folder(args.out)
    start = time.perf_counter()
    result = find_subfeatures(loaded.module, graph, image_set, loaded.preprocess, node, top_n=args.top_n,
                              min_cluster_size=args.min_cluster_size, keep=args.keep, method=args.method,
                              seed=args.seed, device=args.device, batch_size=args.batch_size,
                              scrambles=args.scrambles, model_name=loaded.name, fingerprint=loaded.fingerprint())
    seconds = time.perf_counter() - start
    data = result.to_json(image_set, graph)
    data["images"] = f"{args.images}:{args.input}"
    data["seconds"] = round(seconds, 2)
    for k, members in enumerate(result.clusters):
        shown = members[: args.patches]  # members are in patch order: highest peaks first
        crops = patch_crops(graph, image_set, loaded.preprocess, node, result.patches, shown)
        patch_grid(crops, title=f"{node} cluster {k}: {len(members)} patches").save(out / f"cluster_{k}.png")
        circuit_json = result.circuits[k].to_json(graph, loaded.module)
        circuit_json["target"]["unit"] = "each member image's peak unit (see clusters.json)"
        circuit_json["images"] = [result.patches[i].image for i in members]
        (out / f"circuit_{k}.json").write_text(json.dumps(circuit_json))
        data["clusters"][k].update(png=f"cluster_{k}.png", circuit=f"circuit_{k}.json")
    (out / "clusters.json").write_text(json.dumps(data, indent=1))
    sizes = ", ".join(str(len(m)) for m in result.clusters) or "none"
    print(f"{loaded.name} {node}: {len(result.patches)} patches from {len(image_set)} images; HDBSCAN (min {args.min_cluster_size}): "
          f"{len(result.clusters)} clusters (sizes {sizes}; {data['noise']} noise); {seconds:.1f} s")
    if result.message:
        print(result.message)
    else:
        edges = ", ".join(f"{c.num_edges}" for c in result.circuits)
        print(f"circuits ({args.method}, keep {args.keep:g}): {edges} kernels; mean IoU of cluster circuits "
              f"{data['mean_iou']:.3f} vs scrambled control {data['mean_scrambled_iou']:.3f} (lower = more separable)")
    print(f"wrote {out}/clusters.json, cluster_K.png, circuit_K.json")
    return 0
