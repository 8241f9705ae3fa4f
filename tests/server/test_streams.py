"""Event streams on a real server: any number of open ones leave the API fast; a client that leaves ends its own."""
import json
import threading
import time

import httpx
import pytest

from tests.server.live import connect, live_server, send_head, wait_until
from viscnn.server.jobs import QueueLimits


@pytest.fixture
def server(state, tmp_path):
    with live_server(state, tmp_path, limits=QueueLimits(orphan_grace=0.5)) as running:
        yield running


def hold_worker(jobs):
    """A job that holds the worker until the returned gate is set, and one queued behind it."""
    gate = threading.Event()
    blocker = jobs.submit("test", lambda context: gate.wait(30), "holds the worker", priority=-10)  # nothing overtakes it
    queued = jobs.submit("test", lambda context: "ran", "waits behind it")
    return gate, blocker, queued


class Stream:
    """An event stream read off a raw socket: the head checked, the chunked body decoded into events."""

    def __init__(self, port, path):
        self.sock = connect(port)
        send_head(self.sock, "GET", path, port, {"Accept": "text/event-stream"})
        self.sock.settimeout(10)
        data = b""
        while b"\r\n\r\n" not in data:
            data += self.sock.recv(4096)
        head, self.raw = data.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 200") and b"text/event-stream" in head and b"chunked" in head, head[:300]
        self.text = b""

    def close(self):
        self.sock.close()

    def _dechunk(self):
        while b"\r\n" in self.raw:
            size_line, rest = self.raw.split(b"\r\n", 1)
            size = int(size_line, 16)
            if len(rest) < size + 2:
                return
            self.text += rest[:size]
            self.raw = rest[size + 2:]

    def events(self, until, timeout=20.0):
        """(name, data) events until `until(events)` is true."""
        events = []
        deadline = time.monotonic() + timeout
        while True:
            self._dechunk()
            while b"\n\n" in self.text:
                block, self.text = self.text.split(b"\n\n", 1)
                lines = [line for line in block.decode().splitlines() if not line.startswith(":")]
                fields = dict(line.split(": ", 1) for line in lines if ": " in line)
                if "event" in fields:
                    events.append((fields["event"], json.loads(fields["data"])))
            if until(events):
                return events
            assert time.monotonic() < deadline, events
            self.raw += self.sock.recv(65536)


def test_fifty_open_streams_do_not_delay_other_requests(server):
    jobs = server.state.jobs
    gate, blocker, queued = hold_worker(jobs)
    sockets = []
    try:
        for k in range(50):
            target = blocker if k % 2 else queued
            sockets.append(Stream(server.port, f"/api/jobs/{target.id}/events"))
        wait_until(lambda: jobs.streams == 50, message="50 open streams")
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for _ in range(5):
                start = time.perf_counter()
                answer = client.get("/api/sets")
                took = time.perf_counter() - start
                assert answer.status_code == 200 and answer.json()[-1]["name"] == "overall"
                assert took < 2.0, f"GET /api/sets took {took:.2f} s with 50 streams open"
        assert queued.followers == 25 and blocker.followers == 25
    finally:
        for sock in sockets:
            sock.close()
        gate.set()
    wait_until(lambda: jobs.streams == 0, message="every stream ended after its client left")


def test_a_client_that_leaves_ends_its_stream_and_its_queued_job(server):
    jobs = server.state.jobs
    gate, blocker, queued = hold_worker(jobs)
    try:
        stream = Stream(server.port, f"/api/jobs/{queued.id}/events?heartbeat=60")
        wait_until(lambda: jobs.streams == 1 and queued.followers == 1, message="the stream follows the job")
        time.sleep(1.0)  # longer than the grace: followed, so kept
        jobs.sweep()
        assert queued.state == "queued"
        stream.close()  # no heartbeat is due for a minute: only the disconnect can end the stream
        wait_until(lambda: jobs.streams == 0 and queued.followers == 0, timeout=5, message="the stream ended")
        time.sleep(0.7)
        jobs.sweep()
        assert queued.state == "cancelled" and "nobody followed" in queued.message
    finally:
        gate.set()
    wait_until(lambda: blocker.state == "done", message="the blocker finished")
    assert queued.state == "cancelled" and queued.result is None  # never ran


def test_the_all_jobs_stream_pushes_every_change_and_keeps_followed_jobs(server):
    jobs = server.state.jobs
    gate, blocker, queued = hold_worker(jobs)
    try:
        stream = Stream(server.port, f"/api/events?follow={queued.id},no-such-job")
        events = stream.events(lambda e: len(e) >= 2)
        assert events[0][0] == "jobs" and {j["id"] for j in events[0][1]} >= {blocker.id, queued.id}
        assert events[1] == ("gone", {"ids": ["no-such-job"]})
        assert queued.followers == 1
        gate.set()  # the blocker ends, the queued job runs and ends: each change is pushed
        events = stream.events(lambda e: any(name == "job" and j["id"] == queued.id and j["state"] == "done"
                                             for name, j in e))
        assert ("job", blocker.id, "done") in [(name, j["id"], j["state"]) for name, j in events]
        assert all("result" not in j for _, j in events)  # results come from GET /api/jobs/ID
        stream.close()
        wait_until(lambda: jobs.streams == 0 and queued.followers == 0, timeout=5, message="the stream ended")
    finally:
        gate.set()


def test_too_many_follows_or_streams_are_refused(server):
    answer = httpx.get(server.url + "api/events", params={"follow": ",".join(f"j{k}" for k in range(300))}, timeout=10)
    assert answer.status_code == 400 and "at most 256" in answer.json()["detail"]
    jobs = server.state.jobs
    jobs.streams = jobs.limits.max_streams  # as if that many were open
    try:
        full = httpx.get(server.url + "api/events", timeout=10)
        assert full.status_code == 429 and full.headers["retry-after"] and "event streams are open" in full.json()["detail"]
    finally:
        jobs.streams = 0


def test_a_quiet_stream_sends_heartbeats(server):
    gate, _blocker, queued = hold_worker(server.state.jobs)
    try:
        for path in [f"/api/jobs/{queued.id}/events?heartbeat=0.1", "/api/events?heartbeat=0.1"]:
            stream = Stream(server.port, path)
            deadline = time.monotonic() + 10
            while stream.raw.count(b": heartbeat") < 2:
                assert time.monotonic() < deadline, stream.raw
                stream.raw += stream.sock.recv(65536)
            stream.close()
    finally:
        gate.set()
