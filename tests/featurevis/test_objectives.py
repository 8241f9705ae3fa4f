"""Objectives: parsing with clear errors, exact edge maps, node values as scoring reads them, signs."""
import pytest
import torch

from viscnn.errors import ViscnnError
from viscnn.featurevis.objectives import check_objective, evaluate, forward
from viscnn.graph.dissect import kernel_maps
from viscnn.graph.recorder import Recorder, StopForward
from viscnn.scoring.criteria import geometry
from viscnn.scoring.targets import parse_target


@pytest.fixture(scope="module")
def images(fmnist):
    from viscnn.data import open_image_sets

    loaded, _ = fmnist
    return next(open_image_sets("fashion-mnist:test:2")["overall"].batches(loaded.preprocess, 6))[0][:6]


def test_parse_every_kind(fmnist):
    _, graph = fmnist
    assert str(parse_target("features.6:3", graph)) == "features.6:3"
    assert parse_target("features.6:3:neuron", graph).kind == "neuron"
    assert parse_target("features.6:3:1,2", graph).position == (1, 2)
    edge = parse_target("features.3:5<-7", graph)
    assert (edge.kind, edge.layer, edge.channel, edge.inp) == ("edge", "features.3", 5, 7)
    assert parse_target("features.3:5 <- 7:neuron", graph).kind == "edge_neuron"
    assert parse_target("logit:4", graph).class_index == 4
    assert parse_target("class:Bag", graph, ["T-shirt", "Bag"]).class_index == 1
    assert parse_target("features.6:dir(1=0.5,2=-1)", graph).weights == ((1, 0.5), (2, -1.0))
    assert parse_target("features.6:3", graph).negated().negative
    assert not parse_target("-features.6:3", graph).negated().negative
    assert str(parse_target("-features.3:5<-7", graph)) == "-features.3:5<-7"


@pytest.mark.parametrize("text, message", [
    ("nolayer:3", "unknown conv layer"),
    ("features.6:96", "out of range"),
    ("features.3:64<-0", "output channel 64"),
    ("features.3:0<-32", "input channel 32"),
    ("nolayer:1<-2", "unknown conv layer"),
    ("features.3:1<-x", "cannot read edge"),
    ("features.6:three", "cannot read target"),
    ("loss", "not a render objective"),
])
def test_bad_objectives_are_clear_errors(fmnist, text, message):
    _, graph = fmnist
    with pytest.raises(ViscnnError, match=message):
        check_objective(parse_target(text, graph))


def test_depthwise_cross_channel_edges_do_not_exist(lite0):
    _, graph = lite0
    layer = graph["_blocks.1._depthwise_conv"]
    assert layer.in_per_group == 1
    with pytest.raises(ViscnnError, match="does not exist: layer _blocks.1._depthwise_conv is depthwise.*<-4"):
        parse_target("_blocks.1._depthwise_conv:4<-5", graph)
    assert parse_target("_blocks.1._depthwise_conv:4<-4", graph).inp == 4


def test_edge_values_are_the_exact_single_kernel_maps(fmnist, images):
    loaded, graph = fmnist
    pairs = [(5, 7), (0, 31), (63, 0), (5, 8), (12, 12), (1, 2)]
    objectives = [parse_target(f"features.3:{o}<-{i}", graph) for o, i in pairs]
    values, calls = forward(loaded.module, graph, objectives, images)
    call = calls["features.3"]
    geo = geometry(call)
    maps = kernel_maps(geo.pad(call.input), call.weight, geo, 0, call.input.shape[1])  # [N, C_in, C_out, H, W]
    expected = torch.stack([maps[b, i, o].mean() for b, (o, i) in enumerate(pairs)])
    assert torch.allclose(values, expected, atol=1e-5)
    # the kernel maps of one output channel sum (with the bias) to the conv's own output
    assert torch.allclose(maps[:, :, 5].sum(1) + call.bias[5], call.output[:, 5], atol=1e-4)
    neuron = [parse_target(f"features.3:{o}<-{i}:neuron", graph) for o, i in pairs]
    centre = forward(loaded.module, graph, neuron, images)[0]
    assert torch.allclose(centre, torch.stack([maps[b, i, o, 7, 7] for b, (o, i) in enumerate(pairs)]), atol=1e-5)


def test_node_values_match_the_scoring_targets_and_negatives_flip(fmnist, images):
    loaded, graph = fmnist
    texts = ["features.6:3", "features.8:1:neuron", "features.0:0:2,3", "features.6:dir(1=0.5,2=-1)", "logit:3", "logit:0"]
    objectives = [parse_target(t, graph) for t in texts]
    values, _ = forward(loaded.module, graph, objectives, images)
    recorder = Recorder(graph)
    with torch.no_grad(), recorder:
        logits = loaded.module(images)
    for b, text in enumerate(texts):
        target = parse_target(text, graph)
        expected = target.from_output(logits, torch.zeros(6, dtype=torch.long)) if text.startswith("logit") else \
            target.from_map(recorder.calls[target.layer].node_map)
        assert torch.allclose(values[b], expected[b], atol=1e-5), text
    negated = forward(loaded.module, graph, [o.negated() for o in objectives], images)[0]
    assert torch.allclose(negated, -values)


def test_forward_stops_at_the_deepest_needed_layer(fmnist, images):
    loaded, graph = fmnist
    _, calls = forward(loaded.module, graph, [parse_target("features.3:1", graph)] * 6, images)
    assert set(calls) == {"features.3"}
    recorder = Recorder(graph, stop_at="features.3")
    with recorder, pytest.raises(StopForward):
        loaded.module(images)
    assert "features.6" not in recorder.calls


def test_neuron_outside_the_map_is_an_error(fmnist, images):
    loaded, graph = fmnist
    with pytest.raises(ViscnnError, match="outside the 7x7 map"):
        forward(loaded.module, graph, [parse_target("features.6:1:9,9", graph)], images[:1])


def test_evaluate_needs_logits_for_logit_objectives(fmnist):
    _, graph = fmnist
    with pytest.raises(ViscnnError, match="logit objectives"):
        evaluate([parse_target("logit:1", graph)], {}, None)
