"""How well Taylor scores rank nodes and edges like the ground truth (remove it, rerun, measure).

    .venv/bin/python benchmarks/taylor_vs_ablation.py [--models fmnist-convnet,efficientnet-lite0]

For each model: a node target in a middle layer and the loss, over real images (Fashion-MNIST test
images; the demo photos for ImageNet models). Nodes: every node of two upstream layers (sampled to
at most 64 each); edges: 64 random edges into the target layer. Prints Spearman's rho for the signed
Taylor score (attribution patching) and for the paper's mean |a * grad| against |ablation|.
"""
from __future__ import annotations

import argparse
import random
import time

import torch

from viscnn.data import open_image_sets
from viscnn.graph import Node, build_graph
from viscnn.models import load_model
from viscnn.scoring import parse_target, score_batches
from viscnn.scoring.ablation import ablation_scores, spearman

TARGETS = {
    "fmnist-convnet": ["features.8:5", "loss"],
    "fmnist-convnet-sparse": ["features.8:5", "loss"],
    "efficientnet-lite0": ["_blocks.8._project_conv:17", "loss"],
    "resnet18": ["layer2.1.conv2:5", "loss"],
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="fmnist-convnet,efficientnet-lite0")
    parser.add_argument("--images", type=int, default=16)
    args = parser.parse_args()
    rng = random.Random(0)
    print("| model | target | items | Spearman signed Taylor vs ablation | Spearman |taylor| vs |ablation| | ablation time (s) |")
    print("|---|---|---|---:|---:|---:|")
    for name in args.models.split(","):
        loaded = load_model(name)
        graph = build_graph(loaded.module, loaded.input_shape, name)
        spec = "fashion-mnist:test:2" if loaded.preprocess.channels == 1 else "demo"
        x, y = next(open_image_sets(spec)["overall"].batches(loaded.preprocess, args.images))
        for target_text in TARGETS.get(name, ["loss"]):
            target = parse_target(target_text, graph)
            scores = score_batches(loaded.module, graph, [(x, y)], target, ("taylor", "taylor_signed"))
            layers = [layer.name for layer in graph.conv_layers]
            if target.inside:
                layers = [n for n in graph.upstream(target.layer) if n in graph and graph[n].kind == "conv"] + [target.layer]
            upstream = layers[-3:-1] if len(layers) >= 3 else layers[:-1]
            nodes = [Node(name, c) for name in upstream for c in rng.sample(range(graph[name].out_channels), min(64, graph[name].out_channels))]
            last = graph[layers[-1]]
            edges = [graph.edge_at(last.name, rng.randrange(last.out_channels) if not target.inside else target.channel,
                                   rng.randrange(last.in_per_group)) for _ in range(64)]
            for kind, items in (("nodes", nodes), ("edges", list(dict.fromkeys(edges)))):
                start = time.perf_counter()
                truth = ablation_scores(loaded.module, graph, [(x, y)], target, items)
                seconds = time.perf_counter() - start
                get = (lambda s, i: s.node(i)) if kind == "nodes" else (lambda s, i: s.edge(i))
                signed = torch.tensor([get(scores["taylor_signed"], i) for i in items])
                absolute = torch.tensor([get(scores["taylor"], i) for i in items])
                print(f"| {name} | {target_text} | {len(items)} {kind} | {spearman(signed, truth):.3f} | "
                      f"{spearman(absolute, truth.abs()):.3f} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
