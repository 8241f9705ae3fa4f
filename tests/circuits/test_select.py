"""Selection: `keep` is the fraction of the target's upstream kernels the circuit really has, for every
method and rule; `fit_connected` against a slow, obviously correct reference."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from tests.circuits.small import Small
from viscnn.circuits import extract_circuit
from viscnn.circuits.build import budget
from viscnn.circuits.circuit import candidate_kernels
from viscnn.circuits.connect import connected
from viscnn.circuits.select import fit_connected, priority_cumulative, priority_hierarchical, priority_top
from viscnn.graph import build_graph
from viscnn.scoring import parse_target


class WideHead(nn.Module):
    """A small trunk and a head conv with far more kernels than the rest together (as GhostNet's 1.2M
    kernel conv_head): per-layer-normalised top-k used to give the head no kernel, so no circuit at all."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.mid = nn.Conv2d(8, 16, 3, padding=1)
        self.head = nn.Conv2d(16, 400, 1)
        self.fc = nn.Linear(400, 5)

    def forward(self, x):
        x = torch.relu(self.mid(torch.relu(self.stem(x))))
        return self.fc(torch.relu(self.head(x)).mean(dim=(2, 3)))


def _count(masks):
    return int(sum(int(m.sum()) for m in masks.values()))


def _reference(priority, graph, target, budget):
    """The longest prefix of the order whose connected part fits the budget, trying every prefix."""
    names = list(priority)
    flat = torch.cat([priority[n].flatten() for n in names]).numpy()
    order = [i for i in np.argsort(-flat, kind="stable") if np.isfinite(flat[i])]
    best = 0
    for length in range(len(order) + 1):
        keep = np.zeros(flat.size, dtype=bool)
        keep[order[:length]] = True
        masks, start = {}, 0
        for name in names:
            size = priority[name].numel()
            masks[name] = torch.from_numpy(keep[start:start + size]).view(priority[name].shape)
            start += size
        count = _count(connected(graph, masks, target))
        if count <= budget:
            best = max(best, count)
    return best


@pytest.fixture(scope="module")
def small():
    model = Small().eval()
    graph = build_graph(model, (1, 16, 16))
    images = torch.randn(16, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    return model, graph, [(images, None)]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("target_text", ["c4:2", "c3:5"])
def test_fit_is_at_least_the_longest_fitting_prefix_and_never_over(small, seed, target_text):
    _, graph, _ = small
    target = parse_target(target_text, graph)
    candidates = candidate_kernels(graph, target)
    generator = torch.Generator().manual_seed(seed)
    priority = priority_top({n: torch.rand(c.shape, generator=generator) ** 4 for n, c in candidates.items()}, candidates)
    size = _count(candidates)
    for fraction in (0.02, 0.1, 0.3):
        wanted = max(1, math.ceil(fraction * size))
        kept = fit_connected(priority, graph, target, wanted)
        assert _count(kept) <= wanted
        if fraction >= 0.1 and target_text == "c4:2":  # enough kernels attach one by one: exactly the size asked
            assert _count(kept) == wanted
        assert _count(kept) >= _reference(priority, graph, target, wanted)
        again = connected(graph, kept, target)
        assert all(torch.equal(again[n], m) for n, m in kept.items())  # nothing left to drop


@pytest.mark.parametrize("method", ["actgrad", "magnitude", "random", "worst", "snip"])
@pytest.mark.parametrize("keep", [0.05, 0.2])
def test_keep_is_the_fraction_really_kept_for_every_method(small, method, keep):
    model, graph, batches = small
    target = parse_target("c4:2", graph)
    circuit = extract_circuit(model, graph, batches, target, keep, method)
    asked = budget(graph, target, keep)
    assert asked == math.ceil(keep * circuit.upstream_edges)
    assert circuit.num_edges == asked


@pytest.mark.parametrize("rule", ["top", "cumulative", "hierarchical"])
def test_keep_means_the_same_size_for_every_rule(small, rule):
    model, graph, batches = small
    target = parse_target("c4:2", graph)
    circuit = extract_circuit(model, graph, batches, target, 0.2, "actgrad", rule=rule)
    assert circuit.num_edges == budget(graph, target, 0.2)


def test_a_huge_last_layer_still_gets_its_share():
    model = WideHead().eval()
    graph = build_graph(model, (3, 12, 12))
    images = torch.randn(8, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    target = parse_target("logit:2", graph)
    for keep in (0.01, 0.05):
        circuit = extract_circuit(model, graph, [(images, None)], target, keep, "actgrad")
        assert circuit.masks["head"].any() and circuit.masks["stem"].any()
        assert circuit.num_edges == budget(graph, target, keep)


def test_cumulative_order_prefixes_are_the_per_layer_rule():
    scores = {"a": torch.tensor([[4.0, 3.0], [2.0, 1.0]]), "b": torch.tensor([[1.0, 0.0, 9.0]])}
    priority = priority_cumulative(scores)
    # layer a: shares before each kernel 0, .4, .7, .9; layer b: 0 (the 9), .9 (the 1); the zero never
    assert torch.allclose(priority["a"], -torch.tensor([[0.0, 0.4], [0.7, 0.9]], dtype=torch.float64))
    assert priority["b"][0, 1] == -math.inf and priority["b"][0, 2] == 0 and priority["b"][0, 0] == pytest.approx(-0.9)


def test_hierarchical_order_puts_a_nodes_kernels_after_it():
    edges = {"a": torch.tensor([[1.0, 5.0, 3.0], [9.0, 8.0, 7.0]])}
    nodes = {"a": torch.tensor([1.0, 3.0])}
    priority = priority_hierarchical(edges, nodes, 2)["a"]
    order = sorted(((float(priority[o, i]), (o, i)) for o in range(2) for i in range(3) if priority[o, i] > -math.inf),
                   reverse=True)
    assert [place for _, place in order] == [(1, 0), (1, 1), (0, 1), (0, 2)]
