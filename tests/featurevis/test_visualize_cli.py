"""`viscnn visualize` on fmnist-convnet: files, cache, circuits, and one-line errors with exit status 2."""
import json

import pytest
import torch
from PIL import Image

from viscnn.cli import main

FMNIST = ["visualize", "--model", "fmnist-convnet", "--steps", "6", "--quiet"]


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_renders_are_written_and_cached(tmp_path, capsys):
    out, store = tmp_path / "out", tmp_path / "store"
    args = FMNIST + ["--target", "features.6:0-2", "--target", "features.3:5<-7", "--target", "logit:3",
                     "--out", str(out), "--store", str(store)]
    assert main(args) == 0
    report = json.loads((out / "visualize.json").read_text())
    assert [r["objective"] for r in report["renders"]] == ["features.6:0", "features.6:1", "features.6:2",
                                                           "features.3:5<-7", "logit:3"]
    assert not any(r["cached"] for r in report["renders"])
    for item in report["renders"]:
        with Image.open(out / item["files"][0]) as image:
            assert image.size == (28, 28) and image.mode == "L"
    first = (out / "features.3_5_from_7.png").read_bytes()
    capsys.readouterr()
    assert main(args) == 0  # the second time everything comes from the store
    assert capsys.readouterr().out.count("[cached]") == 5
    again = json.loads((out / "visualize.json").read_text())
    assert all(r["cached"] for r in again["renders"])
    assert (out / "features.3_5_from_7.png").read_bytes() == first
    assert again["renders"][4]["values"] == report["renders"][4]["values"]


def test_negative_and_copies(tmp_path):
    out = tmp_path / "out"
    assert main(FMNIST + ["--target", "features.8:1", "--negative", "--copies", "2", "--diversity", "0.5",
                          "--out", str(out), "--no-cache"]) == 0
    report = json.loads((out / "visualize.json").read_text())
    assert report["renders"][0]["objective"] == "-features.8:1"
    assert report["renders"][0]["files"] == ["-features.8_1_0.png", "-features.8_1_1.png"]
    assert len(report["renders"][0]["values"]) == 2


def _circuit(tmp_path, capsys):
    path = tmp_path / "c.json"
    assert main(["circuit", "--model", "fmnist-convnet", "--images", "fashion-mnist:test:2", "--target", "features.6:2",
                 "--keep", "0.2", "--method", "magnitude", "--out", str(path)]) == 0
    capsys.readouterr()
    return path


def test_render_through_a_circuit(tmp_path, capsys):
    path = _circuit(tmp_path, capsys)
    kept = [e for e in json.loads(path.read_text())["edges"] if e["layer"] == "features.6"]
    out = tmp_path / "out"
    edge = f"features.6:{kept[0]['out']}<-{kept[0]['in']}"
    assert main(FMNIST + ["--target", "features.6:2", "--target", edge, "--circuit", str(path),
                          "--out", str(out), "--no-cache"]) == 0
    report = json.loads((out / "visualize.json").read_text())
    assert report["circuit"] and report["circuit_file"] == str(path)
    dropped = next(f"features.6:{o}<-{i}" for o in range(96) for i in range(64)
                   if not any(e["out"] == o and e["in"] == i for e in kept))
    assert main(FMNIST + ["--target", dropped, "--circuit", str(path), "--out", str(out), "--no-cache"]) == 2
    assert "is not in circuit" in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["--target", "features.9:1"], "unknown conv layer 'features.9'"),
    (["--target", "features.6:500"], "channel 500"),
    (["--target", "features.3:1<-99"], "input channel 99"),
    (["--target", "features.3:2<-"], "cannot read edge"),
    (["--target", "features.6:5-2"], "empty channel range"),
    (["--target", "features.6:1", "--steps", "0"], "steps must be a positive number, not 0"),
    (["--target", "features.6:1", "--steps", "-4"], "steps must be a positive number"),
    (["--target", "features.6:1", "--size", "64"], "cannot take 64x64 px images"),
    (["--target", "features.6:1", "--sharpen", "1.5"], "sharpen is a fraction of the steps, from 0 to 1, not 1.5"),
    (["--target", "features.6:1", "--workers", "0"], "workers must be positive, not 0"),
    (["--target", "features.6:1", "--circuit", "missing.json"], "cannot read circuit file"),
])
def test_bad_input_is_one_line_and_status_2(tmp_path, capsys, extra, message):
    code = main(FMNIST + extra + ["--out", str(tmp_path / "out"), "--no-cache"])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_depthwise_edge_error_from_the_cli(tmp_path, capsys):
    code = main(["visualize", "--model", "efficientnet-lite0", "--target", "_blocks.2._depthwise_conv:3<-4",
                 "--steps", "1", "--out", str(tmp_path), "--no-cache", "--quiet"])
    assert code == 2
    assert "is depthwise" in capsys.readouterr().err
