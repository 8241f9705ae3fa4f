"""Each layer's rotation (and mirror) chosen to minimise the importance-weighted length of its edges to the layers feeding it.

Layers are turned in call order, each against its sources' final places. With p a node's point
(relative to its disc centre) and q the source node's point relative to the same centre, the length
after turning by t is sqrt(|p|^2 + |q|^2 - 2 (cos t (p.q) + sin t (p x q))): per edge three numbers, so
every candidate angle is scored over all edges at once (in chunks). A grid of angles is searched, the
best refined by golden-section search; the unturned placement is always a candidate, so the result is
never longer than it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from viscnn.graph import Graph
from viscnn.layout.edges import layer_edges
from viscnn.layout.placement import Layout

_CHUNK = 1 << 15


@dataclass
class EdgeTerms:
    """Per edge: |p|^2 + |q|^2, p.q, p x q (p unmirrored), p_y * q_y (to mirror p in y) and the weight."""

    norms: np.ndarray
    dot: np.ndarray
    cross: np.ndarray
    py_qy: np.ndarray
    px_qy: np.ndarray
    py_qx: np.ndarray
    weight: np.ndarray

    def parts(self, *, flipped: bool) -> tuple[np.ndarray, np.ndarray]:
        """(p.q, p x q) with p mirrored in y (p_y -> -p_y) when `flipped`."""
        if not flipped:
            return self.dot, self.cross
        return self.dot - 2 * self.py_qy, self.px_qy + self.py_qx


def edge_terms(points: np.ndarray, targets: np.ndarray, weight: np.ndarray) -> EdgeTerms:
    """`points` [E, 2] (the layer's end of each edge, relative to its centre), `targets` [E, 2] (the source end, same frame)."""
    px, py, qx, qy = points[:, 0], points[:, 1], targets[:, 0], targets[:, 1]
    return EdgeTerms((px ** 2 + py ** 2 + qx ** 2 + qy ** 2), px * qx + py * qy, px * qy - py * qx,
                     py * qy, px * qy, py * qx, weight)


def weighted_length(terms: EdgeTerms, angles: np.ndarray, *, flipped: bool) -> np.ndarray:
    """[len(angles)]: sum of weight x edge length after mirroring (if `flipped`) and turning by each angle."""
    dot, cross = terms.parts(flipped=flipped)
    cos, sin = np.cos(angles), np.sin(angles)
    total = np.zeros(len(angles))
    for begin in range(0, len(terms.weight), _CHUNK):
        end = begin + _CHUNK
        squared = terms.norms[begin:end, None] - 2 * (dot[begin:end, None] * cos + cross[begin:end, None] * sin)
        total += (np.sqrt(np.maximum(squared, 0.0)) * terms.weight[begin:end, None]).sum(axis=0)
    return total


def best_rotation(terms: EdgeTerms, *, steps: int = 360, flips: bool = True) -> tuple[float, bool, float, float]:
    """(angle, flipped, weighted length before, after): the turn (and mirror) giving the shortest weighted edges."""
    before = float(weighted_length(terms, np.zeros(1), flipped=False)[0])
    best = (0.0, False, before)
    grid = np.linspace(0.0, 2 * np.pi, steps, endpoint=False)
    step = 2 * np.pi / steps
    for flipped in ([False, True] if flips else [False]):
        costs = weighted_length(terms, grid, flipped=flipped)
        k = int(np.argmin(costs))
        angle, cost = _golden(terms, flipped, grid[k] - step, grid[k] + step, float(costs[k]), grid[k])
        if cost < best[2] - 1e-12 * max(1.0, abs(best[2])):
            best = (angle % (2 * np.pi), flipped, cost)
    return best[0], best[1], before, best[2]


def _golden(terms: EdgeTerms, flipped: bool, low: float, high: float, cost: float, angle: float,
            rounds: int = 24) -> tuple[float, float]:
    """Golden-section refinement in [low, high]; returns the best (angle, cost) seen (the start included)."""
    ratio = (np.sqrt(5.0) - 1) / 2
    a, b = low, high
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = weighted_length(terms, np.array([c, d]), flipped=flipped)
    for _ in range(rounds):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = float(weighted_length(terms, np.array([c]), flipped=flipped)[0])
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = float(weighted_length(terms, np.array([d]), flipped=flipped)[0])
    for x, fx in ((c, fc), (d, fd)):
        if fx < cost:
            angle, cost = x, float(fx)
    return angle, cost


def layer_terms(layout: Layout, graph: Graph, name: str, weights: np.ndarray | None) -> EdgeTerms | None:
    """The edge terms of layer `name` against its sources' current places (None: no edge to a placed layer)."""
    edges = layer_edges(graph, name, weights)
    here = layout[name]
    points, targets, weight = [], [], []
    for source, (out, src, w) in edges.by_source.items():
        if source not in layout.layers:
            continue
        points.append(here.positions[out])
        targets.append(layout[source].world()[src] - here.centre)
        weight.append(w)
    if not points or not np.concatenate(weight).sum() > 0:
        return None
    return edge_terms(np.concatenate(points), np.concatenate(targets), np.concatenate(weight))


def apply(points: np.ndarray, angle: float, *, flipped: bool) -> np.ndarray:
    """Mirror in y (if `flipped`) then turn counter-clockwise by `angle`."""
    p = points * np.array([1.0, -1.0]) if flipped else points
    cos, sin = np.cos(angle), np.sin(angle)
    return p @ np.array([[cos, sin], [-sin, cos]])


def rotate_layers(layout: Layout, graph: Graph, *, edge_weights: dict[str, np.ndarray] | None = None,
                  steps: int = 360, flips: bool = True) -> dict[str, tuple[float, float]]:
    """Turn every conv layer of `layout` in place, in call order; returns {layer: (length before, after)}.

    `edge_weights[layer]` is [C_out, C_in/groups] (e.g. the overall |Taylor| edge scores); a layer
    without weights counts every edge once.
    """
    result = {}
    for name, layer in layout.layers.items():
        if graph[name].kind != "conv" or len(layer.positions) < 2:
            continue
        terms = layer_terms(layout, graph, name, (edge_weights or {}).get(name))
        if terms is None:
            continue
        angle, flipped, before, after = best_rotation(terms, steps=steps, flips=flips)
        layer.positions = apply(layer.positions, angle, flipped=flipped)
        layer.rotation, layer.flipped = angle, flipped
        result[name] = (before, after)
    layout.rotated = True
    return result
