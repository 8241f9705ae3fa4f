"""Routes: queries (answered at once when cached, else as a job) and the jobs themselves (state, events, cancel)."""
from __future__ import annotations

import time
from typing import Any

import orjson
from fastapi import APIRouter, Query
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from viscnn.scoring.criteria import CRITERIA
from viscnn.server import queries, streams
from viscnn.server.jobs import Job, JobContext
from viscnn.server.prune import KernelFacts
from viscnn.server.responses import FastJSON, answers, one_of, pending
from viscnn.server.state import LRU, NotFound, ServerState


def _share() -> Any:
    return Field(None, ge=0, le=1, allow_inf_nan=False, description="a share in [0, 1]; give at most one of *_fraction and *_cumulative")


class QueryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    images: str = Field(..., description="image-set expression, e.g. 'tiger_cat - overall'", min_length=1, max_length=1000)
    target: str = Field("loss", min_length=1, max_length=500, description="a target of README's Scores table")
    criterion: str = Field("taylor", json_schema_extra=one_of(lambda: CRITERIA))
    node_fraction: float | None = _share()
    node_cumulative: float | None = _share()
    edge_fraction: float | None = _share()
    edge_cumulative: float | None = _share()
    max_edges: int = Field(queries.MAX_EDGES, ge=0, le=10 * queries.MAX_EDGES)
    sample: int | None = Field(None, ge=0, le=queries.MAX_SAMPLE,
                               description=f"score at most this many images of each set (a fixed choice, seed "
                                           f"{queries.SAMPLE_SEED}); 0: every image; default: sets of more than "
                                           f"{queries.DEFAULT_SAMPLE} images are sampled to {queries.DEFAULT_SAMPLE}")
    start: bool = Field(True, description="false: answer only from what is computed already (404 if the query "
                                          "needs scoring), so asking starts no work")


class ReleaseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[str] = Field(..., max_length=500, description="jobs the page no longer wants")
    client: str = Field(..., min_length=1, max_length=64, description="the page's id (its X-Viscnn-Client header)")
    hold: str | None = Field(None, max_length=64, description="the showing of the panel that let go (its X-Viscnn-Hold "
                                                             "header); absent: every panel of the page")


def routes(state: ServerState, facts: KernelFacts) -> APIRouter:
    router = APIRouter(tags=["queries and jobs"])
    hashes = queries.SetHashes()
    samples = queries.Samples()
    drawn = LRU(8)  # what was drawn for a query and thresholds, as JSON bytes: asking again costs nothing

    @router.post("/query", summary="score every node and edge for a target over an image-set expression",
                 responses=answers(404, body="job", write=True))
    def query(request: QueryRequest) -> Response:
        start = time.perf_counter()
        fields = request.model_dump()
        may_start = fields.pop("start")
        spec = queries.check_query(state, hashes, **fields, samples=samples)
        drawn_key = f"{spec.key}|{spec.node_rule}|{spec.edge_rule}|{spec.max_edges}"
        if (encoded := drawn.get(drawn_key)) is not None:
            return _done_bytes(encoded, start)
        scores = state.queries.get(spec.key)
        if scores is not None:
            how = {"cached": list(spec.terms)}
        elif queries.in_store(state, spec):
            scores, how = queries.compute(state, spec)
        if scores is not None:
            encoded = orjson.dumps(queries.answer(state, facts, spec, scores, {**how, "seconds": None}),
                                   option=orjson.OPT_SERIALIZE_NUMPY)
            drawn.put(drawn_key, encoded)
            return _done_bytes(encoded, start)

        if not may_start:
            raise NotFound(f"the query {spec.criterion} of {spec.target} over {spec.images} is not computed yet: "
                           f"POST it with start true (the default) to score it")

        def work(context: JobContext) -> dict:
            begin = time.perf_counter()
            scores, how = queries.compute(state, spec, context)
            context.report(0.99, "selecting what to draw")
            return _timed(queries.answer(state, facts, spec, scores, how), begin)

        job = state.jobs.submit("query", work, f"{spec.criterion} of {spec.target} over {spec.images}", key=drawn_key)
        return pending(job)

    @router.get("/jobs", summary="running and recent jobs (without results)", responses=answers())
    def jobs() -> list[dict]:
        return [job.to_json(result=False) for job in state.jobs.jobs()]

    @router.get("/jobs/{job_id}", summary="a job's state, progress and (when done) result", responses=answers(404),
                operation_id="get_job")
    def job(job_id: str) -> Response:
        return FastJSON(_job(state, job_id).to_json())

    @router.delete("/jobs/{job_id}", summary="cancel a job (a finished one is left as it is)", responses=answers(403, 404),
                   operation_id="cancel_job")
    def cancel(job_id: str) -> Response:
        _job(state, job_id)
        return FastJSON(state.jobs.cancel(job_id).to_json(result=False))

    @router.post("/release", summary="let go of jobs a page no longer shows: those nobody else holds are cancelled",
                 responses=answers(write=True), operation_id="release_jobs")
    def release(request: ReleaseRequest) -> list[dict]:
        return [job.to_json(result=False) for job in state.jobs.release(request.ids, request.client, request.hold)]

    @router.get("/jobs/{job_id}/events", summary="Server-Sent Events: progress..., then done, error or cancelled",
                response_class=StreamingResponse, responses=answers(404, body="events"))
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
        raise NotFound(f"unknown job {job_id[:100]!r} (finished jobs are forgotten after a while)") from None
