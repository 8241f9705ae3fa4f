"""Circuits, faithfulness and composition over the API: jobs, stored results, bad input."""
import io

import pytest
from PIL import Image

from tests.server.conftest import wait
from viscnn.graph import Edge


def test_circuit_job_then_stored(client, state):
    body = {"images": "trouser + dress", "target": "features.6:3", "method": "actgrad", "keep": 0.1}
    first = client.post("/api/circuit", json=body)
    assert first.status_code == 202
    job = wait(client, first)
    assert job["state"] == "done", job
    circuit = job["result"]
    assert circuit["target"] == {"text": "features.6:3", "layer": "features.6", "channel": 3}
    assert circuit["method"] == "actgrad" and circuit["edges"] and circuit["nodes"]
    layers = {edge["layer"] for edge in circuit["edges"]}
    assert layers <= {"features.0", "features.3", "features.6"}
    assert all(state.graph.has_edge(Edge(e["layer"], e["out"], e["in"])) for e in circuit["edges"])
    for e in circuit["edges"][:20]:  # each edge's sign is the one its edge panel shows
        assert e["sign"] == client.get(f"/api/edges/{e['layer']}/{e['out']}/{e['in']}").json()["sign"]
    again = client.post("/api/circuit", json=body)
    assert again.status_code == 200 and again.json()["job"] is None
    assert again.json()["result"]["edges"] == circuit["edges"]


@pytest.mark.parametrize("body, message", [
    ({"target": "features.6:3", "method": "telepathy"}, "unknown circuit method"),
    ({"target": "features.6:3", "keep": 0}, "keep"),
    ({"target": "features.6:3", "keep": 1.5}, "keep"),
    ({"target": "features.6:3", "rule": "vibes"}, "selection rule"),
    ({"target": "features.6:3", "images": "trouser - overall"}, "negative coefficient"),
    ({"target": "features.6:3", "images": "trouser +"}, "column"),
    ({"target": "nonsense:::"}, "nonsense"),
    ({"target": "features.3:1<-2"}, "an edge is a render objective only"),
    ({"images": "overall"}, "target"),
])
def test_bad_circuit_requests_are_400(client, body, message):
    answer = client.post("/api/circuit", json=body)
    assert answer.status_code == 400 and message in answer.json()["detail"]


def test_faithfulness_job(client):
    body = {"images": "sandal + sneaker", "target": "features.3:1", "methods": ["magnitude", "random"], "fractions": [0.2]}
    job = wait(client, client.post("/api/faithfulness", json=body))
    assert job["state"] == "done", job
    summary = job["result"]["summary"]
    assert set(summary) == {"magnitude", "random"}
    assert job["result"]["train_images"] == 4 and job["result"]["held_out_images"] == 4
    assert client.post("/api/faithfulness", json=body).json()["job"] is None  # stored


@pytest.mark.parametrize("body, message", [
    ({"target": "features.3:1", "methods": ["nope"]}, "unknown circuit method"),
    ({"target": "features.3:1", "fractions": [2.0]}, "fraction"),
    ({"target": "features.3:1", "images": "dragons"}, "dragons"),
])
def test_bad_faithfulness_requests_are_400(client, body, message):
    answer = client.post("/api/faithfulness", json=body)
    assert answer.status_code == 400 and message in answer.json()["detail"]


def test_composition_job(client):
    answer = client.get("/api/composition", params={"image": "i5", "unit": "features.6:2", "top_k": 2, "depth": 2})
    job = wait(client, answer)
    assert job["state"] == "done", job
    tree = job["result"]["tree"]
    assert tree["layer"] == "features.6" and tree["channel"] == 2
    assert 0 < len(tree["children"]) <= 2 and job["result"]["paths"]
    pictures = [tree["saliency"]] + [child["saliency"] for child in tree["children"]]
    for url in pictures:
        answer = client.get(url)
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
    picture = Image.open(io.BytesIO(client.get(tree["saliency"]).content))
    assert picture.width > 2 * 28  # the image and its saliency side by side
    again = client.get("/api/composition", params={"image": "i5", "unit": "features.6:2", "top_k": 2, "depth": 2})
    assert again.status_code == 200 and again.json()["result"]["tree"] == tree  # stored


@pytest.mark.parametrize("key", ["0" * 64, "../../index.sqlite", "a" * 63 + "/"])
def test_unknown_saliency_maps_are_404(client, key):
    answer = client.get(f"/api/composition/saliency/{key}.png")
    assert answer.status_code == 404 and answer.json()["detail"]


@pytest.mark.parametrize("params, status, message", [
    ({"image": "i5", "unit": "features.6"}, 400, "cannot read unit"),
    ({"image": "i5", "unit": "features.99:1"}, 400, "unknown conv layer"),
    ({"image": "i5", "unit": "features.6:1:99,99"}, 400, "position 99,99 is outside the 7x7 map of layer features.6"),
    ({"image": "nope", "unit": "features.6:1"}, 404, "unknown image"),
    ({"image": "i5", "unit": "features.6:1", "top_k": 0}, 400, "top_k"),
])
def test_bad_composition_requests(client, params, status, message):
    answer = client.get("/api/composition", params=params)
    assert answer.status_code == status and message in answer.json()["detail"]
