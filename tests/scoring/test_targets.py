"""Target parsing: every form, and each fault named."""
import pytest
import torch
import torchvision

from viscnn.errors import ViscnnError
from viscnn.graph import Edge, Node, build_graph
from viscnn.scoring.targets import Target, check_scorable, parse_target


@pytest.fixture(scope="module")
def graph():
    return build_graph(torchvision.models.alexnet(weights=None), (3, 64, 64))


@pytest.mark.parametrize("text, kind", [
    ("loss", "loss"), ("logit:3", "logit"), ("class:goldfish", "logit"), ("goldfish", "logit"),
    ("features.3:7", "node"), ("features.3:7:neuron", "neuron"), ("features.3:7:2,1", "neuron"),
    ("features.3:dir(1=0.5,7=-1e-1)", "direction"), ("features.3:7<-2", "edge"), ("features.3:7 <- 2:neuron", "edge_neuron"),
    ("features.3:7<-2:3,1", "edge_neuron"), ("-features.3:7", "node"), ("-logit:3", "logit"), ("-loss", "loss"),
    ("-features.3:7<-2", "edge"),
])
def test_forms(graph, text, kind):
    target = parse_target(text, graph, ["tench", "goldfish"])
    assert target.kind == kind and target.negative == text.startswith("-")
    if kind == "logit":
        assert target.class_index in (1, 3)
    assert parse_target(str(target), graph, ["tench", "goldfish"]) == target
    assert target.negated().negated() == target and target.negated().negative != target.negative


def test_the_ids_inside_targets(graph):
    edge = parse_target("features.3:7<-2:3,1", graph)
    assert (edge.edge, edge.node, edge.position, str(edge)) == (Edge("features.3", 7, 2), Node("features.3", 7), (3, 1),
                                                                 "features.3:7<-2:3,1")
    assert parse_target("features.3:7:neuron", graph).node == Node("features.3", 7)
    assert parse_target("features.3:dir(1=0.5,7=-1)", graph).channels == [1, 7]
    assert str(Target("edge", "features.3", 7, inp=2, negative=True)) == "-features.3:7<-2"


def test_the_fields_each_kind_guarantees(graph):
    assert parse_target("features.3:dir(1=0.5)", graph).map_layer == "features.3"
    assert parse_target("-logit:3", graph).logit_class == 3
    faults = [(Target("loss"), "map_layer", "reads the model's output"),
              (parse_target("features.3:7", graph), "logit_class", "is not a class logit"),
              (parse_target("features.3:7:neuron", graph), "edge", "is not an edge")]
    for target, field, message in faults:
        with pytest.raises(ValueError, match=message):
            getattr(target, field)


def test_scoring_takes_every_kind_but_edges(graph):
    assert check_scorable(parse_target("-features.3:7:neuron", graph)).negative
    for text in ["features.3:7<-2", "features.3:7<-2:neuron"]:
        with pytest.raises(ViscnnError, match=f"cannot score target '{text}': an edge is a render objective only; "
                                              "score its node features.3:7"):
            check_scorable(parse_target(text, graph))


def test_negative_targets_flip_their_values(graph):
    maps, logits = torch.randn(2, 192, 3, 3), torch.randn(2, 5)
    for text in ["features.3:7", "features.3:7:1,2", "features.3:dir(1=0.5,7=-1)"]:
        target = parse_target(text, graph)
        assert torch.equal(target.negated().from_map(maps), -target.from_map(maps))
    for target in [Target("logit", class_index=3), Target("loss")]:
        labels = torch.tensor([1, 4])
        assert torch.equal(target.negated().from_output(logits, labels), -target.from_output(logits, labels))


@pytest.mark.parametrize("text, message", [
    ("features.99:1", "unknown conv layer 'features.99'"),
    ("features.3:0<-64", "input channel 64 of target 'features.3:0<-64' is out of range"),
    ("features.3:0<-x", "cannot read edge"),
    ("features.3:dir(1=1e999)", "has a weight too large to be a number"),
    ("features.3:dir(999=1)", "channel 999 of target"),
    ("features.3:192", "channel 192 of target 'features.3:192' is out of range: layer features.3 has 192 channels"),
    ("input:0", "no layer lies upstream"),
    ("class:platypus", "unknown class 'platypus'"),
    ("features.3:dir(1=x)", "cannot read direction weight"),
    ("features.3:1:center", "cannot read target"),
    ("features.3", "cannot read target"),
    ("", "cannot read target ''"), ("-", "cannot read target '-'"), ("  ", "cannot read target '  '"),
])
def test_faults(graph, text, message):
    with pytest.raises(ViscnnError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_target(text, graph, ["tench", "goldfish"])
