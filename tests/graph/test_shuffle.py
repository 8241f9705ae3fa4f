"""A channel shuffle (ShuffleNet: reshape, transpose, reshape) moves channels: the graph follows each one."""
import torch
from torch import nn

from tests.graph.helpers import graph_and_replay, sources


class Shuffle(nn.Module):
    def __init__(self, groups: int = 2):
        super().__init__()
        self.groups = groups
        self.first = nn.Conv2d(3, 8, 3, padding=1)
        self.second = nn.Conv2d(8, 8, 1, groups=2)

    def forward(self, x):
        x = torch.relu(self.first(x))
        n, c, h, w = x.shape
        x = x.view(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)
        return self.second(x)


def test_shuffled_channels_come_from_the_right_filters():
    graph = graph_and_replay(Shuffle(), (3, 8, 8))
    # channel k of the shuffle is channel (k % 2) * 4 + k // 2 of `first`
    assert sources(graph, "second")["first"] == [0, 4, 1, 5, 2, 6, 3, 7]
