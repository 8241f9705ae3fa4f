"""Class-wise scores: one backward per batch for all classes, equal to scoring each class's images (or logit) alone."""
import numpy as np
import pytest
import torch

from viscnn.errors import ViscnnError
from viscnn.layout.classwise import ClassScores, choose_mode, classwise_scores
from viscnn.scoring import parse_target, score_batches


def reference(loaded, graph, batches, target):
    return score_batches(loaded.module, graph, batches, parse_target(target, graph), ["taylor"], edges=False)["taylor"]


def test_loss_mode_equals_each_class_alone(fmnist, fmnist_sets):
    loaded, graph = fmnist
    scores = classwise_scores(loaded.module, graph, fmnist_sets["overall"].batches(loaded.preprocess, 16))
    assert scores.classes == list(range(10)) and scores.counts == [4] * 10
    names = [n for n in fmnist_sets if n != "overall"]
    for k in (0, 7):
        ref = reference(loaded, graph, fmnist_sets[names[k]].batches(loaded.preprocess, 16), "loss")
        for layer in graph.conv_layers:
            got = scores.nodes[layer.name][:, k]
            assert torch.allclose(got, ref.nodes[layer.name], rtol=1e-4, atol=1e-7), layer.name
    # classes really differ: the vectors are not all the same direction
    vectors = scores.vectors(graph.conv_layers[-1].name)
    assert np.allclose(np.linalg.norm(vectors, axis=1)[np.abs(vectors).sum(1) > 0], 1.0)
    assert np.std(vectors, axis=0).mean() > 0.01


def test_logit_mode_equals_each_logit(fmnist, fmnist_sets):
    loaded, graph = fmnist
    batches = list(fmnist_sets["overall"].batches(loaded.preprocess, 16))[:2]
    scores = classwise_scores(loaded.module, graph, batches, mode="logit", classes=[2, 5, 9], max_bytes=1 << 20)
    assert scores.classes == [2, 5, 9] and scores.counts == [32] * 3
    for k, cls in enumerate(scores.classes):
        ref = reference(loaded, graph, batches, f"logit:{cls}")
        for layer in graph.conv_layers:
            assert torch.allclose(scores.nodes[layer.name][:, k], ref.nodes[layer.name], rtol=1e-4, atol=1e-7)


def test_signed_and_unlabelled(fmnist, fmnist_sets):
    loaded, graph = fmnist
    x, labels = next(fmnist_sets["overall"].batches(loaded.preprocess, 12))
    unknown = torch.full_like(labels, -1)
    with pytest.raises(ViscnnError, match="no image has a label"):
        classwise_scores(loaded.module, graph, [(x, unknown)])
    predicted = classwise_scores(loaded.module, graph, [(x, unknown)], unlabelled="predict", criterion="taylor_signed")
    assert sum(predicted.counts) == 12
    own = loaded.module(x).argmax(1).unique().tolist()
    assert predicted.classes == sorted(own)


def test_save_load_roundtrip(fmnist, fmnist_sets, tmp_path):
    loaded, graph = fmnist
    batches = list(fmnist_sets["overall"].batches(loaded.preprocess, 40))
    scores = classwise_scores(loaded.module, graph, batches)
    scores.save(tmp_path / "c.safetensors")
    back = ClassScores.load(tmp_path / "c.safetensors")
    assert back.classes == scores.classes and back.counts == scores.counts and back.mode == "loss"
    for name, values in scores.nodes.items():
        assert torch.equal(back.nodes[name], values)
    (tmp_path / "x.safetensors").write_bytes(b"junk")
    with pytest.raises(ViscnnError, match="cannot read class-wise scores"):
        ClassScores.load(tmp_path / "x.safetensors")


def test_choose_mode():
    assert choose_mode([0] * 5 + [1] * 5) == "loss"
    assert choose_mode([0] * 5 + [1] * 2 + [-1]) == "logit"
    assert choose_mode([-1, -1]) == "loss"


@pytest.mark.parametrize("options,message", [
    ({"mode": "bogus"}, "mode"), ({"criterion": "weight"}, "criterion"), ({"unlabelled": "guess"}, "unlabelled"),
    ({"mode": "logit"}, "class indices"), ({"mode": "logit", "classes": [10]}, "out of range"),
])
def test_bad_options(fmnist, fmnist_sets, options, message):
    loaded, graph = fmnist
    batches = list(fmnist_sets["overall"].batches(loaded.preprocess, 8))[:1]
    with pytest.raises(ViscnnError, match=message):
        classwise_scores(loaded.module, graph, batches, **options)


def test_empty_and_non_finite(fmnist):
    loaded, graph = fmnist
    with pytest.raises(ViscnnError, match="empty"):
        classwise_scores(loaded.module, graph, [])
    x = torch.zeros(2, 1, 28, 28)
    x[0, 0, 0, 0] = float("nan")
    with pytest.raises(ViscnnError, match="NaN"):
        classwise_scores(loaded.module, graph, [(x, torch.tensor([0, 1]))])
