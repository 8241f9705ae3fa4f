"""A server without a store (`viscnn serve --no-cache`): what needs one says so (503), the rest works."""
import pytest
from fastapi.testclient import TestClient

from tests.server.conftest import wait
from viscnn.server import ServerState, create_app


@pytest.fixture(scope="module")
def bare(state, tmp_path_factory):
    twin = ServerState(state.loaded, state.graph, "fashion-mnist:test:1", upload_dir=tmp_path_factory.mktemp("up"))
    with TestClient(create_app(twin, tmp_path_factory.mktemp("noweb")), base_url="http://127.0.0.1") as client:
        yield client


@pytest.mark.parametrize("path", ["/api/nodes/features.3/1/render.png", "/api/nodes/features.3/1/examples",
                                  "/api/nodes/features.3/1/examples.png", "/api/edges/features.3/1/0/render.png",
                                  "/api/layout?kind=umap"])
def test_what_needs_a_store_is_503(bare, path):
    answer = bare.get(path)
    assert answer.status_code == 503 and ("store" in answer.json()["detail"] or "no-cache" in answer.json()["detail"])


def test_queries_circuits_and_compositions_work_without_a_store(bare):
    query = wait(bare, bare.post("/api/query", json={"images": "overall", "target": "loss"}))
    assert query["state"] == "done" and query["result"]["n_images"] == 10
    again = bare.post("/api/query", json={"images": "overall", "target": "loss"})
    assert again.status_code == 200  # from memory
    circuit = wait(bare, bare.post("/api/circuit", json={"images": "overall", "target": "features.3:1", "keep": 0.2}))
    assert circuit["state"] == "done" and circuit["result"]["edges"]
    composition = wait(bare, bare.get("/api/composition", params={"image": "i0", "unit": "features.3:1", "depth": 1}))
    assert composition["state"] == "done" and "saliency" not in composition["result"]["tree"]
    assert bare.get("/api/layout").status_code == 200
