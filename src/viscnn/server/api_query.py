"""Routes: queries (answered at once when cached, else as a job) and the jobs themselves (state, events, cancel)."""
from __future__ import annotations

import time

import orjson
from fastapi import APIRouter, Query
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field

from viscnn.server import queries, streams
from viscnn.server.jobs import Job, JobContext
from viscnn.server.prune import KernelFacts
from viscnn.server.responses import FastJSON, pending
from viscnn.server.state import LRU, NotFound, ServerState


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
    answers = LRU(8)  # what was drawn for a query and thresholds, as JSON bytes: asking again costs nothing

    @router.post("/query", summary="score every node and edge for a target over an image-set expression")
    def query(request: QueryRequest) -> Response:
        start = time.perf_counter()
        spec = queries.check_query(state, hashes, **request.model_dump())
        drawn_key = f"{spec.key}|{spec.node_rule}|{spec.edge_rule}|{spec.max_edges}"
        if (encoded := answers.get(drawn_key)) is not None:
            return _done_bytes(encoded, start)
        scores = state.queries.get(spec.key)
        if scores is not None:
            how = {"cached": list(spec.terms)}
        elif queries.in_store(state, spec):
            scores, how = queries.compute(state, spec)
        if scores is not None:
            encoded = orjson.dumps(queries.answer(state, facts, spec, scores, {**how, "seconds": None}),
                                   option=orjson.OPT_SERIALIZE_NUMPY)
            answers.put(drawn_key, encoded)
            return _done_bytes(encoded, start)

        def work(context: JobContext) -> dict:
            begin = time.perf_counter()
            scores, how = queries.compute(state, spec, context)
            context.report(0.99, "selecting what to draw")
            return _timed(queries.answer(state, facts, spec, scores, how), begin)

        job = state.jobs.submit("query", work, f"{spec.criterion} of {spec.target} over {spec.images}", key=drawn_key)
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
    async def events(job_id: str, heartbeat: float = Query(15.0, gt=0, le=60)) -> StreamingResponse:
        return streams.job_stream(state.jobs, _job(state, job_id), heartbeat)

    return router


def _done_bytes(encoded: bytes, start: float) -> Response:
    """A stored answer (its "seconds" null) with this request's time filled in, without decoding it."""
    seconds = orjson.dumps(round(time.perf_counter() - start, 4))
    body = b'{"job":null,"state":"done","result":' + encoded.replace(b'"seconds":null', b'"seconds":' + seconds, 1) + b"}"
    return Response(body, media_type="application/json")


def _timed(result: dict, start: float) -> dict:
    result["seconds"] = round(time.perf_counter() - start, 4)
    return result


def _job(state: ServerState, job_id: str) -> Job:
    try:
        return state.jobs.get(job_id)
    except KeyError:
        raise NotFound(f"unknown job {job_id!r} (finished jobs are forgotten after a while)") from None
