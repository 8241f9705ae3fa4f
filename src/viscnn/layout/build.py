"""From node vectors (or none) to a `Layout`: project each layer, smooth to a disc, rotate, place by depth."""
from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from viscnn.errors import ViscnnError
from viscnn.graph import INPUT, Graph
from viscnn.layout.placement import LayerLayout, Layout, depth_slots, input_positions
from viscnn.layout.projection import METHODS, project
from viscnn.layout.rotation import rotate_layers
from viscnn.layout.smoothing import smooth_to_disc, sunflower

PROJECTIONS = (*METHODS, "grid", "weights", "featurevis")
Vectors = Callable[[str], np.ndarray]


def conv_names(graph: Graph) -> list[str]:
    return [layer.name for layer in graph.conv_layers]


def project_layers(graph: Graph, vectors: Vectors, method: str = "umap", seed: int = 0,
                   layers: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """{layer: [C, 2]} projections of each conv layer's node vectors (`vectors(layer)` is [C, D])."""
    result = {}
    for name in layers if layers is not None else conv_names(graph):
        values = vectors(name)
        if values.shape[0] != graph[name].out_channels:
            raise ViscnnError(f"layer {name} has {graph[name].out_channels} nodes but {values.shape[0]} vectors")
        result[name] = project(values, method, seed=seed)
    return result


def grid_projections(graph: Graph) -> dict[str, np.ndarray]:
    """Channels in index order along a sunflower spiral (already a uniform disc)."""
    return {name: sunflower(graph[name].out_channels) for name in conv_names(graph)}


def assemble(graph: Graph, projections: dict[str, np.ndarray], *, smooth: bool = True, rotate: bool = True,
             edge_weights: dict[str, np.ndarray] | None = None, projection: str = "", model: str = "",
             fingerprint: str = "", images: str = "") -> Layout:
    """Place every projected layer at its depth, smoothed into a uniform disc and rotated against its sources."""
    missing = [name for name in conv_names(graph) if name not in projections]
    if missing:
        raise ViscnnError(f"no projection for layer {missing[0]} ({len(missing)} layers missing)")
    slots = depth_slots(graph)
    layers = {}
    for name, (depth, lateral) in slots.items():
        layer = graph[name]
        if name == INPUT:
            points = input_positions(layer.out_channels)
        else:
            points = np.asarray(projections[name], dtype=np.float64)
            if points.shape != (layer.out_channels, 2):
                raise ViscnnError(f"projection of layer {name} has shape {list(points.shape)}, "
                                  f"expected [{layer.out_channels}, 2]")
            points = smooth_to_disc(points) if smooth else _inside_disc(points)
        layers[name] = LayerLayout(name, layer.index, depth, lateral, points)
    layout = Layout(layers, model or graph.model_name, fingerprint, images, projection, smooth, False)
    if rotate:
        rotate_layers(layout, graph, edge_weights=edge_weights)
    return layout


def _inside_disc(points: np.ndarray) -> np.ndarray:
    """Centred and scaled into the unit disc (shape kept)."""
    points = points - points.mean(axis=0) if len(points) else points
    radius = float(np.hypot(points[:, 0], points[:, 1]).max()) if len(points) else 0.0
    return points / radius if radius > 0 else points
