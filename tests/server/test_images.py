"""Image sets, images and uploads: ids, PNGs as the model sees them, size/type checks, no path tricks."""
import io

import numpy as np
import pytest
from PIL import Image


def png_bytes(size=(40, 30), color=(200, 30, 30)):
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def test_sets_list_every_class_and_overall(client):
    sets = {s["name"]: s["count"] for s in client.get("/api/sets").json()}
    assert sets["overall"] == 40 and sets["trouser"] == 4 and len(sets) >= 11


def test_images_of_a_set_carry_ids_and_labels(client):
    trousers = client.get("/api/images", params={"set": "trouser"}).json()
    assert len(trousers) == 4
    assert all(image["label"] == 1 and image["label_name"] == "Trouser" and image["set"] == "trouser" for image in trousers)
    overall_ids = {image["id"] for image in client.get("/api/images").json()}
    assert {image["id"] for image in trousers} <= overall_ids
    page = client.get("/api/images", params={"set": "overall", "offset": 38, "limit": 5}).json()
    assert len(page) == 2


def test_image_png_is_the_model_input(client, state):
    first = client.get("/api/images").json()[0]
    answer = client.get(f"/api/images/{first['id']}.png")
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
    image = np.asarray(Image.open(io.BytesIO(answer.content)))
    assert image.shape == (28, 28)
    expected = (state.pixels(state.image(first["id"]))[0].numpy() * 255).round()
    assert np.abs(image.astype(float) - expected).max() <= 1


@pytest.mark.parametrize("path", ["/api/images/i99999.png", "/api/images/..%2F..%2Fetc%2Fpasswd.png",
                                  "/api/images/%2E%2E/%2E%2E/etc/passwd.png", "/api/images/i0x.png"])
def test_unknown_or_crafted_image_ids_are_404(client, path):
    answer = client.get(path)
    assert answer.status_code == 404 and answer.json()["detail"]


def test_unknown_set_is_404_naming_the_sets(client):
    answer = client.get("/api/images", params={"set": "dragons"})
    assert answer.status_code == 404 and "trouser" in answer.json()["detail"]


def test_upload_is_kept_once_and_usable(client, state):
    data = png_bytes()
    answer = client.post("/api/images", files={"file": ("../../../etc/evil.png", data, "image/png")})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["set"] == "uploads" and body["id"].startswith("u") and body["name"] == "evil.png"
    again = client.post("/api/images", files={"file": ("other.png", data, "image/png")}).json()
    assert again["id"] == body["id"]
    stored = list(state.upload_dir.iterdir())
    assert all(p.parent == state.upload_dir and p.suffix == ".img" for p in stored)
    shown = Image.open(io.BytesIO(client.get(f"/api/images/{body['id']}.png").content))
    assert shown.size == (28, 28)  # resized to the model's input
    sets = {s["name"]: s["count"] for s in client.get("/api/sets").json()}
    assert sets["uploads"] >= 1
    assert body["id"] in [i["id"] for i in client.get("/api/images", params={"set": "uploads"}).json()]


def test_upload_that_is_not_an_image_is_415(client):
    answer = client.post("/api/images", files={"file": ("notes.png", b"hello, not a picture", "image/png")})
    assert answer.status_code == 415 and "not an image" in answer.json()["detail"]
    empty = client.post("/api/images", files={"file": ("empty.png", b"", "image/png")})
    assert empty.status_code == 415


def test_truncated_image_is_415(client):
    data = png_bytes((300, 300))
    answer = client.post("/api/images", files={"file": ("cut.png", data[: len(data) // 2], "image/png")})
    assert answer.status_code == 415


@pytest.mark.parametrize("extra", [10, 2 << 20])  # just over: found while reading; far over: refused by its header
def test_huge_upload_is_413(client, state, extra):
    answer = client.post("/api/images", files={"file": ("big.png", b"\0" * (state.max_upload_bytes + extra), "image/png")})
    assert answer.status_code == 413 and "limit" in answer.json()["detail"]


def test_decompression_bomb_is_413(client):
    buffer = io.BytesIO()
    Image.new("1", (10000, 10000)).save(buffer, format="PNG")  # 100 megapixels in a few kB
    assert len(buffer.getvalue()) < 100_000
    answer = client.post("/api/images", files={"file": ("bomb.png", buffer.getvalue(), "image/png")})
    assert answer.status_code == 413 and "megapixels" in answer.json()["detail"]


def test_upload_without_file_field_is_400(client):
    answer = client.post("/api/images", data={"something": "else"})
    assert answer.status_code == 400 and "file" in answer.json()["detail"]


def test_an_uploaded_image_works_everywhere_an_id_does(client):
    from tests.server.conftest import wait

    body = client.post("/api/images", files={"file": ("shoe.png", png_bytes((64, 48), (90, 90, 90)), "image/png")}).json()
    activation = client.get("/api/activation", params={"image": body["id"], "layer": "features.3", "channel": 1})
    assert activation.status_code == 200 and activation.json()["height"] == 14
    edge = client.get("/api/edges/features.3/1/0/output.png", params={"image": body["id"]})
    assert edge.status_code == 200
    job = wait(client, client.get("/api/composition", params={"image": body["id"], "unit": "features.3:1", "depth": 1}))
    assert job["state"] == "done" and job["result"]["image_id"] == body["id"]
    query = wait(client, client.post("/api/query", json={"images": "uploads", "target": "loss"}))
    assert query["state"] == "done" and query["result"]["n_images"] >= 1
