"""`viscnn score` as a user runs it, alone and under torchrun."""
import subprocess
import sys

import pytest
import torch

from viscnn.scoring import Scores


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "viscnn", "score", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600)


def test_two_processes_give_the_single_process_scores(small_model, tmp_path):
    common = ["--model", f"{small_model / 'net.py'}:make", "--images", str(small_model / "imgs.pt"), "--no-cache",
              "--quiet", "--criterion", "taylor", "--criterion", "taylor_signed"]
    one = run(*common, "--out", str(tmp_path / "one.safetensors"))
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          "-m", "viscnn", "score", *common, "--out", str(tmp_path / "two.safetensors")],
                         capture_output=True, text=True, timeout=600)
    assert two.returncode == 0, two.stderr
    for criterion in ("taylor", "taylor_signed"):
        a = Scores.load(tmp_path / f"one.{criterion}.safetensors")
        b = Scores.load(tmp_path / f"two.{criterion}.safetensors")
        assert a.n_images == b.n_images == 10
        for table in ("nodes", "edges"):
            for layer, value in getattr(a, table).items():
                assert torch.allclose(value, getattr(b, table)[layer], atol=1e-5, rtol=1e-5), (criterion, table, layer)


def test_prints_top_nodes_and_edges(small_model, tmp_path):
    done = run("--model", f"{small_model / 'net.py'}:make", "--images", str(small_model / "sets"), "--input",
               "cats - overall", "--target", "5:2", "--top", "3", "--store", str(tmp_path / "st"), "--quiet")
    assert done.returncode == 0, done.stderr
    assert "top 3 nodes by taylor" in done.stdout and "top 3 edges by taylor" in done.stdout
    again = run("--model", f"{small_model / 'net.py'}:make", "--images", str(small_model / "sets"), "--input",
                "cats - overall", "--target", "5:2", "--top", "3", "--store", str(tmp_path / "st"), "--quiet")
    assert "scored nothing; cached cats, overall" in again.stdout


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    images = torch.rand(4, 3, 16, 16)
    images[1, 0, 3, 3] = float("nan")
    torch.save(images, folder / "nan.pt")
    (folder / "empty").mkdir()
    return folder


@pytest.mark.parametrize("args, message", [
    (["--target", "9:0"], "unknown conv layer '9'"),
    (["--target", "3:1<-2"], "cannot score target '3:1<-2'"),
    (["--target", "0:99"], "channel 99 of target '0:99' is out of range"),
    (["--target", "0:1:x"], "cannot read target"),
    (["--input", "cats - tigers"], "unknown image set 'tigers'"),
    (["--input", "cats + * dogs"], "cannot parse image-set expression at column"),
    (["--images", "{bad}/empty"], "empty"),
    (["--images", "{bad}/nan.pt", "--input", "nan"], "NaN"),
])
def test_bad_input_is_one_line(small_model, bad_inputs, args, message):
    base = {"--model": f"{small_model / 'net.py'}:make", "--images": str(small_model / "sets")}
    args = [a.format(bad=bad_inputs) for a in args]
    for flag, value in base.items():
        if flag not in args:
            args = [flag, value, *args]
    done = run(*args, "--no-cache", "--quiet")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert message in done.stderr and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
