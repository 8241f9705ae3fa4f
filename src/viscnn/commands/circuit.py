"""`viscnn circuit`: extract the circuit a target cannot do without, and write it as JSON."""
from __future__ import annotations

import argparse
import time
from typing import Any

from viscnn.commands.common import add_images_arguments, add_model_arguments, load_with_graph, open_set, seed_value


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("circuit", help="extract a feature-preserving circuit for a target")
    add_model_arguments(parser)
    add_images_arguments(parser)
    parser.add_argument("--input", default="overall", help="which set of --images to use (a set name)")
    parser.add_argument("--target", required=True, help="LAYER:C, LAYER:C:neuron, loss, logit:K, class:NAME ...")
    parser.add_argument("--keep", type=float, default=0.05, help="fraction of the target's upstream kernels the circuit keeps (all connected), in (0, 1]")
    parser.add_argument("--method", default="actgrad", help="actgrad, actgrad_signed, snip, force, magnitude, random, worst, ablation, learned")
    parser.add_argument("--rule", default="top", choices=["top", "cumulative", "hierarchical"],
                        help="the order kernels are taken in: top (per-layer-normalised scores), cumulative (by the "
                             "share of its layer's total before a kernel), hierarchical (nodes by share, 4 best "
                             "kernels each); the size is --keep for every rule")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=seed_value, default=0)
    parser.add_argument("--out", required=True, metavar="FILE", help="circuit JSON (see docs/circuit-format.md)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar (methods that report steps: learned)")
    parser.add_argument("--extract", action="store_true",
                        help="also build the physically smaller network (filters the circuit does not need removed) "
                             "and check its target against the masked circuit's")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from viscnn.circuits import extract_circuit, get_method, pearson, target_output
    from viscnn.scoring.targets import check_scorable, parse_target

    get_method(args.method)  # a bad name fails before any work
    loaded, graph = load_with_graph(args)
    target = check_scorable(parse_target(args.target, graph, loaded.class_names))
    batches = [(x.to(args.device), y) for x, y in open_set(args, loaded, args.input).batches(loaded.preprocess, args.batch_size)]
    start = time.perf_counter()
    scores = _method_scores(args, loaded, graph, batches, target)
    circuit = extract_circuit(loaded.module, graph, batches, target, args.keep, args.method, rule=args.rule,
                              seed=args.seed, device=args.device, model_name=loaded.name,
                              fingerprint=loaded.fingerprint(), scores=scores)
    seconds = time.perf_counter() - start
    full = [target_output(loaded.module, graph, x, y, target) for x, y in batches]
    masks = {k: v.float().to(args.device) for k, v in circuit.masks.items()}
    kept = [target_output(loaded.module, graph, x, y, target, masks=masks) for x, y in batches]
    import torch

    r = pearson(torch.cat(full), torch.cat(kept))
    circuit.save(args.out, graph, loaded.module)
    print(f"{loaded.name}: circuit for {target} by {args.method} ({args.rule}): {circuit.num_edges:,} of "
          f"{circuit.upstream_edges:,} upstream kernels ({circuit.kept_fraction:.1%}), {len(circuit.nodes()):,} nodes; "
          f"Pearson r with the full model on these images {r:.3f}; {seconds:.1f} s; wrote {args.out}")
    if args.extract:
        extracted = circuit.extract(loaded.module, graph)
        smaller = [target_output(extracted.module, extracted.graph, x, y, extracted.target) for x, y in batches]
        difference = max(float((a - b).detach().abs().max()) for a, b in zip(kept, smaller))  # extract() checked it
        print(f"extracted network: {extracted.removed_filters:,} of {sum(extracted.original_channels.values()):,} filters "
              f"removed, {extracted.parameters_before:,} -> {extracted.parameters_after:,} parameters; target "
              f"{extracted.target} (was {target}); largest difference from the masked circuit {difference:.2e}")
    return 0


def _method_scores(args: argparse.Namespace, loaded: Any, graph: Any, batches: list, target: Any) -> Any:
    """The scores of a method that takes a progress bar and augmentation (learned), run with them; else None
    (extract_circuit runs the method)."""
    from tqdm import tqdm

    from viscnn.circuits.augment import augmentation_for
    from viscnn.circuits.methods import StepReport, get_method

    method = get_method(args.method)
    if "progress" not in method.options():
        return None
    preprocess = loaded.preprocess
    options: dict[str, Any] = {"augment": augmentation_for(preprocess.mean, preprocess.std, preprocess.size,
                                                         sum(len(x) for x, _ in batches))}
    bar = tqdm(desc=args.method, unit="step", disable=args.quiet, bar_format="{desc}: {n}/{total} steps|{bar}| {postfix}")

    def progress(report: StepReport) -> None:
        bar.total = report.steps
        bar.set_postfix_str(f"{report.remaining:.0f} s left, loss {report.loss:.3f}", refresh=False)
        bar.update(report.step - bar.n)

    with bar:
        return method(loaded.module, graph, batches, target, args.keep, seed=args.seed, device=args.device,
                      progress=progress, **{k: v for k, v in options.items() if k in method.options()})
