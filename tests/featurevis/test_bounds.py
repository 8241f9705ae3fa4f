"""`ceiling`: a sound upper bound on an objective over all images, exact where the model is affine."""
import pytest
import torch
from torch import nn

from viscnn.errors import ViscnnError
from viscnn.featurevis.bounds import ceiling
from viscnn.featurevis.objectives import forward
from viscnn.featurevis.render import RenderSettings, render
from viscnn.graph import build_graph
from viscnn.models.preprocess import Preprocess
from viscnn.scoring.targets import parse_target

PRE = Preprocess(size=12, resize=None, mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3))


def _randomise_bn(model):
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2)
            module.weight.data.uniform_(-1.5, 1.5)  # negative gammas too
            module.bias.data.uniform_(-0.5, 0.5)
    return model.eval()


class Block(nn.Module):
    """expand 1x1 -> ReLU6 -> depthwise 3x3 -> ReLU6 -> project 1x1, plus the residual, then a max-pool."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU6())
        self.expand = nn.Sequential(nn.Conv2d(4, 8, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU6())
        self.depthwise = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), nn.BatchNorm2d(8), nn.ReLU6())
        self.project = nn.Sequential(nn.Conv2d(8, 4, 1, bias=False), nn.BatchNorm2d(4))
        self.head = nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(4, 6, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Dropout(0.2), nn.Linear(6, 3))

    def forward(self, x):
        x = self.stem(x)
        x = x + self.project(self.depthwise(self.expand(x)))
        return self.head(x)


@pytest.fixture(scope="module")
def block():
    torch.manual_seed(0)
    model = _randomise_bn(Block())
    return model, build_graph(model, (3, 12, 12))


def _values(model, graph, objective, pixels):
    with torch.no_grad():
        logits = any(o.kind == "logit" for o in [objective])
        return forward(model, graph, [objective] * len(pixels), PRE.normalize(pixels))[0] if not logits else \
            model(PRE.normalize(pixels))[:, objective.class_index] * (-1 if objective.negative else 1)


def test_the_ceiling_of_an_affine_node_is_reached_by_the_best_image():
    torch.manual_seed(1)
    model = _randomise_bn(nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.BatchNorm2d(5)))
    graph = build_graph(model, (3, 12, 12))
    for text in ["0:2", "-0:2", "0:4:neuron", "0:1<-2"]:
        objective = parse_target(text, graph)
        bound = ceiling(model, graph, PRE, objective)
        x = torch.full((1, 3, 12, 12), 0.5, requires_grad=True)
        (grad,) = torch.autograd.grad(forward(model, graph, [objective], PRE.normalize(x))[0].sum(), x)
        best = (grad > 0).float()  # every pixel at the end of [0, 1] its gradient points to
        assert _values(model, graph, objective, best)[0] == pytest.approx(bound, rel=1e-5, abs=1e-5), text
        assert _values(model, graph, objective, torch.rand(64, 3, 12, 12)).max() < bound


@pytest.mark.parametrize("text", ["stem.0:1", "expand.0:3", "-expand.0:3", "depthwise.0:5", "depthwise.0:5:neuron",
                                  "project.0:2", "head.1:4", "head.1:0<-3", "head.1:0<-3:neuron", "logit:1", "-logit:2"])
def test_no_image_exceeds_the_ceiling_not_even_a_render(block, text):
    model, graph = block
    objective = parse_target(text, graph)
    bound = ceiling(model, graph, PRE, objective)
    generator = torch.Generator().manual_seed(0)
    images = torch.cat([torch.rand(256, 3, 12, 12, generator=generator),
                        (torch.rand(256, 3, 12, 12, generator=generator) > 0.5).float()])
    assert _values(model, graph, objective, images).max() <= bound + 1e-5
    rendered = render(model, graph, PRE, [objective], RenderSettings(steps=48, transforms="none", lr=0.1))
    assert float(rendered.values[0]) <= bound + 1e-5


def test_an_op_that_is_not_increasing_is_an_error(block):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.SiLU(), nn.Conv2d(4, 2, 1)).eval()
    graph = build_graph(model, (3, 12, 12))
    with pytest.raises(ViscnnError, match="silu"):
        ceiling(model, graph, PRE, parse_target("2:0", graph))


def test_a_model_in_training_mode_is_an_error(block):
    model, graph = block
    model.train()
    try:
        with pytest.raises(ViscnnError, match="eval mode"):
            ceiling(model, graph, PRE, parse_target("project.0:0", graph))
    finally:
        model.eval()
