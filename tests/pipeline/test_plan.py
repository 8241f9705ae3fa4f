"""`viscnn plan`: a row per prepare step with its time for 1 and N processes and its memory; time grows with the images."""
import json

import pytest

from viscnn.cli import main

ARGS = ["plan", "--model", "fmnist-convnet", "--projection", "mds", "--examples", "3", "--renders", "2",
        "--render-steps", "4", "--batch-size", "8", "--sample-batches", "1", "--nproc", "3"]


@pytest.fixture(scope="module")
def plans(tmp_path_factory, single_thread):
    folder = tmp_path_factory.mktemp("plan")
    found = {}
    for count in (2, 20):  # 20 and 200 images
        path = folder / f"{count}.json"
        assert main([*ARGS, "--images", f"fashion-mnist:test:{count}", "--json", str(path)]) == 0
        found[count] = json.loads(path.read_text())
    return found


def test_prints_every_step_for_1_and_n_processes(plans, capsys):
    small = plans[2]
    steps = [row["step"] for row in small["steps"]]
    assert steps == ["start, load model, trace graph", "hash images", "scores (loss, |Taylor|, nodes and edges)",
                     "class-wise scores (logit, 10 classes)", "projections (mds)", "layout (smoothing, rotation, quality)",
                     "dataset examples (k=3)", "renders (2 nodes x 4 steps)"]
    assert small["count"] == 20 and small["processes"] == 3 and small["device"] == "cpu"
    for row in small["steps"]:
        assert row["seconds"] >= 0 and row["seconds_n"] >= 0 and row["memory"] > 0 and row["sample"], row
    assert small["total"] == pytest.approx(sum(row["seconds"] for row in small["steps"]))
    assert small["total_n"] == pytest.approx(sum(row["seconds_n"] for row in small["steps"]))
    by_step = {row["step"]: row for row in small["steps"]}
    assert by_step["layout (smoothing, rotation, quality)"]["seconds_n"] == by_step["layout (smoothing, rotation, quality)"]["seconds"]
    assert by_step["scores (loss, |Taylor|, nodes and edges)"]["split"] == "images"
    assert by_step["projections (mds)"]["units"] == 5


def test_image_steps_grow_with_the_images(plans):
    for step in ("scores (loss, |Taylor|, nodes and edges)", "dataset examples (k=3)", "hash images"):
        small = next(row for row in plans[2]["steps"] if row["step"] == step)
        large = next(row for row in plans[20]["steps"] if row["step"] == step)
        assert large["units"] == 10 * small["units"]
        if step != "hash images":  # microseconds for tensor images: noise
            assert 2.5 < large["seconds"] / small["seconds"] < 40, step  # 10x the images, on a shared machine
    assert plans[20]["total"] > plans[2]["total"]


def test_the_table_names_each_column(capsys, tmp_path):
    assert main([*ARGS, "--images", "fashion-mnist:test:1", "--renders", "0", "--examples", "0", "--projection", "grid"]) == 0
    out = capsys.readouterr().out
    assert "1 process" in out and "3 processes" in out and "peak memory" in out and "total" in out
    assert "renders" not in out.split("measured in")[0] and "measured in" in out


@pytest.mark.parametrize("args, message", [(["--nproc", "0"], "--nproc must be at least 1"),
                                           (["--batch-size", "0"], "--batch-size must be at least 1")])
def test_bad_arguments(capsys, args, message):
    assert main([*ARGS, "--images", "fashion-mnist:test:1", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
