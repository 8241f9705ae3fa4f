"""Faithfulness evaluation: a complete table, empty circuits as r = 0, learned above random, files, CLI faults."""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.circuits import small
from viscnn.circuits.evaluate import Evaluation, evaluate
from viscnn.circuits.methods import METHODS, Method, get_method
from viscnn.cli import main
from viscnn.errors import ViscnnError
from viscnn.graph import build_graph
from viscnn.scoring import parse_target

MODEL_FILE = Path(small.__file__).read_text()  # the CLI loads the model from a file


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("evaluate")
    (folder / "net.py").write_text(MODEL_FILE)
    generator = torch.Generator().manual_seed(0)
    torch.save(torch.rand(32, 1, 16, 16, generator=generator), folder / "train.pt")
    torch.save(torch.rand(16, 1, 16, 16, generator=generator), folder / "held.pt")
    return folder


@pytest.fixture(scope="module")
def setup(model_file):
    model = small.make().eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    graph = build_graph(model, (1, 16, 16))
    generator = torch.Generator().manual_seed(1)
    train = [(torch.randn(24, 1, 16, 16, generator=generator), None)]
    held = [(torch.randn(24, 1, 16, 16, generator=generator), None)]
    return model, graph, train, held


@pytest.fixture(scope="module")
def evaluation(setup):
    model, graph, train, held = setup
    targets = [parse_target("c4:2", graph), parse_target("c3:5", graph)]
    return evaluate(model, graph, train, held, targets, ["actgrad", "random", "learned"], [0.02, 0.3], model_name="small")


def test_the_table_is_complete(evaluation):
    assert len(evaluation.results) == 2 * 3 * 2 and not evaluation.skipped
    assert {(r.target, r.method, r.fraction) for r in evaluation.results} == {
        (t, m, f) for t in ("c4:2", "c3:5") for m in ("actgrad", "random", "learned") for f in (0.02, 0.3)}
    for method in ("actgrad", "random", "learned"):
        for fraction in (0.02, 0.3):
            assert evaluation.median_r(method, fraction) is not None
        assert -1 <= evaluation.auc(method) <= 1
    table = evaluation.table()
    assert table.count("\n") == 1 + 3 and "AUC" in table


def test_empty_circuits_count_as_zero(evaluation):
    empty = [r for r in evaluation.results if r.empty]
    assert empty, "2% of a few hundred kernels cannot connect input and target for every method"
    assert all(r.r == 0.0 and r.edges == 0 for r in empty)
    assert all(r.edges > 0 for r in evaluation.results if not r.empty)
    assert all(r.edges <= math.ceil(r.fraction * r.upstream_edges) for r in evaluation.results if not r.empty)


def test_learned_beats_random(evaluation):
    assert evaluation.auc("learned") > evaluation.auc("random")
    assert evaluation.median_r("learned", 0.3) > evaluation.median_r("random", 0.3)


def test_auc_is_the_mean_height_over_the_log_axis():
    ev = Evaluation("m", ["t"], ["a"], [0.01, 0.1, 1.0])
    from viscnn.circuits.evaluate import Result

    ev.results = [Result("t", "a", 0.01, 0.0), Result("t", "a", 0.1, 1.0), Result("t", "a", 1.0, 1.0)]
    assert ev.auc("a") == pytest.approx(0.75)  # (0.5 * 1 + 1 * 1) / 2 decades
    assert Evaluation("m", ["t"], ["a"], [0.5], [Result("t", "a", 0.5, 0.4)]).auc("a") == pytest.approx(0.4)


def test_json_round_trips_and_plot_is_a_png(evaluation, tmp_path):
    data = json.loads(json.dumps(evaluation.to_json()))
    assert Evaluation.from_json(data).to_json() == evaluation.to_json()
    assert data["summary"]["learned"]["auc"] == evaluation.auc("learned")
    evaluation.save(tmp_path / "e.json")
    assert Evaluation.load(tmp_path / "e.json").results == evaluation.results
    evaluation.plot(tmp_path / "f.png")
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ViscnnError, match="not a viscnn evaluation file"):
        Evaluation.from_json({"format": "other"})


def test_failing_method_is_skipped_and_scores_are_reused(setup, monkeypatch):
    model, graph, train, held = setup
    import viscnn.circuits.methods.ablation as ablation

    monkeypatch.setattr(ablation, "MAX_EDGES", 10)
    calls = []
    actgrad = get_method("actgrad")

    def counting(*args, **kwargs):
        calls.append(args[4])
        return actgrad.function(*args, **kwargs)

    monkeypatch.setitem(METHODS, "counting", Method("counting", counting))
    target = parse_target("c4:2", graph)
    ev = evaluate(model, graph, train, held, [target], ["ablation", "counting"], [0.2, 0.5, 1.0])
    assert len(ev.skipped) == 1 and ev.skipped[0].method == "ablation" and "small graphs" in ev.skipped[0].reason
    assert ev.median_r("ablation", 0.5) is None and ev.auc("ablation") is None
    assert "skipped ablation on 1 target(s)" in ev.table()
    assert len(calls) == 1  # scored once, cut at three fractions
    assert ev.median_r("counting", 1.0) == pytest.approx(1.0)  # the whole model is its own circuit


def test_bad_arguments(setup):
    model, graph, train, held = setup
    target = parse_target("c4:2", graph)
    with pytest.raises(ViscnnError, match="kept fraction must be in"):
        evaluate(model, graph, train, held, [target], ["actgrad"], [0.1, 1.5])
    with pytest.raises(ViscnnError, match="unknown circuit method 'best'"):
        evaluate(model, graph, train, held, [target], ["best"], [0.1])


def test_cli_writes_json_and_png(model_file, tmp_path, capsys):
    args = ["evaluate", "--model", f"{model_file / 'net.py'}:make", "--images", str(model_file / "train.pt"),
            "--held-out", str(model_file / "held.pt"), "--targets", "c4:2,c4:5", "--methods", "actgrad,random",
            "--fractions", "0.5,0.2", "--out", str(tmp_path / "out"), "--quiet"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "actgrad" in out and "AUC" in out and "0.2" in out
    data = json.loads((tmp_path / "out" / "evaluation.json").read_text())
    assert data["fractions"] == [0.2, 0.5] and data["targets"] == ["c4:2", "c4:5"] and len(data["results"]) == 8
    assert (tmp_path / "out" / "faithfulness.png").read_bytes()[:4] == b"\x89PNG"
    # without --held-out, a quarter of --images is held out; random node targets in the named layers
    split = args[:5] + ["--random-targets", "2", "--layers", "c3,c4", "--methods", "actgrad", "--fractions", "0.5",
                        "--out", str(tmp_path / "split"), "--quiet"]
    assert main(split) == 0
    data = json.loads((tmp_path / "split" / "evaluation.json").read_text())
    assert data["train_images"] == 24 and data["held_out_images"] == 8
    assert len(data["targets"]) == 4 and {t.split(":")[0] for t in data["targets"]} == {"c3", "c4"}


@pytest.mark.parametrize("extra, message", [
    (["--targets", "c4:2", "--fractions", "0,0.5"], "kept fraction must be in (0, 1], not 0.0"),
    (["--targets", "c4:2", "--fractions", "0.1,1.5"], "kept fraction must be in (0, 1], not 1.5"),
    (["--targets", "c4:2", "--fractions", "0.1,abc"], "cannot read kept fraction 'abc'"),
    (["--targets", "c4:2", "--methods", "actgrad,best"], "unknown circuit method 'best'"),
    (["--targets", "c9:2"], "unknown conv layer 'c9'"),
    (["--random-targets", "3", "--layers", "c1,nope"], "unknown layer 'nope'"),
    (["--random-targets", "3"], "--random-targets needs --layers"),
])
def test_cli_bad_input_is_one_line_and_exit_2(model_file, tmp_path, capsys, extra, message):
    args = ["evaluate", "--model", f"{model_file / 'net.py'}:make", "--images", str(model_file / "train.pt"),
            "--out", str(tmp_path / "out"), *extra]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and err.startswith("viscnn evaluate: error:")


def test_cli_bad_input_exit_status_of_the_command(model_file, tmp_path):
    done = subprocess.run([sys.executable, "-m", "viscnn", "evaluate", "--model", f"{model_file / 'net.py'}:make",
                           "--targets", "c4:2", "--fractions", "2", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
