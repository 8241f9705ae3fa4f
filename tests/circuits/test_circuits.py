"""Circuits: connected, runnable without touching the model, saved and loaded, and `learned` wins."""
import json

import pytest
import torch
from torch import nn

from tests.circuits.small import Small
from viscnn.circuits import Circuit, extract_circuit, pearson, target_output
from viscnn.circuits.connect import connected
from viscnn.errors import ViscnnError
from viscnn.graph import Edge, build_graph
from viscnn.scoring import parse_target


@pytest.fixture(scope="module")
def setup():
    model = Small().eval()
    graph = build_graph(model, (1, 16, 16))
    generator = torch.Generator().manual_seed(0)
    train = [(torch.randn(24, 1, 16, 16, generator=generator), None)]
    held = [(torch.randn(24, 1, 16, 16, generator=generator), None)]
    return model, graph, train, held


def faithfulness(model, graph, circuit, held, target):
    full = torch.cat([target_output(model, graph, x, y, target) for x, y in held])
    masks = {k: v.float() for k, v in circuit.masks.items()}
    return pearson(full, torch.cat([target_output(model, graph, x, y, target, masks=masks) for x, y in held]))


def test_every_kept_edge_lies_on_an_input_to_target_path(setup):
    model, graph, train, _ = setup
    target = parse_target("c4:2", graph)
    circuit = extract_circuit(model, graph, train, target, 0.3, "actgrad")
    assert circuit.num_edges > 0
    again = connected(graph, circuit.masks, target)  # already connected: nothing more to drop
    assert all(torch.equal(again[k], v) for k, v in circuit.masks.items())
    assert circuit.masks["c4"][[c for c in range(8) if c != 2]].sum() == 0  # only edges into the target channel
    nodes = circuit.node_masks()
    # every kept edge of c4 reads a c3 or c2 node that itself has kept kernels (or is the skip path)
    for edge, _ in circuit.edges(graph):
        if edge.layer == "c4":
            assert nodes["c3"][edge.inp] or nodes["c2"][edge.inp]


def test_masks_never_touch_the_model(setup):
    model, graph, train, held = setup
    before = {k: v.clone() for k, v in model.state_dict().items()}
    target = parse_target("c4:2", graph)
    circuit = extract_circuit(model, graph, train, target, 0.1, "learned")
    wrapped = circuit.module(model, graph)
    out = wrapped(held[0][0])
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not torch.allclose(out, model(held[0][0]))  # the circuit differs from the model...
    assert torch.allclose(model(held[0][0]), Small().eval()(held[0][0]))  # ...which still gives its own output


def test_learned_beats_random_and_worst(setup):
    model, graph, train, held = setup
    target = parse_target("c4:2", graph)
    scores = {}
    for method in ("learned", "actgrad", "random", "worst"):
        try:
            circuit = extract_circuit(model, graph, train, target, 0.1, method)
            scores[method] = faithfulness(model, graph, circuit, held, target)
        except ViscnnError:  # an empty circuit reproduces nothing
            scores[method] = 0.0
    assert scores["learned"] > scores["random"] and scores["learned"] > scores["worst"], scores
    assert scores["learned"] >= scores["actgrad"] - 0.02, scores


def test_circuit_file_round_trips(setup, tmp_path):
    model, graph, train, _ = setup
    target = parse_target("c4:2", graph)
    circuit = extract_circuit(model, graph, train, target, 0.2, "actgrad", model_name="small", fingerprint="abc")
    circuit.save(tmp_path / "c.json", graph)
    data = json.loads((tmp_path / "c.json").read_text())
    assert data["target"] == {"text": "c4:2", "layer": "c4", "channel": 2}
    assert {"layer", "out", "in", "score"} <= set(data["edges"][0]) and {"layer", "channel", "score"} <= set(data["nodes"][0])
    back = Circuit.load(tmp_path / "c.json", graph, fingerprint="abc")
    assert back.num_edges == circuit.num_edges and back.target == circuit.target == target
    assert "sign" not in data["edges"][0]  # saved without the model: no kernel signs
    assert all(torch.equal(back.masks[k], v) for k, v in circuit.masks.items())
    assert back.to_json(graph) == circuit.to_json(graph)
    with pytest.raises(ViscnnError, match="another model"):
        Circuit.load(tmp_path / "c.json", graph, fingerprint="other")


def test_circuit_edges_carry_their_kernel_sign():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
                          nn.Conv2d(6, 5, 3, padding=1), nn.BatchNorm2d(5)).eval()
    for bn in (model[1], model[4]):  # negative gammas flip a kernel's sign once folded in
        bn.weight.data = torch.randn(bn.num_features)
        bn.running_var.data = torch.rand(bn.num_features) + 0.5
    graph = build_graph(model, (1, 12, 12))
    train = [(torch.randn(16, 1, 12, 12), None)]
    circuit = extract_circuit(model, graph, train, parse_target("3:2", graph), 0.5, "actgrad")
    edges = circuit.to_json(graph, model)["edges"]
    assert len(edges) == circuit.num_edges and {e["sign"] for e in edges} == {-1, 0, 1}
    for e in edges:  # the slow, obvious way: the BN-folded kernel's sum against its absolute sum
        out, local = graph.kernel_index(Edge(e["layer"], e["out"], e["in"]))
        bn = model.get_submodule(graph[e["layer"]].batchnorm)
        kernel = graph.kernels(model, e["layer"])[out, local].detach() * float(bn.weight[out].detach() / torch.sqrt(bn.running_var[out] + bn.eps))
        ratio = float(kernel.sum() / kernel.abs().sum())
        assert e["sign"] == (1 if ratio > 1 / 3 else -1 if ratio < -1 / 3 else 0), (e, ratio)


def test_bad_inputs(setup, tmp_path):
    model, graph, train, _ = setup
    target = parse_target("c4:2", graph)
    for keep in (0, 1.5, -0.1, float("nan")):
        with pytest.raises(ViscnnError, match="keep fraction must be in"):
            extract_circuit(model, graph, train, target, keep, "actgrad")
    with pytest.raises(ViscnnError, match="unknown circuit method 'best'"):
        extract_circuit(model, graph, train, target, 0.1, "best")
    with pytest.raises(ViscnnError, match="channel 9 of target"):
        parse_target("c4:9", graph)
    other = build_graph(nn.Sequential(nn.Conv2d(1, 8, 3), nn.Conv2d(8, 3, 3)), (1, 8, 8))
    (tmp_path / "c.json").write_text(json.dumps({"format": "viscnn.circuit/1", "target": {"text": "c4:2"},
                                                  "edges": [{"layer": "c4", "out": 2, "in": 1}]}))
    with pytest.raises(ViscnnError, match="not in this model's graph"):
        Circuit.load(tmp_path / "c.json", other)
    (tmp_path / "e.json").write_text(json.dumps({"format": "viscnn.circuit/1", "target": {"text": "c4:2<-1"}, "edges": []}))
    with pytest.raises(ViscnnError, match="cannot score target 'c4:2<-1'"):
        Circuit.load(tmp_path / "e.json", graph)


def test_empty_circuit_is_an_error_not_a_silent_model(setup):
    model, graph, train, _ = setup
    target = parse_target("c4:2", graph)
    with pytest.raises(ViscnnError, match="empty circuit"):
        extract_circuit(model, graph, train, target, 0.001, "worst")


@pytest.mark.parametrize("rule", ["cumulative", "hierarchical"])
def test_other_selection_rules_give_connected_circuits(setup, rule):
    model, graph, train, _ = setup
    target = parse_target("c4:2", graph)
    circuit = extract_circuit(model, graph, train, target, 0.5, "actgrad", rule=rule)
    assert 0 < circuit.num_edges < circuit.upstream_edges
    again = connected(graph, circuit.masks, target)
    assert all(torch.equal(again[k], v) for k, v in circuit.masks.items())
    if rule == "hierarchical":  # at most edges_per_node (4) kernels into any kept node
        assert all(int(m.sum(dim=1).max()) <= 4 for m in circuit.masks.values())
