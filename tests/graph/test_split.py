"""Splits and chunks (Res2Net's scales, DPN's dual paths, CSP's cross-stage halves) keep each channel's source."""
import torch
from torch import nn

from tests.graph.helpers import graph_and_replay, sources
from viscnn.graph import NO_SOURCE


class Res2NetLike(nn.Module):
    """Split into 4 scales; each scale's conv also adds the previous scale's output; concat back."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 1)
        self.scales = nn.ModuleList(nn.Conv2d(2, 2, 3, padding=1) for _ in range(3))
        self.out = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        parts = torch.split(self.stem(x), 2, dim=1)
        outs, previous = [], None
        for k, conv in enumerate(self.scales):
            y = parts[k] if previous is None else parts[k] + previous
            previous = conv(y)
            outs.append(previous)
        return self.out(torch.cat([*outs, parts[3]], dim=1))


class DualPath(nn.Module):
    """DPN: one conv's output sliced into a residual part (added) and a dense part (concatenated)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 6, 1)
        self.block = nn.Conv2d(6, 6, 3, padding=1)
        self.out = nn.Conv2d(8, 3, 1)

    def forward(self, x):
        s = self.stem(x)
        y = self.block(s)
        residual = s[:, :4] + y[:, :4]
        dense = torch.cat([s[:, 4:], y[:, 4:]], dim=1)
        return self.out(torch.cat([residual, dense], dim=1))


def test_res2net_scales():
    graph = graph_and_replay(Res2NetLike(), (3, 8, 8))
    assert sources(graph, "scales.0")["stem"] == [0, 1]
    assert sources(graph, "scales.1")["stem"] == [2, 3] and sources(graph, "scales.1")["scales.0"] == [0, 1]
    into_out = sources(graph, "out")
    assert into_out["stem"][6:] == [6, 7] and into_out["scales.2"][4:6] == [0, 1]


def test_dual_path_slices():
    graph = graph_and_replay(DualPath(), (3, 8, 8))
    into_out = sources(graph, "out")
    assert into_out["stem"] == [0, 1, 2, 3, 4, 5, NO_SOURCE, NO_SOURCE]
    assert into_out["block"] == [0, 1, 2, 3, NO_SOURCE, NO_SOURCE, 4, 5]
