"""Less common ways of writing a CNN: functional convs, reused modules, padding modes, attention maps."""
import torch
import torch.nn.functional as F
from torch import nn

from tests.graph.helpers import graph_and_replay, sources
from viscnn.graph import ALL_CHANNELS


class Functional(nn.Module):
    def __init__(self):
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(4, 3, 3, 3) * 0.2)
        self.shared = nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect")
        self.same = nn.Conv2d(4, 4, 4, padding="same", bias=False)

    def forward(self, x):
        x = F.conv2d(x, self.w1, None, 1, 1).float().contiguous()
        x = self.shared(F.leaky_relu(x))
        x = self.shared(torch.sigmoid(x) * x)  # the same module again
        return self.same(x)


def test_functional_reused_reflect_and_same_padding():
    graph = graph_and_replay(Functional(), (3, 12, 12))
    assert [layer.name for layer in graph.conv_layers] == ["w1", "shared", "shared@2", "same"]
    assert graph["w1"].weight_name == "w1"
    assert graph["shared"].padding_mode == "reflect" and graph["shared"].padding == (1, 1, 1, 1)
    assert graph["shared@2"].weight_name == "shared.weight"
    assert sources(graph, "shared@2") == {"shared": list(range(4))}
    assert graph["same"].padding == (1, 2, 1, 2)  # PyTorch puts the odd pixel at the end


class SpatialAttention(nn.Module):
    """CBAM-style: mean and max over channels -> conv -> sigmoid gate; and SE-style channel gate."""

    def __init__(self):
        super().__init__()
        self.features = nn.Conv2d(3, 6, 3, padding=1)
        self.gate = nn.Conv2d(2, 1, 7, padding=3)
        self.squeeze = nn.Conv2d(6, 2, 1)
        self.excite = nn.Conv2d(2, 6, 1)
        self.out = nn.Conv2d(6, 2, 1)

    def forward(self, x):
        x = self.features(x)
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        x = x * torch.sigmoid(self.gate(pooled))
        se = self.excite(F.relu(self.squeeze(x.mean((2, 3), keepdim=True))))
        return self.out(x * se.sigmoid())


def test_channel_reductions_and_gates():
    graph = graph_and_replay(SpatialAttention(), (3, 16, 16))
    assert sources(graph, "gate") == {"features": [ALL_CHANNELS, ALL_CHANNELS]}
    # the gated map's channel c comes from features:c, and the 1-channel gate broadcast over all channels
    assert sources(graph, "squeeze") == {"features": list(range(6)), "gate": [0] * 6}
    assert graph["gate"].receptive_field.size == (9, 9)  # a mean over channels keeps the field
    assert graph["squeeze"].receptive_field.whole_image  # it reads a mean over H and W
    assert graph["out"].receptive_field.whole_image
    assert set(sources(graph, "out")) == {"features", "gate", "excite"}


def test_trace_leaves_the_model_as_it_was():
    model = Functional().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    graph_and_replay(model, (3, 12, 12))
    model.train()
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not model._forward_hooks and not model.shared._forward_pre_hooks


def test_a_non_zero_constant_pad_is_not_folded():
    class OnesPad(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            return self.conv(F.pad(x, (1, 1, 1, 1), value=1.0))

    graph = graph_and_replay(OnesPad(), (3, 8, 8))
    assert graph["conv"].padding == (0, 0, 0, 0) and graph["conv"].input_shape == (3, 10, 10)
