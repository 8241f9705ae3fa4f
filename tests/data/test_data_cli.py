"""`viscnn data ...` through the real CLI entry point (viscnn.cli.main)."""
from __future__ import annotations

import importlib.util

import pytest

from viscnn import cli


@pytest.fixture(autouse=True)
def available_commands(monkeypatch):
    """Leave out subcommands whose modules are not written yet, so `data` can be tested on its own."""
    present = [name for name in cli.COMMANDS if importlib.util.find_spec(f"viscnn.commands.{name}") is not None]
    monkeypatch.setattr(cli, "COMMANDS", present)


def test_list_bad_path_is_one_line(tmp_path, capsys):
    missing = tmp_path / "no-such-folder"
    assert cli.main(["data", "list", str(missing)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and str(missing) in err and err.startswith("viscnn data: error:")
    assert "Traceback" not in err


def test_list_corrupt_image_is_one_line(tmp_path, capsys):
    (tmp_path / "set").mkdir()
    (tmp_path / "set" / "x.png").write_bytes(b"nope")
    assert cli.main(["data", "list", str(tmp_path / "set")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "x.png" in err


def test_list_folder(tmp_path, write_image, capsys):
    write_image(tmp_path / "set" / "Ankle Boot" / "a.png")
    write_image(tmp_path / "set" / "3-dress" / "b.png")
    write_image(tmp_path / "set" / "3-dress" / "c.png")
    assert cli.main(["data", "list", str(tmp_path / "set"), "--classes", "fashion-mnist"]) == 0
    out = capsys.readouterr().out
    assert "2 sets, 3 images" in out and "label 9 (Ankle boot)" in out and "label 3 (Dress)" in out


def test_list_index_out_of_range(image_folder, capsys):
    assert cli.main(["data", "list", str(image_folder), "--classes", "fashion-mnist"]) == 2
    err = capsys.readouterr().err
    assert "images/12: class index 12 is out of range for 10 classes" in err and err.count("\n") == 1


def test_build_demo_quiet_then_list(tmp_path, capsys):
    dest = tmp_path / "demo"
    assert cli.main(["data", "build-demo", "--dest", str(dest), "--quiet"]) == 0
    assert capsys.readouterr() == ("", "")
    assert cli.main(["data", "build-demo", "--dest", str(dest)]) == 0
    assert "photos in" in capsys.readouterr().out
    assert cli.main(["data", "list", str(dest), "--classes", "imagenet"]) == 0
    out = capsys.readouterr().out
    assert "001-goldfish" in out and "unlabelled" in out and "label 967 (espresso)" in out
