"""The graph-facing routes: model, layout, nodes, activation maps, receptive fields, edges."""
import io

import numpy as np
import pytest
import torch
from PIL import Image

from viscnn.server.views import Maps


def test_model_describes_the_graph(client, state):
    model = client.get("/api/model").json()
    assert model["name"] == "fmnist-convnet" and model["input_shape"] == [1, 28, 28]
    assert model["num_nodes"] == state.graph.num_nodes and model["num_edges"] == state.graph.num_edges
    assert [layer["name"] for layer in model["layers"]] == list(state.graph.layers)
    assert model["classes"][1] == "Trouser" and "taylor" in model["criteria"] and "actgrad" in model["methods"]
    conv = next(layer for layer in model["layers"] if layer["name"] == "features.3")
    assert conv["sources"] == [{"layer": "features.0", "channels": list(range(conv["in_channels"]))}]
    assert conv["receptive_field"]["size"] == list(state.graph["features.3"].receptive_field.size)


def test_openapi_schema_lists_the_endpoints(client):
    paths = client.get("/api/openapi.json").json()["paths"]
    for path in ["/api/model", "/api/query", "/api/jobs/{job_id}/events", "/api/nodes/{layer}/{channel}",
                 "/api/edges/{layer}/{out}/{inp}/output.png", "/api/circuit", "/api/composition", "/api/images"]:
        assert path in paths


def test_grid_layout_has_one_position_per_channel(client, state):
    layout = client.get("/api/layout", params={"kind": "grid"}).json()
    assert layout["kind"] == "grid" and set(layout["kinds"]) >= {"grid", "umap"} and layout["format"] == "viscnn-layout/1"
    assert list(layout["layers"]) == list(state.graph.layers)
    for name, layer in state.graph.layers.items():
        entry = layout["layers"][name]
        positions = np.array(entry["positions"])
        assert positions.shape == (layer.out_channels, 2) and entry["depth"] == layer.depth
        assert len({tuple(p) for p in positions}) == layer.out_channels  # no two nodes on one spot
        assert (np.hypot(*positions.T) <= entry["scale"] + 1e-3).all()  # inside the layer's disc, in node units
        if layer.out_channels > 8:
            gaps = np.linalg.norm(positions[:, None] - positions[None], axis=2) + np.eye(len(positions)) * 1e9
            assert 0.5 < np.median(gaps.min(axis=1)) < 2  # neighbours about one unit apart


def test_unknown_layout_is_400(client):
    answer = client.get("/api/layout", params={"kind": "spiral"})
    assert answer.status_code == 400 and "grid" in answer.json()["detail"]


def test_weights_layout_is_prepared_by_a_job_then_served(client, state):
    from tests.server.conftest import wait

    first = client.get("/api/layout", params={"kind": "weights"})
    job = wait(client, first, timeout=120)
    assert job["state"] == "done", job
    layout = job["result"]
    assert layout["kind"] == "weights" and layout["projection"] == "weights"
    for name, layer in state.graph.layers.items():
        assert len(layout["layers"][name]["positions"]) == layer.out_channels
    again = client.get("/api/layout", params={"kind": "weights"})
    assert again.status_code == 200 and again.json()["layers"] == layout["layers"]


def test_node_incoming_edges_by_kernel_norm_without_a_query(client, state):
    node = client.get("/api/nodes/features.3/5", params={"top": 4}).json()
    assert node["score"] is None and node["map_size"] == list(state.graph["features.3"].output_shape[-2:])
    norms = [edge["weight_norm"] for edge in node["incoming"]]
    assert len(norms) == 4 and norms == sorted(norms, reverse=True)
    assert all(edge["sources"] == [{"layer": "features.0", "channel": edge["in"]}] for edge in node["incoming"])


def test_node_incoming_edges_by_query_score(client):
    answer = client.post("/api/query", json={"images": "bag", "target": "loss", "criterion": "taylor"})
    from tests.server.conftest import wait

    result = wait(client, answer)["result"]
    node = client.get("/api/nodes/features.6/2", params={"query": result["key"], "top": 10}).json()
    assert node["score"] == pytest.approx(result["nodes"]["features.6"][2])
    scores = [abs(edge["score"]) for edge in node["incoming"]]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("path, status, message", [
    ("/api/nodes/features.99/0", 404, "unknown conv layer"),
    ("/api/nodes/input/0", 404, "unknown conv layer"),
    ("/api/nodes/features.3/4096", 404, "channels 0.."),
    ("/api/nodes/features.3/-1", 400, "channel: Input should be greater than or equal to 0"),
    ("/api/nodes/features.3/abc", 400, "channel"),
    ("/api/nodes/features.3/1?query=deadbeef", 404, "unknown query"),
    ("/api/nodes/features.3/1?top=0", 400, "top"),
    ("/api/nodes/features.3/1/render.png?mode=pixel", 400, "mode"),
    ("/api/nodes/features.3/99/render.png", 404, "channels 0.."),
    ("/api/nodes/features.3/99/examples", 404, "channels 0.."),
    ("/api/nodes/..%2F..%2Fetc/1", 404, "/etc/1"),
])
def test_bad_node_requests(client, path, status, message):
    answer = client.get(path)
    assert answer.status_code == status and message in answer.json()["detail"]


def test_activation_map_is_the_nodes_map(client, state):
    image = client.get("/api/images", params={"set": "trouser"}).json()[0]["id"]
    answer = client.get("/api/activation", params={"image": image, "layer": "features.3", "channel": 7}).json()
    values = np.array(answer["values"])
    assert values.shape == (answer["height"], answer["width"]) == tuple(state.graph["features.3"].output_shape[-2:])
    # the same map from the model itself: the conv's output through its BatchNorm (if any)
    outputs = {}
    module = state.loaded.module
    spec = state.graph["features.3"]
    hooked = module.get_submodule(spec.batchnorm or spec.module)
    handle = hooked.register_forward_hook(lambda m, i, o: outputs.update(map=o.detach().clone()))  # returns None
    with torch.no_grad():
        module(state.model_input(state.image(image))[None])
    handle.remove()
    np.testing.assert_allclose(values, outputs["map"][0, 7].numpy(), rtol=1e-4, atol=1e-5)
    picture = Image.open(io.BytesIO(client.get(answer["png"]).content))
    assert picture.size == (answer["width"], answer["height"]) and picture.mode == "RGB"


@pytest.mark.parametrize("params, status", [
    ({"image": "i999999", "layer": "features.3", "channel": 0}, 404),
    ({"image": "../../etc/passwd", "layer": "features.3", "channel": 0}, 404),
    ({"image": "i0", "layer": "nope", "channel": 0}, 404),
    ({"image": "i0", "layer": "features.3", "channel": 99999}, 404),
    ({"image": "i0", "layer": "features.3"}, 400),
])
def test_bad_activation_requests(client, params, status):
    for path in ["/api/activation", "/api/activation.png"]:
        answer = client.get(path, params=params)
        assert answer.status_code == status and answer.json()["detail"]


def test_receptive_field_box_matches_the_graph(client, state):
    box = client.get("/api/receptive_field", params={"layer": "features.6", "y": 2, "x": 3}).json()
    assert (box["top"], box["left"], box["bottom"], box["right"]) == state.graph["features.6"].receptive_field.box(2, 3)
    assert box["image_size"] == [28, 28]
    outside = client.get("/api/receptive_field", params={"layer": "features.6", "y": 500, "x": 0})
    assert outside.status_code == 404 and "outside" in outside.json()["detail"]


def test_edge_kernel_is_bn_folded_weight(client, state):
    edge = client.get("/api/edges/features.3/5/2").json()
    weight = state.graph.kernels(state.loaded.module, "features.3")[5, 2]
    spec = state.graph["features.3"]
    scale = 1.0
    if spec.batchnorm:
        bn = state.loaded.module.get_submodule(spec.batchnorm)
        scale = float(bn.weight[5] / torch.sqrt(bn.running_var[5] + bn.eps))
    np.testing.assert_allclose(edge["kernel"], (weight * scale).numpy(), rtol=1e-5, atol=1e-7)
    assert edge["sources"] == [{"layer": "features.0", "channel": 2}] and edge["sign"] in (-1, 0, 1)
    kernel_png = Image.open(io.BytesIO(client.get("/api/edges/features.3/5/2/kernel.png").content))
    assert kernel_png.size[0] >= 64 and kernel_png.size[0] % spec.kernel_size[1] == 0


def test_single_kernel_outputs_add_up_to_the_node_map(state):
    """What /output.png shows: the kernels' maps plus the folded bias rebuild the node's map."""
    maps = Maps(state)
    ref = state.image("i3")
    layer, out = "features.3", 4
    spec = state.graph[layer]
    from viscnn.server.prune import KernelFacts

    scale = KernelFacts(state.loaded.module, state.graph).bn_scale(layer)
    total = sum(maps.kernel_output(ref, layer, out, i, bn_scale=scale) for i in range(spec.in_channels))
    node = maps.node_map(ref, layer, out)
    conv_bias = state.loaded.module.get_submodule(spec.module).bias
    shift = float(conv_bias[out]) if conv_bias is not None else 0.0
    if spec.batchnorm:
        bn = state.loaded.module.get_submodule(spec.batchnorm)
        shift = (shift - float(bn.running_mean[out])) * float(scale[out]) + float(bn.bias[out])
    np.testing.assert_allclose((total + shift).numpy(), node.numpy(), rtol=1e-4, atol=1e-4)


def test_edge_maps_for_an_image(client):
    for suffix in ["input.png", "output.png"]:
        answer = client.get(f"/api/edges/features.3/5/2/{suffix}", params={"image": "i0"})
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(answer.content)).mode == "RGB"


@pytest.mark.parametrize("path, status", [
    ("/api/edges/features.3/5/9999", 404),
    ("/api/edges/features.3/9999/0", 404),
    ("/api/edges/nope/0/0", 404),
    ("/api/edges/features.3/5/2/output.png?image=zzz", 404),
    ("/api/edges/features.3/5/2/output.png", 400),
    ("/api/edges/features.3/5/99/render.png", 404),
])
def test_bad_edge_requests(client, path, status):
    answer = client.get(path)
    assert answer.status_code == status and answer.json()["detail"]


def test_unknown_endpoint_is_a_json_404(client):
    answer = client.get("/api/nothing/here")
    assert answer.status_code == 404 and "no such endpoint" in answer.json()["detail"]


def test_page_is_served_at_root(client):
    answer = client.get("/")
    assert answer.status_code == 200 and "viscnn page" in answer.text
