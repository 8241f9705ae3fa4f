"""Planted circuits: does each method find the circuit a network is built around? (viscnn.circuits.planted)

    .venv/bin/python benchmarks/planted.py [--cases redundant,gating,...] [--methods actgrad,learned] [--seeds 3]

For every case the planted sets are checked first by ablation on fresh images (they reproduce the target
with r >= 0.999, every kernel of them is needed, and -- exhaustively over every circuit of at most that
many nonzero kernels -- no other circuit does). Then every method extracts a circuit of exactly the
planted size on --images training images, once per seed, and the benchmark prints one row per case x
method: the recall of the planted kernels (the best-matching planted set), the Pearson r of the circuit
with the full model on --held-out fresh images, and the seconds per circuit. An empty circuit (nothing
connects input and target) counts as recall 0, r 0. The summary line per method: mean recall, the share
of circuits with recall >= 0.95 and r >= 0.99 (the issue's bar for `learned`), and the worst r.
Writes --out (JSON) with every circuit.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from viscnn.circuits import extract_circuit
from viscnn.circuits.methods import all_methods
from viscnn.circuits.methods import learned as learned_module
from viscnn.circuits.planted import CASES, build, verify
from viscnn.errors import ViscnnError

METHODS = ["actgrad", "actgrad_signed", "snip", "force", "magnitude", "random", "worst", "ablation", "learned"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--seeds", type=int, default=3, help="circuits per case and method (seeds 0..N-1)")
    parser.add_argument("--images", type=int, default=64, help="training images per circuit")
    parser.add_argument("--held-out", type=int, default=256, help="fresh images to measure r on")
    parser.add_argument("--learned-steps", type=int, default=learned_module.STEPS)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="/tmp/viscnn-planted-benchmark.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    methods = args.methods.split(",")
    unknown = sorted(set(methods) - set(all_methods()))
    if unknown:
        parser.error(f"unknown methods: {', '.join(unknown)}")
    learned_module.STEPS = args.learned_steps
    rows: list[dict] = []
    checks: dict[str, dict] = {}
    start = time.perf_counter()
    print(f"torch threads {torch.get_num_threads()}; {args.seeds} seed(s); {args.images} training images; "
          f"r on {args.held_out} fresh images; learned: {args.learned_steps} steps\n")
    print("| case | planted | candidates | ground truth | method | recall | median r | worst r | s / circuit |")
    print("|---|---:|---:|---|---|---:|---:|---:|---:|")
    for name in args.cases.split(","):
        case = build(name)
        check = verify(case)
        candidates = int(sum(int(m.sum()) for m in case.candidates().values()))
        truth = (f"{'sound' if check.sound else 'UNSOUND'}: r {check.r_planted:.4f}, minus one <= {check.r_without:.3f}, "
                 + (f"{len(check.smallest)} smallest of {check.circuits} circuits" if check.exhaustive else "not exhaustive"))
        checks[name] = {"sound": check.sound, "r_planted": check.r_planted, "r_without": check.r_without,
                        "circuits": check.circuits, "exhaustive": check.exhaustive,
                        "smallest_are_planted": set(check.smallest) == set(case.planted), "hard": case.hard}
        held = case.images(args.held_out, 10_000)
        for method in methods:
            found = []
            for seed in range(args.seeds):
                x = case.images(args.images, seed)
                begin = time.perf_counter()
                try:
                    circuit = extract_circuit(case.model, case.graph, [(x, None)], case.target, case.keep(), method, seed=seed)
                    row = {"recall": case.recall(circuit.masks), "r": case.faithfulness(circuit.masks, held),
                           "edges": circuit.num_edges, "empty": False}
                except ViscnnError as exc:
                    if "empty circuit" not in str(exc):
                        raise
                    row = {"recall": 0.0, "r": 0.0, "edges": 0, "empty": True}
                row.update(case=name, method=method, seed=seed, seconds=time.perf_counter() - begin)
                found.append(row)
            rows += found
            empty = sum(r["empty"] for r in found)
            print(f"| {name} | {case.size} | {candidates} | {truth if method == methods[0] else ''} | {method} | "
                  f"{statistics.mean(r['recall'] for r in found):.2f}{f' ({empty} empty)' if empty else ''} | "
                  f"{statistics.median(r['r'] for r in found):.3f} | {min(r['r'] for r in found):.3f} | "
                  f"{statistics.mean(r['seconds'] for r in found):.2f} |", flush=True)
    print("\n| method | mean recall | recall >= 0.95 and r >= 0.99 | worst r |")
    print("|---|---:|---:|---:|")
    for method in methods:
        mine = [r for r in rows if r["method"] == method]
        good = sum(r["recall"] >= 0.95 and r["r"] >= 0.99 for r in mine)
        print(f"| {method} | {statistics.mean(r['recall'] for r in mine):.3f} | {good}/{len(mine)} | "
              f"{min(r['r'] for r in mine):.3f} |")
    Path(args.out).write_text(json.dumps({"checks": checks, "circuits": rows, "seeds": args.seeds, "images": args.images,
                                          "held_out": args.held_out, "learned_steps": args.learned_steps}, indent=1))
    print(f"\n(wrote {args.out}; {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
