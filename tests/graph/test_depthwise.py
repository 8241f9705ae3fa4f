"""Depthwise convs (EfficientNet-Lite0): only the kernels that exist are edges; TF 'same' padding is folded."""
import pytest

from tests.graph.helpers import check_replay, sources
from viscnn.graph import Edge


@pytest.fixture(scope="module")
def lite0_graph(lite0):
    """The session's Lite0 graph, once its convs are checked to replay from their kernels."""
    loaded, graph = lite0
    check_replay(loaded.module, graph, loaded.input_shape)
    return graph


def test_counts(lite0_graph):
    assert len(lite0_graph.conv_layers) == 49
    assert lite0_graph.num_nodes == 21008
    assert lite0_graph.num_edges == 3155168


def test_depthwise_edges_are_channel_to_channel(lite0_graph):
    layer = lite0_graph["_blocks.1._depthwise_conv"]
    assert layer.groups == layer.in_channels == layer.out_channels == 96
    assert layer.num_edges == 96 and layer.in_per_group == 1
    assert lite0_graph.has_edge(Edge(layer.name, 5, 5)) and not lite0_graph.has_edge(Edge(layer.name, 5, 6))
    assert lite0_graph.edge_at(layer.name, 7, 0) == Edge(layer.name, 7, 7)
    assert lite0_graph.kernel_index(Edge(layer.name, 7, 7)) == (7, 0)


def test_static_same_padding_is_folded_into_the_layer(lite0_graph):
    stem = lite0_graph["_conv_stem"]
    assert stem.padding == (0, 1, 0, 1)  # ZeroPad2d inside Conv2dStaticSamePadding, conv.padding is 0
    assert stem.input_shape == (3, 224, 224) and stem.output_shape == (32, 112, 112)
    assert lite0_graph["_blocks.3._depthwise_conv"].padding == (1, 2, 1, 2)  # 5x5 stride 2 on 56 px
    rf = stem.receptive_field
    assert rf.size == (3, 3) and rf.stride == (2, 2) and rf.offset == (0, 0)


def test_residual_chain_in_efficientnet(lite0_graph):
    # block 3's expand conv reads block 1's projection plus block 2's (the skip add)
    assert set(sources(lite0_graph, "_blocks.3._expand_conv")) == {"_blocks.1._project_conv", "_blocks.2._project_conv"}


def test_batchnorm_recorded_but_ids_stay_the_convs(lite0_graph):
    assert lite0_graph["_conv_stem"].batchnorm == "_bn0"
    assert lite0_graph["_blocks.0._depthwise_conv"].batchnorm == "_blocks.0._bn1"
    assert all(layer.batchnorm for layer in lite0_graph.conv_layers)
