"""Starting the server: `viscnn serve` as a user runs it, `viscnn.show` in a notebook, and Lite0 end to end."""
import signal
import subprocess
import sys
import time

import httpx
import pytest

import viscnn
from viscnn.server.launch import free_port


def test_serve_prints_the_url_and_answers(tmp_path):
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "viscnn", "serve", "--model", "fmnist-convnet", "--images",
                                "fashion-mnist:test:2", "--port", str(port), "--store", str(tmp_path), "--prepare", "none",
                                "--web", str(tmp_path / "no-page")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        deadline = time.time() + 60
        while time.time() < deadline and not any("open http" in line for line in lines):
            lines.append(process.stdout.readline())
        assert any(f"open http://127.0.0.1:{port}/" in line for line in lines), lines
        for _ in range(100):  # uvicorn binds just after the URL is printed
            try:
                model = httpx.get(f"http://127.0.0.1:{port}/api/model", timeout=5)
                break
            except httpx.ConnectError:
                time.sleep(0.1)
        assert model.status_code == 200 and model.json()["name"] == "fmnist-convnet"
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
        assert page.status_code == 200 and "setup.sh" in page.text  # no page built there: says how to build it
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)


def test_serve_refuses_a_busy_port(capsys):
    import socket

    from viscnn import cli

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert cli.main(["serve", "--model", "fmnist-convnet", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert "cannot listen" in err and str(port) in err


def test_show_embeds_the_running_page(tmp_path):
    shown = viscnn.show("fmnist-convnet", "fashion-mnist:test:1", store=tmp_path, prepare=None, height=500)
    try:
        assert shown.url.startswith("http://127.0.0.1:")
        html = shown._repr_html_()
        assert f'src="{shown.url}"' in html and 'height="500"' in html and "<iframe" in html
        assert httpx.get(shown.url + "api/sets", timeout=5).json()[-1]["name"] == "overall"
        again = viscnn.show("fmnist-convnet", "fashion-mnist:test:1", store=tmp_path, prepare=None)
        assert again.url == shown.url  # a re-run cell reuses the server
    finally:
        shown.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(shown.url + "api/sets", timeout=2)


@pytest.mark.slow
def test_lite0_smoke(tmp_path):
    """The real model: 21,008 nodes, depthwise layers, one photo's maps, kernels and receptive fields."""
    from fastapi.testclient import TestClient

    from viscnn.server import build_state, create_app

    state = build_state("efficientnet-lite0", "demo", store=tmp_path)
    with TestClient(create_app(state), base_url="http://localhost:8000") as client:
        model = client.get("/api/model").json()
        assert model["num_nodes"] == 21008 and model["num_edges"] == 3155168 and len(model["layers"]) == 50
        assert len(client.get("/api/layout").json()["layers"]) == 50
        depthwise = next(layer for layer in model["layers"] if layer["groups"] > 1)
        node = client.get(f"/api/nodes/{depthwise['name']}/7", params={"top": 5}).json()
        assert [edge["in"] for edge in node["incoming"]] == [7]  # a depthwise filter reads one channel
        image = client.get("/api/images", params={"set": "overall"}).json()[0]["id"]
        answer = client.get("/api/activation", params={"image": image, "layer": depthwise["name"], "channel": 7}).json()
        assert [answer["height"], answer["width"]] == depthwise["output_shape"][1:]
        assert client.get(f"/api/edges/{depthwise['name']}/7/7/output.png", params={"image": image}).status_code == 200
        assert client.get(f"/api/edges/{depthwise['name']}/7/8").status_code == 404
        assert client.get(f"/api/images/{image}.png").status_code == 200


@pytest.mark.parametrize("extra, message", [
    (["--images", "/no/such/folder"], "does not exist"),
    (["--render-steps", "0"], "--render-steps"),
    (["--port", "70000"], "--port"),
    (["--host", "0.0.0.0", "--token", "short"], "at least 8"),
    (["--model", "no-such-model"], "unknown model"),
])
def test_serve_faults_are_one_line_and_exit_2(capsys, extra, message):
    from viscnn import cli

    args = ["serve", "--model", "fmnist-convnet", "--port", str(free_port()), "--prepare", "none"]
    assert cli.main(args + extra) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
