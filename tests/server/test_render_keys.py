"""One render cache key: what `viscnn visualize` stores, the server serves as it is (no job, the same PNG)."""
import json

from viscnn.cli import main


def test_the_server_serves_a_render_viscnn_visualize_cached(client, state, tmp_path):
    out = tmp_path / "out"
    # the client's server renders with 16 steps: the same render from the command line, into the server's store
    args = ["visualize", "--model", "fmnist-convnet", "--steps", "16", "--target", "features.8:3", "--quiet",
            "--out", str(out), "--store", str(state.store.root)]
    assert main(args) == 0
    assert not json.loads((out / "visualize.json").read_text())["renders"][0]["cached"]
    answer = client.get("/api/nodes/features.8/3/render.png")
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
    [entry] = [e for e in state.store.entries("render") if e.meta["meta"]["objective"] == "features.8:3"]
    assert answer.content == entry.path.read_bytes()
