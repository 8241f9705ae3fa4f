"""Who may talk to the server: local by default, a token for anything else; nothing answers 500."""
import json

import pytest
from fastapi.testclient import TestClient

from viscnn.errors import ViscnnError
from viscnn.server import ServerState, create_app
from viscnn.server.security import check_host, is_local

TOKEN = "s3cret-token-for-tests"


@pytest.fixture(scope="module")
def guarded(state, tmp_path_factory):
    twin = ServerState(state.loaded, state.graph, state.images_spec, store=state.store, token=TOKEN,
                       upload_dir=tmp_path_factory.mktemp("up"))
    with TestClient(create_app(twin, tmp_path_factory.mktemp("noweb"))) as client:
        yield client


def test_requests_without_the_token_are_401(guarded):
    for path in ["/api/model", "/api/sets", "/api/jobs", "/"]:
        answer = guarded.get(path)
        assert answer.status_code == 401 and "token" in answer.json()["detail"]
    assert guarded.get("/api/model", headers={"Authorization": "Bearer wrong-token-value"}).status_code == 401


def test_the_token_opens_the_api_by_header_query_or_cookie(guarded):
    assert guarded.get("/api/model", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    page = guarded.get("/", params={"token": TOKEN})
    assert page.status_code == 200 and "setup.sh" in page.text  # no page built in this fixture: says how
    assert guarded.cookies.get("viscnn_token") == TOKEN
    assert guarded.get("/api/sets").status_code == 200  # the cookie alone now
    guarded.cookies.clear()
    assert guarded.get("/api/sets").status_code == 401


@pytest.mark.parametrize("host, status", [("127.0.0.1:8000", 200), ("localhost", 200), ("[::1]:8000", 200),
                                          ("evil.example:8000", 400), ("192.168.1.5", 400)])
def test_without_a_token_only_local_host_names_are_served(client, host, status):
    """A page whose DNS name was rebound to 127.0.0.1 still sends its own name: it must not reach the API."""
    answer = client.get("/api/sets", headers={"host": host})
    assert answer.status_code == status
    if status == 400:
        assert "local name" in answer.json()["detail"]


def test_with_a_token_any_host_name_is_served(guarded):
    answer = guarded.get("/api/sets", headers={"host": "viscnn.lab.example", "authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200


@pytest.mark.parametrize("host, local", [("127.0.0.1", True), ("localhost", True), ("::1", True), ("127.0.0.2", True),
                                         ("0.0.0.0", False), ("192.168.1.5", False), ("example.org", False)])
def test_local_hosts(host, local):
    assert is_local(host) is local


def test_non_local_host_needs_a_token():
    with pytest.raises(ViscnnError, match="--token"):
        check_host("0.0.0.0", None)
    with pytest.raises(ViscnnError, match="at least 8"):
        check_host("0.0.0.0", "short")
    check_host("0.0.0.0", TOKEN)
    check_host("127.0.0.1", None)


def test_serve_refuses_an_open_host_without_token_before_loading_anything(capsys, monkeypatch):
    from viscnn import cli

    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded before the host was checked")

    monkeypatch.setattr("viscnn.server.launch.build_state", no_loading)
    assert cli.main(["serve", "--model", "fmnist-convnet", "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert "--token" in err and err.count("\n") == 1


BAD_REQUESTS = [
    ("GET", "/api/images/%00.png", None), ("GET", "/api/images/" + "a" * 5000 + ".png", None),
    ("GET", "/api/nodes/%2e%2e/0", None), ("GET", "/api/nodes/features.3/99999999999999999999999", None),
    ("GET", "/api/activation?image=i0&layer=features.3&channel=1e9", None),
    ("GET", "/api/receptive_field?layer=features.3&y=-1&x=0", None), ("GET", "/api/receptive_field?layer=input&y=0&x=0", None),
    ("GET", "/api/edges/features.3/-5/0", None), ("GET", "/api/layout?kind=../../etc/passwd", None),
    ("GET", "/api/composition?image=i0&unit=", None), ("GET", "/api/jobs/%2e%2e%2f", None),
    ("POST", "/api/query", {"images": "(" * 200 + "overall" + ")" * 200}),
    ("POST", "/api/query", {"images": "overall", "target": "features.3:dir(1=" + "9" * 400 + ")"}),
    ("POST", "/api/query", {"images": "1e308 * overall * 1e308"}), ("POST", "/api/query", {"images": "overall / 0"}),
    ("POST", "/api/query", {"images": "overall", "max_edges": 10 ** 30}), ("POST", "/api/query", {"images": ["overall"]}),
    ("POST", "/api/query", {"images": "overall", "node_fraction": float("nan")}),
    ("POST", "/api/circuit", {"images": "overall", "target": "loss", "keep": -1}),
    ("POST", "/api/faithfulness", {"target": "loss", "fractions": []}),
    ("DELETE", "/api/model", None), ("PUT", "/api/query", {}),
]


@pytest.mark.parametrize("method, path, body", BAD_REQUESTS)
def test_bad_requests_are_4xx_with_a_message_never_500(client, method, path, body):
    kwargs = {}
    if body is not None:
        kwargs["content"] = json.dumps(body, allow_nan=True).encode()
        kwargs["headers"] = {"content-type": "application/json"}
    answer = client.request(method, path, **kwargs)
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text)
    detail = answer.json()["detail"]
    assert isinstance(detail, str) and detail and "\n" not in detail
