"""Why `learned` falls short on efficientnet-lite0: does its circuit fit the photos it was trained on?

    .venv/bin/python -m benchmarks.learned_fit [--keep 0.05] [--budgets 60,240] [--threads 2] [--only 1,2]

(from the repository root).

The same six targets and split of the demo photos as benchmarks/circuits.py (seed 0: 27 photos to train on,
12 held out). For each target and each time budget of `learned` (seconds of steps per circuit; the steps
scale with it), the Pearson r of the circuit with the full model on the training photos (as they are, not
augmented) and on the held-out photos. A circuit that reproduces its training photos but not the held-out
ones is limited by the data (27 photos); one that reproduces neither, by the search or by the size.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from benchmarks.circuits import LITE0_LAYERS, batches_of, load_all, random_targets

from viscnn.circuits import extract_circuit
from viscnn.circuits.augment import augmentation_for
from viscnn.circuits.methods import StepReport, get_method
from viscnn.circuits.methods import learned as learned_module
from viscnn.circuits.run import pearson, target_output
from viscnn.graph import build_graph
from viscnn.models import load_model


def values(model, graph, batches, target, masks=None) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([target_output(model, graph, x, y, target, masks=masks) for x, y in batches])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", type=float, default=0.05)
    parser.add_argument("--budgets", default="60,240", help="seconds of steps per circuit, each a run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", default="", help="indices of the targets to run (e.g. 1,2), default all six")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    loaded = load_model("efficientnet-lite0")
    graph = build_graph(loaded.module, loaded.input_shape, loaded.name)
    targets = random_targets(graph, LITE0_LAYERS, 1, 0)
    if args.only:
        targets = [targets[int(k)] for k in args.only.split(",")]
    x, y = load_all("demo", loaded.preprocess, 16)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    held, train = order[:12], order[12:]
    train_batches, held_batches = batches_of(x[train], y[train], 16), batches_of(x[held], y[held], 16)
    learned_module.BATCH = 8
    p = loaded.preprocess
    augment = augmentation_for(p.mean, p.std, p.size, len(train))
    print(f"keep {args.keep}; {len(train)} training photos, {len(held)} held out; threads {torch.get_num_threads()}\n")
    print("| target | budget | steps run | r on training photos | r held out | seconds |")
    print("|---|---:|---:|---:|---:|---:|")
    summary: dict[int, list[tuple[float, float]]] = {}
    for target in targets:
        full_train = values(loaded.module, graph, train_batches, target)
        full_held = values(loaded.module, graph, held_batches, target)
        for budget in (int(b) for b in args.budgets.split(",")):
            steps = learned_module.STEPS * budget // 60
            begin = time.perf_counter()
            reports: list[StepReport] = []
            scores = get_method("learned")(loaded.module, graph, train_batches, target, args.keep, seed=0, steps=steps,
                                           seconds=budget, augment=augment, progress=reports.append)
            circuit = extract_circuit(loaded.module, graph, train_batches, target, args.keep, "learned", scores=scores)
            masks = {k: v.float() for k, v in circuit.masks.items()}
            fit = pearson(full_train, values(loaded.module, graph, train_batches, target, masks))
            out = pearson(full_held, values(loaded.module, graph, held_batches, target, masks))
            summary.setdefault(budget, []).append((fit, out))
            seconds = time.perf_counter() - begin
            print(f"| {target} | {budget} s | {reports[-1].step} of {steps} | {fit:.3f} | {out:.3f} | {seconds:.1f} |",
                  flush=True)
    for budget, rows in summary.items():
        print(f"\nbudget {budget} s: median r on training photos {statistics.median(r[0] for r in rows):.3f}, "
              f"held out {statistics.median(r[1] for r in rows):.3f}")


if __name__ == "__main__":
    main()
