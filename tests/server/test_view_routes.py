"""The views' routes: maps with their colour scale, which renders a layer has, renders through stored circuits
(the preprint's Fig 9) and sub-feature circuits (Fig 10); each with its bad input as one 4xx message."""
import io

import numpy as np
import pytest
from PIL import Image

from tests.server.conftest import wait
from viscnn.inspection import draw

CIRCUIT = {"images": "trouser + dress", "target": "features.6:3", "method": "actgrad", "keep": 0.1}


def _png(client, url, **params):
    answer = client.get(url, params=params)
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png", answer.text[:200]
    return np.asarray(Image.open(io.BytesIO(answer.content)).convert("RGB"))


def test_maps_come_with_their_scale_and_pngs_use_it(client):
    params = {"image": "i3", "layer": "features.3", "channel": 4}
    activation = client.get("/api/activation", params=params).json()
    values = np.array(activation["values"])
    scale = activation["scale"]
    assert scale["kind"] == ("diverging" if values.min() < 0 < values.max() else "sequential")
    assert np.array_equal(_png(client, "/api/activation.png", **params), draw.colours(values))
    maps = client.get("/api/edges/features.3/5/2/maps", params={"image": "i3"}).json()
    feeding = np.array(maps["input"]["values"])
    assert feeding.min() >= 0 and maps["input"]["scale"]["kind"] == "sequential"  # after a ReLU: one sign
    assert maps["input"]["scale"]["colormap"] == "viridis"
    assert np.array_equal(_png(client, "/api/edges/features.3/5/2/input.png", image="i3"), draw.colours(feeding))
    made = np.array(maps["output"]["values"])
    assert np.array_equal(_png(client, "/api/edges/features.3/5/2/output.png", image="i3"), draw.colours(made))
    kernel = client.get("/api/edges/features.3/5/2").json()
    assert kernel["scale"]["kind"] == "diverging" and kernel["scale"]["high"] == pytest.approx(np.abs(kernel["kernel"]).max())


@pytest.mark.parametrize("url, params, status, message", [
    ("/api/edges/features.3/5/2/maps", {}, 400, "image"),
    ("/api/edges/features.3/5/2/maps", {"image": "i999"}, 404, "unknown image"),
    ("/api/edges/features.3/99/2/maps", {"image": "i1"}, 404, "channels 0.."),
    ("/api/layers/features.99/renders", {}, 404, "unknown conv layer"),
    ("/api/layers/features.3/renders", {"mode": "pixel"}, 400, "mode"),
    ("/api/circuits/deadbeef", {}, 404, "unknown circuit"),
    ("/api/circuits/" + "0" * 64 + "/render.png", {}, 404, "unknown circuit"),
    ("/api/subfeatures/patches/nope.png", {}, 404, "unknown patch picture"),
])
def test_bad_view_requests_are_one_clear_4xx(client, url, params, status, message):
    answer = client.get(url, params=params)
    assert answer.status_code == status and message in answer.json()["detail"], answer.text


def test_a_layer_lists_its_rendered_nodes(client):
    before = client.get("/api/layers/features.0/renders").json()
    assert before["channels"] == 32 and before["mode"] == "channel" and 5 not in before["rendered"]
    assert wait(client, client.post("/api/nodes/features.0/5/render"), timeout=120)["state"] == "done"
    assert 5 in client.get("/api/layers/features.0/renders").json()["rendered"]
    assert 5 not in client.get("/api/layers/features.0/renders", params={"mode": "neuron"}).json()["rendered"]


@pytest.fixture(scope="module")
def circuit(client):
    job = wait(client, client.post("/api/circuit", json=CIRCUIT), timeout=120)
    assert job["state"] == "done", job
    return job["result"]


def test_stored_circuits_are_listed_and_served_as_files(client, circuit):
    listed = client.get("/api/circuits").json()
    mine = next(c for c in listed if c["key"] == circuit["key"])
    assert mine["target"] == "features.6:3" and mine["method"] == "actgrad" and mine["edges"] == len(circuit["edges"])
    file = client.get(f"/api/circuits/{circuit['key']}")
    assert file.status_code == 200 and "attachment" in file.headers["content-disposition"]
    assert file.json()["edges"] == circuit["edges"]


def test_a_node_revisualised_through_its_circuit(client, state, circuit):
    key = circuit["key"]
    unrendered = client.get(f"/api/circuits/{key}/render.png")
    assert unrendered.status_code == 404 and f"POST /api/circuits/{key}/render" in unrendered.json()["detail"]
    first = client.post(f"/api/circuits/{key}/render")
    assert first.status_code == 202
    job = wait(client, first, timeout=120)
    assert job["state"] == "done", job
    result = job["result"]
    assert result["objective"] == "features.6:3" and result["circuit"] == key
    assert result["circuit_edges"] == len(circuit["edges"])
    through = _png(client, result["png"])
    assert through.shape[:2] == (28, 28) and through.std() > 0
    again = client.post(f"/api/circuits/{key}/render")
    assert again.status_code == 200 and again.json()["job"] is None  # stored
    whole = wait(client, client.post("/api/nodes/features.6/3/render"), timeout=120)
    assert not np.array_equal(_png(client, whole["result"]["png"]), through)  # the circuit's render is its own
    inner = next(n for n in circuit["nodes"] if n["layer"] == "features.3")
    node = client.post(f"/api/circuits/{key}/render", params={"objective": f"features.3:{inner['channel']}"})
    assert node.status_code in (200, 202)


@pytest.mark.parametrize("objective, message", [
    ("logit:1", "the circuit ends at features.6:3"),
    ("features.10:0", "not upstream of the circuit's target"),
    ("loss", "not a render objective"),
    ("features.6:", "features.6:"),
])
def test_bad_circuit_render_objectives_are_400(client, circuit, objective, message):
    answer = client.post(f"/api/circuits/{circuit['key']}/render", params={"objective": objective})
    assert answer.status_code == 400 and message in answer.json()["detail"], answer.text


def test_a_node_outside_the_circuit_is_refused(client, state, circuit):
    inside = {n["channel"] for n in circuit["nodes"] if n["layer"] == "features.3"}
    outside = next(c for c in range(state.graph["features.3"].out_channels) if c not in inside)
    answer = client.post(f"/api/circuits/{circuit['key']}/render", params={"objective": f"features.3:{outside}"})
    assert answer.status_code == 400 and "is not in the circuit" in answer.json()["detail"]


def test_sub_feature_circuits(client):
    body = {"node": "features.6:2", "top_n": 40, "min_cluster_size": 4, "keep": 0.1}
    first = client.post("/api/subfeatures", json=body)
    assert first.status_code == 202
    job = wait(client, first, timeout=300)
    assert job["state"] == "done", job
    result = job["result"]
    assert result["node"] == "features.6:2" and result["patches"] == 40
    points = result["projection"]["points"]
    assert len(points) == 40 and {p["cluster"] for p in points} <= {-1} | {c["id"] for c in result["clusters"]}
    for cluster in result["clusters"]:
        assert cluster["size"] == sum(1 for p in points if p["cluster"] == cluster["id"])
        # a point's cluster is the cluster that lists its image (HDBSCAN's own numbering is not the clusters')
        members = {m["image"] for m in cluster["members"]}
        assert members == {p["image"] for p in points if p["cluster"] == cluster["id"]}
        picture = _png(client, cluster["patches_png"])
        assert picture.std() > 0
        stored = client.get(f"/api/circuits/{cluster['circuit']}")
        assert stored.status_code == 200 and len(stored.json()["edges"]) == cluster["circuit_edges"]
    if result["clusters"]:  # each cluster's circuit renders the node through it
        key = result["clusters"][0]["circuit"]
        assert wait(client, client.post(f"/api/circuits/{key}/render"), timeout=120)["state"] == "done"
    again = client.post("/api/subfeatures", json=body)
    assert again.status_code == 200 and again.json()["result"]["key"] == result["key"]


@pytest.mark.parametrize("body, message", [
    ({"node": "features.6:2", "min_cluster_size": 30}, "cannot form 2 clusters"),
    ({"node": "features.6:999"}, "features.6"),
    ({"node": "input:0"}, "input"),
    ({"node": "nonsense"}, "cannot read node"),
    ({"node": "features.6:2", "images": "dragons"}, "unknown image set"),
    ({"node": "features.6:2", "method": "telepathy"}, "unknown circuit method"),
    ({"node": "features.6:2", "keep": 0}, "keep"),
    ({"node": "features.6:2", "colour": "red"}, "colour"),
])
def test_bad_sub_feature_requests_are_400(client, body, message):
    answer = client.post("/api/subfeatures", json=body)
    assert answer.status_code == 400 and message in answer.json()["detail"], answer.text
