"""A linear head on flattened features: recorded as a head, mapped back to the channels it reads."""
import torch
import torchvision
from torch import nn

from tests.graph.helpers import graph_and_replay


def test_alexnet_classifier_reads_every_position_of_every_channel():
    graph = graph_and_replay(torchvision.models.alexnet(weights=None), (3, 224, 224), size=64)
    assert list(graph.heads) == ["classifier.1", "classifier.4", "classifier.6"]
    first = graph.heads["classifier.1"]
    assert first.in_channels == 9216 and first.out_channels == 4096
    (source, array), = first.sources
    assert source == "features.10"
    # flatten of [256, 6, 6]: feature f is channel f // 36
    assert (torch.as_tensor(array) == torch.arange(9216) // 36).all()
    assert graph.heads["classifier.6"].source_layers == ["classifier.4"]
    assert [name for name, _ in graph.outputs] == ["classifier.6"]


def test_heads_are_not_counted_as_filters():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    graph = graph_and_replay(model, (1, 8, 8))
    assert graph.num_nodes == 4 and graph.num_edges == 4
    assert graph.heads["4"].sources[0][1].tolist() == [0, 1, 2, 3]
    assert graph["0"].receptive_field.size == (3, 3)
