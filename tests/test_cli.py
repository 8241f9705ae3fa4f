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
