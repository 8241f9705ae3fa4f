"""`viscnn.show` when the notebook server is elsewhere (through its proxy), and the Python objects behind the page."""
import time

import httpx
import pytest

import viscnn
from viscnn.errors import ViscnnError
from viscnn.server.notebook import HUB_PREFIX, proxy_url


def test_proxy_urls(monkeypatch):
    monkeypatch.delenv(HUB_PREFIX, raising=False)
    assert proxy_url(8123, None, None, None) is None  # a local notebook: reach the server directly
    assert proxy_url(8123, False, "/lab/", "t") is None
    assert proxy_url(8123, True, None, "t") == "/proxy/8123/?token=t"
    assert proxy_url(8123, True, "/notebooks/me", None) == "/notebooks/me/proxy/8123/"
    assert proxy_url(8123, None, "/base/", "t") == "/base/proxy/8123/?token=t"  # a base_url means: through its proxy
    assert proxy_url(8123, "https://lab.example.org/x/{port}", None, "t") == "https://lab.example.org/x/8123/?token=t"
    monkeypatch.setenv(HUB_PREFIX, "/user/ada/")
    assert proxy_url(8123, None, None, "t") == "/user/ada/proxy/8123/?token=t"  # JupyterHub: through its proxy
    with pytest.raises(ViscnnError, match="no '\\{port\\}'"):
        proxy_url(8123, "/user/ada/proxy/", None, "t")


def test_show_through_a_proxy_and_the_objects_behind_the_page(tmp_path, monkeypatch):
    monkeypatch.delenv(HUB_PREFIX, raising=False)
    shown = viscnn.show("fmnist-convnet", "fashion-mnist:test:1", store=tmp_path, prepare=None, proxy=True,
                        base_url="/user/ada/")
    try:
        token = shown.state.token
        assert token and shown.url == f"/user/ada/proxy/{shown.running.port}/?token={token}"
        assert f'src="{shown.url}"' in shown._repr_html_()
        direct = f"http://127.0.0.1:{shown.running.port}/"
        # jupyter-server-proxy forwards the browser's Host (the notebook server's name): the token lets it in
        proxied = {"Host": "lab.example.org", "Authorization": f"Bearer {token}"}
        assert httpx.get(direct + "api/sets", headers=proxied, timeout=10).status_code == 200
        assert httpx.get(direct + "api/sets", headers={"Host": "lab.example.org"}, timeout=10).status_code == 401
        with pytest.raises(ViscnnError, match="no query yet"):
            shown.scores()
        with pytest.raises(ViscnnError, match="no circuit"):
            shown.circuit()
        query = httpx.post(direct + "api/query", json={"images": "sandal", "target": "features.3:1"},
                           headers={"Authorization": f"Bearer {token}"}, timeout=120)
        assert query.status_code in (200, 202)
        if query.status_code == 202:
            job = query.json()["job"]
            for _ in range(600):
                state = httpx.get(direct + f"api/jobs/{job}", headers=proxied, timeout=10).json()["state"]
                if state not in ("queued", "running"):
                    break
                time.sleep(0.1)
        scores = shown.scores()
        assert str(scores.target) == "features.3:1" and set(scores.nodes) == {"features.0", "features.3"}
        assert shown.graph is shown.state.graph and "sandal" in shown.image_sets and shown.loaded.name == "fmnist-convnet"
    finally:
        shown.stop()
