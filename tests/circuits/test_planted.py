"""Planted circuits: the ground truth holds by ablation, single-kernel scores miss it where built to, `learned`
finds it."""
import pytest
import torch

from viscnn.circuits import extract_circuit
from viscnn.circuits.methods import get_method
from viscnn.circuits.planted import CASES, R_PLANTED, build, subset_r, verify
from viscnn.errors import ViscnnError
from viscnn.graph import Edge

SMALL = [name for name in CASES if name != "combined"]  # combined's exhaustive check takes a minute: benchmarks/planted.py


@pytest.fixture(scope="module")
def cases(single_thread):
    return {name: build(name) for name in CASES}


def extract(case, method, seed=0):
    """(recall, r on fresh images) of `method`'s circuit of the planted size; an empty circuit is (0, 0)."""
    try:
        circuit = extract_circuit(case.model, case.graph, [(case.images(64, seed), None)], case.target, case.keep(),
                                  method, seed=seed)
    except ViscnnError as exc:
        assert "empty circuit" in str(exc)
        return 0.0, 0.0
    assert circuit.num_edges <= case.size
    return case.recall(circuit.masks), case.faithfulness(circuit.masks, case.images(128, 500))


@pytest.mark.parametrize("name", SMALL)
def test_the_planted_sets_are_exactly_the_smallest_circuits_that_reproduce_the_target(cases, name):
    check = verify(cases[name])
    assert check.r_planted >= R_PLANTED > check.r_without, check
    assert check.exhaustive and check.circuits > len(cases[name].planted)
    assert set(check.smallest) == set(cases[name].planted)


def test_the_combined_case_holds_by_ablation_and_its_search_is_bounded(cases):
    check = verify(cases["combined"], limit=500)
    assert check.sound and not check.exhaustive and check.circuits == 0


def test_vmapped_ablation_agrees_with_the_masked_model(cases):
    case = cases["distractor"]
    x = case.images(16, 3)
    planted = sorted(case.planted[0])
    generator = torch.Generator().manual_seed(0)
    candidates = [case.graph.edge_at(n, o, i) for n, c in case.candidates().items() for o, i in c.nonzero().tolist()]
    other = [candidates[i] for i in torch.randperm(len(candidates), generator=generator)[:12].tolist()]
    r = subset_r(case, [planted, other], x)
    assert r[0] == pytest.approx(case.faithfulness(case.masks(planted), x), abs=1e-5)
    assert r[1] == pytest.approx(case.faithfulness(case.masks(other), x), abs=1e-5)


def test_single_kernel_scores_miss_what_the_cases_hide(cases):
    redundant = cases["redundant"]
    x = [(redundant.images(64, 0), None)]
    for method in ("actgrad", "ablation", "snip"):
        edges = get_method(method)(redundant.model, redundant.graph, x, redundant.target, 0.1).edges["c1"]
        assert max(float(edges[0, 0]), float(edges[1, 0])) < 1e-6 * float(edges[2, 1]), method  # either copy alone does nothing
    gating = cases["gating"]
    taylor = get_method("actgrad")(gating.model, gating.graph, [(gating.images(64, 0), None)], gating.target, 0.1).edges["c1"]
    gate = gating.graph.kernel_index(Edge("c1", 4, 1))
    assert float(taylor[gate]) < 1e-4 * float(taylor.sum())  # the saturated gate's kernel looks useless


@pytest.mark.parametrize("name", SMALL)
def test_learned_recovers_the_planted_circuit(cases, name):
    recall, r = extract(cases[name], "learned")
    assert recall == 1.0 and r >= 0.99, (recall, r)


def test_actgrad_misses_what_learned_finds(cases):
    missed = {name: extract(cases[name], "actgrad") for name in ("redundant", "threshold", "distractor", "gating")}
    assert all(recall < 1.0 and r < 0.99 for recall, r in missed.values()), missed


def test_unknown_case_is_one_clear_error():
    with pytest.raises(ViscnnError, match="unknown planted case 'nope': choose from redundant, gating"):
        build("nope")
