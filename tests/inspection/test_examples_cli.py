"""`viscnn examples`, `viscnn kernels` and `viscnn activations` as a user runs them."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from viscnn.cli import main
from viscnn.data import open_image_sets

pytestmark = pytest.mark.usefixtures("single_thread")  # one torch thread: two shared cores

FMNIST = ["--model", "fmnist-convnet"]
IMAGES = ["--images", "fashion-mnist:test:3"]


@pytest.fixture(autouse=True)
def private_store(monkeypatch, tmp_path: Path) -> None:
    """Commands run without --store use a store of the test's own, never the user's."""
    monkeypatch.setenv("VISCNN_STORE", str(tmp_path / "default-store"))


@pytest.fixture(scope="module")
def shirt(tmp_path_factory) -> Path:
    """A Fashion-MNIST test image saved as a PNG file."""
    path = tmp_path_factory.mktemp("img") / "shirt.png"
    images = open_image_sets("fashion-mnist:test:1")["overall"]
    Image.fromarray((images.load_pixels(0)[0].numpy() * 255).astype(np.uint8)).save(path)
    return path


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_examples_writes_json_and_pngs_and_caches(capsys, tmp_path: Path) -> None:
    store = tmp_path / "store"
    args = [*FMNIST, *IMAGES, "--layer", "features.3", "--layer", "features.8", "--nodes", "0-2,5", "--k", "4",
            "--cell", "40", "--store", str(store), "--quiet"]
    code, out, err = run(capsys, "examples", *args, "--out", str(tmp_path / "a"))
    assert code == 0, err
    assert "features.3: 64 nodes, maps 14x14, patches 14x14 px" in out
    index = json.loads((tmp_path / "a" / "examples.json").read_text())
    assert index["image_count"] == 30 and index["k"] == 4 and list(index["layers"]) == ["features.3", "features.8"]
    layer = json.loads((tmp_path / "a" / "features.8" / "examples.json").read_text())
    assert [n["node"] for n in layer["nodes"]] == ["features.8:0", "features.8:1", "features.8:2", "features.8:5"]
    node = layer["nodes"][3]
    values = [e["value"] for e in node["excite"]]
    assert len(values) == 4 and values == sorted(values, reverse=True)
    assert [e["value"] for e in node["inhibit"]] == sorted(e["value"] for e in node["inhibit"])
    assert all(0 <= e["image"] < 30 and 0 <= e["y"] < 7 and len(e["box"]) == 4 for e in node["excite"])
    assert Image.open(tmp_path / "a" / "features.8" / "sheet.png").width > 4 * 40
    picture = Image.open(tmp_path / "a" / "features.8" / node["png"])
    assert picture.width > 4 * 40 and np.asarray(picture).std() > 20
    entries = sorted(p.name for p in store.rglob("*") if p.is_file() and p.suffix in (".npz", ".png"))
    # again: everything comes from the store, the same results
    code, out, err = run(capsys, "examples", *args, "--out", str(tmp_path / "b"))
    assert code == 0, err
    assert sorted(p.name for p in store.rglob("*") if p.is_file() and p.suffix in (".npz", ".png")) == entries
    assert (tmp_path / "b" / "features.8" / "examples.json").read_text() == json.dumps(layer)
    # and without the store, the same again
    code, _, err = run(capsys, "examples", *FMNIST, *IMAGES, "--layer", "features.8", "--nodes", "0-2,5", "--k", "4",
                       "--no-cache", "--no-png", "--quiet", "--out", str(tmp_path / "c"))
    assert code == 0, err
    plain = json.loads((tmp_path / "c" / "features.8" / "examples.json").read_text())
    for ours, theirs in zip(plain["nodes"], layer["nodes"]):
        assert [e["image"] for e in ours["excite"]] == [e["image"] for e in theirs["excite"]]
    assert not list((tmp_path / "c" / "features.8").glob("*.png"))


def test_kernels_command(capsys, tmp_path: Path) -> None:
    code, out, err = run(capsys, "kernels", *FMNIST, "--layer", "features.3", "--nodes", "0-7", "--scaling", "layer",
                         "--out", str(tmp_path / "k.png"))
    assert code == 0, err
    assert "features.3: 8 x 32 kernels 5x5, layer scaling" in out
    assert Image.open(tmp_path / "k.png").width > 32 * 5
    code, out, err = run(capsys, "kernels", *FMNIST, "--layer", "features.3", "--kernel", "3,7", "--out", str(tmp_path / "one.png"))
    assert code == 0, err
    assert "kernel features.3:3<-7" in out


def test_activations_command(capsys, tmp_path: Path, shirt: Path) -> None:
    code, out, err = run(capsys, "activations", *FMNIST, "--image", str(shirt), "--unit", "features.6:3,4",
                         "--out", str(tmp_path / "acts"))
    assert code == 0, err
    assert "features.6 unit 3,4: receptive field rows 2-26, columns 6-28" in out  # 6-30, clipped
    files = sorted(p.name for p in (tmp_path / "acts").iterdir())
    assert files == ["1_features.0.png", "2_features.3.png", "3_features.6.png", "4_features.8.png", "5_features.10.png",
                     "input.png", "maps.npz", "rf_features.6_3_4.png"]
    with np.load(tmp_path / "acts" / "maps.npz") as maps:
        assert maps["features.0"].shape == (32, 28, 28) and maps["features.10"].shape == (64, 7, 7)
    assert Image.open(tmp_path / "acts" / "input.png").size == (28, 28)


@pytest.mark.parametrize("args, message", [
    (["examples", *FMNIST, *IMAGES, "--layer", "features.99"], "unknown conv layer 'features.99'"),
    (["examples", *FMNIST, *IMAGES, "--k", "0"], "--k must be at least 1"),
    (["examples", *FMNIST, *IMAGES, "--nodes", "3-1"], "empty channel range"),
    (["examples", *FMNIST, *IMAGES, "--nodes", "x"], "cannot read nodes 'x'"),
    (["examples", *FMNIST, *IMAGES, "--layer", "features.0", "--nodes", "0-40"], "channel 40 is out of range"),
    (["examples", *FMNIST, *IMAGES, "--input", "socks"], "unknown image set 'socks'"),
    (["examples", *FMNIST, "--images", "{tmp}/empty"], "empty"),
    (["examples", *FMNIST, *IMAGES, "--store", "{tmp}/notastore"], "not a viscnn store"),
    (["kernels", *FMNIST, "--layer", "features.3", "--out", "{tmp}/k.jpg"], "must name a .png file"),
    (["kernels", *FMNIST, "--layer", "features.3", "--kernel", "3", "--out", "{tmp}/k.png"], "cannot read --kernel"),
    (["kernels", *FMNIST, "--layer", "features.3", "--kernel", "3,40", "--out", "{tmp}/k.png"], "input channel 40 is out of range"),
    (["kernels", *FMNIST, "--layer", "nope", "--out", "{tmp}/k.png"], "unknown conv layer 'nope'"),
    (["activations", *FMNIST, "--image", "{tmp}/missing.png"], "cannot read image"),
    (["activations", *FMNIST, "--image", "{shirt}", "--unit", "features.6:9,9"], "position 9,9 is outside the 7x7 map"),
    (["activations", *FMNIST, "--image", "{shirt}", "--unit", "features.6"], "cannot read --unit"),
    (["activations", *FMNIST, "--image", "{shirt}", "--layer", "classifier.2"], "unknown conv layer"),
])
def test_bad_input(capsys, tmp_path: Path, shirt: Path, args: list[str], message: str) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "notastore").mkdir()
    (tmp_path / "notastore" / "thesis.txt").write_text("my work")
    args = [a.format(tmp=tmp_path, shirt=shirt) for a in args]
    if args[0] != "kernels":
        args += ["--out", str(tmp_path / "out")]
    code, _, err = run(capsys, *args)
    assert code == 2 and message in err and "Traceback" not in err
    assert (tmp_path / "notastore" / "thesis.txt").read_text() == "my work"


def test_exit_status_from_a_shell(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "viscnn", "examples", *FMNIST, *IMAGES, "--k", "-2", "--out",
                           str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stderr.strip() == "viscnn examples: error: --k must be at least 1, not -2"


@pytest.mark.parametrize("args", [["examples", *FMNIST, *IMAGES], ["activations", *FMNIST, "--image", "{shirt}"]])
def test_an_output_folder_that_cannot_be_made_is_one_error(capsys, tmp_path: Path, shirt: Path, args: list[str]) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    args = [a.format(shirt=shirt) for a in args] + ["--out", str(tmp_path / "a-file" / "out")]
    code, _, err = run(capsys, *args)
    assert code == 2 and f"cannot create output folder {tmp_path / 'a-file' / 'out'}" in err and "Traceback" not in err
