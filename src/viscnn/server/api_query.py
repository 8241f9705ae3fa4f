"""Routes: queries (answered at once when cached, else as a job) and the jobs themselves (state, events, cancel)."""
from __future__ import annotations

import time
from collections.abc import Iterator

import orjson
from fastapi import APIRouter, Query
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field

from viscnn.server import queries
from viscnn.server.jobs import FINAL, Job, JobContext
from viscnn.server.prune import KernelFacts
from viscnn.server.responses import FastJSON, done, pending
from viscnn.server.state import NotFound, ServerState


class QueryRequest(BaseModel):
    images: str = Field(..., description="image-set expression, e.g. 'tiger_cat - overall'", max_length=1000)
    target: str = Field("loss", max_length=500)
    criterion: str = "taylor"
    node_fraction: float | None = None
    node_cumulative: float | None = None
    edge_fraction: float | None = None
    edge_cumulative: float | None = None
    max_edges: int = queries.MAX_EDGES


def routes(state: ServerState, facts: KernelFacts) -> APIRouter:
    router = APIRouter(tags=["queries and jobs"])
    hashes = queries.SetHashes()

    @router.post("/query", summary="score every node and edge for a target over an image-set expression")
    def query(request: QueryRequest) -> Response:
        start = time.perf_counter()
        spec = queries.check_query(state, hashes, **request.model_dump())
        scores = state.queries.get(spec.key)
        if scores is not None:
            return done(_timed(queries.answer(state, facts, spec, scores, {"cached": list(spec.terms)}), start))
        if queries.in_store(state, spec):
            scores, how = queries.compute(state, spec)
            return done(_timed(queries.answer(state, facts, spec, scores, how), start))

        def work(context: JobContext) -> dict:
            begin = time.perf_counter()
            scores, how = queries.compute(state, spec, context)
            context.report(0.99, "selecting what to draw")
            return _timed(queries.answer(state, facts, spec, scores, how), begin)

        job = state.jobs.submit("query", work, f"{spec.criterion} of {spec.target} over {spec.images}",
                                key=f"{spec.key}|{spec.node_rule}|{spec.edge_rule}|{spec.max_edges}")
        return pending(job)

    @router.get("/jobs", summary="running and recent jobs (without results)")
    def jobs() -> list[dict]:
        return [job.to_json(result=False) for job in state.jobs.jobs()]

    @router.get("/jobs/{job_id}", summary="a job's state, progress and (when done) result")
    def job(job_id: str) -> Response:
        return FastJSON(_job(state, job_id).to_json())

    @router.delete("/jobs/{job_id}", summary="cancel a job (a finished one is left as it is)")
    def cancel(job_id: str) -> Response:
        _job(state, job_id)
        return FastJSON(state.jobs.cancel(job_id).to_json(result=False))

    @router.get("/jobs/{job_id}/events", summary="Server-Sent Events: progress..., then done, error or cancelled",
                response_class=StreamingResponse)
    def events(job_id: str, heartbeat: float = Query(15.0, gt=0, le=60)) -> StreamingResponse:
        the_job = _job(state, job_id)
        return StreamingResponse(_stream(the_job, heartbeat), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return router


def _timed(result: dict, start: float) -> dict:
    result["seconds"] = round(time.perf_counter() - start, 4)
    return result


def _job(state: ServerState, job_id: str) -> Job:
    try:
        return state.jobs.get(job_id)
    except KeyError:
        raise NotFound(f"unknown job {job_id!r} (finished jobs are forgotten after a while)") from None


def _event(name: str, data: dict) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n\n"


def _stream(job: Job, heartbeat: float) -> Iterator[bytes]:
    """Events until the job ends; a comment line every `heartbeat` s keeps proxies from closing the stream."""
    version = -1
    while True:
        current = job.wait_change(version, heartbeat)
        if current == version:
            yield b": heartbeat\n\n"
            continue
        version = current
        if job.state in FINAL:
            yield _event(job.state, job.to_json(result=job.state == "done"))
            return
        yield _event("progress", job.to_json(result=False))
