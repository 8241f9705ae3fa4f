"""`viscnn score`: every node's and edge's importance for a target over an image-set expression.

Runs as one process, or under torchrun (`torchrun --nproc_per_node=N -m viscnn score ...`): each
process takes its share of the images and the sums are all-reduced (gloo on CPU, nccl on CUDA); rank 0
alone reads and writes the cache and the output files (docs/scaling.md).
"""
from __future__ import annotations

import argparse
import json
from collections.abc import Iterable

from viscnn.commands.common import add_images_arguments, add_model_arguments, load_with_graph, open_sets
from viscnn.scoring.criteria import CRITERIA


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("score", help="score every node and edge against a target")
    add_model_arguments(parser)
    add_images_arguments(parser)
    parser.add_argument("--input", default="overall", help="expression over the image sets, e.g. 'tiger - overall'")
    parser.add_argument("--target", default="loss", help="loss, logit:K, class:NAME, LAYER:C, LAYER:C:neuron, LAYER:dir(C=W,..)")
    parser.add_argument("--criterion", default=None, action="append", dest="criteria", choices=CRITERIA,
                        help="repeat for several (default taylor)")
    parser.add_argument("--no-edges", action="store_true", help="score nodes only")
    parser.add_argument("--baseline", default="zero",
                        help="for taylor_signed: what a removed map becomes: zero, mean, or the path of a reference image")
    parser.add_argument("--clip", action="store_true", help="set negative (contrast) scores to 0")
    parser.add_argument("--top", type=int, default=10, help="how many nodes and edges to print")
    parser.add_argument("--batch-size", type=int, help="images per batch (default: 32 on a CPU, by memory on a GPU)")
    parser.add_argument("--out", metavar="FILE", help="write the scores (.safetensors; one file per criterion if several)")
    parser.add_argument("--json", metavar="FILE", help="write the node scores (and top edges) as JSON")
    parser.add_argument("--store", metavar="DIR", help="cache folder (default $VISCNN_STORE or the user cache)")
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write cached scores")
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
    from viscnn.pipeline.devices import batch_size
    from viscnn.scoring.expression import parse_expression
    from viscnn.scoring.query import score_sets
    from viscnn.scoring.targets import check_scorable, parse_target
    from viscnn.store import Store

    criteria = list(dict.fromkeys(args.criteria or ["taylor"]))
    main_process = distributed.is_main()
    loaded, graph = load_with_graph(args)
    args.batch_size = batch_size(args.batch_size, graph, args.device, cpu=32)
    target = check_scorable(parse_target(args.target, graph, loaded.class_names))
    image_sets = open_sets(args, loaded)
    expression = parse_expression(args.input, list(image_sets))
    store = None if args.no_cache else distributed.on_main(lambda: Store(args.store))

    def progress(batches: Iterable, name: str, count: int) -> Iterable:
        return tqdm(batches, desc=f"scoring {name}", total=-(-count // args.batch_size), unit="batch",
                    disable=args.quiet or not main_process)

    result = score_sets(loaded, graph, image_sets, expression, target, criteria=criteria, edges=not args.no_edges,
                        store=store, batch_size=args.batch_size, device=args.device, clip=args.clip, progress=progress,
                        baseline=args.baseline)
    if not main_process:
        return 0
    print(f"{loaded.name}: target {args.target}, input {args.input!r}: scored {', '.join(result.computed) or 'nothing'}"
          f"{'; cached ' + ', '.join(result.cached) if result.cached else ''} in {result.seconds:.1f} s")
    for criterion, scores in result.scores.items():
        print(f"top {args.top} nodes by {criterion}:")
        for node, value in scores.top(args.top):
            print(f"  {node!s:<44} {value: .5g}")
        if scores.edges:
            print(f"top {args.top} edges by {criterion}:")
            for edge, value in scores.top(args.top, "edges"):
                print(f"  {edge!s:<44} {value: .5g}")
    if args.out:
        for criterion, scores in result.scores.items():
            path = args.out if len(criteria) == 1 else args.out.replace(".safetensors", f".{criterion}.safetensors")
            scores.save(path)
            print(f"wrote {path}")
    if args.json:
        data = {c: {**s.to_json(), "top_edges": [[str(e), v] for e, v in s.top(args.top, "edges")]}
                for c, s in result.scores.items()}
        with open(args.json, "w") as handle:
            json.dump(data, handle)
        print(f"wrote {args.json}")
    return 0
