"""Layout benchmark: class-wise scoring cost, `prepare` time and layout quality, side by side in one run.

    .venv/bin/python benchmarks/layout.py                 # fmnist-convnet (Fashion-MNIST) and efficientnet-lite0 (demo)
    .venv/bin/python benchmarks/layout.py --quick         # fmnist-convnet only, fewer images

Prints markdown tables:
1. class-wise scores for efficientnet-lite0 on the demo photos (33 labelled classes, 39 images): one
   backward per batch for all classes (loss mode), VJPs of the class logits on one shared forward (logit mode),
   and one ordinary scoring pass per class logit (what the batching replaces), on the same images;
2. `prepare` (fresh store: overall scores with edges, class-wise scores, UMAP per layer, smoothing,
   rotation, quality, dataset examples) per model;
3. layout quality per projection: importance-weighted edge length vs random placement of the same
   nodes, and trustworthiness of class neighbourhoods (projection, smoothed layout, random placement).
Torch runs on one thread (the machine is shared).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from viscnn.data import open_image_sets
from viscnn.graph import build_graph
from viscnn.layout import quality
from viscnn.layout.build import assemble
from viscnn.layout.classwise import classwise_scores
from viscnn.layout.figure import plot_layout
from viscnn.layout.smoothing import smooth_to_disc
from viscnn.models import load_model
from viscnn.pipeline.prepare import Preparer, Settings, measure_quality
from viscnn.scoring import parse_target, score_batches
from viscnn.store import Store


def show(rows: list[str]) -> None:
    print("\n".join(rows), flush=True)


def timed(function):
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def classwise_table(loops: int) -> list[str]:
    loaded = load_model("efficientnet-lite0")
    graph = build_graph(loaded.module, loaded.input_shape, loaded.name)
    images = open_image_sets("demo")["overall"]
    batches = list(images.batches(loaded.preprocess, 16))
    classes = sorted({label for label in images.labels if label >= 0})
    n = len(images)
    rows = ["| what (efficientnet-lite0, 39 demo photos) | classes | seconds | per class |", "|---|---|---|---|"]
    score_batches(loaded.module, graph, batches[:1], parse_target("loss", graph), ["taylor"], edges=False)  # warm-up
    _, plain = timed(lambda: score_batches(loaded.module, graph, batches, parse_target("loss", graph), ["taylor"], edges=False))
    rows.append(f"| one ordinary node-scoring pass (loss) | 1 | {plain:.1f} | - |")
    show(rows)
    loss, t_loss = timed(lambda: classwise_scores(loaded.module, graph, batches, mode="loss"))
    rows.append(f"| loss mode: every class's own images, one backward per batch | {len(loss.classes)} | {t_loss:.1f} | "
                f"{t_loss / len(loss.classes):.2f} |")
    show(rows[-1:])
    logit, t_logit = timed(lambda: classwise_scores(loaded.module, graph, batches, mode="logit", classes=classes))
    rows.append(f"| logit mode: one shared forward per batch, then VJPs by chunks of classes, all {n} images per class | {len(classes)} | {t_logit:.1f} | "
                f"{t_logit / len(classes):.2f} |")
    show(rows[-1:])
    sample = classes[:loops]

    def one_by_one():
        return [score_batches(loaded.module, graph, batches, parse_target(f"logit:{c}", graph), ["taylor"], edges=False)
                for c in sample]

    refs, t_loop = timed(one_by_one)
    rows.append(f"| reference: one scoring pass per class logit | {len(sample)} | {t_loop:.1f} | {t_loop / len(sample):.2f} |")
    show(rows[-1:])
    worst = max(float((logit.nodes[name][:, k] - ref["taylor"].nodes[name]).abs().max() /
                      ref["taylor"].nodes[name].abs().max().clamp(min=1e-12))
                for k, ref in enumerate(refs) for name in ref["taylor"].nodes)
    rows.append("")
    rows.append(f"logit mode vs one pass per class: {(t_loop / len(sample)) / (t_logit / len(classes)):.2f}x "
                f"faster per class (max relative difference {worst:.1e}); loss mode vs logit mode for the same "
                f"{len(classes)} classes: {t_logit / t_loss:.0f}x. Extrapolated to 1000 classes: logit mode "
                f"{1000 * t_logit / len(classes) / 60:.0f} min on these {n} images; loss mode costs one pass over the "
                f"images whatever the class count ({t_loss / n:.2f} s per image here, so ~{t_loss / n * 1000 / 60:.0f} min "
                f"for 1000 classes x 1 image, {t_loss / n * 10000 / 60:.0f} min for 10 images per class).")
    return rows


def prepare_and_quality(name: str, spec: str, projections: list[str], root: Path, figures: Path | None) -> tuple[str, list[str]]:
    loaded = load_model(name)
    graph = build_graph(loaded.module, loaded.input_shape, loaded.name)
    image_sets = open_image_sets(spec)
    store = Store(root / name)
    prepare_row = ""
    rows = []
    for projection in projections:
        preparer = Preparer(loaded, graph, image_sets, store, Settings(projection=projection, examples=9 if projection == projections[0] else 0),
                            spec, echo=lambda text: None)
        _, seconds = timed(preparer.run)
        if projection == projections[0]:
            prepare_row = (f"| {name} | {spec} ({len(image_sets['overall'])} images) | {len(graph.conv_layers)} layers, "
                           f"{graph.num_nodes:,} nodes | {preparer.mode} | {seconds:.0f} |")
        layout = preparer.layout()
        weights = preparer.edge_weights()
        if projection in ("grid", "weights"):  # class neighbourhoods, as for the class-wise projections
            projected = preparer.projections() if projection == "weights" else None
            layout.quality = measure_quality(layout, graph, weights, vectors=preparer.class_scores().vectors,
                                             projections=projected)
        edge = layout.quality["edge_length"]
        trust = layout.quality["trustworthiness"]

        def fmt(value):
            return f"{value:.3f}" if value is not None else "-"

        show([f"{name} {projection}: prepare {seconds:.0f} s"])
        rows.append(f"| {name} | {projection} | {edge['layout']:.3f} | {edge['random']:.3f} | {edge['ratio']:.2f} | "
                    f"{fmt(trust.get('projection'))} | {fmt(trust['layout'])} | {fmt(trust['random'])} |")
        unrotated = assemble(graph, preparer.projections(), smooth=projection != "grid", rotate=False)
        rows[-1] += f" {quality.edge_length(unrotated, graph, weights)['ratio']:.2f} |"
        if figures is not None and projection in ("umap", "mds"):
            scores = preparer.class_scores()
            colours = {n: (v / v.mean(0).clamp(min=1e-12)).argmax(1).numpy() for n, v in scores.nodes.items()}
            sizes = {n: v.numpy() for n, v in preparer.overall().nodes.items()}
            plot_layout(layout, graph, str(figures / f"layout-{name}-{projection}.png"), colours=colours, sizes=sizes,
                        edge_weights=weights, top_edges=150, title=f"{name}: {projection} layout (colour: class served most)")
            quality.plot(layout.quality, str(figures / f"layout-quality-{name}-{projection}.png"), f"{name} ({projection})")
    return prepare_row, rows


def smoothing_row() -> str:
    rng = np.random.default_rng(0)
    points = rng.normal(size=(1280, 2)) * [1, 3]
    _, seconds = timed(lambda: smooth_to_disc(points))
    return f"smoothing 1280 points (Lite0's widest layer) to a uniform disc: {seconds:.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fmnist-convnet only, 20 images per class")
    parser.add_argument("--loops", type=int, default=6, help="classes scored one pass each, for the reference row")
    parser.add_argument("--figures", metavar="DIR", help="write layout pictures and quality figures here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    figures = Path(args.figures) if args.figures else None
    if figures:
        figures.mkdir(parents=True, exist_ok=True)
    models = [("fmnist-convnet", "fashion-mnist:test:20" if args.quick else "fashion-mnist:test:100")]
    if not args.quick:
        models.append(("efficientnet-lite0", "demo"))
    print(f"torch threads: {torch.get_num_threads()}\n")
    classwise = classwise_table(args.loops) if not args.quick else []
    prepare_rows = ["| model | images | graph | class-wise mode | prepare, fresh store (s) |", "|---|---|---|---|---|"]
    quality_rows = [("| model | projection | weighted edge length | random placement | ratio | trust. projection | "
                     "trust. layout | trust. random | ratio unrotated |"), "|---|---|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as root:
        for name, spec in models:
            row, rows = prepare_and_quality(name, spec, ["umap", "mds", "weights", "grid"], Path(root), figures)
            prepare_rows.append(row)
            quality_rows.extend(rows)
    print("\n" + "\n".join(classwise) + "\n")
    print("\n".join(prepare_rows) + "\n")
    print("\n".join(quality_rows) + "\n")
    print(smoothing_row())


if __name__ == "__main__":
    main()
