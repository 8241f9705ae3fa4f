"""Expressions over image sets: combined scores equal the hand-combined per-set scores; the cache works."""
import pytest
import torch

from viscnn.data import open_image_sets
from viscnn.errors import ViscnnError
from viscnn.graph import build_graph
from viscnn.models import load_model
from viscnn.scoring import score_batches
from viscnn.scoring.expression import parse_expression
from viscnn.scoring.query import score_sets
from viscnn.scoring.targets import parse_target
from viscnn.store import Store


@pytest.fixture(scope="module")
def setup(small_model):
    loaded = load_model(f"{small_model / 'net.py'}:make")
    graph = build_graph(loaded.module, loaded.input_shape)
    sets = open_image_sets(str(small_model / "sets"))
    return loaded, graph, sets


def per_set(setup, name, criterion="taylor_signed", target="loss"):
    loaded, graph, sets = setup
    return score_batches(loaded.module, graph, sets[name].batches(loaded.preprocess, 2), parse_target(target, graph),
                         (criterion,))[criterion]


def query(setup, expression, criteria, target="loss", **options):
    """score_sets as a boundary calls it: the expression and the target parsed first."""
    loaded, graph, sets = setup
    return score_sets(loaded, graph, sets, parse_expression(expression, list(sets)), parse_target(target, graph),
                      criteria=criteria, **options)


def test_expression_equals_hand_combination(setup):
    cats, dogs, overall = (per_set(setup, n) for n in ("cats", "dogs", "overall"))
    result = query(setup, "0.5*cats + 0.5*dogs - 2*overall", ["taylor_signed"])
    scores = result.scores["taylor_signed"]
    for layer in scores.nodes:
        expected = 0.5 * cats.nodes[layer] + 0.5 * dogs.nodes[layer] - 2 * overall.nodes[layer]
        assert torch.allclose(scores.nodes[layer], expected, atol=1e-6)
        expected = 0.5 * cats.edges[layer] + 0.5 * dogs.edges[layer] - 2 * overall.edges[layer]
        assert torch.allclose(scores.edges[layer], expected, atol=1e-6)
    assert scores.images == "0.5*cats + 0.5*dogs - 2*overall"
    assert (min(v.min() for v in scores.nodes.values()) < 0)  # a contrast keeps its negative values
    clipped = query(setup, "cats - overall", ["taylor_signed"], clip=True).scores["taylor_signed"]
    assert min(v.min() for v in clipped.nodes.values()) >= 0


def test_overall_is_the_image_weighted_mean_of_its_parts(setup):
    cats, dogs, overall = (per_set(setup, n, "taylor") for n in ("cats", "dogs", "overall"))
    for layer in overall.nodes:
        assert torch.allclose(overall.nodes[layer], (cats.nodes[layer] * 3 + dogs.nodes[layer] * 3) / 6, atol=1e-6)


def test_cached_sets_cost_no_forward_pass(setup, tmp_path, monkeypatch):
    store = Store(tmp_path / "store")
    first = query(setup, "cats - overall", ["taylor"], store=store)
    assert sorted(first.computed) == ["cats", "overall"] and first.cached == []

    def no_forward(*args, **kwargs):
        raise AssertionError("a cached query ran the model")

    monkeypatch.setattr("viscnn.scoring.query.score_batches", no_forward)
    again = query(setup, "2*cats - overall", ["taylor"], store=store)
    assert again.computed == [] and sorted(again.cached) == ["cats", "overall"]
    monkeypatch.undo()
    cats, overall = per_set(setup, "cats", "taylor"), per_set(setup, "overall", "taylor")
    for layer in again.scores["taylor"].nodes:
        assert torch.allclose(again.scores["taylor"].nodes[layer], 2 * cats.nodes[layer] - overall.nodes[layer], atol=1e-6)


@pytest.mark.parametrize("expression, message", [
    ("cats - tigers", "unknown image set 'tigers'"),
    ("cats -", "cannot parse image-set expression at column"),
    ("cats - cats", "cancels to nothing"),
])
def test_bad_expressions(setup, expression, message):
    with pytest.raises(ViscnnError, match=message):
        query(setup, expression, ["taylor"])


def test_score_sets_checks_what_it_is_given(setup):
    loaded, graph, sets = setup
    with pytest.raises(ViscnnError, match="image set 'tigers' of 'cats - tigers' is not one of the sets given"):
        score_sets(loaded, graph, sets, parse_expression("cats - tigers"), parse_target("loss", graph))
    with pytest.raises(ViscnnError, match="cannot score target '3:1<-2': an edge is a render objective only"):
        query(setup, "cats", ["taylor"], target="3:1<-2")


def test_scores_round_trip_and_top(setup, tmp_path):
    scores = per_set(setup, "overall", "taylor")
    scores.save(tmp_path / "s.safetensors")
    back = type(scores).load(tmp_path / "s.safetensors")
    assert back.header() == scores.header()
    assert all(torch.equal(back.edges[k], v) for k, v in scores.edges.items())
    (best, value), = back.top(1, "edges")
    assert value == max(v.max().item() for v in back.edges.values())
    assert back.edge(best) == value
    # grouped layer "3": edge ids use absolute input channels
    for edge, value in back.top(1000, "edges", layers=["3"]):
        assert back.edge(edge) == value and (edge.out // 4) * 4 <= edge.inp < (edge.out // 4 + 1) * 4
    with pytest.raises(ValueError, match="kind must be 'nodes' or 'edges', not 'node'"):
        back.top(3, kind="node")  # type: ignore[call-overload]  # the typo a user makes; it once gave edges
