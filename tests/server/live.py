"""A real uvicorn server on a free port for tests that need sockets (streams, bodies), and raw HTTP helpers."""
from __future__ import annotations

import json
import socket
import time
from contextlib import contextmanager

from viscnn.server import ServerState
from viscnn.server.jobs import JobManager, QueueLimits
from viscnn.server.launch import serve_background


@contextmanager
def live_server(state, tmp_path, *, limits: QueueLimits | None = None, max_body_mb: float = 12.0):
    """A server of its own (its own jobs, so stopping it leaves the shared `state` alone) over `state`'s model."""
    twin = ServerState(state.loaded, state.graph, state.images_spec, store=state.store, upload_dir=tmp_path / "uploads")
    twin.jobs = JobManager(limits=limits)
    running = serve_background(twin, web_dir=tmp_path / "no-page", max_body_mb=max_body_mb)
    try:
        yield running
    finally:
        running.stop()


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def send_head(sock: socket.socket, method: str, path: str, port: int, headers: dict[str, str]) -> None:
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", *(f"{k}: {v}" for k, v in headers.items())]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())


def read_answer(sock: socket.socket, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and the body (by its Content-Length) of one response."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"the server closed the connection before answering: {data[:200]!r}")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def detail(body: bytes) -> str:
    return json.loads(body)["detail"]


def wait_until(condition, timeout: float = 10.0, message: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} not reached in {timeout} s")
        time.sleep(0.02)
