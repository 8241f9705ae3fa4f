"""How good a layout is: importance-weighted edge length against random placement, and trustworthiness.

- Edge length: sum over every edge of |Taylor| x the planar distance between its two nodes, divided by
  the summed weight. The baseline shuffles the nodes of every layer among that layer's own places
  (so the same discs, the same depths), averaged over a few seeded shuffles. Ratio < 1: important edges
  are shorter than chance.
- Trustworthiness (scikit-learn): whether a node's k nearest neighbours in the layout were near in its
  class-importance space too (1: all were; a random placement scores about 0.5).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Literal, TypedDict

import numpy as np

from viscnn.graph import INPUT, Graph
from viscnn.layout.edges import layer_edges
from viscnn.layout.placement import Layout

Vectors = Callable[[str], np.ndarray]


class LayerTrust(TypedDict, total=False):
    """One layer's trustworthiness: of the layout, a random placement, the projection (when given); its node count."""

    layout: float
    random: float | None
    projection: float | None
    nodes: int


def _edge_sums(layout: Layout, graph: Graph, name: str, weights: np.ndarray | None,
               places: dict[str, np.ndarray]) -> tuple[float, float]:
    """(sum of weight x length, sum of weight) of the edges into layer `name`, with world positions `places`."""
    edges = layer_edges(graph, name, weights)
    length = total = 0.0
    for source, (out, src, w) in edges.by_source.items():
        if source in places:
            distance = np.linalg.norm(places[name][out] - places[source][src], axis=1)
            length += float((distance * w).sum())
            total += float(w.sum())
    return length, total


def edge_length(layout: Layout, graph: Graph, edge_weights: dict[str, np.ndarray] | None = None,
                shuffles: int = 5, seed: int = 0) -> dict:
    """{"layout", "random", "ratio", "layers": {name: ratio}}: weighted mean edge length, and vs shuffled nodes."""
    conv = [name for name in layout.layers if graph[name].kind == "conv"]
    weights = edge_weights or {}
    places = {name: layer.world() for name, layer in layout.layers.items()}
    per_layer = {name: _edge_sums(layout, graph, name, weights.get(name), places) for name in conv}
    rng = np.random.default_rng(seed)
    random_layer = {name: [0.0, 0.0] for name in conv}
    for _ in range(shuffles):
        shuffled = {name: layer.centre + layer.positions[rng.permutation(len(layer.positions))]
                    for name, layer in layout.layers.items()}
        for name in conv:
            length, total = _edge_sums(layout, graph, name, weights.get(name), shuffled)
            random_layer[name][0] += length / shuffles
            random_layer[name][1] += total / shuffles
    ours = sum(v[0] for v in per_layer.values()) / max(sum(v[1] for v in per_layer.values()), 1e-300)
    chance = sum(v[0] for v in random_layer.values()) / max(sum(v[1] for v in random_layer.values()), 1e-300)
    layers = {name: per_layer[name][0] / random_layer[name][0] for name in conv if random_layer[name][0] > 0}
    return {"layout": ours, "random": chance, "ratio": ours / chance if chance > 0 else float("nan"), "layers": layers}


def trust(vectors: np.ndarray, points: np.ndarray, k: int = 5) -> float | None:
    """scikit-learn's trustworthiness of `points` for `vectors`, or None when the layer is too small for k."""
    from sklearn.manifold import trustworthiness

    n = len(points)
    if n < 2 * k + 2:
        return None
    return float(trustworthiness(vectors, points, n_neighbors=k))


def trustworthiness(layout: Layout, vectors: Vectors, projections: dict[str, np.ndarray] | None = None,
                    k: int = 5, seed: int = 0) -> dict:
    """Node-weighted mean trustworthiness over the conv layers big enough for k: of the projection
    (before smoothing, when given), of the layout, and of a random placement; plus per-layer values."""
    rng = np.random.default_rng(seed)
    rows: dict[str, LayerTrust] = {}
    for name, layer in layout.layers.items():
        if name == INPUT:
            continue
        try:
            high = vectors(name)
        except KeyError:
            continue
        ours = trust(high, layer.positions, k)
        if ours is None:
            continue
        row: LayerTrust = {"layout": ours}
        row["random"] = trust(high, layer.positions[rng.permutation(len(layer.positions))], k)
        if projections and name in projections:
            row["projection"] = trust(high, projections[name], k)
        row["nodes"] = len(layer.positions)
        rows[name] = row
    total = sum(r["nodes"] for r in rows.values())

    def mean(key: Literal["layout", "random", "projection"]) -> float | None:
        have = [(value, r["nodes"]) for r in rows.values() if (value := r.get(key)) is not None]
        return sum(value * nodes for value, nodes in have) / sum(nodes for _, nodes in have) if have else None

    return {"k": k, "layout": mean("layout"), "random": mean("random"), "projection": mean("projection"),
            "nodes": total, "layers": rows}


def plot(quality: dict, path: str, title: str = "") -> None:
    """A two-panel PNG: per-layer edge-length ratio (layout / random) and trustworthiness."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ratios = quality["edge_length"]["layers"]
    trusts = quality["trustworthiness"]["layers"]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(max(6.0, 0.18 * len(ratios) + 3), 6.5), sharex=False)
    names = list(ratios)
    top.bar(range(len(names)), [ratios[n] for n in names], color="tab:blue")
    top.axhline(1.0, color="black", lw=0.8, ls="--", label="random placement")
    top.set_ylabel("weighted edge length\nlayout / random")
    top.set_title(f"{title}  overall ratio {quality['edge_length']['ratio']:.2f}".strip())
    top.set_xticks(range(len(names)), [str(i + 1) for i in range(len(names))], fontsize=6)
    top.set_ylim(0, max(1.2, max(ratios.values(), default=1.0) * 1.1))
    top.legend(fontsize=8, loc="upper right")
    names = list(trusts)
    x = np.arange(len(names))
    for offset, key, colour in ((-0.27, "projection", "tab:green"), (0.0, "layout", "tab:blue"), (0.27, "random", "tab:gray")):
        values = [trusts[n].get(key) for n in names]
        if any(v is not None for v in values):
            mean = quality["trustworthiness"].get(key)
            top_label = f"{key} ({mean:.2f})" if mean is not None else key
            bottom.bar(x + offset, [v if v is not None else 0 for v in values], width=0.27, color=colour, label=top_label)
    bottom.set_ylim(0.3, 1.15)
    bottom.set_ylabel(f"trustworthiness (k={quality['trustworthiness']['k']})")
    bottom.set_xlabel("conv layer (call order)")
    bottom.set_xticks(x, [str(i + 1) for i in range(len(names))], fontsize=6)
    bottom.legend(fontsize=8, ncol=3, loc="upper center")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
