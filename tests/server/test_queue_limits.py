"""The bounded queue: caps per kind (429 + Retry-After), queued jobs nobody follows or asks about are cancelled
before they start, finished jobs are forgotten after a while, DELETE cancels."""
import threading
import time

import pytest
from fastapi.testclient import TestClient

from tests.server.live import wait_until
from viscnn.server import ServerState, create_app
from viscnn.server.jobs import Busy, JobManager, QueueLimits


@pytest.fixture
def held():
    """A manager whose worker is held by one job until the gate is set."""
    def make(**limits):
        manager = JobManager(limits=QueueLimits(**limits))
        gate = threading.Event()
        blocker = manager.submit("test", lambda context: gate.wait(30), "holds the worker", priority=-10)  # nothing overtakes it
        wait_until(lambda: blocker.state == "running", message="the blocker runs")
        made.append((manager, gate))
        return manager, gate
    made = []
    yield make
    for manager, gate in made:
        gate.set()
        manager.shutdown()


def test_a_kind_over_its_cap_is_refused_and_a_reused_job_is_not(held):
    manager, _ = held(caps={"render": 2}, default_cap=3)
    first = manager.submit("render", lambda context: 1, key="a")
    manager.submit("render", lambda context: 2, key="b")
    with pytest.raises(Busy, match="2 render jobs are already waiting") as refused:
        manager.submit("render", lambda context: 3, key="c")
    assert refused.value.retry_after == 5
    assert manager.submit("render", lambda context: 1, key="a") is first  # already there: not a new job
    for k in range(3):  # other kinds have their own cap
        manager.submit("query", lambda context, k=k: k)
    with pytest.raises(Busy, match="query"):
        manager.submit("query", lambda context: 4)
    manager.cancel(first.id)  # a cancelled job no longer waits: room for one more
    manager.submit("render", lambda context: 3, key="c")


def test_a_queued_job_left_by_its_last_follower_is_cancelled_after_the_grace(held):
    manager, gate = held(orphan_grace=0.3)
    job = manager.submit("render", lambda context: "ran")
    with manager.following([job]):
        time.sleep(0.5)
        manager.sweep()
        assert job.state == "queued"  # followed: kept however long it waits
    manager.sweep()
    assert job.state == "queued"  # just left: in its grace
    time.sleep(0.5)
    manager.get(job.id, ask=False)  # a look that is not a poll does not keep it
    manager.sweep()
    assert job.state == "cancelled" and job.message.startswith("cancelled before it started: nobody followed")
    gate.set()
    time.sleep(0.2)
    assert job.result is None


def test_a_queued_job_nobody_asks_about_is_cancelled_and_polling_keeps_it(held):
    manager, gate = held(unasked=0.4)
    polled = manager.submit("render", lambda context: "polled")
    forgotten = manager.submit("render", lambda context: "forgotten")
    for _ in range(4):
        time.sleep(0.15)
        manager.get(polled.id)  # GET /api/jobs/ID
        manager.jobs()  # the list is no one's poll of a job (and sweeps)
    assert forgotten.state == "cancelled" and "0.4 s" in forgotten.message
    assert polled.state == "queued"
    gate.set()
    wait_until(lambda: polled.state == "done", message="the polled job ran")
    assert polled.result == "polled"


def test_finished_jobs_are_forgotten_after_a_while():
    manager = JobManager(limits=QueueLimits(keep_finished=0.3))
    job = manager.submit("test", lambda context: 7)
    wait_until(lambda: job.state == "done", message="the job ran")
    assert job in manager.jobs()
    time.sleep(0.5)
    assert job not in manager.jobs()
    with pytest.raises(KeyError):
        manager.get(job.id)
    manager.shutdown()


def test_background_jobs_are_neither_capped_nor_expired():
    manager = JobManager(limits=QueueLimits(default_cap=1, unasked=0.0))
    gate = threading.Event()
    jobs = [manager.submit("layout", lambda context: gate.wait(10), background=True) for _ in range(3)]
    time.sleep(0.1)
    manager.sweep()
    assert [job.state for job in jobs] == ["running", "queued", "queued"]
    gate.set()
    wait_until(lambda: all(job.state == "done" for job in jobs), message="the background jobs ran")
    manager.shutdown()


@pytest.fixture
def capped(state, tmp_path):
    # no store: no query of these is ever cached, so each one needs a job
    twin = ServerState(state.loaded, state.graph, state.images_spec, upload_dir=tmp_path / "up")
    twin.jobs = JobManager(limits=QueueLimits(caps={"query": 1}))
    with TestClient(create_app(twin, tmp_path / "noweb"), base_url="http://127.0.0.1:8000") as client:
        yield client, twin


def test_over_the_cap_the_api_answers_429_with_retry_after_and_delete_makes_room(capped):
    client, twin = capped
    gate = threading.Event()
    twin.jobs.submit("test", lambda context: gate.wait(30), "holds the worker", priority=-10)  # nothing overtakes it
    try:
        first = client.post("/api/query", json={"images": "sandal", "target": "loss", "criterion": "gradient"})
        assert first.status_code == 202
        second = client.post("/api/query", json={"images": "bag", "target": "loss", "criterion": "gradient"})
        assert second.status_code == 429 and second.headers["retry-after"] == "5"
        assert "query jobs are already waiting" in second.json()["detail"]
        same = client.post("/api/query", json={"images": "sandal", "target": "loss", "criterion": "gradient"})
        assert same.status_code == 202 and same.json()["job"] == first.json()["job"]  # the same work: its job
        cancelled = client.delete(f"/api/jobs/{first.json()['job']}")
        assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
        assert client.post("/api/query", json={"images": "bag", "target": "loss", "criterion": "gradient"}).status_code == 202
    finally:
        gate.set()
