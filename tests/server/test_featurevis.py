"""Feature visualizations and dataset examples over the API: a job the first time, the stored result after."""
import io

import numpy as np
from PIL import Image

from tests.server.conftest import wait


def test_node_render_is_a_job_then_a_png(client):
    unrendered = client.get("/api/nodes/features.6/4/render.png")  # a GET only reads: it queues nothing
    assert unrendered.status_code == 404 and "POST /api/nodes/features.6/4/render" in unrendered.json()["detail"]
    first = client.post("/api/nodes/features.6/4/render")
    assert first.status_code == 202 and first.headers["content-type"] == "application/json"
    job = wait(client, first, timeout=120)
    assert job["state"] == "done", job
    assert job["result"]["objective"] == "features.6:4" and job["result"]["png"] == "/api/nodes/features.6/4/render.png"
    second = client.get("/api/nodes/features.6/4/render.png")
    assert second.status_code == 200 and second.headers["content-type"] == "image/png"
    picture = np.asarray(Image.open(io.BytesIO(second.content)))
    assert picture.shape[:2] == (28, 28) and picture.std() > 0  # an image, not a blank
    again = client.post("/api/nodes/features.6/4/render")  # stored: no job
    assert again.status_code == 200 and again.json() == {"job": None, "state": "done",
                                                         "result": {"objective": "features.6:4", "png": job["result"]["png"]}}


def test_neuron_and_edge_renders_are_their_own_jobs(client):
    neuron = client.post("/api/nodes/features.6/4/render", params={"mode": "neuron"})
    edge = client.post("/api/edges/features.6/4/7/render")
    assert neuron.status_code == 202 and edge.status_code == 202 and neuron.json()["job"] != edge.json()["job"]
    assert wait(client, neuron, timeout=120)["result"]["png"] == "/api/nodes/features.6/4/render.png?mode=neuron"
    assert wait(client, edge, timeout=120)["result"]["objective"] == "features.6:4<-7"
    assert client.get("/api/nodes/features.6/4/render.png", params={"mode": "neuron"}).status_code == 200
    assert client.get("/api/edges/features.6/4/7/render.png").headers["content-type"] == "image/png"


def test_dataset_examples_job_then_json_and_png(client, state):
    first = client.get("/api/nodes/features.3/2/examples")
    if first.status_code == 202:  # not yet computed in this store (the layout job may have done it)
        assert wait(client, first, timeout=120)["state"] == "done"
    answer = client.get("/api/nodes/features.3/2/examples")
    assert answer.status_code == 200
    node = answer.json()["result"]
    assert node["node"] == "features.3:2" and len(node["excite"]) == 9 and len(node["inhibit"]) <= 9
    assert all(entry["value"] < 0 for entry in node["inhibit"])  # inhibiting: below 0, not merely least exciting
    assert node["lowest"] == (node["inhibit"][0]["value"] if node["inhibit"] else node["lowest"])
    values = [entry["value"] for entry in node["excite"]]
    assert values == sorted(values, reverse=True)
    best = node["excite"][0]
    assert best["image_id"] == f"i{best['image']}"
    activation = client.get("/api/activation", params={"image": best["image_id"], "layer": "features.3", "channel": 2}).json()
    assert np.isclose(np.max(activation["values"]), best["value"], rtol=1e-4)  # the top image's peak is that value
    grid = client.get(node["png"])
    assert grid.status_code == 200 and grid.headers["content-type"] == "image/png"
