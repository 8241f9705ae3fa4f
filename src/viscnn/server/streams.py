"""Server-Sent Events: one job's progress, or every job's changes, pushed as they happen.

Streams are async generators that wait on the event loop (`Job.changed_async`, `JobManager.changes`), so
open streams hold no thread and delay no other request; a client that goes away ends its stream at once
(`EventStream` listens for the disconnect), and the jobs it followed start their grace (a queued job
nobody follows is cancelled before it starts, see `QueueLimits`).
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import anyio
import orjson
from fastapi import APIRouter, Query
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from viscnn.errors import ViscnnError
from viscnn.server.jobs import FINAL, Job, JobManager
from viscnn.server.responses import answers

COALESCE = 0.2  # s: a stream pushes a job's progress at most five times a second
MAX_FOLLOW = 256  # jobs one all-jobs stream may follow
RETRY_MS = 2000  # how soon a browser's EventSource reconnects after the connection dropped


class EventStream(StreamingResponse):
    """A text/event-stream response that stops the moment its client disconnects (whatever ASGI version)."""

    def __init__(self, content: AsyncGenerator[bytes, None]) -> None:
        super().__init__(content, media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self.events = content

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as group:
                async def stream() -> None:
                    await self.stream_response(send)
                    group.cancel_scope.cancel()

                group.start_soon(stream)
                await self.listen_for_disconnect(receive)
                group.cancel_scope.cancel()  # the client left: stop sending
        finally:
            # the generator may be parked at a `yield` (cancelled while its event was being sent): close it now,
            # so what it holds (a follower, a stream slot) is let go at once, not whenever it is collected
            with anyio.CancelScope(shield=True):
                await self.events.aclose()


def event(name: str, data: object) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n\n"


HEARTBEAT = b": heartbeat\n\n"


def job_stream(manager: JobManager, job: Job, heartbeat: float) -> EventStream:
    """One job's events: `progress`..., then `done` (with the result), `error` or `cancelled`."""
    manager.check_stream_room()
    return EventStream(_job_events(manager, job, heartbeat))


async def _job_events(manager: JobManager, job: Job, heartbeat: float) -> AsyncGenerator[bytes, None]:
    with manager.streaming(), manager.following([job]):
        version = -1
        while True:
            current = await job.changed_async(version, heartbeat)
            if current == version:
                yield HEARTBEAT
                continue
            version = current
            if job.state in FINAL:
                yield event(job.state, job.to_json(result=job.state == "done"))
                return
            yield event("progress", job.to_json(result=False))
            await asyncio.sleep(COALESCE)


async def _all_events(manager: JobManager, follow: list[str], heartbeat: float,
                      client: str = "") -> AsyncGenerator[bytes, None]:
    followed, gone = [], []
    for job_id in follow:
        try:
            followed.append(manager.get(job_id))
        except KeyError:
            gone.append(job_id)
    with manager.streaming(), manager.following(followed, client):
        epoch = manager.epoch
        jobs = manager.jobs()
        sent = {job.id: job.version for job in jobs}
        yield f"retry: {RETRY_MS}\n\n".encode() + event("jobs", [job.to_json(result=False) for job in jobs])
        if gone:
            yield event("gone", {"ids": gone})
        while True:
            epoch = await manager.changed_async(epoch, heartbeat)
            jobs = manager.jobs(sweep=False)
            changed = [job for job in jobs if sent.get(job.id) != job.version]
            sent = {job.id: job.version for job in jobs}  # forgotten jobs leave it too
            if not changed:
                yield HEARTBEAT  # a comment line every `heartbeat` s keeps proxies from closing the stream
                continue
            yield b"".join(event("job", job.to_json(result=False)) for job in changed)
            await asyncio.sleep(COALESCE)


def routes(manager: JobManager) -> APIRouter:
    router = APIRouter(tags=["queries and jobs"])

    @router.get("/events", summary="Server-Sent Events of every job's changes; the jobs in `follow` are kept alive",
                response_class=StreamingResponse, responses=answers(429, body="events"))
    async def events(follow: str = Query("", max_length=8000, description="comma-separated job ids this client waits for"),
                     heartbeat: float = Query(15.0, gt=0, le=60),
                     client: str = Query("", max_length=64, description="the page's id (its X-Viscnn-Client header): "
                                         "jobs it follows here may be let go by it (POST /api/release)")) -> StreamingResponse:
        ids = [part for part in follow.split(",") if part]
        if len(ids) > MAX_FOLLOW:
            raise ViscnnError(f"follow names {len(ids)} jobs; one stream follows at most {MAX_FOLLOW}")
        manager.check_stream_room()
        return EventStream(_all_events(manager, ids, heartbeat, client))

    return router
