"""`viscnn prepare`: every step in the store, a rerun skips them, a SIGKILLed run resumes and ends with the same layout."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from viscnn.cli import main
from viscnn.layout import Layout
from viscnn.pipeline.prepare import Preparer, Settings
from viscnn.store import Store

SPEC = "fashion-mnist:test:3"
ARGS = ["prepare", "--model", "fmnist-convnet", "--images", SPEC, "--projection", "mds", "--examples", "3", "--renders", "0",
        "--quiet"]


def run_cli(args, store, extra_env=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(extra_env or {})}
    return subprocess.Popen([sys.executable, "-m", "viscnn", *args, "--store", str(store)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def step_lines(text):
    return {line.split("] ", 1)[1].split(":")[0]: line.rsplit(": ", 1)[1] for line in text.splitlines() if line.startswith("[")}


def test_resume_after_sigkill(tmp_path, fmnist):
    store_dir = tmp_path / "store"
    process = run_cli(ARGS, store_dir)
    seen = []
    deadline = time.monotonic() + 120
    for line in process.stdout:  # kill as soon as the first projection is stored: mid-run
        seen.append(line)
        if "projection features.0: done" in line or time.monotonic() > deadline:
            break
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert any("classwise: done" in line for line in seen), "".join(seen) + process.stderr.read()
    assert not any("manifest" in line for line in seen)

    rerun = run_cli(ARGS + ["--out", str(tmp_path / "layout.json")], store_dir)
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    steps = step_lines(out)
    assert steps["scores"] == "cached" and steps["classwise"] == "cached"
    assert steps["projection features.0"] == "cached"
    assert steps["layout"].startswith("done") and steps["manifest"].startswith("done")
    assert "trustworthiness" in out

    # the store is sound (every file verifies) and the result equals an uninterrupted run's
    store = Store(store_dir)
    for entry in store.entries():
        assert store.get_path(entry.kind, entry.key) is not None
    loaded, graph = fmnist
    from viscnn.data import open_image_sets

    fresh = Preparer(loaded, graph, open_image_sets(SPEC), Store(tmp_path / "fresh"),
                     Settings(projection="mds", examples=0), SPEC, echo=lambda text: None)
    fresh.run()
    resumed = Layout.load(tmp_path / "layout.json")
    for name, layer in fresh.layout().layers.items():
        assert np.allclose(resumed[name].positions, layer.positions, atol=1e-5), name

    again = run_cli(ARGS, store_dir)
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert set(step_lines(out).values()) == {"cached"}


def test_prepare_in_process_uses_viscnn_store(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VISCNN_STORE", str(tmp_path / "env-store"))
    assert main(["prepare", "--model", "fmnist-convnet", "--images", SPEC, "--projection", "grid", "--examples", "0",
                 "--renders", "2", "--render-steps", "3", "--quiet", "--figure", str(tmp_path / "q.png")]) == 2  # grid has no trustworthiness to plot
    err = capsys.readouterr().err
    assert "no trustworthiness" in err and "Traceback" not in err
    store = Store(tmp_path / "env-store")
    kinds = {entry.kind for entry in store.entries()}
    assert {"scores", "layout", "prepared"} <= kinds and "classwise" not in kinds
    manifest = json.loads(store.entries("prepared")[0].path.read_text())
    layout = json.loads(store.get_bytes(*manifest["results"]["layout"]))
    assert layout["projection"] == "grid" and layout["quality"]["edge_length"]["ratio"] > 0
    renders = manifest["results"]["renders"]
    assert len(renders["nodes"]) == 2 and all(store.get_path(*key) is not None for key in renders["keys"])
    # under the keys the server and `viscnn visualize` look up
    from viscnn.featurevis.render import RenderSettings
    from viscnn.store.cache import cache_key

    layer, channel = renders["nodes"][0]
    settings = RenderSettings(steps=3)
    parts = {"model": "fmnist-convnet", "fingerprint": manifest["fingerprint"], "circuit": None,
             "settings": settings.to_json(), "size": 28, "objective": f"{layer}:{channel}"}
    assert store.get_path("render", cache_key("render", parts)) is not None


@pytest.mark.parametrize("args,message", [
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--examples", "-1"], "--examples must be at least 0"),
    (["--images", "/nonexistent/folder"], "nonexistent"),
])
def test_bad_arguments(tmp_path, capsys, args, message):
    assert main(["prepare", "--model", "fmnist-convnet", "--images", SPEC, "--store", str(tmp_path / "s"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_unknown_projection_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["prepare", "--projection", "tsne"])
    assert exit_info.value.code == 2


def test_featurevis_projection_renders_the_layer(tmp_path, fmnist):
    from viscnn.data import open_image_sets

    loaded, graph = fmnist
    preparer = Preparer(loaded, graph, open_image_sets(SPEC), Store(tmp_path / "s"),
                        Settings(projection="featurevis", render_steps=1, examples=0), SPEC, echo=lambda text: None)
    name = graph.conv_layers[0].name
    vectors = preparer.vectors(name)
    assert vectors.shape == (32, 32) and np.isfinite(vectors).all()
    assert len(Store(tmp_path / "s").entries("render")) == 32  # every node's render, stored for the server too
    renders = preparer.renders(name)  # now from the store
    assert renders.shape == (32, 1, 28, 28)
    assert np.allclose(preparer.vectors(name), vectors)
