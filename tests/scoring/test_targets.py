"""Target parsing: every form, and each fault named."""
import pytest
import torchvision

from viscnn.errors import ViscnnError
from viscnn.graph import build_graph
from viscnn.scoring.targets import parse_target


@pytest.fixture(scope="module")
def graph():
    return build_graph(torchvision.models.alexnet(weights=None), (3, 64, 64))


@pytest.mark.parametrize("text, kind", [
    ("loss", "loss"), ("logit:3", "logit"), ("class:goldfish", "logit"), ("goldfish", "logit"),
    ("features.3:7", "node"), ("features.3:7:neuron", "neuron"), ("features.3:7:2,1", "neuron"),
    ("features.3:dir(1=0.5,7=-1e-1)", "direction"),
])
def test_forms(graph, text, kind):
    target = parse_target(text, graph, ["tench", "goldfish"])
    assert target.kind == kind
    if kind == "logit":
        assert target.class_index in (1, 3)
    assert parse_target(str(target), graph, ["tench", "goldfish"]) == target


@pytest.mark.parametrize("text, message", [
    ("features.99:1", "unknown layer 'features.99'"),
    ("features.3:192", "channel 192 of target 'features.3:192' is out of range: layer features.3 has 192 channels"),
    ("input:0", "no layer lies upstream"),
    ("class:platypus", "unknown class 'platypus'"),
    ("features.3:dir(1=x)", "cannot read direction weight"),
    ("features.3:1:center", "cannot read target"),
    ("features.3", "cannot read target"),
])
def test_faults(graph, text, message):
    with pytest.raises(ViscnnError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_target(text, graph, ["tench", "goldfish"])
