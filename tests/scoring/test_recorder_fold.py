"""`Recorder(fold=...)`: a conv run with its eval-mode BN folded in gives the same node maps and input
gradients as conv then BN, never calls the BN, and records the call as an unfolded pass would."""
import pytest
import torch
from torch import nn

from viscnn.errors import ViscnnError
from viscnn.featurevis.objectives import edge_maps
from viscnn.graph import build_graph
from viscnn.graph.recorder import Recorder


def _model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU6(),
                          nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.BatchNorm2d(8), nn.ReLU6(),
                          nn.Conv2d(8, 6, 1), nn.BatchNorm2d(6))
    for module in model:
        if isinstance(module, nn.BatchNorm2d):  # stats far from the defaults, negative gammas included
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.2, 3)
            module.weight.data.uniform_(-2, 2)
            module.bias.data.uniform_(-1, 1)
    return model.eval()


def _run(model, graph, x, fold=None):
    recorder = Recorder(graph, fold=fold)
    with recorder:
        model(x)
    return recorder


def test_folded_pass_gives_the_same_maps_gradients_and_records():
    model = _model()
    graph = build_graph(model, (3, 12, 12))
    x = torch.rand(2, 3, 12, 12)
    plain = _run(model, graph, x)
    assert set(plain.folds) == {layer.name for layer in graph.conv_layers}
    calls = {}
    for name in ("plain", "folded"):
        xg = x.clone().requires_grad_(True)
        recorder = _run(model, graph, xg, plain.folds if name == "folded" else None)
        last = recorder.calls[graph.conv_layers[-1].name].node_map
        (grad,) = torch.autograd.grad(last.square().sum(), xg)
        calls[name] = (recorder, grad)
    (a, grad_a), (b, grad_b) = calls["plain"], calls["folded"]
    for layer in graph.conv_layers:
        ca, cb = a.calls[layer.name], b.calls[layer.name]
        assert torch.allclose(ca.node_map, cb.node_map, atol=1e-5)
        assert torch.equal(ca.weight, cb.weight)  # the weight as passed, not the folded one
        assert torch.equal(ca.bn_scale, cb.bn_scale)
        edges = [ca.layer.input_channel(0, 0)]
        assert torch.allclose(edge_maps(ca, torch.tensor([0]), [0], edges), edge_maps(cb, torch.tensor([0]), [0], edges),
                              atol=1e-6)
    assert torch.allclose(grad_a, grad_b, rtol=1e-4, atol=1e-6)


def test_folded_pass_never_calls_the_batchnorm(monkeypatch):
    model = _model()
    graph = build_graph(model, (3, 12, 12))
    x = torch.rand(1, 3, 12, 12)
    folds = _run(model, graph, x).folds
    calls = []
    batch_norm = torch.batch_norm
    monkeypatch.setattr(torch, "batch_norm", lambda *a, **k: calls.append(1) or batch_norm(*a, **k))
    with torch.no_grad():
        _run(model, graph, x)
        assert len(calls) == 3
        recorder = _run(model, graph, x, folds)
    assert len(calls) == 3
    assert all(recorder.calls[layer.name].node_map is not None for layer in graph.conv_layers)


def test_folding_a_batchnorm_in_training_mode_is_an_error():
    model = _model()
    graph = build_graph(model, (3, 12, 12))
    folds = _run(model, graph, torch.rand(1, 3, 12, 12)).folds
    model[1].train()
    with pytest.raises(ViscnnError, match="training mode"):
        _run(model, graph, torch.rand(2, 3, 12, 12), folds)
