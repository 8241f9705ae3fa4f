"""Every heavy command under torchrun (2 gloo processes on the CPU) gives the single-process result.

fmnist-convnet on a few Fashion-MNIST images; the single process runs in this process on one thread (as each
torchrun worker does). Top-k examples and renders must be identical; float sums, whose order of addition
differs, equal to float32 rounding.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from viscnn import distributed
from viscnn.cli import main
from viscnn.inspection.examples import LayerExamples, TopK, merge_examples
from viscnn.layout.classwise import ClassScores
from viscnn.scoring import Scores
from viscnn.store import Store

SPEC = "fashion-mnist:test:2"  # 20 images, 2 per class
MODEL = ["--model", "fmnist-convnet"]


def torchrun(*args, processes=2):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
                           "-m", "viscnn", *args], capture_output=True, text=True, timeout=600, env=env)


def pixels(path):
    with Image.open(path) as image:
        return np.asarray(image)


def without_seconds(data):
    if isinstance(data, dict):
        return {k: without_seconds(v) for k, v in data.items() if k != "seconds"}
    if isinstance(data, list):
        return [without_seconds(v) for v in data]
    return data


def close(a, b, path=""):
    """Nested JSON equal, floats to 1e-5 relative."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            close(a[key], b[key], f"{path}/{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for k, (x, y) in enumerate(zip(a, b)):
            close(x, y, f"{path}[{k}]")
    elif isinstance(a, float):
        assert a == pytest.approx(b, rel=1e-5, abs=1e-5), path
    else:
        assert a == b, path


def test_prepare(tmp_path, single_thread):
    args = ["prepare", *MODEL, "--images", SPEC, "--projection", "mds", "--examples", "3", "--renders", "3",
            "--render-steps", "4", "--batch-size", "4", "--quiet"]
    assert main([*args, "--store", str(tmp_path / "one")]) == 0
    two = torchrun(*args, "--store", str(tmp_path / "two"))
    assert two.returncode == 0, two.stderr
    assert "projections of 5 layers: done" in two.stdout and "2 processes" in two.stdout
    assert two.stdout.count("manifest: prepared/") == 1  # rank 0 alone prints
    one, other = Store(tmp_path / "one"), Store(tmp_path / "two")
    entries = {(e.kind, e.key): e.path for e in one.entries()}
    assert entries.keys() == {(e.kind, e.key) for e in other.entries()}
    assert {kind for kind, _ in entries} == {"scores", "classwise", "projection", "layout", "examples", "render",
                                             "prepared"}
    for (kind, key), path in entries.items():
        mine = other.get_path(kind, key)
        if kind == "scores":
            a, b = Scores.load(path), Scores.load(mine)
            assert a.n_images == b.n_images == 20
            for table in ("nodes", "edges"):
                for layer, value in getattr(a, table).items():
                    assert torch.allclose(value, getattr(b, table)[layer], rtol=1e-5, atol=1e-7), (table, layer)
        elif kind == "classwise":
            a, b = ClassScores.load(path), ClassScores.load(mine)
            assert a.classes == b.classes and a.counts == b.counts
            for layer, value in a.nodes.items():
                assert torch.allclose(value, b.nodes[layer], rtol=1e-5, atol=1e-7), layer
        elif kind == "projection":
            assert np.allclose(np.load(path), np.load(mine), atol=1e-4)
        elif kind in ("layout", "prepared"):
            close(json.loads(path.read_text()), json.loads(mine.read_text()), kind)
        elif kind == "examples":
            with np.load(path) as a, np.load(mine) as b:
                assert a.files == b.files
                for name in a.files:
                    assert np.array_equal(a[name], b[name]), name
        else:  # render
            assert np.array_equal(pixels(path), pixels(mine))


def test_evaluate(tmp_path, single_thread):
    args = ["evaluate", *MODEL, "--images", SPEC, "--targets", "features.6:1,features.10:3",
            "--methods", "actgrad,random,force", "--fractions", "0.05,0.2", "--batch-size", "8", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    two = torchrun(*args, "--out", str(tmp_path / "two"))
    assert two.returncode == 0, two.stderr
    a = without_seconds(json.loads((tmp_path / "one" / "evaluation.json").read_text()))
    b = without_seconds(json.loads((tmp_path / "two" / "evaluation.json").read_text()))
    assert len(a["results"]) == 2 * 3 * 2
    close(a, b)


def test_examples(tmp_path, single_thread):
    args = ["examples", *MODEL, "--images", SPEC, "--layer", "features.3", "--layer", "features.10", "--nodes", "0-3",
            "--k", "4", "--batch-size", "4", "--no-cache", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    two = torchrun(*args, "--out", str(tmp_path / "two"))
    assert two.returncode == 0, two.stderr
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "two") for p in (tmp_path / "two").rglob("*") if p.is_file())
    for name in files:
        a, b = tmp_path / "one" / name, tmp_path / "two" / name
        if name.suffix == ".png":
            assert np.array_equal(pixels(a), pixels(b)), name
        else:
            assert without_seconds(json.loads(a.read_text())) == without_seconds(json.loads(b.read_text())), name


def test_visualize(tmp_path, single_thread):
    args = ["visualize", *MODEL, "--target", "features.6:0-4", "--target", "logit:3", "--steps", "12", "--no-cache",
            "--quiet"]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    two = torchrun(*args, "--out", str(tmp_path / "two"))
    assert two.returncode == 0, two.stderr
    a = json.loads((tmp_path / "one" / "visualize.json").read_text())
    b = json.loads((tmp_path / "two" / "visualize.json").read_text())
    assert len(a["renders"]) == 6
    close(a, b)
    for render in a["renders"]:
        for name in render["files"]:
            assert np.array_equal(pixels(tmp_path / "one" / name), pixels(tmp_path / "two" / name)), name


def test_too_few_images_stops_every_process_with_one_line(tmp_path):
    torch.save(torch.rand(1, 1, 28, 28), tmp_path / "one.pt")
    done = torchrun("examples", *MODEL, "--images", str(tmp_path / "one.pt"), "--no-cache", "--quiet",
                    "--out", str(tmp_path / "out"))
    assert done.returncode != 0
    message = "viscnn examples: error: 1 images cannot be split across 2 processes"
    assert done.stderr.count(message) == 2  # each process says it once, and none waits for the other
    assert not (tmp_path / "out" / "examples.json").exists()


@pytest.mark.parametrize("count, batch, processes, expected", [
    (10, 4, 2, [[0, 1, 2, 3, 8, 9], [4, 5, 6, 7]]),  # whole batches, round-robin
    (5, 4, 2, [[0, 1, 4], [2, 3]]),  # fewer batches than processes: smaller blocks, everyone gets some
    (3, 32, 3, [[0], [1], [2]]),
])
def test_images_are_dealt_in_whole_batches(count, batch, processes, expected):
    assert distributed.deal_images(count, batch, processes) == expected


def test_units_are_dealt_by_cost():
    assert distributed.deal_units([1, 1, 1, 1], 2) == [[0, 2], [1, 3]]
    assert distributed.deal_units([20, 1, 1, 8, 3], 2) == [[0], [1, 2, 3, 4]]
    assert sorted(i for units in distributed.deal_units([5, 3, 3, 2, 2, 1], 3) for i in units) == list(range(6))


def test_one_process_is_rank_zero_of_one():
    assert not distributed.active() and distributed.rank() == 0 and distributed.world() == 1
    assert distributed.is_main() and distributed.share(5, 2) == [0, 1, 2, 3, 4]
    assert distributed.gather(lambda: 3) == [3] and distributed.from_main(lambda: 4) == 4
    assert distributed.local_device("cuda") == "cuda" and distributed.backend("cuda:1") == "nccl"


def test_merged_tops_are_one_pass_over_all_images():
    def part(values, images):
        values, images = np.array([values], np.float32), np.array([images], np.int64)
        top = TopK(values, images, images.astype(np.int32), images.astype(np.int32))
        low = TopK(-values, images, images.astype(np.int32), images.astype(np.int32))
        return {"l": LayerExamples("l", top, low, (4, 4), 0)}

    # process 0 saw images 0, 1, 4; process 1 saw 2, 3: ties go to the earlier image
    merged = merge_examples([part([5.0, 2.0, 2.0], [0, 4, 1]), part([5.0, 2.0], [2, 3])], 4, 5)["l"]
    assert merged.excite.images.tolist() == [[0, 2, 1, 3]]
    assert merged.excite.values.tolist() == [[5.0, 5.0, 2.0, 2.0]]
    assert merged.inhibit.images.tolist() == [[0, 2, 1, 3]] and merged.image_count == 5


def test_numba_gets_the_process_thread_share_under_torchrun(tmp_path):
    # UMAP's numba started a thread per core in every process, and its workers then slowed torch ~5x
    script = tmp_path / "share.py"
    script.write_text("import sys, torch\nfrom pathlib import Path\nfrom viscnn import distributed\n"
                      "with distributed.session('cpu'):\n    import numba\n    rank = torch.distributed.get_rank()\n"
                      "    Path(sys.argv[1], f'{rank}.txt').write_text(f'{torch.get_num_threads()} {numba.config.NUMBA_NUM_THREADS}')\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("NUMBA_NUM_THREADS", None)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script),
                           str(tmp_path)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert [(tmp_path / f"{rank}.txt").read_text() for rank in (0, 1)] == ["1 1", "1 1"]  # torch's threads, numba's
