"""Ablation ground truth: exact where the target is linear in the removed map; Taylor ranks it well elsewhere."""
import pytest
import torch
import torchvision
from torch import nn

from viscnn.graph import Edge, Node, build_graph
from viscnn.scoring import parse_target, score_batches
from viscnn.scoring.ablation import ablation_scores, spearman


def test_ablation_equals_signed_taylor_when_the_target_is_linear():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.Conv2d(6, 4, 3, groups=2), nn.ReLU()).eval()
    model[1].running_mean.uniform_(-1, 1)
    graph = build_graph(model, (3, 10, 10))
    x = torch.randn(4, 3, 10, 10)
    target = parse_target("2:1", graph)  # mean of conv 2's map (before the ReLU): linear in conv 0's map
    taylor = score_batches(model, graph, [(x, torch.full((4,), -1))], target, ("taylor_signed",))["taylor_signed"]
    nodes = [Node("0", c) for c in range(6)]
    edges = [graph.edge_at("2", o, i) for o in range(4) for i in range(3)] + [Edge("0", 1, 2)]
    assert torch.allclose(ablation_scores(model, graph, [(x, None)], target, nodes), taylor.nodes["0"], atol=1e-5)
    expected = torch.tensor([taylor.edge(e) for e in edges])
    assert torch.allclose(ablation_scores(model, graph, [(x, None)], target, edges), expected, atol=1e-5)


@pytest.mark.parametrize("model_name", ["resnet18"])
def test_taylor_ranks_like_ablation_on_a_residual_model(model_name):
    torch.manual_seed(0)
    model = getattr(torchvision.models, model_name)(weights=None).eval()
    graph = build_graph(model, (3, 64, 64))
    x = torch.randn(4, 3, 64, 64)
    target = parse_target("layer2.1.conv2:5", graph)
    taylor = score_batches(model, graph, [(x, None)], target, ("taylor_signed",), edges=False)["taylor_signed"]
    nodes = [Node("layer2.0.conv2", c) for c in range(0, 128, 2)] + [Node("layer1.1.conv2", c) for c in range(0, 64, 2)]
    truth = ablation_scores(model, graph, [(x, None)], target, nodes)
    rho = spearman(torch.tensor([taylor.node(n) for n in nodes]), truth)
    print(f"{model_name}: Spearman(signed Taylor, ablation) over {len(nodes)} nodes = {rho:.3f}")
    assert rho > 0.6
