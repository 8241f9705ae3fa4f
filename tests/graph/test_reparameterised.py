"""Re-parameterisable blocks (RepVGG, MobileOne) at training time: parallel 3x3, 1x1 and identity branches summed."""
import torch
from torch import nn

from tests.graph.helpers import graph_and_replay, sources


class RepBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 6, 3, padding=1)
        self.dense = nn.Sequential(nn.Conv2d(6, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6))
        self.point = nn.Sequential(nn.Conv2d(6, 6, 1, bias=False), nn.BatchNorm2d(6))
        self.identity = nn.BatchNorm2d(6)
        self.out = nn.Conv2d(6, 2, 1)
        for bn in (self.dense[1], self.point[1], self.identity):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)

    def forward(self, x):
        s = torch.relu(self.stem(x))
        return self.out(torch.relu(self.dense(s) + self.point(s) + self.identity(s)))


def test_three_branches_feed_every_channel():
    graph = graph_and_replay(RepBlock(), (3, 8, 8))
    into_out = sources(graph, "out")
    assert into_out["dense.0"] == into_out["point.0"] == into_out["stem"] == list(range(6))
    assert graph["dense.0"].batchnorm == "dense.1" and graph["point.0"].batchnorm == "point.1"
