"""Receptive fields checked against where the gradient of one unit actually lands in the input."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from viscnn.graph import build_graph


class Geometry(nn.Module):
    """Positive weights and no ReLU: a unit's gradient is non-zero exactly on its receptive field."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 2, 3, stride=2, padding=1)
        self.c2 = nn.Conv2d(2, 2, 3, padding=2, dilation=2)
        self.c3 = nn.Conv2d(2, 2, (5, 3), stride=(1, 2), padding=(0, 1))
        self.c4 = nn.Conv2d(2, 1, 3, padding="same")
        for conv in (self.c1, self.c2, self.c3, self.c4):
            nn.init.uniform_(conv.weight, 0.1, 1.0)
        self.outputs = {}

    def forward(self, x):
        x = self.c1(F.pad(x, (2, 0, 1, 0)))  # an asymmetric pad folded into c1
        self.outputs["c1"] = x
        x = self.c2(F.avg_pool2d(x, 2, stride=1))
        self.outputs["c2"] = x
        x = self.c3(F.max_pool2d(x, 3, stride=1, padding=1))
        self.outputs["c3"] = x
        x = self.c4(x)
        self.outputs["c4"] = x
        return x


@pytest.mark.parametrize("layer", ["c1", "c2", "c3", "c4"])
def test_field_matches_gradient_support(layer):
    model = Geometry().eval()
    graph = build_graph(model, (1, 48, 48))
    rf = graph[layer].receptive_field
    x = torch.rand(1, 1, 48, 48, requires_grad=True)
    model(x)
    out = model.outputs[layer]
    h, w = out.shape[-2:]
    for y, x_ in [(h // 2, w // 2), (1, 2), (h - 1, w - 1)]:
        (grad,) = torch.autograd.grad(out[0, 0, y, x_], x, retain_graph=True)
        rows = torch.nonzero(grad[0, 0].abs().sum(1)).flatten()
        cols = torch.nonzero(grad[0, 0].abs().sum(0)).flatten()
        top, left, bottom, right = rf.box(y, x_)
        # the support is the field clipped to the image (max-pool can only shrink it)
        assert rows.min() >= max(0, top) and rows.max() <= min(47, bottom - 1)
        assert cols.min() >= max(0, left) and cols.max() <= min(47, right - 1)
        if layer in ("c1", "c2"):  # no max-pool yet: exact
            assert rows.min() == max(0, top) and rows.max() == min(47, bottom - 1)
            assert cols.min() == max(0, left) and cols.max() == min(47, right - 1)


def test_global_pool_sees_the_whole_image():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Conv2d(4, 2, 1))
    graph = build_graph(model, (3, 20, 20))
    assert graph["2"].receptive_field.whole_image
    assert not graph["0"].receptive_field.whole_image
