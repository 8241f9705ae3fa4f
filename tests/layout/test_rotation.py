"""Rotation: never longer than unrotated, and it finds a known turn."""
import numpy as np
import pytest
import torch
from torch import nn

from viscnn.graph import build_graph
from viscnn.layout import assemble, grid_projections
from viscnn.layout.placement import LayerLayout, Layout, depth_slots, input_positions
from viscnn.layout.quality import _edge_sums
from viscnn.layout.rotation import apply, best_rotation, edge_terms, rotate_layers, weighted_length


def total_length(layout, graph, weights):
    places = {name: layer.world() for name, layer in layout.layers.items()}
    return {name: _edge_sums(layout, graph, name, weights.get(name), places)[0]
            for name in layout.layers if graph[name].kind == "conv"}


def random_layout(graph, seed):
    rng = np.random.default_rng(seed)
    projections = {layer.name: rng.normal(size=(layer.out_channels, 2)) for layer in graph.conv_layers}
    return assemble(graph, projections, smooth=True, rotate=False)


def kernel_norms(loaded, graph):
    return {layer.name: graph.kernels(loaded.module, layer.name).flatten(2).norm(dim=2).numpy() for layer in graph.conv_layers}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_never_longer_than_unrotated(fmnist, seed):
    loaded, graph = fmnist
    weights = kernel_norms(loaded, graph)
    layout = random_layout(graph, seed)
    before = total_length(layout, graph, weights)
    report = rotate_layers(layout, graph, edge_weights=weights)
    # each layer is turned against its sources' final places: measure it that way
    for was, now in report.values():
        assert now <= was + 1e-9 * was
    after = total_length(layout, graph, weights)
    assert sum(after.values()) < sum(before.values())  # on random placements, turning helps
    # the reported lengths are the real ones
    last = graph.conv_layers[-1].name
    assert report[last][1] == pytest.approx(after[last], rel=1e-6)
    assert all(np.hypot(*layout[n].positions.T).max() <= 1 + 1e-9 for n in layout.layers)


def test_unrotated_is_kept_when_best():
    # edges that are already as short as can be: the zero turn must win, not a grid neighbour
    points = np.random.default_rng(0).normal(size=(50, 2))
    terms = edge_terms(points, points.copy(), np.ones(50))
    angle, flipped, before, after = best_rotation(terms)
    assert (angle, flipped) == (0.0, False) and after == before == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("turn,mirror", [(1.0, False), (2.5, True), (-0.3, True)])
def test_recovers_a_known_turn(turn, mirror):
    # a depthwise layer after a conv: one edge per channel, so the best turn undoes the offset exactly
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 12, 3), nn.ReLU(), nn.Conv2d(12, 12, 3, groups=12))
    graph = build_graph(model, (3, 16, 16))
    first, second = (layer.name for layer in graph.conv_layers)
    base = np.random.default_rng(1).uniform(-0.7, 0.7, size=(12, 2))
    slots = depth_slots(graph)
    layers = {"input": LayerLayout("input", 0, 0, 0.0, input_positions(3)),
              first: LayerLayout(first, 1, slots[first][0], 0.0, base.copy()),
              second: LayerLayout(second, 2, slots[second][0], 0.0, apply(base, turn, flipped=mirror))}
    layout = Layout(layers)
    report = rotate_layers(layout, graph, edge_weights={second: np.ones((12, 1))})
    assert report[second][1] < 1e-4 * report[second][0]
    # the first layer was turned against the input too: the second lands on its final places
    assert np.allclose(layout[second].positions, layout[first].positions, atol=1e-4)


def test_weighted_length_matches_direct_sum():
    rng = np.random.default_rng(3)
    p, q, w = rng.normal(size=(40, 2)), rng.normal(size=(40, 2)), rng.uniform(size=40)
    terms = edge_terms(p, q, w)
    for angle in (0.0, 0.7, 3.0):
        for flipped in (False, True):
            direct = (np.linalg.norm(apply(p, angle, flipped=flipped) - q, axis=1) * w).sum()
            assert weighted_length(terms, np.array([angle]), flipped=flipped)[0] == pytest.approx(direct, rel=1e-9)


def test_grid_layout_rotates_too(fmnist):
    loaded, graph = fmnist
    weights = kernel_norms(loaded, graph)
    plain = assemble(graph, grid_projections(graph), smooth=False, rotate=False)
    turned = assemble(graph, grid_projections(graph), smooth=False, rotate=True, edge_weights=weights)
    assert sum(total_length(turned, graph, weights).values()) <= sum(total_length(plain, graph, weights).values())
