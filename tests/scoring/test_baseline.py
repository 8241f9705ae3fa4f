"""Signed Taylor against a mean or reference-image baseline equals the exact replacement, where T is linear."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from viscnn.graph import build_graph
from viscnn.graph.recorder import Recorder
from viscnn.scoring import parse_target, score_batches


@pytest.fixture(scope="module")
def linear_net():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.Conv2d(6, 4, 3, groups=2)).eval()
    model[1].running_mean.uniform_(-1, 1)
    graph = build_graph(model, (3, 10, 10))
    return model, graph, torch.randn(5, 3, 10, 10), torch.randn(3, 10, 10)


def target_with(model, graph, x, **edits):
    recorder = Recorder(graph, stop_at="2", **edits)
    with torch.no_grad():
        recorder.run(model, x)
    return recorder.calls["2"].node_map[:, 1].mean((1, 2)), recorder


@pytest.mark.parametrize("baseline", ["mean", "image"])
def test_baseline_scores_equal_exact_replacement(linear_net, baseline):
    model, graph, x, reference = linear_net
    full, recorder = target_with(model, graph, x)
    if baseline == "mean":
        ref_map = recorder.calls["0"].node_map.mean(0)
        ref_in2 = recorder.calls["2"].input.mean(0)
        chosen = "mean"
    else:
        _, ref = target_with(model, graph, reference[None])
        ref_map, ref_in2 = ref.calls["0"].node_map[0], ref.calls["2"].input[0]
        chosen = reference
    scores = score_batches(model, graph, [(x[:2], None), (x[2:], None)], parse_target("2:1", graph),
                           ("taylor_signed",), baseline=chosen)["taylor_signed"]
    for c in range(6):
        def swap(layer, node_map, c=c):
            if layer != "0":
                return node_map
            node_map = node_map.clone()
            node_map[:, c] = ref_map[c]
            return node_map
        replaced, _ = target_with(model, graph, x, edit_node=swap)
        assert torch.allclose(scores.nodes["0"][c], (full - replaced).mean(), atol=1e-5)
    for out in range(4):
        for local in range(3):
            edge = graph.edge_at("2", out, local)

            def swap_edge(call, edge=edge, out=out, local=local):
                if call.layer.name != "2":
                    return call.output
                kernel = call.weight[out: out + 1, local: local + 1]
                own = F.conv2d(call.input[:, edge.inp: edge.inp + 1], kernel)
                base = F.conv2d(ref_in2[None, edge.inp: edge.inp + 1], kernel)
                output = call.output.clone()
                output[:, out] += (base - own)[:, 0]
                return output
            replaced, _ = target_with(model, graph, x, edit_conv=swap_edge)
            assert torch.allclose(torch.tensor(scores.edge(edge)), (full - replaced).mean(), atol=1e-5)


def test_unknown_baseline(linear_net):
    from viscnn.errors import ViscnnError

    model, graph, x, _ = linear_net
    with pytest.raises(ViscnnError, match="unknown baseline 'median'"):
        score_batches(model, graph, [(x, None)], parse_target("2:1", graph), ("taylor_signed",), baseline="median")
