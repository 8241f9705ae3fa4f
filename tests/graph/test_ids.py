"""Node, edge and unit ids: str() is the one canonical text and parses back; each fault is named."""
import pytest
from torch import nn

from viscnn.errors import ViscnnError
from viscnn.graph import Edge, Node, Unit, build_graph, parse_edge, parse_node, parse_unit
from viscnn.graph.ids import check_edge, parse_node_range, parse_position


class Net(nn.Module):
    """A plain, a grouped and a depthwise conv (named with a ':'), and a conv called twice."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.grouped = nn.Conv2d(8, 8, 3, padding=1, groups=2)
        self.add_module("dw:x", nn.Conv2d(8, 8, 3, padding=1, groups=8))
        self.shared = nn.Conv2d(8, 8, 1)

    def forward(self, x):
        x = self.shared(getattr(self, "dw:x")(self.grouped(self.stem(x))))
        return self.shared(x)


@pytest.fixture(scope="module")
def graph():
    return build_graph(Net().eval(), (3, 6, 5))


def test_every_node_edge_and_unit_round_trips(graph):
    assert [layer.name for layer in graph.conv_layers] == ["stem", "grouped", "dw:x", "shared", "shared@2"]
    for layer in graph.conv_layers:
        for node in graph.nodes(layer.name):
            assert parse_node(str(node), graph) == node
            for y, x in [(0, 0), (5, 4)]:
                unit = Unit(node.layer, node.channel, y, x)
                assert str(unit) == f"{node}:{y},{x}" and parse_unit(str(unit), graph) == unit
            assert parse_unit(str(node), graph) == Unit(node.layer, node.channel)
        for out in range(layer.out_channels):
            for local in range(layer.in_per_group):
                edge = graph.edge_at(layer.name, out, local)
                assert str(edge) == f"{layer.name}:{out}<-{edge.inp}" and parse_edge(str(edge), graph) == edge


def test_spellings_read_to_the_canonical_ids(graph):
    assert parse_edge(" grouped:5 <- 7 ", graph) == Edge("grouped", 5, 7)
    assert parse_node("dw:x:3", graph) == Node("dw:x", 3) and str(Node("dw:x", 3)) == "dw:x:3"
    assert parse_unit("shared@2:1:2,3", graph) == Unit("shared@2", 1, 2, 3)
    assert Unit("stem", 1).position is None and Unit("stem", 1, 2, 3).position == (2, 3)
    assert Edge("grouped", 5, 7).node == Node("grouped", 5) and Unit("stem", 1, 2, 3).node == Node("stem", 1)
    assert parse_node_range("grouped:2-4", graph) == [Node("grouped", c) for c in (2, 3, 4)]
    assert parse_position("dw:x:5,4", graph, what="--unit") == ("dw:x", 5, 4)
    with pytest.raises(ValueError):
        Unit("stem", 1, 2)


@pytest.mark.parametrize("parse, text, message", [
    (parse_node, "stem", "cannot read node 'stem': use LAYER:CHANNEL"),
    (parse_node, "stem:-1", "cannot read node 'stem:-1'"),
    (parse_node, "nope:1", "unknown conv layer 'nope' in node 'nope:1': choose from stem, grouped, dw:x"),
    (parse_node, "input:0", "unknown conv layer 'input' in node 'input:0'"),
    (parse_node, "stem:8", "channel 8 of node 'stem:8' is out of range: layer stem has 8 channels"),
    (parse_edge, "stem:1<-", "cannot read edge 'stem:1<-': use LAYER:OUT<-IN"),
    (parse_edge, "stem:1:2", "cannot read edge 'stem:1:2'"),
    (parse_edge, "nope:1<-2", "unknown conv layer 'nope' in edge 'nope:1<-2'"),
    (parse_edge, "stem:8<-0", "output channel 8 of edge 'stem:8<-0' is out of range: layer stem has 8 output channels"),
    (parse_edge, "stem:0<-3", "input channel 3 of edge 'stem:0<-3' is out of range: layer stem has 3 input channels"),
    (parse_edge, "grouped:5<-1", "edge 'grouped:5<-1' does not exist: layer grouped is grouped (2 groups), so output "
                                 "channel 5 reads only input channels 4-7 (try grouped:5<-4)"),
    (parse_edge, "dw:x:3<-4", "edge 'dw:x:3<-4' does not exist: layer dw:x is depthwise, so output channel 3 reads "
                              "only input channel 3 (try dw:x:3<-3)"),
    (parse_unit, "stem", "cannot read unit 'stem': use LAYER:CHANNEL or LAYER:CHANNEL:Y,X"),
    (parse_unit, "stem:1:2", "unknown conv layer 'stem:1' in unit 'stem:1:2'"),  # the layer is what precedes C
    (parse_unit, "stem:9:0,0", "channel 9 of unit 'stem:9:0,0' is out of range"),
    (parse_unit, "stem:1:6,0", "position 6,0 is outside the 6x5 map of layer stem"),
    (parse_unit, "stem:1:0,5", "position 0,5 is outside the 6x5 map of layer stem"),
    (parse_node_range, "stem:3-1", "empty channel range in node range 'stem:3-1'"),
    (parse_node_range, "stem:3-8", "channel 8 of node range 'stem:3-8' is out of range"),
    (parse_node_range, "stem:3", "cannot read node range 'stem:3'"),
    (parse_position, "stem:1", "cannot read position 'stem:1': use LAYER:Y,X"),
    (parse_position, "input:1,1", "unknown conv layer 'input' in position 'input:1,1'"),
    (parse_position, "stem:6,0", "position 6,0 is outside the 6x5 map of layer stem"),
])
def test_each_fault_is_named(graph, parse, text, message):
    with pytest.raises(ViscnnError) as caught:
        parse(text, graph)
    assert message in str(caught.value)


def test_checks_of_typed_ids_name_the_caller(graph):
    with pytest.raises(ViscnnError, match="input channel 9 of target 'stem:0<-9'"):
        check_edge(Edge("stem", 0, 9), graph, what="target")
