"""The queue follows the page's attention: priorities per panel, urgent work overtakes (the overtaken job waits
paused), a page lets go of a closed panel's jobs (cancelled at once unless someone else holds them), every long
job reports its steps with totals and time left, and queries over big sets are sampled."""
import threading
import time

import pytest
import torch
from fastapi.testclient import TestClient

from tests.server.conftest import wait
from tests.server.live import wait_until
from viscnn.server import ServerState, create_app, queries
from viscnn.server.attention import Attention, asking, parse
from viscnn.server.jobs import JobManager


def test_the_headers_give_the_attention_and_bad_values_fall_back():
    assert parse({"x-viscnn-priority": "2.5", "x-viscnn-panel": "node", "x-viscnn-client": "abc"}) == Attention(2.5, "node", "abc")
    assert parse({"x-viscnn-priority": "nan"}).priority is None
    assert parse({"x-viscnn-priority": "soon"}).priority is None
    assert parse({"x-viscnn-priority": "1e9"}).priority == 1000.0
    assert parse({}) == Attention()


def _recorder(started, gate=None):
    def work(name):
        def run(context):
            started.append(name)
            if gate is not None and name == "blocker":
                gate.wait(10)
        return run
    return work


def test_work_starts_by_the_panel_priority_then_examples_before_renders():
    manager = JobManager()
    gate, started = threading.Event(), []
    work = _recorder(started, gate)
    manager.submit("test", work("blocker"), priority=-10)
    wait_until(lambda: started == ["blocker"], message="the blocker runs")
    # what a click on a node queues, in the order the page's requests may arrive
    for kind, name, priority in [("render", "input render 2", 3.02), ("render", "input render 1", 3.01),
                                 ("render", "edge render", 2), ("render", "node render", 1),
                                 ("examples", "examples", 1), ("query", "query", 0)]:
        with asking(Attention(priority, "panel", "page")):
            job = manager.submit(kind, work(name))
        assert job.priority == priority and job.panel == "panel"
    gate.set()
    wait_until(lambda: len(started) == 7, message="every job ran")
    assert started == ["blocker", "query", "examples", "node render", "edge render", "input render 1", "input render 2"]
    manager.shutdown()


def test_asking_again_more_urgently_moves_a_queued_job_up():
    manager = JobManager()
    gate, started = threading.Event(), []
    work = _recorder(started, gate)
    manager.submit("test", work("blocker"), priority=-10)
    wait_until(lambda: started == ["blocker"], message="the blocker runs")
    with asking(Attention(5, "inputs", "page")):
        source = manager.submit("render", work("a source of the old node"), key="render|a")
    manager.submit("render", work("other"), priority=4)
    with asking(Attention(1, "node", "page")):  # the user clicked that source: it is now the node shown
        assert manager.submit("render", work("never"), key="render|a") is source
    assert source.priority == 1
    gate.set()
    wait_until(lambda: len(started) == 3, message="every job ran")
    assert started == ["blocker", "a source of the old node", "other"]
    manager.shutdown()


def test_urgent_work_overtakes_a_running_job_which_waits_paused(state):
    manager = JobManager()
    convs, gate = [], threading.Event()
    conv = state.loaded.module.features[0]

    def slow(context):  # a long render, say: conv calls all the way
        x = torch.zeros(1, 1, 28, 28)
        for _ in range(300):
            conv(x)
            convs.append(time.perf_counter())
            time.sleep(0.002)
        return "slow done"

    def urgent(context):
        gate.wait(10)
        return "urgent done"

    low = manager.submit("render", slow, priority=3)
    wait_until(lambda: len(convs) > 5, message="the slow job computes")
    high = manager.submit("render", urgent, priority=1)
    wait_until(lambda: high.state == "running", message="the urgent job starts at once")
    wait_until(lambda: low.paused, message="the overtaken job is paused")
    time.sleep(0.2)
    before = len(convs)
    time.sleep(0.5)
    assert len(convs) <= before + 1 and low.state == "running"  # held at its next conv call
    assert low.to_json()["paused"] is True
    gate.set()
    wait_until(lambda: low.state == "done", timeout=30, message="the overtaken job resumes and ends")
    assert high.result == "urgent done" and low.result == "slow done" and len(convs) == 300 and not low.paused
    manager.shutdown()


def test_a_paused_job_can_be_cancelled(state):
    manager = JobManager()
    gate = threading.Event()
    conv = state.loaded.module.features[0]

    def forever(context):
        while True:
            conv(torch.zeros(1, 1, 28, 28))

    low = manager.submit("render", forever, priority=3)
    wait_until(lambda: low.state == "running", message="the low job runs")
    manager.submit("query", lambda context: gate.wait(10), priority=0)
    wait_until(lambda: low.paused, message="the low job is paused")
    manager.cancel(low.id)
    wait_until(lambda: low.state == "cancelled", timeout=5, message="the paused job stops")
    gate.set()
    manager.shutdown()


@pytest.fixture
def page(state, tmp_path):
    """A server of its own (its own jobs; no store, so nothing is ever cached) held by a blocker job."""
    twin = ServerState(state.loaded, state.graph, state.images_spec, upload_dir=tmp_path / "up")
    twin.jobs = JobManager()
    gate = threading.Event()
    twin.jobs.submit("test", lambda context: gate.wait(60), "holds the worker", priority=-10)
    with TestClient(create_app(twin, tmp_path / "noweb"), base_url="http://127.0.0.1:8000") as client:
        yield client, twin, gate
    gate.set()


def _query(client, images, client_id, panel="query", priority=0, hold=""):
    headers = {"X-Viscnn-Client": client_id, "X-Viscnn-Panel": panel, "X-Viscnn-Priority": str(priority), "X-Viscnn-Hold": hold}
    answer = client.post("/api/query", json={"images": images, "target": "loss", "criterion": "gradient"}, headers=headers)
    assert answer.status_code == 202, answer.text
    return answer.json()["job"]


def test_a_page_lets_go_of_a_closed_panels_jobs_and_they_are_cancelled_at_once(page):
    client, twin, _ = page
    mine = _query(client, "sandal", "page-a", "node", 3)
    shared = _query(client, "bag", "page-a", "node", 3)
    assert _query(client, "bag", "page-b", "node", 2) == shared  # another page asked for the same work
    job = twin.jobs.get(mine)
    assert job.panel == "node" and job.priority == 3 and twin.jobs.get(shared).priority == 2
    answer = client.post("/api/release", json={"ids": [mine, shared, "query-999"], "client": "page-a"})
    assert answer.status_code == 200
    states = {j["id"]: j["state"] for j in answer.json()}
    assert states == {mine: "cancelled", shared: "queued"}  # at once, not after the orphans' grace; unknown skipped
    assert "panel that asked for it was closed" in twin.jobs.get(mine).message
    # the other page lets go too: now nobody holds it
    assert client.post("/api/release", json={"ids": [shared], "client": "page-b"}).json()[0]["state"] == "cancelled"
    # cancelled work is not queued again by itself; asking again (the user came back) makes a new job
    time.sleep(0.2)
    assert [j.id for j in twin.jobs.jobs() if j.kind == "query" and j.state == "queued"] == []
    again = _query(client, "sandal", "page-a", "node", 1)
    assert again != mine and twin.jobs.get(again).state == "queued"


def test_a_panel_shown_again_keeps_the_work_it_asked_for_again(page):
    client, _, _ = page
    first = _query(client, "trouser", "page-a", "node", 1, hold="node-1")
    assert _query(client, "trouser", "page-a", "node", 1, hold="node-2") == first  # shown again: the same work
    # the page lets go of the first showing's work after the second asked again: the job stays
    assert client.post("/api/release", json={"ids": [first], "client": "page-a", "hold": "node-1"}).json()[0]["state"] == "queued"
    assert client.post("/api/release", json={"ids": [first], "client": "page-a", "hold": "node-2"}).json()[0]["state"] == "cancelled"
    again = _query(client, "trouser", "page-a", "node", 1, hold="node-3")
    assert client.post("/api/release", json={"ids": [again], "client": "page-a"}).json()[0]["state"] == "cancelled"  # the page left


def test_a_job_another_page_follows_or_an_api_client_asked_for_is_not_released(page):
    client, twin, _ = page
    followed = _query(client, "sandal", "page-a")
    anonymous = client.post("/api/query", json={"images": "bag", "target": "loss", "criterion": "gradient"}).json()["job"]
    _query(client, "bag", "page-a")
    with twin.jobs.following([twin.jobs.get(followed)], "page-b"):
        states = {j["id"]: j["state"] for j in client.post("/api/release", json={"ids": [followed, anonymous],
                                                                                       "client": "page-a"}).json()}
    assert states == {followed: "queued", anonymous: "queued"}
    with twin.jobs.following([twin.jobs.get(followed)], "page-a"):  # its own stream does not hold it
        assert client.post("/api/release", json={"ids": [followed], "client": "page-a"}).json()[0]["state"] == "cancelled"


def test_a_released_running_job_stops(state):
    manager = JobManager()
    conv = state.loaded.module.features[0]

    def forever(context):
        while True:
            conv(torch.zeros(1, 1, 28, 28))

    with asking(Attention(1, "node", "page-a")):
        job = manager.submit("render", forever)
    wait_until(lambda: job.state == "running", message="the job runs")
    manager.release([job.id], "page-a")
    wait_until(lambda: job.state == "cancelled", timeout=5, message="the released job stops")
    assert job.message == "cancelled: the panel that asked for it was closed"  # why, running or queued
    manager.shutdown()


def test_release_takes_a_client_and_at_most_500_ids(client):
    assert client.post("/api/release", json={"ids": ["x"]}).status_code == 400
    assert client.post("/api/release", json={"ids": ["x"] * 501, "client": "a"}).status_code == 400
    assert client.post("/api/release", json={"ids": [], "client": "a"}).json() == []


def _events(client, job_id):
    import json

    with client.stream("GET", f"/api/jobs/{job_id}/events") as stream:
        text = "".join(stream.iter_text())
    return [json.loads(line.split("data: ", 1)[1]) for line in text.splitlines() if line.startswith("data: ")]


def test_a_render_reports_its_optimisation_steps_and_time_left(state, tmp_path):
    twin = ServerState(state.loaded, state.graph, state.images_spec, store=state.store, upload_dir=tmp_path / "up")
    twin.jobs = JobManager()
    with TestClient(create_app(twin, tmp_path / "noweb", render_steps=400), base_url="http://127.0.0.1:8000") as client:
        answer = client.post("/api/nodes/features.3/11/render").json()
        assert answer["job"], "already rendered with 400 steps?"
        events = _events(client, answer["job"])
    running = [e for e in events if e["state"] == "running" and e["done"] is not None]
    assert running and all(e["unit"] == "steps" and e["total"] == 400 for e in running)
    assert any(0 < e["done"] < 400 and e["eta"] is not None and e["eta"] > 0 for e in running), running
    assert [e["done"] for e in running] == sorted(e["done"] for e in running)
    assert events[-1]["state"] == "done" and events[-1]["done"] == 400 and events[-1]["eta"] == 0


def test_faithfulness_reports_circuits_done_of_all(client):
    answer = client.post("/api/faithfulness", json={"images": "overall", "target": "features.6:2", "methods": ["magnitude", "random"],
                                                    "fractions": [0.05, 0.2, 0.5], "seed": 7})
    assert answer.status_code == 202, answer.text
    events = _events(client, answer.json()["job"])
    counted = [e for e in events if e["unit"] == "circuits"]
    assert counted and all(e["total"] == 6 for e in counted)
    assert events[-1]["state"] == "done" and events[-1]["done"] == 6
    assert all(e["message"].startswith("extracting features.6:2 ") for e in counted if e["state"] == "running")


def test_a_learned_circuit_reports_its_steps_when_the_method_takes_a_progress_callable(client):
    import inspect

    from viscnn.circuits import get_method

    if "progress" not in inspect.signature(get_method("learned").function).parameters:
        pytest.skip("circuits.methods.learned takes no progress callable in this build (the server passes one when it does)")
    answer = client.post("/api/circuit", json={"images": "sandal", "target": "features.6:2", "method": "learned", "keep": 0.1,
                                               "seed": 3})
    assert answer.status_code == 202, answer.text
    events = _events(client, answer.json()["job"])
    steps = [e for e in events if e["state"] == "running" and e["unit"] == "steps" and e["total"] and e["total"] > 1]
    assert steps and events[-1]["state"] == "done"


def test_a_query_reports_images_scored_of_all(client):
    answer = client.post("/api/query", json={"images": "pullover - coat", "target": "loss", "criterion": "weight",
                                             "sample": 0})
    assert answer.status_code == 202, answer.text
    events = _events(client, answer.json()["job"])
    final = events[-1]
    assert final["state"] == "done" and final["unit"] == "images" and final["done"] == final["total"]
    assert final["total"] == len(client.app.state.viscnn.image_sets["pullover"]) + len(client.app.state.viscnn.image_sets["coat"])


def test_a_sample_scores_a_fixed_choice_of_each_sets_images(client, state):
    overall = len(state.image_sets["overall"])
    body = {"images": "overall", "target": "loss", "criterion": "activation", "sample": 7}
    first = wait(client, client.post("/api/query", json=body))
    assert first["state"] == "done"
    result = first["result"]
    assert result["n_images"] == 7 and result["sampled"] == {"overall": {"images": 7, "of": overall}}
    again = client.post("/api/query", json=body).json()
    assert again["job"] is None and again["result"]["key"] == result["key"]  # the same images: cached
    whole = wait(client, client.post("/api/query", json={**body, "sample": 0}))["result"]
    assert whole["n_images"] == overall and whole["sampled"] == {} and whole["key"] != result["key"]
    assert client.post("/api/query", json={**body, "sample": -1}).status_code == 400


def test_big_sets_are_sampled_by_default(state, monkeypatch):
    monkeypatch.setattr(queries, "DEFAULT_SAMPLE", 3)
    samples = queries.Samples()
    spec = queries.check_query(state, queries.SetHashes(), "sandal - overall", samples=samples)
    assert spec.sampled == {"sandal": (3, len(state.image_sets["sandal"])), "overall": (3, len(state.image_sets["overall"]))}
    assert all(len(spec.sets[name]) == 3 for name in ("sandal", "overall"))
    assert queries.check_query(state, queries.SetHashes(), "sandal - overall", sample=4).sampled == {"overall": (4, len(state.image_sets["overall"]))}
    same = queries.check_query(state, queries.SetHashes(), "sandal - overall", samples=queries.Samples())
    assert same.key == spec.key  # a fixed choice
    assert [item.source for item in same.sets["overall"].items] == [item.source for item in spec.sets["overall"].items]
    every = queries.check_query(state, queries.SetHashes(), "sandal - overall", sample=0)
    assert every.sampled == {} and every.key != spec.key


def test_start_false_answers_only_from_what_is_computed(client):
    body = {"images": "shirt", "target": "loss", "criterion": "gradient", "sample": 3, "start": False}
    answer = client.post("/api/query", json=body)
    assert answer.status_code == 404 and "not computed yet" in answer.json()["detail"]
    assert not [j for j in client.get("/api/jobs").json() if "over shirt" in j["description"]]  # nothing queued
    assert wait(client, client.post("/api/query", json={**body, "start": True}))["state"] == "done"
    cached = client.post("/api/query", json=body)
    assert cached.status_code == 200 and cached.json()["result"]["n_images"] == 3


def test_dataset_examples_report_the_images_gone_through(state, tmp_path):
    from viscnn.store import Store

    twin = ServerState(state.loaded, state.graph, state.images_spec, store=Store(tmp_path / "store"), upload_dir=tmp_path / "up")
    twin.jobs = JobManager()
    with TestClient(create_app(twin, tmp_path / "noweb"), base_url="http://127.0.0.1:8000") as client:
        answer = client.get("/api/nodes/features.3/1/examples").json()
        assert answer["job"], "examples already stored in a fresh store?"
        events = _events(client, answer["job"])
    final = events[-1]
    assert final["state"] == "done" and final["unit"] == "images"
    assert final["done"] == final["total"] == len(state.image_sets["overall"])
