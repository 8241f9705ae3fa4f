"""Concatenations offset channel indices (inception blocks, DenseNet-style growth)."""
import torch
import torchvision
from torch import nn

from tests.graph.helpers import graph_and_replay, sources
from viscnn.graph import NO_SOURCE


def test_googlenet_inception_concat_offsets():
    graph = graph_and_replay(torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=True),
                             (3, 224, 224), size=64)
    assert len(graph.conv_layers) == 57 and graph.num_nodes == 7280
    widths = {"inception3a.branch1.conv": 64, "inception3a.branch2.1.conv": 128,
              "inception3a.branch3.1.conv": 32, "inception3a.branch4.1.conv": 32}
    layer = graph["inception3b.branch1.conv"]
    assert layer.in_channels == sum(widths.values()) == 256
    offset = 0
    for name, width in widths.items():
        array = dict(layer.sources)[name]
        assert (array[offset: offset + width] == torch.arange(width).numpy()).all()
        assert (array[:offset] == NO_SOURCE).all() and (array[offset + width:] == NO_SOURCE).all()
        offset += width


class DenseGrowth(nn.Module):
    """Each conv sees the concat of everything before it, in a shuffled order, through a slice."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 4, 3, padding=1)
        self.c2 = nn.Conv2d(7, 5, 3, padding=1)
        self.c3 = nn.Conv2d(6, 2, 1)

    def forward(self, x):
        a = self.c1(x)
        b = self.c2(torch.cat([x, a], dim=1))
        both = torch.cat((b, a), 1)
        return self.c3(both[:, 3:])  # channels 3,4 of b and 0..3 of a


def test_cat_and_slices_map_each_channel():
    graph = graph_and_replay(DenseGrowth(), (3, 12, 12))
    assert sources(graph, "c2") == {"input": [0, 1, 2, -1, -1, -1, -1], "c1": [-1, -1, -1, 0, 1, 2, 3]}
    assert sources(graph, "c3") == {"c2": [3, 4, -1, -1, -1, -1], "c1": [-1, -1, 0, 1, 2, 3]}
