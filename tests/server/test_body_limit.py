"""The request body limit on every route, found while reading: 413 before a route or a parser holds the body."""
import io
import json
import socket

import httpx
import pytest
from PIL import Image

from tests.server.live import connect, detail, live_server, read_answer, send_head


@pytest.fixture(scope="module")
def server(state, tmp_path_factory):
    with live_server(state, tmp_path_factory.mktemp("limit"), max_body_mb=1.0) as running:
        yield running


@pytest.mark.parametrize("method, path", [("POST", "/api/query"), ("POST", "/api/images"), ("POST", "/api/circuit"),
                                          ("GET", "/api/sets"), ("DELETE", "/api/jobs/x"), ("PUT", "/api/nowhere")])
def test_a_declared_length_over_the_limit_is_413_before_the_body_is_sent(server, method, path):
    with connect(server.port) as sock:
        send_head(sock, method, path, server.port, {"Content-Type": "application/json", "Content-Length": str(50_000_000)})
        status, headers, body = read_answer(sock)  # answered with not one byte of the 50 MB sent
    assert status == 413 and headers["content-type"] == "application/json"
    assert detail(body) == "the request body is 50.0 MB; the limit is 1 MB (viscnn serve --max-body)"


def send_chunks(sock, total, chunk=64 * 1024):
    """Send `total` bytes as chunks until done or the server answers (it stops reading at the limit)."""
    sent = 0
    sock.settimeout(0.0)
    try:
        while sent < total:
            part = b"x" * min(chunk, total - sent)
            sock.sendall(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            sent += len(part)
            try:
                if sock.recv(1, socket.MSG_PEEK):
                    break  # the answer is there
            except BlockingIOError:
                pass
        else:
            sock.sendall(b"0\r\n\r\n")
    except (BlockingIOError, BrokenPipeError, ConnectionResetError):
        pass  # the server stopped reading: its answer is waiting
    return sent


@pytest.mark.parametrize("path, kind", [("/api/query", "application/json"), ("/api/images", "multipart/form-data; boundary=b")])
def test_a_chunked_body_over_the_limit_is_413_once_it_passes_the_limit(server, path, kind):
    with connect(server.port) as sock:
        send_head(sock, "POST", path, server.port, {"Content-Type": kind, "Transfer-Encoding": "chunked"})
        sent = send_chunks(sock, 5_000_000)
        status, _, body = read_answer(sock)
    assert status == 413 and detail(body) == "the request body is over 1 MB; the limit is 1 MB (viscnn serve --max-body)"
    assert sent < 5_000_000  # refused while it was still coming


def chunked(data, size=1000):
    yield from (data[k:k + size] for k in range(0, len(data), size))


def test_a_chunked_body_within_the_limit_reaches_the_route_whole(server):
    body = json.dumps({"images": "overall", "target": "loss", "criterion": "weight", "max_edges": 10}).encode()
    answer = httpx.post(server.url + "api/query", content=chunked(body, 7), headers={"content-type": "application/json"},
                        timeout=60)
    assert answer.status_code in (200, 202), answer.text
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (10, 200, 30)).save(buffer, format="PNG")
    request = httpx.Request("POST", server.url + "api/images", files={"file": ("green.png", buffer.getvalue(), "image/png")})
    form = request.read()
    upload = httpx.post(server.url + "api/images", content=chunked(form), headers={"content-type": request.headers["content-type"]},
                        timeout=30)
    assert upload.status_code == 200 and upload.json()["set"] == "uploads"


def test_the_limit_leaves_room_for_the_largest_upload_by_default(client, state):
    from viscnn.server.middleware import DEFAULT_MAX_BODY_MB

    assert state.max_upload_bytes + 64 * 1024 < DEFAULT_MAX_BODY_MB * 1e6
    # just over the upload limit but within the body limit: the upload's own check answers, naming its limit
    answer = client.post("/api/images", files={"file": ("big.png", b"\0" * (state.max_upload_bytes + 10), "image/png")})
    assert answer.status_code == 413 and answer.json()["detail"] == "the upload is 10.5 MB; the limit is 10 MB"


def test_other_bodies_get_a_smaller_limit_than_uploads(client):
    body = b'{"images": "overall", "target": "' + b"x" * 2_000_000 + b'"}'
    answer = client.post("/api/query", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 413
    assert answer.json()["detail"] == ("the request body is 2.0 MB; the limit is 1 MB (12 MB for an image upload; "
                                       "viscnn serve --max-body)")
    form = client.post("/api/images", files={"file": ("noise.png", b"\1" * 2_000_000, "image/png")})
    assert form.status_code == 415  # 2 MB of upload reaches the route (and is not an image)


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_serve_refuses_a_bad_max_body(capsys, value):
    from viscnn import cli
    from viscnn.server.launch import free_port

    assert cli.main(["serve", "--model", "fmnist-convnet", "--port", str(free_port()), "--max-body", value]) == 2
    err = capsys.readouterr().err
    assert "--max-body" in err and err.count("\n") == 1
