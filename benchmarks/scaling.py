"""Scaling: 1 vs 2 processes for score, examples, prepare and evaluate; `viscnn plan` against the real prepare;
and a projection of a full ImageNet-val prepare on 1 and 8 GPUs from per-image costs measured here.

    .venv/bin/python benchmarks/scaling.py                  # the lead's run, on a quiet machine (an hour or more)
    .venv/bin/python benchmarks/scaling.py --tiny           # proves the script works: few images, few steps
    .venv/bin/python benchmarks/scaling.py --json out.json  # also every figure as JSON

1. Measured. Each command runs as a user runs it, in fresh processes: `python -m viscnn ...` (one process, all
   of torch's threads) and `torchrun --standalone --nproc_per_node=2 -m viscnn ...` (two processes, one thread
   each, as torchrun sets), wall time from launch to exit, a fresh store each time; the runs take turns.
2. Measured. `viscnn plan --nproc 2` for each prepare of part 1: its estimates against the real wall times.
3. A PROJECTION, not a measurement: a full ImageNet-val prepare (50,000 images, 1,000 classes: class-wise
   scores by loss) of tv:resnet50 (random weights: the cost is the same) and efficientnet-lite0 on 1 and 8
   GPUs. `viscnn plan`'s per-image CPU costs of each step, measured here on the demo photos, are split into
   reading the image (measured; stays on the CPU, one core per process) and the model's work, which a GPU is
   assumed to do `--gpu-speedup` times faster than this CPU (an assumption, stated with the result: replace
   it by a measured ratio when a GPU is at hand, e.g. `viscnn plan --device cuda` there). The projections
   and the layout stay on the CPU as measured; hashing the images stays on rank 0.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

IMAGENET_VAL = 50_000
IMAGENET_CLASSES = 1_000


def configs(tiny: bool, folder: Path) -> dict[str, dict[str, list[str]]]:
    """Per model, the arguments of each command (the output/store flags are added per run)."""
    if tiny:
        import torch

        images = folder / "lite0-tiny.pt"  # random pixels: the cost of a photo, not its content
        generator = torch.Generator().manual_seed(0)
        torch.save({"images": torch.rand(8, 3, 224, 224, generator=generator),
                    "labels": torch.randint(0, 1000, (8,), generator=generator)}, images)
        fmnist, lite0 = "fashion-mnist:test:2", str(images)
    else:
        fmnist, lite0 = "fashion-mnist:test:100", "demo"
    small = ["--renders", "2", "--render-steps", "4", "--examples", "3", "--projection", "mds"] if tiny else []
    return {
        "fmnist-convnet": {
            "score": ["--model", "fmnist-convnet", "--images", fmnist, "--no-cache", "--quiet"],
            "examples": ["--model", "fmnist-convnet", "--images", fmnist, "--no-cache", "--quiet", "--no-png"],
            "prepare": ["--model", "fmnist-convnet", "--images", fmnist, "--quiet", *small],
            "evaluate": ["--model", "fmnist-convnet", "--images", fmnist, "--targets", "features.6:1,features.10:3",
                         "--methods", "actgrad,random" if tiny else "actgrad,snip,random,force",
                         "--fractions", "0.1" if tiny else "0.01,0.05,0.2", "--quiet"],
        },
        "efficientnet-lite0": {
            "score": ["--model", "efficientnet-lite0", "--images", lite0, "--no-cache", "--quiet"],
            "examples": ["--model", "efficientnet-lite0", "--images", lite0, "--no-cache", "--quiet", "--no-png"],
            "prepare": ["--model", "efficientnet-lite0", "--images", lite0, "--quiet",
                        *(small or ["--renders", "8", "--render-steps", "128"])],
            "evaluate": ["--model", "efficientnet-lite0", "--images", lite0, "--targets",
                         "_blocks.6._project_conv:3" if tiny else "_blocks.6._project_conv:3,_blocks.10._project_conv:7",
                         "--methods", "actgrad,random" if tiny else "actgrad,snip,random", "--fractions",
                         "0.1" if tiny else "0.01,0.05,0.2", "--quiet"],
        },
    }


def outputs(command: str, folder: Path) -> list[str]:
    if command == "prepare":
        return ["--store", str(folder / "store")]
    if command in ("examples", "evaluate"):
        return ["--out", str(folder / "out")]
    return []


def run_once(command: str, args: list[str], processes: int, folder: Path) -> float:
    """Wall seconds of one run, from launch to exit (a fault stops the benchmark with the command's stderr)."""
    folder.mkdir(parents=True)
    launcher = [sys.executable, "-m", "viscnn"] if processes == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", "-m", "viscnn"]
    start = time.perf_counter()
    done = subprocess.run([*launcher, command, *args, *outputs(command, folder)], capture_output=True, text=True,
                          cwd=folder)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{command} with {processes} process(es) failed:\n{done.stderr[-3000:]}")
    return seconds


def measure(tiny: bool, models: list[str], commands: list[str], repeats: int, folder: Path) -> list[dict]:
    rows = []
    table = configs(tiny, folder)
    for model in models:
        for command in commands:
            args = table[model][command]
            times: dict[int, list[float]] = {1: [], 2: []}
            for repeat in range(repeats):
                for processes in (1, 2):  # taking turns: a slow spell of the machine hits both
                    times[processes].append(run_once(command, args, processes, folder / f"{model}-{command}-{processes}-{repeat}"))
            one, two = min(times[1]), min(times[2])
            rows.append({"model": model, "command": command, "args": args, "one": one, "two": two,
                         "speedup": one / two})
            print(f"{model:20} {command:9} 1 process {one:8.1f} s   2 processes {two:8.1f} s   speed-up {one / two:.2f}",
                  flush=True)
    return rows


def plan_check(rows: list[dict], folder: Path) -> list[dict]:
    """`viscnn plan --nproc 2` for each measured prepare, against its wall times."""
    checks = []
    for row in rows:
        if row["command"] != "prepare":
            continue
        path = folder / f"plan-{row['model']}.json"
        done = subprocess.run([sys.executable, "-m", "viscnn", "plan", *[a for a in row["args"] if a != "--quiet"],
                               "--nproc", "2", "--json", str(path)], capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"plan for {row['model']} failed:\n{done.stderr[-3000:]}")
        plan = json.loads(path.read_text())
        check = {"model": row["model"], "plan_one": plan["total"], "real_one": row["one"], "plan_two": plan["total_n"],
                 "real_two": row["two"], "plan_seconds": plan["seconds"]}
        checks.append(check)
        print(f"plan {row['model']:20} 1 process: estimated {plan['total']:.1f} s, real {row['one']:.1f} s "
              f"({plan['total'] / row['one'] - 1:+.0%}); 2 processes: estimated {plan['total_n']:.1f} s, real "
              f"{row['two']:.1f} s ({plan['total_n'] / row['two'] - 1:+.0%})", flush=True)
    return checks


def project(model: str, speedup: float, tiny: bool) -> dict:
    """A full ImageNet-val prepare of `model` on a CPU process (this one's costs), 1 GPU and 8 GPUs: a projection."""
    from viscnn.data import open_image_sets
    from viscnn.distributed import deal_units
    from viscnn.graph import build_graph
    from viscnn.models import load_model
    from viscnn.pipeline.plan import Planner
    from viscnn.pipeline.prepare import Settings

    start = time.perf_counter()
    loaded = load_model(model)
    graph = build_graph(loaded.module, loaded.input_shape, loaded.name)
    load_seconds = time.perf_counter() - start  # without the interpreter's start and torch's import
    images = open_image_sets("demo")["overall"]
    batch = 4 if tiny else 32
    settings = Settings("umap", "loss", batch, 0, 9, 2 if tiny else 16, 4 if tiny else 256, "cpu")
    planner = Planner(loaded, graph, images, settings, processes=1, sample_batches=1, spec="demo",
                      classes=IMAGENET_CLASSES)
    plan = planner.plan(load_seconds=load_seconds)
    steps = {e.step.split(" (")[0]: e for e in plan.estimates}
    decode = plan.decode
    result: dict = {"model": model, "gpu_speedup": speedup, "decode_ms": decode * 1e3, "steps": {}}
    for gpus in (0, 1, 8):  # 0: this CPU, one process
        rows = {}
        for name, e in steps.items():
            if e.split == "images":  # per image: reading stays on the CPU, the model's work goes to the GPU
                per_image = e.per_unit if not gpus else decode + max(0.0, e.per_unit - decode) / speedup
                rows[name] = per_image * IMAGENET_VAL / max(1, gpus)
            elif name == "hash images":
                rows[name] = e.per_unit * IMAGENET_VAL  # rank 0 reads every image
            elif name == "renders":
                rows[name] = e.seconds / (speedup * gpus) if gpus else e.seconds
            elif name == "projections":
                costs = [e.per_unit] * e.units  # the mean layer: dealt as evenly as layers allow
                rows[name] = max(sum(costs[i] for i in units) for units in deal_units(costs, max(1, gpus)))
            else:  # start and load, layout: every process, on the CPU
                rows[name] = e.seconds
        result["steps"]["cpu" if not gpus else f"{gpus} GPU"] = rows
    return result


def print_projection(projections: list[dict]) -> None:
    print("\nPROJECTION (not a measurement): full ImageNet-val prepare (50,000 images, 1,000 classes), hours")
    for p in projections:
        columns = list(p["steps"])  # cpu: one process on this machine, all its threads
        print(f"\n{p['model']}: GPU = {p['gpu_speedup']:g}x this CPU for the model's work (assumed); reading an image "
              f"{p['decode_ms']:.1f} ms on the CPU (measured)")
        print(f"| step | {' | '.join(columns)} |\n|---|{'---:|' * len(columns)}")
        for name in p["steps"]["cpu"]:
            print(f"| {name} | " + " | ".join(f"{p['steps'][c][name] / 3600:.2f}" for c in columns) + " |")
        print("| total | " + " | ".join(f"{sum(p['steps'][c].values()) / 3600:.2f}" for c in columns) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="few images and steps: proves the script runs")
    parser.add_argument("--models", default="fmnist-convnet,efficientnet-lite0")
    parser.add_argument("--commands", default="score,examples,prepare,evaluate")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each (the fastest counts)")
    parser.add_argument("--project", default="tv:resnet50,efficientnet-lite0", help="models to project ('' for none)")
    parser.add_argument("--gpu-speedup", type=float, default=50.0,
                        help="assumed speed of one GPU over this CPU (all its threads) for the model's work (default 50)")
    parser.add_argument("--json", metavar="FILE", help="write every figure here")
    args = parser.parse_args()
    os.environ.setdefault("VISCNN_STORE", tempfile.mkdtemp(prefix="viscnn-scaling-store-"))  # never the user's cache
    with tempfile.TemporaryDirectory(prefix="viscnn-scaling-") as tmp:
        folder = Path(tmp)
        rows = measure(args.tiny, [m for m in args.models.split(",") if m], [c for c in args.commands.split(",") if c],
                       args.repeats, folder)
        checks = plan_check(rows, folder)
    projections = [project(model, args.gpu_speedup, args.tiny) for model in args.project.split(",") if model]
    if projections:
        print_projection(projections)
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": rows, "plan": checks, "projection": projections,
                                               "cores": len(os.sched_getaffinity(0)), "tiny": args.tiny}, indent=1))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
