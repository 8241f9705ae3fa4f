"""One fmnist-convnet server over 40 Fashion-MNIST test images, shared by the server tests."""
import time

import pytest
import torch


def pytest_configure(config):
    # starlette's TestClient asks for a package ('httpx2') that it does not need to work
    config.addinivalue_line("filterwarnings", "ignore:.*httpx2.*")


@pytest.fixture(scope="session")
def state(tmp_path_factory):
    from viscnn.server import build_state

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("server-store")
    the_state = build_state("fmnist-convnet", "fashion-mnist:test:4", store=root, batch_size=16)
    yield the_state
    the_state.close()


@pytest.fixture(scope="session")
def client(state, tmp_path_factory):
    from fastapi.testclient import TestClient

    from viscnn.server import create_app

    web = tmp_path_factory.mktemp("web")
    (web / "index.html").write_text("<!doctype html><title>viscnn page</title>")
    with TestClient(create_app(state, web, render_steps=16), base_url="http://127.0.0.1:8000") as the_client:
        yield the_client


def wait(client, answer, timeout=60.0):
    """Follow a job answer ({job, state, result}) until it ends; returns the final job JSON."""
    body = answer.json()
    if body["job"] is None:
        return {"state": body["state"], "result": body["result"]}
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = client.get(f"/api/jobs/{body['job']}").json()
        if job["state"] in ("done", "error", "cancelled"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {body['job']} did not finish in {timeout} s")
