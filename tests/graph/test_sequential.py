"""Plain sequential CNNs: AlexNet (the paper's model) and VGG16."""
import numpy as np
import torchvision

from tests.graph.helpers import graph_and_replay, sources
from viscnn.graph import INPUT, Edge, Node


def test_alexnet_counts_match_the_paper():
    graph = graph_and_replay(torchvision.models.alexnet(weights=None), (3, 224, 224), size=96)
    assert [layer.name for layer in graph.conv_layers] == ["features.0", "features.3", "features.6", "features.8", "features.10"]
    assert graph.num_nodes == 1152
    assert graph.num_edges == 250048
    assert [layer.out_channels for layer in graph.conv_layers] == [64, 192, 384, 256, 256]


def test_alexnet_layers_chain_channel_to_channel():
    graph = graph_and_replay(torchvision.models.alexnet(weights=None), (3, 224, 224), size=64)
    assert sources(graph, "features.0") == {INPUT: [0, 1, 2]}
    assert sources(graph, "features.3") == {"features.0": list(range(64))}  # through ReLU and max-pool
    assert [graph[n].depth for n in graph.layers] == [0, 1, 2, 3, 4, 5]
    layer = graph["features.3"]
    assert layer.in_sources(7) == [Node("features.0", 7)]
    assert graph.has_edge(Edge("features.3", 191, 63)) and not graph.has_edge(Edge("features.3", 192, 0))


def test_alexnet_receptive_fields():
    graph = graph_and_replay(torchvision.models.alexnet(weights=None), (3, 224, 224), size=64)
    rf = graph["features.0"].receptive_field
    assert rf.size == (11, 11) and rf.stride == (4, 4) and rf.offset == (-2, -2)  # 11x11 stride 4 pad 2
    rf = graph["features.3"].receptive_field  # after 3x3/2 max-pool and a 5x5 pad-2 conv
    assert rf.size == (11 + 2 * 4 + 4 * 8, ) * 2 and rf.stride == (8, 8)
    assert graph["features.10"].receptive_field.size == (163, 163)


def test_vgg16_replays_and_counts():
    graph = graph_and_replay(torchvision.models.vgg16(weights=None), (3, 224, 224), size=48)
    assert len(graph.conv_layers) == 13
    assert graph.num_nodes == 4224
    assert graph.num_edges == sum(layer.out_channels * layer.in_channels for layer in graph.conv_layers)
    assert np.all(graph["features.28"].sources[0][1] == np.arange(512))


def test_fmnist_convnet_graph_and_replay():
    from viscnn.models import load_model

    for name in ("fmnist-convnet", "fmnist-convnet-sparse"):
        loaded = load_model(name)
        graph = graph_and_replay(loaded.module, loaded.input_shape, images=4)
        assert len(graph.conv_layers) == 5 and graph["input"].out_channels == 1
        assert all(layer.groups == 1 and layer.batchnorm is None for layer in graph.conv_layers)
