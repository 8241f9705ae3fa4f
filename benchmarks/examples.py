"""Dataset examples: top-k for every node of EfficientNet-Lite0 over the demo photos vs a plain forward pass.

    .venv/bin/python benchmarks/examples.py [--model efficientnet-lite0] [--images demo] [--k 9] [--batch-size 16]

Side by side in one run, on one thread, on the same images and batches (decoding and preprocessing
included in both, and also timed alone): the plain forward passes, and `compute_examples` over all
conv layers (every node of the model, exciting and inhibiting). Repeated --repeats times, alternating;
medians of the process's CPU time reported (one thread: other processes on the machine inflate wall
time, much less CPU time), plus the wall-clock ratio. Peak memory is measured in child processes (one per mode; max RSS above the RSS
after loading the model and graph), next to what holding every layer's maps for the whole set would
need. Then once over the photos --longer times over (more images: fewer of them enter a node's top k,
so the overhead shrinks). Also times a store hit (the per-layer arrays read back) and drawing one node's patch grid.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import torch


def setup(model_name: str, images: str):
    from viscnn.data import open_image_sets
    from viscnn.graph import build_graph
    from viscnn.models import load_model

    loaded = load_model(model_name)
    graph = build_graph(loaded.module, loaded.input_shape, loaded.name)
    return loaded, graph, open_image_sets(images)["overall"]


def plain(loaded, image_set, batch_size: int) -> None:
    with torch.no_grad():
        for x, _ in image_set.batches(loaded.preprocess, batch_size):
            loaded.module(x)


def decode(loaded, image_set, batch_size: int) -> None:
    for _ in image_set.batches(loaded.preprocess, batch_size):
        pass


def examples(loaded, graph, image_set, k: int, batch_size: int):
    from viscnn.inspection.examples import compute_examples

    return compute_examples(loaded.module, graph, image_set, loaded.preprocess, None, k=k, batch_size=batch_size)


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


def child(args: argparse.Namespace) -> None:
    """One mode in a fresh process: print the peak RSS above the RSS after set-up, in MB."""
    torch.set_num_threads(1)
    loaded, graph, image_set = setup(args.model, args.images)
    plain(loaded, image_set, 1)  # warm up allocator and kernels with the smallest batch
    base = current_rss_mb()
    if args.child == "plain":
        plain(loaded, image_set, args.batch_size)
    else:
        examples(loaded, graph, image_set, args.k, args.batch_size)
    print(json.dumps({"peak_mb": max_rss_mb() - base}))


def memory(args: argparse.Namespace, mode: str) -> float:
    done = subprocess.run([sys.executable, __file__, "--child", mode, "--model", args.model, "--images", args.images,
                           "--k", str(args.k), "--batch-size", str(args.batch_size)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])["peak_mb"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--images", default="demo")
    parser.add_argument("--k", type=int, default=9)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--longer", type=int, default=4, help="also time the set repeated this many times")
    parser.add_argument("--child", choices=["plain", "examples"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    torch.set_num_threads(1)
    loaded, graph, image_set = setup(args.model, args.images)
    nodes = graph.num_nodes
    plain(loaded, image_set, args.batch_size)  # warm-up
    times: dict[str, list[float]] = {"decode": [], "plain": [], "examples": []}
    walls: dict[str, list[float]] = {"decode": [], "plain": [], "examples": []}
    for _ in range(args.repeats):
        for name, work in (("decode", lambda: decode(loaded, image_set, args.batch_size)),
                           ("plain", lambda: plain(loaded, image_set, args.batch_size)),
                           ("examples", lambda: examples(loaded, graph, image_set, args.k, args.batch_size))):
            start, wall = time.process_time(), time.perf_counter()
            work()
            times[name].append(time.process_time() - start)
            walls[name].append(time.perf_counter() - wall)
    median = {name: statistics.median(values) for name, values in times.items()}
    wall_median = {name: statistics.median(values) for name, values in walls.items()}
    found = examples(loaded, graph, image_set, args.k, args.batch_size)

    from viscnn.inspection.examples import PixelCache, dataset_examples, examples_png
    from viscnn.store import Store

    with tempfile.TemporaryDirectory() as folder, Store(folder) as store:
        dataset_examples(store, loaded, graph, image_set, None, k=args.k, batch_size=args.batch_size)
        start = time.perf_counter()
        dataset_examples(store, loaded, graph, image_set, None, k=args.k, batch_size=args.batch_size)
        hit = time.perf_counter() - start
        layer = graph.conv_layers[len(graph.conv_layers) // 2].name
        pixels = PixelCache(image_set, loaded.preprocess)
        examples_png(store, loaded, graph, image_set, found[layer], 0, pixels=pixels)  # loads the images
        start = time.perf_counter()
        for channel in range(1, 17):
            examples_png(store, loaded, graph, image_set, found[layer], channel, pixels=pixels)
        grid = (time.perf_counter() - start) / 16
    # a longer set (the photos --longer times over): fewer images enter a node's top k after the first
    # batches, so fewer positions are looked up and the cost tends to the forward pass plus the reductions
    from viscnn.data.imageset import ImageSet

    longer = ImageSet(f"{image_set.name}x{args.longer}", image_set.items * args.longer, image_set.tensor)
    long_times: dict[str, float] = {}
    for name, work in (("plain", lambda: plain(loaded, longer, args.batch_size)),
                       ("examples", lambda: examples(loaded, graph, longer, args.k, args.batch_size))):
        start = time.process_time()
        work()
        long_times[name] = time.process_time() - start
    result_kb = sum(a.nbytes for e in found.values() for a in e.to_arrays().values()) / 1024
    all_maps_mb = sum(layer.out_channels * layer.output_shape[1] * layer.output_shape[2]
                      for layer in graph.conv_layers) * 4 * len(image_set) / 2**20
    mem_plain, mem_examples = memory(args, "plain"), memory(args, "examples")

    print(f"{loaded.name}: {len(graph.conv_layers)} conv layers, {nodes:,} nodes; {len(image_set)} images "
          f"({args.images}), batch {args.batch_size}, k {args.k}, 1 thread, median CPU time of {args.repeats} runs")
    print("| measure | value |\n|---|---|")
    print(f"| decode + preprocess only | {median['decode']:.2f} s |")
    print(f"| plain forward (incl. decode) | {median['plain']:.2f} s |")
    print(f"| top-k examples, all {nodes:,} nodes (incl. decode) | {median['examples']:.2f} s |")
    print(f"| ratio examples / plain forward | **{median['examples'] / median['plain']:.2f}x** |")
    print(f"| ratio without decoding | {(median['examples'] - median['decode']) / (median['plain'] - median['decode']):.2f}x |")
    print(f"| ratio in wall-clock time | {wall_median['examples'] / wall_median['plain']:.2f}x |")
    print(f"| same, the photos {args.longer} times over ({len(longer)} images, one run): plain "
          f"{long_times['plain']:.1f} s, examples {long_times['examples']:.1f} s | "
          f"**{long_times['examples'] / long_times['plain']:.2f}x** |")
    print(f"| peak memory above the loaded model: plain forward | {mem_plain:.0f} MB |")
    print(f"| peak memory above the loaded model: examples | {mem_examples:.0f} MB |")
    print(f"| every layer's maps for the whole set (not held) | {all_maps_mb:.0f} MB |")
    print(f"| result arrays, all layers | {result_kb:.0f} KB |")
    print(f"| store hit, all layers read back | {hit * 1000:.0f} ms |")
    print(f"| one node's patch grid PNG ({layer}, images held) | {grid * 1000:.0f} ms |")
    print(f"raw CPU times: {json.dumps({k: [round(v, 3) for v in vs] for k, vs in times.items()})}")


if __name__ == "__main__":
    main()
