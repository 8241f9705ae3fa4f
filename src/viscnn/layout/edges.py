"""A conv layer's edges as flat arrays (target channel, source layer, source channel, weight), built without Python loops over kernels."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from viscnn.graph import Graph


@dataclass
class LayerEdges:
    """Edges into one layer from each source layer: `by_source[src] = (out_channel, src_channel, weight)` arrays."""

    layer: str
    by_source: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]

    @property
    def total_weight(self) -> float:
        return float(sum(w.sum() for _, _, w in self.by_source.values()))


def layer_edges(graph: Graph, name: str, weights: np.ndarray | None = None, min_weight: float = 0.0) -> LayerEdges:
    """The edges of conv layer `name` to the nodes feeding it; `weights` [C_out, C_in/groups] (None: all 1).

    An input channel fed by several layers (after a residual add) gives one edge to each of them, with
    the kernel's weight. Channels that depend on all of a layer's channels (after a mean over channels)
    or on no layer's give no edge. Weights are taken as magnitudes; edges of weight <= `min_weight` are dropped.
    """
    layer = graph[name]
    c_out, in_pg = layer.out_channels, layer.in_per_group
    if weights is None:
        weights = np.ones((c_out, in_pg))
    weights = np.abs(np.asarray(weights, dtype=np.float64)).reshape(c_out, in_pg)
    out_index = np.repeat(np.arange(c_out), in_pg)
    in_index = (out_index // max(layer.out_per_group, 1)) * in_pg + np.tile(np.arange(in_pg), c_out)
    flat = weights.reshape(-1)
    by_source: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for source, channels in layer.sources:
        if source not in graph.layers:
            continue
        src_channel = np.asarray(channels)[in_index]
        keep = (src_channel >= 0) & (flat > min_weight)
        if not keep.any():
            continue
        out: np.ndarray = out_index[keep]
        src: np.ndarray = src_channel[keep].astype(np.int64)
        w: np.ndarray = flat[keep]
        if source in by_source:  # one layer listed twice (a channel slice and another): merge
            old_out, old_src, old_w = by_source[source]
            out, src, w = np.concatenate([old_out, out]), np.concatenate([old_src, src]), np.concatenate([old_w, w])
        by_source[source] = (out, src, w)
    return LayerEdges(name, by_source)
