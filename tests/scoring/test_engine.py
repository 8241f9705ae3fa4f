"""The engine's node and edge scores equal the explicit per-kernel reference, on every graph pattern."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.scoring.reference import reference_scores
from viscnn.graph import build_graph
from viscnn.scoring import parse_target, score_batches

CRITERIA = ("activation", "gradient", "taylor", "taylor_signed")


class Mixed(nn.Module):
    """Sequential, grouped, depthwise, dilated/strided, 1x1, BN and a residual add, in one small net."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 5, stride=2, padding=2)
        self.c2 = nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=2, bias=False)
        self.bn2 = nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 16, 3, padding=1, groups=8)  # depthwise with multiplier 2
        self.pw = nn.Conv2d(16, 8, 1, bias=False)
        self.bn_pw = nn.BatchNorm2d(8)
        self.down = nn.Conv2d(8, 6, 3, stride=2)
        self.fc = nn.Linear(6, 4)
        for bn in (self.bn2, self.bn_pw):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.data.uniform_(0.5, 1.5)
            bn.bias.data.uniform_(-0.2, 0.2)

    def forward(self, x):
        x = F.relu(self.c1(x), inplace=True)
        y = F.relu(self.bn2(self.c2(x)))
        z = self.bn_pw(self.pw(F.relu6(self.dw(y))))
        x = F.relu(self.down(y + z))
        return self.fc(x.mean((2, 3)))


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = Mixed().eval()
    for p in model.parameters():
        p.requires_grad_(False)
    graph = build_graph(model, (3, 20, 20))
    x = torch.randn(5, 3, 20, 20)
    labels = torch.tensor([0, 1, 2, 3, -1])
    return model, graph, x, labels


TARGETS = {
    "loss": lambda out, maps, labels: F.cross_entropy(out, torch.where(labels >= 0, labels, out.argmax(1)), reduction="none"),
    "logit:2": lambda out, maps, labels: out[:, 2],
    "pw:3": lambda out, maps, labels: maps["pw"][:, 3].mean((1, 2)),
    "dw:5:neuron": lambda out, maps, labels: maps["dw"][:, 5, 5, 5],
    "down:1:0,2": lambda out, maps, labels: maps["down"][:, 1, 0, 2],
    "c2:dir(0=0.5,7=-1)": lambda out, maps, labels: maps["c2"][:, 0].mean((1, 2)) * 0.5 - maps["c2"][:, 7].mean((1, 2)),
}


@pytest.mark.parametrize("target", list(TARGETS))
def test_engine_matches_reference(setup, target):
    model, graph, x, labels = setup
    layers = [layer.name for layer in graph.conv_layers]
    expected = reference_scores(model, graph, x, lambda out, maps: TARGETS[target](out, maps, labels), layers)
    batches = [(x[:2], labels[:2]), (x[2:], labels[2:])]  # streaming in two batches changes nothing
    got = score_batches(model, graph, batches, parse_target(target, graph), CRITERIA, max_bytes=4096)
    for criterion in CRITERIA:
        for layer in got[criterion].nodes:
            for kind in ("nodes", "edges"):
                mine = getattr(got[criterion], kind)[layer]
                ref = expected[criterion][kind][layer]
                assert torch.allclose(mine, ref, rtol=1e-4, atol=1e-6), (criterion, kind, layer, (mine - ref).abs().max())


def test_target_inside_scores_only_its_upstream(setup):
    model, graph, x, labels = setup
    scores = score_batches(model, graph, [(x, labels)], parse_target("dw:5", graph), ("taylor",))["taylor"]
    assert list(scores.nodes) == ["c1", "c2", "dw"]
    # only node 5 of the target layer reaches the target; its one edge (depthwise) is dw:5<-2
    assert torch.count_nonzero(scores.nodes["dw"]) == 1 and scores.nodes["dw"][5] > 0
    assert torch.count_nonzero(scores.edges["dw"]) == 1 and scores.edges["dw"][5, 0] > 0


def test_weight_criterion_folds_batchnorm(setup):
    model, graph, x, labels = setup
    scores = score_batches(model, graph, [(x, labels)], parse_target("loss", graph), ("weight",))["weight"]
    scale = model.bn2.weight / torch.sqrt(model.bn2.running_var + model.bn2.eps)
    expected = model.c2.weight.flatten(2).norm(dim=2) * scale.abs()[:, None]
    assert torch.allclose(scores.edges["c2"], expected)
    assert torch.allclose(scores.nodes["c2"], expected.norm(dim=1))
    assert torch.allclose(scores.edges["c1"], model.c1.weight.flatten(2).norm(dim=2))
