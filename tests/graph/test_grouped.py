"""Grouped convs and channel shuffles (ShuffleNet-style view/transpose/view)."""
import torch
from torch import nn

from tests.graph.helpers import graph_and_replay, sources
from viscnn.graph import Edge


class GroupedShuffle(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 12, 3, padding=1)
        self.grouped = nn.Conv2d(12, 8, 3, padding=1, groups=4)  # 4 groups: 3 in, 2 out each
        self.after = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        x = self.grouped(self.a(x).relu())
        n, c, h, w = x.shape
        x = x.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)  # channel shuffle, 2 groups
        return self.after(x)


def test_grouped_conv_edges_stay_inside_their_group():
    graph = graph_and_replay(GroupedShuffle(), (3, 10, 10))
    layer = graph["grouped"]
    assert layer.groups == 4 and layer.in_per_group == 3 and layer.out_per_group == 2
    assert layer.num_edges == 8 * 3
    assert graph.num_edges == 12 * 3 + 8 * 3 + 4 * 8
    # out 5 is in group 2, which reads input channels 6, 7, 8
    assert [graph.edge_at("grouped", 5, k).inp for k in range(3)] == [6, 7, 8]
    assert graph.has_edge(Edge("grouped", 5, 8)) and not graph.has_edge(Edge("grouped", 5, 9))
    for out in range(8):
        for local in range(3):
            assert graph.kernel_index(graph.edge_at("grouped", out, local)) == (out, local)


def test_channel_shuffle_is_followed_exactly():
    graph = graph_and_replay(GroupedShuffle(), (3, 10, 10))
    # view(n, 2, 4) -> transpose -> reshape: new channel k comes from old (k % 2) * 4 + k // 2
    assert sources(graph, "after") == {"grouped": [(k % 2) * 4 + k // 2 for k in range(8)]}


def test_grouped_replay_with_many_chunks():
    from viscnn.graph.dissect import ConvGeometry, replay_conv

    conv = nn.Conv2d(12, 8, 3, stride=2, padding=2, dilation=2, groups=4)
    x = torch.randn(2, 12, 15, 15)
    geometry = ConvGeometry((2, 2), (2, 2, 2, 2), (2, 2), 4)
    rebuilt = replay_conv(x, conv.weight.detach(), conv.bias.detach(), geometry, max_bytes=1)  # one channel a chunk
    assert torch.allclose(rebuilt, conv(x).detach(), atol=1e-5)
