"""A child process for the store tests: `python worker.py COMMAND ROOT ...` (see `main`)."""
from __future__ import annotations

import json
import os
import random
import signal
import sys
import time
import zlib
from pathlib import Path

from viscnn.store import Store

HEAD = 64
BASE = random.Random(0).randbytes((1 << 22) + (1 << 16))  # the same in every process


def payload(key: str, size: int, tag: str = "") -> bytes:
    """Bytes that name themselves: a header (key, tag, size) then a slice of BASE chosen by the tag."""
    head = f"{key}|{tag}|{size}".encode().ljust(HEAD, b" ")
    offset = zlib.crc32(tag.encode()) % (1 << 16)
    return head + BASE[offset:offset + max(size - HEAD, 0)]


def check(key: str, data: bytes) -> str:
    """The tag of a payload written for `key`; AssertionError if the bytes are not one whole payload."""
    name, tag, size = data[:HEAD].rstrip(b" ").decode().split("|")
    assert name == key, (name, key)
    assert data == payload(key, int(size), tag), f"{key}: {len(data)} bytes, not the {size} written"
    return tag


def wait_for(start: Path) -> None:
    while not start.exists():
        time.sleep(0.002)


def chunked_writer(data: bytes, die_after: int | None = None):
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            for offset in range(0, len(data), 1 << 16):
                if die_after is not None and offset >= die_after:
                    handle.flush()
                    os.kill(os.getpid(), signal.SIGKILL)
                handle.write(data[offset:offset + (1 << 16)])
    return write


def main(argv: list[str]) -> None:
    command, root = argv[0], Path(argv[1])
    if command == "key":  # key KIND PARTS_JSON: print Store.key
        print(Store.key(argv[2], **json.loads(argv[3])))
        return
    if command == "write":  # write ROOT START PREFIX COUNT SIZE TAG: wait for START, then put COUNT entries
        start, prefix, count, size, tag = Path(argv[2]), argv[3], int(argv[4]), int(argv[5]), argv[6]
        wait_for(start)
        store = Store(root)
        for i in range(count):
            key = f"{prefix}{i}"
            if i % 2:
                store.put_bytes("load", key, payload(key, size, tag), meta={"tag": tag, "i": i})
            else:
                store.put_file("load", key, chunked_writer(payload(key, size, tag)), meta={"tag": tag, "i": i})
        return
    store = Store(root)
    if command == "churn":  # churn ROOT SEED: overwrite large entries of a small key pool until killed
        rng = random.Random(int(argv[2]))
        print("ready", flush=True)
        for n in range(10**9):
            key = f"big{rng.randrange(12)}"
            data = payload(key, rng.randrange(1 << 19, 1 << 22), tag=str(n))
            if n % 2:
                store.put_bytes("crash", key, data)
            else:
                store.put_file("crash", key, chunked_writer(data), suffix=".npy")
        return
    if command == "inject":  # inject ROOT MODE KEY: die at one chosen point of overwriting KEY
        mode, key = argv[2], argv[3]
        data = payload(key, 1 << 20, tag="new")
        if mode == "mid-write":
            store.put_file("crash", key, chunked_writer(data, die_after=1 << 19))
        real_replace = os.replace

        def replace(src: str | Path, dst: str | Path) -> None:
            if mode == "before-replace":
                os.kill(os.getpid(), signal.SIGKILL)
            real_replace(src, dst)
            if mode == "after-replace":
                os.kill(os.getpid(), signal.SIGKILL)

        os.replace = replace  # type: ignore[assignment]
        store.put_bytes("crash", key, data, meta={"from": "inject"})
        raise SystemExit(f"inject {mode}: survived")
    if command == "hold":  # hold ROOT KEY: write half of KEY's file, say "writing", finish when stdin says "go"
        data = payload(key := argv[2], 1 << 20, tag="held")

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as handle:
                handle.write(data[: len(data) // 2])
                handle.flush()
                print("writing", flush=True)
                assert sys.stdin.readline() == "go\n"
                handle.write(data[len(data) // 2:])

        store.put_file("crash", key, write)
        print("done", flush=True)
        return
    raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main(sys.argv[1:])
