"""Feature visualisation: render quality and batched-rendering speed, measured in one run; contact sheet.

    .venv/bin/python benchmarks/featurevis.py quality [--model efficientnet-lite0] [--steps 128] [--size 128]
    .venv/bin/python benchmarks/featurevis.py speed   [--model efficientnet-lite0] [--steps 16] [--size 224]
    .venv/bin/python benchmarks/featurevis.py sheet   [--steps 256] [--out docs/featurevis-lite0-sheet.png]

quality: --nodes random nodes per layer kind (Lite0: stem, expand 1x1, depthwise, project 1x1, head 1x1;
fmnist-convnet: conv5x5, conv3x3) and --nodes random edges (kernels of non-depthwise layers), each
rendered (a kind per batch) and measured on its own render; the ratio is that value over the 99th
percentile of the same objective over natural images (the 39 demo photos at 224 px for Lite0,
--fmnist-images Fashion-MNIST test images for fmnist). Objectives whose natural p99 is <= 0 have no
ratio; they are counted, with how many renders beat every natural image.

speed: the same --nodes channel objectives of one layer, same steps and size, rendered by Lucent 0.1.8
one at a time (when `lucent` is importable: Lucent's way, the whole model run each step), by viscnn one
at a time (one render call each), and by viscnn batched (one call; automatic pass size and one pass of
all), in --rounds interleaved rounds; per-channel throughput ratios in CPU time of this process (torch
on one thread, so other jobs on the machine do not count) and in wall time.

sheet: Lite0 renders of a layer's channels and of class logits, saved as one labelled PNG.

circuits: the paper's Fig. 9 on fmnist-convnet: nodes rendered through best (actgrad) / random / worst
circuits, and through sparser and sparser actgrad circuits; each render's value in the FULL model says
how much of the node's feature the circuit's render still carries.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from viscnn.data import imagenet_classes, open_image_sets
from viscnn.errors import ViscnnError
from viscnn.featurevis import RenderSettings, measure, render
from viscnn.featurevis.render import pass_size
from viscnn.graph import build_graph
from viscnn.models import load_model
from viscnn.scoring import parse_target

SHEET_CLASSES = [1, 130, 323, 949, 951, 985, 980, 88, 963, 852, 291, 954, 417, 945, 207, 430]


def layer_kind(graph, layer) -> str:
    if layer.index == 1 or not graph.upstream(layer.name)[1:]:
        return "stem"
    if layer.groups > 1 and layer.in_per_group == 1:
        return "depthwise"
    for suffix in ("expand_conv", "project_conv", "conv_head"):
        if layer.name.endswith(suffix):
            return suffix.replace("_conv", "").replace("conv_", "")
    return f"conv{layer.kernel_size[0]}x{layer.kernel_size[1]}"


def natural_images(loaded, count: int) -> torch.Tensor:
    spec = "demo" if loaded.name == "efficientnet-lite0" else f"fashion-mnist:test:{count}"
    return torch.cat([x for x, _ in open_image_sets(spec)["overall"].batches(loaded.preprocess, 64)])


def sample_objectives(graph, count: int, seed: int) -> dict[str, list[str]]:
    rng = random.Random(seed)
    by_kind: dict[str, list] = {}
    for layer in graph.conv_layers:
        by_kind.setdefault(layer_kind(graph, layer), []).append(layer)
    groups = {}
    for kind, layers in by_kind.items():
        picks = [rng.choice(layers) for _ in range(count)]
        groups[f"node {kind}"] = [f"{layer.name}:{rng.randrange(layer.out_channels)}" for layer in picks]
    dense = [layer for layer in graph.conv_layers if layer.in_per_group > 1]
    edges = []
    for _ in range(count):
        layer = rng.choice(dense)
        out = rng.randrange(layer.out_channels)
        edges.append(f"{layer.name}:{out}<-{layer.input_channel(out, rng.randrange(layer.in_per_group))}")
    groups["edge"] = edges
    groups["edge neuron"] = [f"{e}:neuron" for e in edges]
    return groups


def quality(args: argparse.Namespace) -> None:
    from viscnn.featurevis.bounds import ceiling

    loaded = load_model(args.model)
    graph = build_graph(loaded.module, loaded.input_shape, loaded.name)
    natural = natural_images(loaded, args.fmnist_images)
    settings = RenderSettings(steps=args.steps, size=args.size, lr=args.lr, sharpen=args.sharpen)
    size = settings.size or loaded.preprocess.size
    print(f"{loaded.name}: {args.nodes} objectives per group, {settings.steps} steps, {size} px renders, lr {settings.lr}, "
          f"sharpen {settings.sharpen}; natural: {natural.shape[0]} images")
    print("ratio: the render's value over the natural p99; ceiling: the most any image can give (bounds.ceiling) over "
          "the natural p99; 'ceiling < 10x': objectives no image can lift to 10x their natural p99")
    print(f"{'group':<18} {'median ratio':>12} {'min':>7} {'max':>8} {'p99<=0':>6} {'beat max':>8} "
          f"{'ceiling':>8} {'ceiling < 10x':>13} {'of ceiling':>10} {'s':>5}")
    totals: dict[str, dict[str, list[float]]] = {}
    rows: list[dict] = []
    for group, texts in sample_objectives(graph, args.nodes, args.seed).items():
        if args.only and not any(o in group for o in args.only.split(",")):
            continue
        objectives = [parse_target(t, graph) for t in texts]
        start = time.perf_counter()
        result = render(loaded.module, graph, loaded.preprocess, objectives, settings)
        seconds = time.perf_counter() - start
        ratios, ranked, reachable, ceilings, of_ceiling, nonpositive, beat, capped = [], [], [], [], [], 0, 0, 0
        for objective, value in zip(objectives, result.values.tolist()):
            own = measure(loaded.module, graph, objective, natural)
            p99, top = float(own.quantile(0.99)), float(own.max())
            bound = ceiling(loaded.module, graph, loaded.preprocess, objective, size)
            beat += value > top
            of_ceiling.append(value / bound if bound > 0 else float("nan"))
            if p99 > 0:
                ratio = value / p99
                ratios.append(ratio)
                ceilings.append(bound / p99)
            else:  # no ratio; a render that beats every natural image ranks above any ratio, else below
                nonpositive += 1
                ratio = float("inf") if value > top and value > 0 else float("-inf")
                ceilings.append(float("inf"))
            ranked.append(ratio)
            if ceilings[-1] < 10:
                capped += 1
            elif p99 > 0:
                reachable.append(ratio)
            rows.append({"group": group, "objective": str(objective), "value": value, "p99": p99, "max": top,
                         "ceiling": bound})
        name = "edge neuron" if group == "edge neuron" else group.split()[0]
        for key, values in (("ratios", ratios), ("ranked", ranked), ("reachable", reachable)):
            totals.setdefault(name, {}).setdefault(key, []).extend(values)
        totals[name].setdefault("capped", []).append(capped)
        med = statistics.median(ratios) if ratios else float("nan")
        finite = [r for r in of_ceiling if r == r]
        if finite and max(finite) > 1 + 1e-4:
            print(f"  !! a render above its ceiling: {max(finite):.4f} of it (the bound is wrong)")
        print(f"{group:<18} {med:>12.1f} {min(ratios, default=float('nan')):>7.1f} {max(ratios, default=float('nan')):>8.1f} "
              f"{nonpositive:>6} {beat:>5}/{len(objectives):<2} {statistics.median(ceilings):>8.1f} {capped:>10}/{len(objectives):<2} "
              f"{statistics.median(finite) if finite else float('nan'):>10.2f} {seconds:>5.0f}", flush=True)
    for name, got in totals.items():
        if got["ratios"]:
            reach = got["reachable"]
            print(f"median ratio, all {name} objectives: {statistics.median(got['ratios']):.1f} ({len(got['ratios'])} with "
                  f"p99 > 0); over all {len(got['ranked'])} (p99 <= 0 ranked above every ratio when the render beats every "
                  f"natural image, else below): {statistics.median(got['ranked']):.1f}; over the {len(reach)} with p99 > 0 "
                  f"whose ceiling allows 10x: {statistics.median(reach) if reach else float('nan'):.1f} "
                  f"({sum(got['capped'])} cannot reach 10x)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
        print(f"wrote {args.json}")


def _lucent_render(module, layer: str, channel: int, steps: int, size: int) -> None:
    """One objective rendered by Lucent 0.1.8 itself (FFT + decorrelated colour, its standard transforms,
    Adam 0.05: the same recipe), the whole model run each step, as Lucent does."""
    from lucent.optvis import param
    from lucent.optvis import render as lucent

    lucent.render_vis(module, f"{layer.replace('.', '_')}:{channel}", param_f=lambda: param.image(size),
                      thresholds=(steps,), show_image=False, progress=False, fixed_image_size=size)


def model_alone(loaded, graph, objectives, steps: int, size: int) -> Callable[[], None]:
    """The floor under any renderer of these objectives through this model on this machine: only the
    model's forward pass to the objectives' layer and its input-gradient backward, as rendering runs them
    (BN folded, channels-last, passes of `pass_size` on the threads `parallel_passes` would use); no image
    parametrisation, transforms, redirected gradients or optimiser."""
    from concurrent.futures import ThreadPoolExecutor

    from viscnn.featurevis.objectives import forward
    from viscnn.featurevis.render import check_size, parallel_passes

    fold = check_size(loaded.module, graph, loaded.preprocess, size, torch.device("cpu"))
    per_pass = pass_size(RenderSettings(), size, torch.device("cpu"))
    chunks = [objectives[k:k + per_pass] for k in range(0, len(objectives), per_pass)]

    def one_pass(chunk) -> None:
        if workers > 1:  # as render's parallel passes do
            torch.set_num_threads(1)
        x = torch.rand(len(chunk), loaded.preprocess.channels, size, size).contiguous(memory_format=torch.channels_last)
        x.requires_grad_(True)
        for _ in range(steps):
            values = forward(loaded.module, graph, chunk, loaded.preprocess.normalize(x), fold=fold)[0]
            torch.autograd.grad(values.sum(), x)

    workers = parallel_passes(RenderSettings(), len(chunks), torch.device("cpu"))

    def run() -> None:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(one_pass, chunks))
    return run


def speed(args: argparse.Namespace) -> None:
    """Per-channel CPU time of the same objectives and steps rendered: by Lucent one at a time (when it is
    importable), by viscnn one at a time (one render call each), and by viscnn batched (one call)."""
    import copy
    import importlib.util

    loaded = load_model(args.model)
    graph = build_graph(loaded.module, loaded.input_shape, loaded.name)
    layer = args.layer or ("_blocks.6._expand_conv" if loaded.name == "efficientnet-lite0" else "features.8")
    objectives = [parse_target(f"{layer}:{c}", graph) for c in range(args.nodes)]
    size = args.size or loaded.preprocess.size
    # Lucent renders 3-channel images normalised for torchvision's ImageNet models
    has_lucent = importlib.util.find_spec("lucent") is not None and loaded.preprocess.channels == 3
    # Lucent leaves hooks on every module it renders through: it gets its own copy of the model
    lucent_model = copy.deepcopy(loaded.module) if has_lucent else None

    def lucent_way() -> None:
        for c in range(len(objectives)):
            _lucent_render(lucent_model, layer, c, args.steps, size)

    def one_at_a_time() -> None:
        for objective in objectives:
            render(loaded.module, graph, loaded.preprocess, [objective], RenderSettings(steps=args.steps, size=size))

    def batched(batch: int | None) -> Callable[[], None]:
        return lambda: render(loaded.module, graph, loaded.preprocess, objectives,
                              RenderSettings(steps=args.steps, size=size, batch=batch))

    ways: dict[str, Callable[[], None]] = {}
    if has_lucent:
        ways["Lucent 0.1.8, one at a time"] = lucent_way
    else:
        print("(Lucent is not measured: it is not importable (to install it beside the venv, see docs/benchmarks.md) "
              "or the model does not take RGB images)")
    ways["viscnn, one at a time"] = one_at_a_time
    ways[f"viscnn batched (auto: {pass_size(RenderSettings(), size, torch.device('cpu'))} per pass)"] = batched(None)
    ways[f"viscnn batched ({len(objectives)} per pass)"] = batched(len(objectives))
    if args.batch:
        ways[f"viscnn batched ({args.batch} per pass)"] = batched(args.batch)
    ways["the model alone (floor)"] = model_alone(loaded, graph, objectives, args.steps, size)
    render(loaded.module, graph, loaded.preprocess, objectives[:1], RenderSettings(steps=1, size=size))  # warm-up
    if has_lucent:
        _lucent_render(lucent_model, layer, 0, 1, size)
    cpu = dict.fromkeys(ways, 0.0)
    wall = dict(cpu)
    for _ in range(args.rounds):  # interleaved rounds, so a change in the machine's load hits all alike
        for name, run in ways.items():
            start_cpu, start_wall = time.process_time(), time.perf_counter()
            run()
            cpu[name] += (time.process_time() - start_cpu) / len(objectives) / args.rounds
            wall[name] += (time.perf_counter() - start_wall) / len(objectives) / args.rounds
    print(f"{loaded.name} {layer}: {len(objectives)} channels, {args.steps} steps, {size} px, "
          f"{torch.get_num_threads()} thread(s), {args.rounds} interleaved rounds")
    base = next(iter(ways))
    print(f"  {'':<36} {'CPU s / channel':>15} {'per 256 steps':>13} {'wall s':>7} {'throughput vs ' + base.split(',')[0]:>24}")
    for name in ways:
        print(f"  {name:<36} {cpu[name]:15.3f} {cpu[name] / args.steps * 256:13.1f} {wall[name]:7.2f} "
              f"{cpu[base] / cpu[name]:17.1f}x CPU {wall[base] / wall[name]:4.1f}x wall", flush=True)


def sheet(args: argparse.Namespace) -> None:
    from PIL import Image, ImageDraw

    loaded = load_model("efficientnet-lite0")
    graph = build_graph(loaded.module, loaded.input_shape, loaded.name)
    names = imagenet_classes()
    rows = [(f"{args.layer}:{c}", f"{args.layer}:{c}") for c in range(8)]
    rows += [(f"logit:{k}", names[k]) for k in SHEET_CLASSES[:args.classes]]
    objectives = [parse_target(text, graph) for text, _ in rows]
    settings = RenderSettings(steps=args.steps, size=args.size, lr=args.lr, batch=args.batch, transforms=args.transforms,
                              seed=args.seed, sharpen=args.sharpen)
    start = time.perf_counter()
    result = render(loaded.module, graph, loaded.preprocess, objectives, settings, progress=True)
    print(f"rendered {len(objectives)} objectives, {settings.steps} steps, {settings.size or 224} px in "
          f"{time.perf_counter() - start:.0f} s")
    tile, label, columns = result.images.shape[-1], 16, 8
    canvas = Image.new("RGB", (columns * tile, (len(rows) // columns) * (tile + label)), "white")
    draw = ImageDraw.Draw(canvas)
    for k, ((_, caption), image) in enumerate(zip(rows, result.images)):
        x, y = (k % columns) * tile, (k // columns) * (tile + label)
        pixels = (image.permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy()
        canvas.paste(Image.fromarray(pixels), (x, y + label))
        draw.text((x + 3, y + 2), f"{caption[:26]} {result.values[k]:.1f}", fill="black")
    canvas.save(args.out)
    print(f"wrote {args.out}")
    for (_, caption), value in zip(rows, result.values.tolist()):
        print(f"  {caption:<30} {value:8.2f}")


def circuits(args: argparse.Namespace) -> None:
    """The paper's Fig. 9 on fmnist-convnet: a node rendered through its best / random / worst circuits
    at one kept fraction (row a), and through ever sparser best circuits (row b)."""
    from PIL import Image, ImageDraw

    from viscnn.circuits import extract_circuit

    loaded = load_model("fmnist-convnet")
    graph = build_graph(loaded.module, loaded.input_shape, loaded.name)
    data = open_image_sets("fashion-mnist:test:20")["overall"]
    batches = list(data.batches(loaded.preprocess, 100))
    settings = RenderSettings(steps=args.steps, lr=args.lr)
    rows = []
    targets = args.targets.split(",")
    if args.targets == "auto":  # the two features.10 nodes whose renders reach the highest values
        layer = graph["features.10"]
        probe = render(loaded.module, graph, loaded.preprocess,
                       [parse_target(f"features.10:{c}", graph) for c in range(layer.out_channels)],
                       RenderSettings(steps=32, batch=layer.out_channels))
        targets = [f"features.10:{int(c)}" for c in probe.values.argsort(descending=True)[:2]]
    for text in targets:
        target = objective = parse_target(text, graph)
        full = render(loaded.module, graph, loaded.preprocess, [objective], settings)
        row = [("full model", full.images[0], float(full.values[0]))]
        plan = [(m, args.keep) for m in ("actgrad", "random", "worst")] + [("actgrad", k) for k in (0.1, 0.03, 0.01)]
        for method, keep in plan:
            try:
                circuit = extract_circuit(loaded.module, graph, batches, target, keep, method)
            except ViscnnError as exc:  # a random or worst pick may not connect the input to the node at all
                print(f"{text}: {method:8} keep {keep:<5g} {exc}")
                row.append((f"{method} {keep:g}: empty", torch.full_like(full.images[0], 0.5), float("nan")))
                continue
            through = render(circuit.module(loaded.module, graph), graph, loaded.preprocess, [objective], settings)
            in_full = float(measure(loaded.module, graph, objective, loaded.preprocess.normalize(through.images))[0])
            row.append((f"{method} {keep:g}", through.images[0], in_full))
            print(f"{text}: {method:8} keep {keep:<5g} {circuit.num_edges:>6} kernels; the render drives the full "
                  f"model's node to {in_full:7.2f} (its own render: {float(full.values[0]):.2f})", flush=True)
        rows.append((text, row))
    tile, label = 112, 28
    canvas = Image.new("RGB", (len(rows[0][1]) * tile, len(rows) * (tile + label)), "white")
    draw = ImageDraw.Draw(canvas)
    for r, (text, row) in enumerate(rows):
        for c, (caption, image, value) in enumerate(row):
            x, y = c * tile, r * (tile + label)
            grey = Image.fromarray((image[0].clamp(0, 1) * 255).round().byte().numpy()).resize((tile, tile), Image.NEAREST)
            canvas.paste(grey.convert("RGB"), (x, y + label))
            draw.text((x + 3, y + 2), f"{text if c == 0 else caption}", fill="black")
            draw.text((x + 3, y + 14), f"{caption if c == 0 else ''} {value:.2f}".strip(), fill="black")
    canvas.save(args.out)
    print(f"wrote {args.out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["quality", "speed", "sheet", "circuits"])
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--size", type=int)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--json", help="quality: write every objective's value, p99, max and ceiling here")
    parser.add_argument("--sharpen", type=float, default=RenderSettings().sharpen, help="quality, sheet: see RenderSettings")
    parser.add_argument("--nodes", type=int, default=16)
    parser.add_argument("--batch", type=int, help="sheet: objectives per pass (default: automatic); speed: one more way")
    parser.add_argument("--layer")
    parser.add_argument("--classes", type=int, default=8, help="sheet: how many class logits (up to 16)")
    parser.add_argument("--only", help="quality: only groups containing one of these words (comma-separated)")
    parser.add_argument("--fmnist-images", type=int, default=100, help="per class")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="sheet / circuits: the PNG to write")
    parser.add_argument("--targets", default="auto", help="circuits: fmnist node targets (auto: two of features.10)")
    parser.add_argument("--keep", type=float, default=0.3, help="circuits: kept fraction of row a")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--transforms", default="strong", help="sheet: standard, strong or none")
    parser.add_argument("--rounds", type=int, default=2, help="speed: interleaved rounds")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.what == "quality":
        args.steps = args.steps or 128
        args.size = args.size or (128 if args.model == "efficientnet-lite0" else None)
        quality(args)
    elif args.what == "speed":
        args.steps = args.steps or 16
        speed(args)
    elif args.what == "circuits":
        args.steps = args.steps or 128
        args.out = args.out or "docs/featurevis-fmnist-circuits.png"
        circuits(args)
    else:
        args.steps = args.steps or 256
        args.layer = args.layer or "_blocks.11._expand_conv"
        args.out = args.out or "docs/featurevis-lite0-sheet.png"
        sheet(args)


if __name__ == "__main__":
    main()
