"""Quality figures: class-wise layouts of the real fmnist-convnet beat random placement on both measures."""
import numpy as np
import pytest

from viscnn.layout import assemble, classwise_scores, project_layers, quality
from viscnn.scoring import parse_target, score_batches


@pytest.fixture(scope="module")
def prepared(fmnist, fmnist_sets):
    loaded, graph = fmnist
    batches = list(fmnist_sets["overall"].batches(loaded.preprocess, 40))
    scores = classwise_scores(loaded.module, graph, batches)
    overall = score_batches(loaded.module, graph, batches, parse_target("loss", graph), ["taylor"])["taylor"]
    weights = {name: values.abs().numpy() for name, values in overall.edges.items()}
    projections = project_layers(graph, scores.vectors, "mds")
    return graph, scores, weights, projections


def test_class_layout_beats_random(prepared, tmp_path):
    graph, scores, weights, projections = prepared
    layout = assemble(graph, projections, edge_weights=weights)
    edge = quality.edge_length(layout, graph, weights)
    trust = quality.trustworthiness(layout, scores.vectors, projections)
    assert edge["ratio"] < 0.97 and edge["layout"] < edge["random"]
    assert trust["projection"] > 0.85 and trust["layout"] > 0.75 and trust["random"] < 0.6
    assert set(trust["layers"]) == {layer.name for layer in graph.conv_layers}
    quality.plot({"edge_length": edge, "trustworthiness": trust}, str(tmp_path / "q.png"), "fmnist")
    assert (tmp_path / "q.png").stat().st_size > 10_000


def test_shuffled_layout_scores_as_random(prepared):
    graph, scores, weights, projections = prepared
    rng = np.random.default_rng(0)
    shuffled = {name: points[rng.permutation(len(points))] for name, points in projections.items()}
    layout = assemble(graph, shuffled, rotate=False)
    assert quality.edge_length(layout, graph, weights)["ratio"] == pytest.approx(1.0, abs=0.06)
    assert quality.trustworthiness(layout, scores.vectors)["layout"] < 0.6


def test_too_small_for_k():
    assert quality.trust(np.eye(5), np.zeros((5, 2)), k=5) is None
