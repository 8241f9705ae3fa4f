"""Channel gating (squeeze-excitation, split attention): a map scaled per channel by a vector computed from it.

The gate's own convs (on the pooled 1x1 map) are layers of the graph; the gated channel keeps its filter as
its source, and the graph also records that the gate reads every channel.
"""
import torch
from torch import nn

from tests.graph.helpers import graph_and_replay, sources


class SqueezeExcite(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.reduce = nn.Conv2d(8, 2, 1)
        self.expand = nn.Conv2d(2, 8, 1)
        self.out = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        x = torch.relu(self.conv(x))
        gate = torch.sigmoid(self.expand(torch.relu(self.reduce(x.mean(dim=(2, 3), keepdim=True)))))
        return self.out(x * gate)


class SplitAttention(nn.Module):
    """ResNeSt's radix-2 split attention: two branches, weighted by a softmax over the radix axis."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, groups=1)
        self.fc1 = nn.Conv2d(4, 4, 1)
        self.fc2 = nn.Conv2d(4, 8, 1)
        self.out = nn.Conv2d(4, 2, 1)

    def forward(self, x):
        y = torch.relu(self.conv(x))
        a, b = torch.split(y, 4, dim=1)
        gap = (a + b).mean(dim=(2, 3), keepdim=True)
        attention = self.fc2(torch.relu(self.fc1(gap))).view(x.shape[0], 2, 4, 1, 1).softmax(dim=1)
        return self.out(a * attention[:, 0] + b * attention[:, 1])


def test_squeeze_excitation():
    graph = graph_and_replay(SqueezeExcite(), (3, 8, 8))
    assert sources(graph, "out")["conv"] == list(range(8))
    assert "expand" in sources(graph, "out")  # the gate reads every channel through reduce/expand


def test_split_attention():
    graph = graph_and_replay(SplitAttention(), (3, 8, 8))
    into_out = sources(graph, "out")
    assert into_out["conv"] == [0, 1, 2, 3]  # a + b: the first array is branch a
    assert {name for name, _ in graph["out"].sources} >= {"conv", "fc2"}
