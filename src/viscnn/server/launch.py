"""Start a server: from a model name and an image-set spec to a running uvicorn (foreground or background)."""
from __future__ import annotations

import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from viscnn.errors import ViscnnError
from viscnn.server.middleware import DEFAULT_MAX_BODY_MB
from viscnn.server.security import check_host
from viscnn.server.state import ServerState

if TYPE_CHECKING:
    import uvicorn


def build_state(model: str = "efficientnet-lite0", images: str | None = None, *, weights: str | None = None,
                device: str = "cpu", store: str | Path | None = None, no_cache: bool = False,
                token: str | None = None, batch_size: int = 32, pretrained: bool = False,
                resize: bool = False) -> ServerState:
    """Load the model, trace its graph, open the image sets (by default the model's own kind) and the store."""
    from viscnn.graph import build_graph
    from viscnn.models import load_model
    from viscnn.store import Store

    loaded = load_model(model, weights, device, pretrained=pretrained, images=images)
    images = images or loaded.default_images()
    graph = build_graph(loaded.module, loaded.input_shape, loaded.name)
    the_store = None if no_cache else Store(store)
    uploads = (the_store.root / "uploads") if the_store is not None else Path(tempfile.mkdtemp(prefix="viscnn-uploads-"))
    return ServerState(loaded, graph, images, store=the_store, token=token, upload_dir=uploads, batch_size=batch_size,
                       resize=resize)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def check_port(host: str, port: int) -> None:
    if not 0 < port < 65536:
        raise ViscnnError(f"--port must be between 1 and 65535, not {port}")
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ViscnnError(f"cannot listen on {host}:{port}: {exc.strerror or exc} (try another --port)") from exc


def url(host: str, port: int, token: str | None) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    shown = f"[{shown}]" if ":" in shown else shown
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


@dataclass
class Running:
    """A server running in a background thread (for notebooks and benchmarks)."""

    url: str
    port: int
    server: uvicorn.Server
    thread: threading.Thread
    state: ServerState

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def serve_background(state: ServerState, *, host: str = "127.0.0.1", port: int | None = None,
                     web_dir: Path | None = None, prepare: str | None = None, render_steps: int = 256,
                     max_body_mb: float = DEFAULT_MAX_BODY_MB) -> Running:
    """Start uvicorn in a daemon thread and wait until it answers."""
    import uvicorn

    from viscnn.server.app import create_app

    check_host(host, state.token)
    port = port or free_port(host)
    check_port(host, port)
    app = create_app(state, web_dir, render_steps, prepare, max_body_mb=max_body_mb)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning",
                            timeout_graceful_shutdown=2)  # open event streams must not hold up a stop
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"viscnn-server-{port}", daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        if not thread.is_alive() or time.time() > deadline:
            raise ViscnnError(f"the server on {host}:{port} did not start")
        time.sleep(0.05)
    return Running(url(host, port, state.token), port, server, thread, state)
