"""The `viscnn` command as a user runs it: output, files, exit codes, one-line errors."""
import json
import subprocess
import sys

import pytest

from viscnn.cli import main


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "viscnn", *args], capture_output=True, text=True, timeout=600)


def test_graph_prints_and_writes_json(tmp_path, capsys):
    assert main(["graph", "--model", "alexnet", "--json", str(tmp_path / "g.json"), "--replay", "--replay-size", "64"]) == 0
    out = capsys.readouterr().out
    assert "5 conv layers, 1,152 filter nodes, 250,048 kernel edges" in out
    assert "replay check: 5 conv layers" in out and "PASS" in out
    data = json.loads((tmp_path / "g.json").read_text())
    assert data["counts"] == {"conv_layers": 5, "nodes": 1152, "edges": 250048}
    assert [layer["name"] for layer in data["layers"]][:2] == ["input", "features.0"]
    assert data["layers"][1]["receptive_field"]["size"] == [11, 11]
    assert data["heads"][0]["name"] == "classifier.1"


@pytest.mark.parametrize("args, message", [
    (["graph", "--model", "nope"], "unknown model 'nope'"),
    (["graph", "--model", "missing/file.py:make"], "does not exist"),
    (["graph", "--model", "alexnet", "--weights", "/no/such.pt"], "does not exist"),
])
def test_bad_input_is_one_line_and_exit_2(args, message):
    done = run_cli(*args)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and message in done.stderr and "Traceback" not in done.stderr


def test_usage_error_exits_non_zero():
    assert run_cli("graph", "--no-such-flag").returncode == 2


def _weights_files(folder):
    """Files that are not weights a user may still pass as --weights: name -> (writer, what the error says)."""
    import os
    import pickle

    import torch

    class Payload:
        def __reduce__(self):
            return (os.system, ("echo the payload ran",))

    state = torch.nn.Linear(2, 2).state_dict()
    torch.save(state, folder / "whole.pt")
    whole = (folder / "whole.pt").read_bytes()
    return {
        "empty.pt": (lambda p: p.write_bytes(b""), "the file is empty"),
        "plain.pt": (lambda p: p.write_bytes(pickle.dumps({"a": 1}, protocol=4)), "not a weights-only torch file"),
        "payload.pt": (lambda p: torch.save({"x": Payload()}, p), "besides tensors (posix.system), and loading them could run code: refused"),
        "numpy.pt": (lambda p: torch.save({"w": __import__("numpy").zeros(3)}, p), "could run code: refused"),
        "cut.pt": (lambda p: p.write_bytes(whole[: len(whole) // 2]), "failed reading zip archive"),
        "text.pt": (lambda p: p.write_text("hello\n"), "not a torch file"),
        "folder.pt": (lambda p: p.mkdir(), "is a folder, not a file"),
        "line\nbreak.pt": (lambda p: None, "weights "),  # one line whatever the file name holds
        "nested.pt": (lambda p: torch.save({"model": state, "epoch": 3}, p), "'model', 'epoch' are no tensors"),
    }


def test_weights_that_are_no_weights_are_one_line_and_exit_2(tmp_path):
    """No traceback, no warnings before the error, never torch's advice to load the file unsafely; how to re-save."""
    for name, (write, message) in _weights_files(tmp_path).items():
        write(tmp_path / name)
        done = run_cli("graph", "--model", "fmnist-convnet", "--weights", str(tmp_path / name))
        assert done.returncode == 2, (name, done.stderr)
        assert done.stderr.count("\n") == 1 and done.stderr.startswith("viscnn graph: error: "), (name, done.stderr)
        assert message in done.stderr, (name, done.stderr)
        assert "weights_only" not in done.stderr and "the payload ran" not in done.stdout + done.stderr
        if "refused" in message or "weights-only" in message:
            assert "viscnn loads only weights-only files" in done.stderr
            assert "torch.save(model.state_dict(), 'weights.pt')" in done.stderr


@pytest.mark.parametrize("command", [["circuit", "--target", "features.3:1", "--out", "c.json"],
                                     ["evaluate", "--targets", "features.3:1", "--layers", "features.3", "--out", "e"]])
def test_a_seed_out_of_range_is_a_usage_error(command):
    done = run_cli(*command, "--model", "fmnist-convnet", "--images", "fashion-mnist:test:1", "--seed", str(10**30))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "argument --seed: must be between 0 and 4294967295" in done.stderr


def test_an_unquoted_set_name_with_a_dash_gets_a_hint():
    done = run_cli("score", "--model", "fmnist-convnet", "--images", "fashion-mnist:test:1", "--input",
                   "t-shirt_top - overall", "--target", "loss", "--criterion", "taylor")
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "unknown image set 't'" in done.stderr
    assert "set names with '-' or other signs must be quoted: write 't-shirt_top'" in done.stderr


def test_one_line_escapes_control_characters():
    from viscnn.cli import one_line

    assert one_line("file a\nb.pt\tand\x1b[1m bold\x00") == "file a\\nb.pt\\tand\\x1b[1m bold\\x00"
    assert one_line("T-shirt/top ✓ naïve") == "T-shirt/top ✓ naïve"
