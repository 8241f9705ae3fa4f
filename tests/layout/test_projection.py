"""Projections of node vectors, the other node vectors (weights, feature-viz) and the layout's placement by depth."""
import numpy as np
import pytest
import torch

from viscnn.errors import ViscnnError
from viscnn.graph import build_graph
from viscnn.layout import Layout, assemble, depth_slots, featurevis_vectors, grid_projections, project, weight_vectors
from viscnn.layout.quality import trust
from viscnn.models import load_model


def blobs(n=90, dims=10, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, dims)) * 3
    which = np.arange(n) % 3
    return centres[which] + rng.normal(size=(n, dims)) * 0.3, which


def test_mds_keeps_groups_apart():
    vectors, which = blobs()
    points = project(vectors, "mds")
    assert points.shape == (90, 2)
    assert np.allclose(points.mean(0), 0, atol=1e-9)
    assert np.sqrt((points ** 2).sum(1).mean()) == pytest.approx(np.sqrt(0.5))
    assert trust(vectors / np.linalg.norm(vectors, axis=1, keepdims=True), points) > 0.9
    nearest = np.argsort(((points[:, None] - points[None]) ** 2).sum(-1), axis=1)[:, 1]
    assert (which[nearest] == which).mean() > 0.95


def test_length_does_not_matter():
    vectors, _ = blobs()
    scaled = vectors * np.random.default_rng(1).uniform(0.01, 100, size=(90, 1))
    assert np.allclose(project(vectors, "mds"), project(scaled, "mds"), atol=1e-4)


def test_tiny_layers_and_umap_fallback():
    assert project(np.ones((1, 4)), "umap").shape == (1, 2)
    two = project(np.eye(2), "umap")
    assert two.shape == (2, 2) and not np.allclose(two[0], two[1])
    assert project(np.random.default_rng(0).normal(size=(6, 3)), "umap").shape == (6, 2)  # below UMAP's minimum: MDS
    zeros = project(np.zeros((10, 4)), "mds")  # dead nodes: still distinct, finite points
    assert np.isfinite(zeros).all()


@pytest.mark.parametrize("vectors,method,message", [
    (np.ones((4, 3)), "tsne", "unknown projection"), (np.ones(4), "mds", r"\[N, D\]"),
    (np.array([[1.0, np.inf], [0.0, 1.0]]), "mds", "NaN or infinite"),
])
def test_bad_projection_input(vectors, method, message):
    with pytest.raises(ViscnnError, match=message):
        project(vectors, method)


def test_weight_vectors(fmnist):
    loaded, graph = fmnist
    name = graph.conv_layers[1].name
    vectors = weight_vectors(loaded.module, graph, name)
    layer = graph[name]
    assert vectors.shape == (layer.out_channels, layer.in_per_group * layer.kernel_size[0] * layer.kernel_size[1])
    assert np.allclose(vectors[5], graph.kernels(loaded.module, name)[5].flatten().numpy())
    with pytest.raises(ViscnnError, match="unknown conv layer"):
        weight_vectors(loaded.module, graph, "nope")


def test_featurevis_vectors_with_stand_in_renders(fmnist, fmnist_sets):
    loaded, graph = fmnist
    name = graph.conv_layers[0].name
    channels = graph[name].out_channels
    x = torch.cat([b[0] for b in fmnist_sets["overall"].batches(loaded.preprocess, 40)])[:channels]
    vectors = featurevis_vectors(loaded.module, graph, name, x)
    assert vectors.shape == (channels, channels)
    # column j is render j's effect on the layer: standardised over nodes
    assert np.allclose(vectors.mean(axis=0), 0, atol=1e-9)
    # a node's response to an image that excites it is above its response to others
    with torch.no_grad():
        from viscnn.layout import layer_activations
        acts = layer_activations(loaded.module, graph, name, x).numpy()
    assert np.corrcoef(vectors.T.ravel(), ((acts - acts.mean(1, keepdims=True)) / acts.std(1, keepdims=True)).ravel())[0, 1] > 0.999
    with pytest.raises(ViscnnError, match="one render per node"):
        featurevis_vectors(loaded.module, graph, name, x[:3])
    with pytest.raises(ViscnnError, match="model inputs"):
        featurevis_vectors(loaded.module, graph, name, torch.zeros(channels, 3, 28, 28))


def test_depth_slots_put_parallel_branches_side_by_side():
    model = load_model("googlenet")
    graph = build_graph(model.module, model.input_shape, model.name)
    slots = depth_slots(graph)
    by_depth = {}
    for name, (depth, lateral) in slots.items():
        assert depth == graph[name].depth
        by_depth.setdefault(depth, []).append(lateral)
    shared = [lats for lats in by_depth.values() if len(lats) > 1]
    assert shared, "GoogLeNet's inception branches share depths"
    for lats in shared:
        assert len(set(lats)) == len(lats) and sum(lats) == pytest.approx(0.0)
        assert min(np.diff(sorted(lats))) >= 2.0  # discs of radius 1 never overlap


def test_layout_json_roundtrip(fmnist, tmp_path):
    loaded, graph = fmnist
    layout = assemble(graph, grid_projections(graph), smooth=False, rotate=False, projection="grid", model=loaded.name)
    data = layout.to_json()
    assert data["format"] == "viscnn-layout/1"
    assert list(data["layers"]) == ["input"] + [layer.name for layer in graph.conv_layers]
    first = data["layers"][graph.conv_layers[0].name]
    assert len(first["positions"]) == first["nodes"] == 32 and first["depth"] == 1
    layout.save(tmp_path / "l.json")
    back = Layout.load(tmp_path / "l.json")
    assert np.allclose(back[graph.conv_layers[2].name].positions, layout[graph.conv_layers[2].name].positions, atol=1e-6)
    (tmp_path / "bad.json").write_text('{"format": "other"}')
    with pytest.raises(ViscnnError, match="not a viscnn layout"):
        Layout.load(tmp_path / "bad.json")


def test_assemble_checks_projections(fmnist):
    _, graph = fmnist
    projections = grid_projections(graph)
    first = graph.conv_layers[0].name
    with pytest.raises(ViscnnError, match="no projection"):
        assemble(graph, {k: v for k, v in projections.items() if k != first})
    with pytest.raises(ViscnnError, match="shape"):
        assemble(graph, {**projections, first: np.zeros((3, 2))})
