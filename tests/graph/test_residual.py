"""Residual adds: a layer after `add` receives the channels of both branches."""
import torchvision
from torch import nn

from tests.graph.helpers import graph_and_replay, sources
from viscnn.graph import Node


def test_resnet18_add_merges_both_branches():
    graph = graph_and_replay(torchvision.models.resnet18(weights=None), (3, 224, 224), size=64)
    assert len(graph.conv_layers) == 20 and graph.num_nodes == 4800 and graph.num_edges == 1392832
    # layer1.1.conv1 reads (layer1.0.conv2 + the stem's identity path): both are its sources, channel for channel
    assert sources(graph, "layer1.1.conv1") == {"conv1": list(range(64)), "layer1.0.conv2": list(range(64))}
    assert graph["layer1.1.conv1"].in_sources(5) == [Node("conv1", 5), Node("layer1.0.conv2", 5)]
    # the downsample branch is a conv of its own, reading the block's input
    assert sources(graph, "layer2.0.downsample.0") == sources(graph, "layer2.0.conv1")
    assert set(sources(graph, "layer3.0.conv1")) == {"layer2.0.conv2", "layer2.0.downsample.0", "layer2.1.conv2"}


def test_resnet_depth_counts_the_longest_path():
    graph = graph_and_replay(torchvision.models.resnet18(weights=None), (3, 224, 224), size=32)
    assert graph["conv1"].depth == 1
    assert graph["layer1.0.conv2"].depth == 3
    assert graph["layer1.1.conv1"].depth == 4  # max over its two sources, plus one
    assert graph["layer2.0.downsample.0"].depth == graph["layer2.0.conv1"].depth


class TwoBranch(nn.Module):
    """x -> a, x -> b, a + b: both convs of one depth, side by side."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.a = nn.Conv2d(8, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 8, 1)
        self.head = nn.Conv2d(8, 4, 3)

    def forward(self, x):
        x = self.stem(x).relu()
        return self.head(self.a(x) + self.b(x) * 2.0)


def test_parallel_branches_share_a_depth():
    graph = graph_and_replay(TwoBranch(), (3, 16, 16))
    assert graph["a"].depth == graph["b"].depth == 2 and graph["head"].depth == 3
    assert sources(graph, "head") == {"a": list(range(8)), "b": list(range(8))}
    assert graph.upstream("head") == ["input", "stem", "a", "b"]
