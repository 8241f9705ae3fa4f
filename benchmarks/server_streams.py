"""Open event streams and oversized bodies against a real `viscnn serve`: does the API stay fast and small?

    .venv/bin/python benchmarks/server_streams.py [--model fmnist-convnet] [--streams 200] [--repeats 200] [--body-mb 50]

Starts `viscnn serve` in a subprocess (so its memory is its own), then prints:
- GET /api/sets latency (median, p95 over --repeats requests on one keep-alive connection) with no event
  streams open, and with --streams open (/api/events, the stream the page keeps open; no job runs, so the
  figures are the streams' own cost, not the CPU a job takes), side by side;
- the server's resident memory (VmRSS, and its peak VmHWM, from /proc) before and after a --body-mb body
  is sent to POST /api/query (JSON: 1 MB limit) and POST /api/images (an upload: 12 MB limit), each once
  with Content-Length and once chunked: all must end in 413 with the server growing by far less than the
  body (target: 200 streams leave GET /api/sets under 100 ms; a 50 MB
  body gets 413 with the server growing by under 50 MB).
Linux only (reads /proc). Nothing is downloaded; the store is a fresh temporary folder.
"""
from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def memory(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def latencies(client: httpx.Client, repeats: int) -> tuple[float, float]:
    """Median and p95 of GET /api/sets in ms."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        client.get("/api/sets").raise_for_status()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(0.95 * len(times)))]


def open_stream(port: int, path: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        part = sock.recv(4096)
        if not part:
            raise SystemExit(f"a stream was closed before its answer: {head[:200]!r}")
        head += part
    if not head.startswith(b"HTTP/1.1 200"):
        first_line = head.split(b"\r\n", 1)[0].decode()
        raise SystemExit(f"a stream was refused: {first_line}")
    return sock


def send_big(port: int, path: str, kind: str, size: int, chunked: bool) -> tuple[int, int, float]:
    """Send a `size`-byte body of type `kind` to POST `path`; (status, bytes sent before the answer, seconds)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}"
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {kind}\r\n{framing}\r\n\r\n".encode())
    block = b"x" * (256 * 1024)
    sent, start = 0, time.perf_counter()
    sock.setblocking(False)
    answer = b""
    try:
        while sent < size:
            part = block[: min(len(block), size - sent)]
            data = (f"{len(part):x}\r\n".encode() + part + b"\r\n") if chunked else part
            view = memoryview(data)
            while view:
                try:
                    view = view[sock.send(view):]
                except BlockingIOError:
                    try:
                        answer += sock.recv(65536)
                    except BlockingIOError:
                        time.sleep(0.001)
                    if answer:
                        raise StopIteration from None
            sent += len(part)
        if chunked:
            sock.sendall(b"0\r\n\r\n")
    except (StopIteration, BrokenPipeError, ConnectionResetError):
        pass
    sock.setblocking(True)
    sock.settimeout(30)
    try:
        while b"\r\n" not in answer:
            part = sock.recv(65536)
            if not part:
                break
            answer += part
    except (ConnectionResetError, TimeoutError):
        pass
    sock.close()
    status = int(answer.split()[1]) if answer.startswith(b"HTTP/1.1") else 0
    return status, sent, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="fmnist-convnet")
    parser.add_argument("--images", default="fashion-mnist:test:20")
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--body-mb", type=float, default=50.0)
    args = parser.parse_args()

    port = free_port()
    store = tempfile.mkdtemp(prefix="viscnn-bench-streams-")
    server = subprocess.Popen([sys.executable, "-m", "viscnn", "serve", "--model", args.model, "--images", args.images,
                               "--port", str(port), "--store", store, "--prepare", "none", "--web", str(Path(store) / "no-page")],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sockets: list[socket.socket] = []
    try:
        assert server.stdout is not None
        for line in server.stdout:
            if "open http" in line:
                break
        else:
            raise SystemExit("viscnn serve did not start")
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=120) as client:
            for _ in range(100):
                try:
                    client.get("/api/sets")
                    break
                except httpx.ConnectError:
                    time.sleep(0.1)
            latencies(client, 20)  # warm up

            # first, on the fresh server (so its peak memory is its own): bodies over the limit
            size = int(args.body_mb * 1e6)
            rows = []
            for path, kind in (("/api/query", "application/json"), ("/api/images", "multipart/form-data; boundary=b")):
                for chunked in (False, True):
                    rss, peak = memory(server.pid)
                    status, sent, seconds = send_big(port, path, kind, size, chunked)
                    time.sleep(0.5)
                    after, peak_after = memory(server.pid)
                    rows.append(f"| POST {path}, {'chunked' if chunked else 'Content-Length'} | {status} | {sent / 1e6:.1f} MB "
                                f"in {seconds:.2f} s | {rss:.0f} -> {after:.0f} MB | {peak_after - peak:+.1f} MB |")

            quiet = latencies(client, args.repeats)

            start = time.perf_counter()
            for _ in range(args.streams):
                sockets.append(open_stream(port, "/api/events"))
            opened = time.perf_counter() - start
            busy = latencies(client, args.repeats)

            print(f"viscnn serve --model {args.model} --images {args.images}; GET /api/sets x {args.repeats}, one connection")
            print("| open event streams | median | p95 |\n|---|---|---|")
            print(f"| 0 | {quiet[0]:.1f} ms | {quiet[1]:.1f} ms |")
            print(f"| {args.streams} (opened in {opened:.2f} s) | {busy[0]:.1f} ms | {busy[1]:.1f} ms |")
            print(f"\n{args.body_mb:g} MB body | status | sent before the answer | server VmRSS before -> after "
                  f"| its peak (VmHWM) growth")
            print("|---|---|---|---|---|")
            print("\n".join(rows))
    finally:
        for sock in sockets:
            sock.close()
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    main()
