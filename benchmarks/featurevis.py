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
import random
import statistics
import time
from collections.abc import Callable

import torch

from viscnn.data import imagenet_classes, open_image_sets
from viscnn.errors import ViscnnError
from viscnn.featurevis import RenderSettings, measure, parse_objective, render
from viscnn.featurevis.render import pass_size
from viscnn.graph import build_graph
from viscnn.models import load_model

SHEET_CLASSES = [1, 130, 323, 949, 951, 985, 980, 88, 963, 852, 291, 954, 417, 945, 207, 430]


def layer_kind(graph, layer) -> str:  # noqa: ANN001
    if layer.index == 1 or not graph.upstream(layer.name)[1:]:
        return "stem"
    if layer.groups > 1 and layer.in_per_group == 1:
        return "depthwise"
    for suffix in ("expand_conv", "project_conv", "conv_head"):
        if layer.name.endswith(suffix):
            return suffix.replace("_conv", "").replace("conv_", "")
    return f"conv{layer.kernel_size[0]}x{layer.kernel_size[1]}"


def natural_images(loaded, count: int) -> torch.Tensor:  # noqa: ANN001
    spec = "demo" if loaded.name == "efficientnet-lite0" else f"fashion-mnist:test:{count}"
    return torch.cat([x for x, _ in open_image_sets(spec)["overall"].batches(loaded.preprocess, 64)])


def sample_objectives(graph, count: int, seed: int) -> dict[str, list[str]]:  # noqa: ANN001
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


def linear_bound(loaded, graph, objective, size: int) -> float:  # noqa: ANN001
    """The most ANY 0-1 image of `size` px can give an objective that is affine in the pixels (a node of a
    conv that reads the input, BN folded): f(0.5) + 0.5 * sum |df/dx|, every pixel at 0 or 1 by its sign."""
    from viscnn.featurevis.objectives import forward

    x = torch.full((1, loaded.preprocess.channels, size, size), 0.5, requires_grad=True)
    value = forward(loaded.module, graph, [objective], loaded.preprocess.normalize(x))[0][0]
    (grad,) = torch.autograd.grad(value, x)
    return float(value.detach()) + 0.5 * float(grad.abs().sum())


def quality(args: argparse.Namespace) -> None:
    loaded = load_model(args.model)
    graph = build_graph(loaded.module, loaded.input_shape, loaded.name)
    natural = natural_images(loaded, args.fmnist_images)
    settings = RenderSettings(steps=args.steps, size=args.size, lr=args.lr)
    print(f"{loaded.name}: {args.nodes} objectives per group, {settings.steps} steps, "
          f"{settings.size or loaded.preprocess.size} px renders, lr {settings.lr}; natural: {natural.shape[0]} images")
    print(f"{'group':<18} {'median ratio':>12} {'min':>7} {'max':>8} {'p99<=0':>6} {'beat max':>8} {'s':>6}")
    all_ratios: dict[str, list[float]] = {}
    all_ranked: dict[str, list[float]] = {}
    for group, texts in sample_objectives(graph, args.nodes, args.seed).items():
        if args.only and not any(o in group for o in args.only.split(",")):
            continue
        objectives = [parse_objective(t, graph) for t in texts]
        start = time.perf_counter()
        result = render(loaded.module, graph, loaded.preprocess, objectives, settings)
        seconds = time.perf_counter() - start
        ratios, nonpositive, beat, of_bound, bound_ratios, ranked = [], 0, 0, [], [], []
        for objective, value in zip(objectives, result.values.tolist()):
            own = measure(loaded.module, graph, objective, natural)
            p99 = float(own.quantile(0.99))
            beat += value > float(own.max())
            if p99 > 0:
                ratios.append(value / p99)
                ranked.append(value / p99)
            else:  # no ratio; a render that beats every natural image ranks above any ratio, else below
                nonpositive += 1
                ranked.append(float("inf") if value > float(own.max()) and value > 0 else float("-inf"))
            if not graph.upstream(objective.layer)[1:] and objective.kind == "node":  # affine in the pixels
                bound = linear_bound(loaded, graph, objective, settings.size or loaded.preprocess.size)
                of_bound.append(value / bound)
                if p99 > 0:
                    bound_ratios.append(bound / p99)
        name = "edge neuron" if group == "edge neuron" else group.split()[0]
        all_ratios.setdefault(name, []).extend(ratios)
        all_ranked.setdefault(name, []).extend(ranked)
        med = statistics.median(ratios) if ratios else float("nan")
        print(f"{group:<18} {med:>12.1f} {min(ratios, default=float('nan')):>7.1f} {max(ratios, default=float('nan')):>8.1f} "
              f"{nonpositive:>6} {beat:>5}/{len(objectives):<2} {seconds:>6.0f}", flush=True)
        if of_bound:
            print(f"{'':<18} affine in the pixels: the render reaches a median {statistics.median(of_bound):.2f} of the "
                  f"most any image can give; that most is a median {statistics.median(bound_ratios):.1f}x the natural "
                  f"p99 (max {max(bound_ratios, default=float('nan')):.1f}x), the ceiling of this group's ratio", flush=True)
    for name, ratios in all_ratios.items():
        if ratios:
            print(f"median ratio, all {name} objectives: {statistics.median(ratios):.1f} ({len(ratios)} with p99 > 0); "
                  f"over all {len(all_ranked[name])}, a p99 <= 0 ranked above every ratio when the render beats every "
                  f"natural image (else below): {statistics.median(all_ranked[name]):.1f}")


def _lucent_render(module, layer: str, channel: int, steps: int, size: int) -> None:  # noqa: ANN001
    """One objective rendered by Lucent 0.1.8 itself (FFT + decorrelated colour, its standard transforms,
    Adam 0.05: the same recipe), the whole model run each step, as Lucent does."""
    from lucent.optvis import param, render as lucent

    lucent.render_vis(module, f"{layer.replace('.', '_')}:{channel}", param_f=lambda: param.image(size),
                      thresholds=(steps,), show_image=False, progress=False, fixed_image_size=size)


def speed(args: argparse.Namespace) -> None:
    """Per-channel CPU time of the same objectives and steps rendered: by Lucent one at a time (when it is
    importable), by viscnn one at a time (one render call each), and by viscnn batched (one call)."""
    import copy
    import importlib.util

    loaded = load_model(args.model)
    graph = build_graph(loaded.module, loaded.input_shape, loaded.name)
    layer = args.layer or ("_blocks.6._expand_conv" if loaded.name == "efficientnet-lite0" else "features.8")
    objectives = [parse_objective(f"{layer}:{c}", graph) for c in range(args.nodes)]
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
    objectives = [parse_objective(text, graph) for text, _ in rows]
    settings = RenderSettings(steps=args.steps, size=args.size, lr=args.lr, batch=args.batch, transforms=args.transforms,
                              seed=args.seed)
    start = time.perf_counter()
    result = render(loaded.module, graph, loaded.preprocess, objectives, settings, progress=True)
    print(f"rendered {len(objectives)} objectives, {settings.steps} steps, {settings.size or 224} px in "
          f"{time.perf_counter() - start:.0f} s")
    tile, label, columns = result.images.shape[-1], 16, 8
    canvas = Image.new("RGB", (columns * tile, (len(rows) // columns) * (tile + label)), "white")
    draw = ImageDraw.Draw(canvas)
    for k, ((text, caption), image) in enumerate(zip(rows, result.images)):
        x, y = (k % columns) * tile, (k // columns) * (tile + label)
        pixels = (image.permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy()
        canvas.paste(Image.fromarray(pixels), (x, y + label))
        draw.text((x + 3, y + 2), f"{caption[:26]} {result.values[k]:.1f}", fill="black")
    canvas.save(args.out)
    print(f"wrote {args.out}")
    for (text, caption), value in zip(rows, result.values.tolist()):
        print(f"  {caption:<30} {value:8.2f}")


def circuits(args: argparse.Namespace) -> None:
    """The paper's Fig. 9 on fmnist-convnet: a node rendered through its best / random / worst circuits
    at one kept fraction (row a), and through ever sparser best circuits (row b)."""
    from PIL import Image, ImageDraw

    from viscnn.circuits import extract_circuit
    from viscnn.scoring import parse_target

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
                       [parse_objective(f"features.10:{c}", graph) for c in range(layer.out_channels)],
                       RenderSettings(steps=32, batch=layer.out_channels))
        targets = [f"features.10:{int(c)}" for c in probe.values.argsort(descending=True)[:2]]
    for text in targets:
        target, objective = parse_target(text, graph), parse_objective(text, graph)
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
    parser.add_argument("--nodes", type=int, default=16)
    parser.add_argument("--batch", type=int, help="sheet: objectives per pass (default: automatic)")
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
