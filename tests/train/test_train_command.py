"""`viscnn train`: errors are one line with exit 2; a (shortened) run prints a report and writes weights + JSON."""
import json

import pytest

from viscnn import cli
from viscnn.train import loop


@pytest.fixture(autouse=True)
def only_train_command(monkeypatch):
    # Other subcommands are built elsewhere; this file tests `train` alone.
    monkeypatch.setattr(cli, "COMMANDS", ["train"])


def test_unknown_model_exits_2_with_one_line(capsys):
    assert cli.main(["train", "--model", "nope"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "nope" in lines[0] and "fmnist-convnet" in lines[0]
    assert "Traceback" not in captured.err


def test_bad_epochs_is_a_one_line_error(capsys):
    assert cli.main(["train", "--model", "fmnist-convnet", "--epochs", "0", "--quiet"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_short_run_writes_weights_and_record(monkeypatch, tmp_path, capsys):
    real = loop.train_fmnist

    def short(*args, **kwargs):
        return real(*args, **kwargs, max_steps=5, subset=160, test_subset=100)

    monkeypatch.setattr(loop, "train_fmnist", short)
    out = tmp_path / "m.safetensors"
    code = cli.main(["train", "--model", "fmnist-convnet-sparse", "--epochs", "1", "--seed", "2",
                     "--lambda", "0.001", "--out", str(out), "--quiet"])
    assert code == 0 and out.is_file()
    text = capsys.readouterr().out
    assert "test accuracy" in text and "features.10" in text and str(out) in text
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["command"] == f"viscnn train --model fmnist-convnet-sparse --epochs 1 --seed 2 --lambda 0.001 --out {out}"
    assert record["seed"] == 2 and record["group_lambda"] == 0.001 and 0 <= record["zero_fraction"] <= 1


def test_default_out_is_the_home_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("VISCNN_HOME", str(tmp_path))
    real = loop.train_fmnist
    monkeypatch.setattr(loop, "train_fmnist", lambda *a, **k: real(*a, **k, max_steps=2, subset=64, test_subset=50))
    assert cli.main(["train", "--model", "fmnist-convnet", "--epochs", "1", "--quiet"]) == 0
    assert (tmp_path / "models" / "fmnist-convnet.safetensors").is_file()
    assert (tmp_path / "models" / "fmnist-convnet.json").is_file()


def test_out_must_be_safetensors(capsys, tmp_path):
    assert cli.main(["train", "--model", "fmnist-convnet", "--out", str(tmp_path / "w.pt"), "--quiet"]) == 2
    assert ".safetensors" in capsys.readouterr().err
