"""Queries (job when new, direct when cached), the pruning rules, and jobs: progress, events, cancel."""
import json
import threading
import time

import numpy as np
import pytest
import torch

from tests.server.conftest import wait
from viscnn.scoring.expression import parse_expression
from viscnn.scoring.query import score_sets
from viscnn.scoring.targets import Target


@pytest.fixture(scope="module")
def loss_query(client):
    answer = client.post("/api/query", json={"images": "trouser - overall", "target": "loss", "criterion": "taylor_signed",
                                             "node_fraction": 0.25, "edge_fraction": 0.05})
    assert answer.status_code in (200, 202), answer.text
    job = wait(client, answer)
    assert job["state"] == "done", job
    return job["result"]


def test_new_query_runs_as_a_job_then_answers_from_the_cache(client):
    body = {"images": "sneaker", "target": "class:Sneaker", "criterion": "taylor"}
    first = client.post("/api/query", json=body)
    assert first.status_code == 202 and first.json()["job"] and first.json()["result"] is None
    job = wait(client, first)
    assert job["state"] == "done" and job["progress"] == 1.0
    assert job["result"]["computed"] == ["sneaker"]
    second = client.post("/api/query", json=body)
    assert second.status_code == 200 and second.json()["job"] is None
    result = second.json()["result"]
    assert result["key"] == job["result"]["key"] and result["seconds"] < 1.0
    assert result["nodes"] == job["result"]["nodes"]


def test_scores_are_those_of_the_scoring_engine(loss_query, state):
    expression = parse_expression("trouser - overall", list(state.image_sets))
    expected = score_sets(state.loaded, state.graph, state.image_sets, expression, Target("loss"),
                          criteria=["taylor_signed"], store=state.store).scores["taylor_signed"]
    for layer, values in loss_query["nodes"].items():
        np.testing.assert_allclose(values, expected.nodes[layer].numpy(), rtol=1e-5, atol=1e-9)
    layer = "features.3"
    edges = loss_query["edges"][layer]
    spec = state.graph[layer]
    local = np.array(edges["in"]) - (np.array(edges["out"]) // spec.out_per_group) * spec.in_per_group
    np.testing.assert_allclose(edges["score"], expected.edges[layer][edges["out"], local].numpy(), rtol=1e-5, atol=1e-9)


def test_pruning_follows_the_rules(loss_query, state):
    for layer in state.graph.conv_layers:
        nodes = np.abs(np.array(loss_query["nodes"][layer.name]))
        kept = loss_query["kept"][layer.name]
        assert len(kept) == min(int(np.ceil(0.25 * layer.out_channels)), int((nodes > 0).sum()))
        assert nodes[kept].min() >= np.delete(nodes, kept).max()  # the top quarter by |score|
        edges = loss_query["edges"].get(layer.name)
        if edges is None:
            continue
        assert set(edges["out"]) <= set(kept)  # only edges into kept nodes
        assert set(edges["sign"]) <= {-1, 0, 1}
        magnitudes = np.abs(edges["score"])
        assert list(magnitudes) == sorted(magnitudes, reverse=True) and magnitudes.min() > 0
    assert loss_query["num_edges"] == sum(len(e["out"]) for e in loss_query["edges"].values())
    assert loss_query["num_edges_total"] == state.graph.num_edges


def test_max_edges_caps_the_drawn_edges_keeping_the_strongest(client, loss_query):
    answer = client.post("/api/query", json={"images": "trouser - overall", "target": "loss", "criterion": "taylor_signed",
                                             "node_fraction": 0.25, "edge_fraction": 0.05, "max_edges": 10})
    result = answer.json()["result"]
    assert answer.status_code == 200 and result["num_edges"] == 10
    drawn = {(layer, o, i) for layer, e in result["edges"].items() for o, i in zip(e["out"], e["in"])}
    everything = {(layer, o, i) for layer, e in loss_query["edges"].items() for o, i in zip(e["out"], e["in"])}
    assert drawn <= everything


def test_cumulative_rule_keeps_the_fewest_reaching_the_share(client):
    answer = client.post("/api/query", json={"images": "trouser", "target": "loss", "node_cumulative": 0.5,
                                             "edge_cumulative": 1.0})
    result = wait(client, answer)["result"]
    for layer, values in result["nodes"].items():
        magnitudes = np.sort(np.abs(values))[::-1]
        count = len(result["kept"][layer])
        assert magnitudes[:count].sum() >= 0.5 * magnitudes.sum() - 1e-9
        assert magnitudes[:count - 1].sum() < 0.5 * magnitudes.sum()


def test_kernel_signs_follow_the_bn_folded_weights(loss_query, state):
    layer = "features.0"
    edges = loss_query["edges"][layer]
    weight = state.graph.kernels(state.loaded.module, layer).float()
    bn = state.loaded.module.get_submodule(state.graph[layer].batchnorm) if state.graph[layer].batchnorm else None
    if bn is not None:
        weight = weight * (bn.weight / torch.sqrt(bn.running_var + bn.eps)).view(-1, 1, 1, 1)
    for out, inp, sign in zip(edges["out"], edges["in"], edges["sign"]):
        kernel = weight[out, inp]
        ratio = float(kernel.sum() / kernel.abs().sum())
        assert sign == (1 if ratio > 1 / 3 else -1 if ratio < -1 / 3 else 0)


@pytest.mark.parametrize("body, message", [
    ({"images": "trouser -"}, "column"),
    ({"images": "dragons"}, "dragons"),
    ({"images": "trouser * overall"}, "linear"),
    ({"images": ""}, "images: String should have at least 1 character"),
    ({"images": "  "}, "expression"),
    ({"images": "overall", "criterion": "vibes"}, "unknown criterion"),
    ({"images": "overall", "target": "features.99:1"}, "features.99"),
    ({"images": "overall", "target": "features.3:9999"}, "9999"),
    ({"images": "overall", "target": "class:Unicorn"}, "Unicorn"),
    ({"images": "overall", "target": "features.3:1<-2"}, "an edge is a render objective only"),
    ({"images": "overall", "node_fraction": 0.1, "node_cumulative": 0.2}, "not both"),
    ({"images": "overall", "edge_fraction": 1.5}, "edge_fraction: Input should be less than or equal to 1"),
    ({"images": "overall", "max_edges": -1}, "max_edges"),
    ({"images": "overall", "edge_fraction": "lots"}, "edge_fraction"),
    ({"target": "loss"}, "images"),
    ({"images": "x" * 5000}, "images"),
])
def test_bad_queries_are_400_with_a_message(client, body, message):
    answer = client.post("/api/query", json=body)
    assert answer.status_code == 400, answer.text
    assert message in answer.json()["detail"]


def test_query_body_that_is_not_json_is_400(client):
    answer = client.post("/api/query", content=b"{not json", headers={"content-type": "application/json"})
    assert answer.status_code == 400 and answer.json()["detail"]


def test_unknown_jobs_are_404(client):
    for method, path in [("GET", "/api/jobs/query-999999"), ("DELETE", "/api/jobs/nope"), ("GET", "/api/jobs/nope/events")]:
        answer = client.request(method, path)
        assert answer.status_code == 404 and "unknown job" in answer.json()["detail"]


def test_events_stream_progress_then_done(client, state):
    gate = threading.Event()  # the worker is held until the stream is open, so it sees every progress event
    state.jobs.submit("test", lambda context: gate.wait(30), "holds the worker", priority=-10)  # nothing overtakes it
    answer = client.post("/api/query", json={"images": "bag + ankle_boot", "target": "loss", "criterion": "activation"})
    job_id = answer.json()["job"]
    assert job_id
    threading.Timer(1.0, gate.set).start()
    with client.stream("GET", f"/api/jobs/{job_id}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        text = "".join(stream.iter_text())
    names = [line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("event: ")]
    # connected while the job waited: its progress comes before the end (coalesced to 5 a second, so which
    # messages arrive depends on the machine's speed)
    assert names[-1] == "done" and names[0] == "progress" and set(names[:-1]) <= {"progress"}
    final = json.loads(text.strip().splitlines()[-1].split("data: ", 1)[1])
    # the job counted the images it scored, of all it had to score (both sets: not in the store yet)
    assert final["unit"] == "images" and final["done"] == final["total"] == final["result"]["n_images"] > 0
    again = client.get(f"/api/jobs/{job_id}/events").text  # a finished job answers at once
    assert again.startswith("event: done")


def test_a_running_job_is_cancelled_within_a_conv_call(state, client):
    started = threading.Event()

    def forever(context):
        x = torch.zeros(1, 1, 28, 28)
        started.set()
        while True:  # never reports: only the conv-call check can stop it
            state.loaded.module(x)

    job = state.jobs.submit("test", forever, "runs until cancelled")
    assert started.wait(10)
    answer = client.delete(f"/api/jobs/{job.id}")
    assert answer.status_code == 200
    deadline = time.time() + 10
    while job.state != "cancelled" and time.time() < deadline:
        time.sleep(0.02)
    assert job.state == "cancelled"
    assert client.get(f"/api/jobs/{job.id}").json()["state"] == "cancelled"
    listed = {j["id"]: j for j in client.get("/api/jobs").json()}
    assert listed[job.id]["state"] == "cancelled" and "result" not in listed[job.id]


def test_a_queued_job_is_cancelled_before_it_starts(state, client):
    gate = threading.Event()
    blocker = state.jobs.submit("test", lambda context: gate.wait(10), "holds the worker", priority=-10)  # nothing overtakes it
    queued = state.jobs.submit("test", lambda context: "ran", "should never run")
    answer = client.delete(f"/api/jobs/{queued.id}").json()
    assert answer["state"] == "cancelled"
    gate.set()
    deadline = time.time() + 10
    while blocker.state != "done" and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(0.1)
    assert queued.state == "cancelled" and queued.result is None


def test_a_failing_job_reports_its_error(state, client):
    def broken(context):
        raise RuntimeError("disk on fire")

    job = state.jobs.submit("test", broken)
    final = wait(client, type("A", (), {"json": lambda self: {"job": job.id}})())
    assert final["state"] == "error" and "disk on fire" in final["error"]


def test_old_results_are_forgotten_and_their_keys_freed():
    from viscnn.server.jobs import JobManager

    manager = JobManager(keep=5, keep_results=2)
    jobs = [manager.submit("test", lambda context, k=k: k, key=f"k{k}") for k in range(4)]
    deadline = time.time() + 10
    while any(job.state != "done" for job in jobs) and time.time() < deadline:
        time.sleep(0.01)
    later = manager.submit("test", lambda context: "new")  # trims on submit
    assert [job.result for job in jobs] == [None, None, 2, 3]
    assert manager.submit("test", lambda context: "again", key="k0") is not jobs[0]  # no stale reuse
    assert manager.submit("test", lambda context: "again", key="k3") is jobs[3]
    for _ in range(10):
        manager.submit("test", lambda context: None)
    deadline = time.time() + 10
    while any(job.state != "done" for job in manager.jobs()) and time.time() < deadline:
        time.sleep(0.01)
    newest = manager.submit("test", lambda context: None)
    kept = manager.jobs()
    assert len(kept) <= 6 and newest in kept and later not in kept  # the oldest finished ones are gone
    manager.shutdown()


def test_a_query_runs_before_queued_renders_and_evaluations():
    from viscnn.server.jobs import JobManager

    manager = JobManager()
    gate, started = threading.Event(), []

    def work(name):
        def run(context):
            started.append(name)
            if name == "first":
                gate.wait(10)
        return run

    manager.submit("circuit", work("first"))
    time.sleep(0.1)  # the worker is busy with the first job
    for kind, name in [("render", "render 1"), ("faithfulness", "evaluation"), ("render", "render 2"),
                       ("query", "query"), ("composition", "composition"), ("query", "query 2")]:
        manager.submit(kind, work(name))
    gate.set()
    deadline = time.time() + 10
    while len(started) < 7 and time.time() < deadline:
        time.sleep(0.01)
    # a query overtakes the running circuit (which waits for it), the next one waits for the first; then by kind:
    # renders (short) before an evaluation of the same default priority
    assert started == ["first", "query", "query 2", "composition", "render 1", "render 2", "evaluation"]
    manager.shutdown()


def test_background_work_pauses_while_a_user_job_runs(state):
    from viscnn.server.jobs import JobManager

    manager = JobManager()
    convs, gate = [], threading.Event()

    def background(context):
        x = torch.zeros(1, 1, 28, 28)
        for _ in range(400):
            state.loaded.module.features[0](x)
            convs.append(time.perf_counter())

    def user(context):
        started = time.perf_counter()
        gate.wait(10)
        return started

    first = manager.submit("user", user)
    time.sleep(0.1)
    back = manager.submit("prepare", background, background=True)
    time.sleep(0.3)
    assert back.state == "running" and not convs  # held at its first conv call
    gate.set()
    deadline = time.time() + 20
    while back.state != "done" and time.time() < deadline:
        time.sleep(0.02)
    assert first.state == "done" and back.state == "done" and len(convs) == 400
    manager.shutdown()


def test_a_paused_background_job_can_be_cancelled(state):
    from viscnn.server.jobs import JobManager

    manager = JobManager()
    gate = threading.Event()
    manager.submit("user", lambda context: gate.wait(10))
    time.sleep(0.05)
    back = manager.submit("prepare", lambda context: state.loaded.module(torch.zeros(1, 1, 28, 28)), background=True)
    time.sleep(0.2)
    manager.cancel(back.id)
    deadline = time.time() + 5
    while back.state != "cancelled" and time.time() < deadline:
        time.sleep(0.02)
    assert back.state == "cancelled"
    gate.set()
    manager.shutdown()
