"""Requests from another site's page may read but never write or queue work (403); the page's own may."""
import io

import pytest
from PIL import Image

from viscnn.server.security import foreign_origin

EVIL = {"Origin": "http://evil.example"}
CROSS_SITE_IMG = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image",
                  "Referer": "http://evil.example/page.html"}


def png_bytes():
    buffer = io.BytesIO()
    Image.new("RGB", (20, 20), (1, 2, 3)).save(buffer, format="PNG")
    return buffer.getvalue()


def jobs_of(client):
    return {job["id"] for job in client.get("/api/jobs").json()}


@pytest.mark.parametrize("headers", [EVIL, {"Origin": "null"}, {"Origin": "http://127.0.0.1:9999"},
                                     {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
                                     {"Referer": "https://evil.example/x"}])
def test_writes_from_another_origin_are_403_and_queue_nothing(client, headers):
    before = jobs_of(client)
    for method, path, body in [("POST", "/api/query", {"images": "sandal", "target": "loss", "criterion": "taylor_signed"}),
                               ("POST", "/api/circuit", {"images": "sandal", "target": "features.8:1", "keep": 0.3}),
                               ("POST", "/api/nodes/features.3/5/render", None), ("DELETE", "/api/jobs/query-1", None)]:
        answer = client.request(method, path, json=body, headers=headers)
        assert answer.status_code == 403, (method, path, answer.text)
        assert "may read this server but not write to it or make it work" in answer.json()["detail"]
    assert jobs_of(client) == before


def test_an_upload_from_another_origin_is_refused_and_not_stored(client, state):
    before = set(state.upload_dir.iterdir()) if state.upload_dir.exists() else set()
    answer = client.post("/api/images", files={"file": ("x.png", png_bytes(), "image/png")}, headers=EVIL)
    assert answer.status_code == 403
    after = set(state.upload_dir.iterdir()) if state.upload_dir.exists() else set()
    assert after == before


def test_an_img_on_another_site_cannot_queue_a_render(client):
    before = jobs_of(client)
    answer = client.get("/api/nodes/features.3/6/render.png", headers=CROSS_SITE_IMG)
    assert answer.status_code == 404 and "not rendered yet" in answer.json()["detail"]  # a GET only reads
    assert client.get("/api/edges/features.3/6/2/render.png", headers=CROSS_SITE_IMG).status_code == 404
    assert jobs_of(client) == before


def test_gets_that_would_queue_work_are_refused_from_another_site(client):
    before = jobs_of(client)
    for path in ["/api/composition?image=i3&unit=features.6:9&depth=1", "/api/layout?kind=mds"]:
        answer = client.get(path, headers=CROSS_SITE_IMG)
        assert answer.status_code == 403 and "may read this server but not make it work" in answer.json()["detail"]
    assert jobs_of(client) == before
    # the page's own request (or a script's, which sends none of these headers) queues it
    own = client.get("/api/composition?image=i3&unit=features.6:9&depth=1", headers={"Sec-Fetch-Site": "same-origin"})
    assert own.status_code in (200, 202)


def test_reads_from_anywhere_are_answered(client):
    for headers in [CROSS_SITE_IMG, EVIL, {"Sec-Fetch-Site": "none"}]:
        assert client.get("/api/sets", headers=headers).status_code == 200
        assert client.get("/api/images/i0.png", headers=headers).status_code == 200


@pytest.mark.parametrize("headers", [{"Origin": "http://127.0.0.1:8000"}, {"Sec-Fetch-Site": "same-origin"},
                                     {"Referer": "http://127.0.0.1:8000/?node=features.3:1"}, {}])
def test_the_pages_own_writes_are_served(client, headers):
    answer = client.post("/api/nodes/features.3/7/render", headers=headers)
    assert answer.status_code in (200, 202), answer.text
    assert client.post("/api/images", files={"file": ("ok.png", png_bytes(), "image/png")}, headers=headers).status_code == 200


@pytest.mark.parametrize("headers, foreign", [
    ({"host": "127.0.0.1:8000", "origin": "http://127.0.0.1:8000"}, False),
    ({"host": "localhost", "origin": "http://localhost:80"}, False),
    ({"host": "[::1]:8000", "origin": "http://[::1]:8000"}, False),
    ({"host": "127.0.0.1:8000", "origin": "http://localhost:8000"}, True),  # another origin, though the same machine
    ({"host": "127.0.0.1:8000", "origin": "https://127.0.0.1:8001"}, True),
    ({"host": "127.0.0.1:8000", "referer": "http://127.0.0.1:8000/x?y=1"}, False),
    ({"host": "127.0.0.1:8000", "referer": "http://127.0.0.1.evil.example:8000/"}, True),
    ({"host": "127.0.0.1:8000", "origin": "http://127.0.0.1:8000", "referer": "http://evil.example/"}, False),
    ({"host": "127.0.0.1:8000", "sec-fetch-site": "same-origin", "origin": "https://proxy.example"}, False),
    ({"host": "127.0.0.1:8000", "sec-fetch-site": "cross-site", "origin": "http://127.0.0.1:8000"}, True),
    ({"host": "127.0.0.1:8000"}, False),
])
def test_foreign_origin(headers, foreign):
    assert (foreign_origin(headers) is not None) is foreign
