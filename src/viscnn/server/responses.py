"""Responses shared by the routes: fast JSON, and the answer of work that may run as a job."""
from __future__ import annotations

import orjson
from fastapi.responses import Response

from viscnn.server.jobs import Job


class FastJSON(Response):
    """JSON by orjson: numpy arrays go out as they are (a query's 1e5 edges in milliseconds)."""

    media_type = "application/json"

    def render(self, content: object) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


def pending(job: Job) -> FastJSON:
    """The answer for work that runs as a job: 202 while it runs, the result once it is done."""
    return FastJSON({"job": job.id, "state": job.state, "result": job.result if job.state == "done" else None},
                    status_code=200 if job.state == "done" else 202)


def done(result: object) -> FastJSON:
    """The answer for work that needed no job (cached, or quick)."""
    return FastJSON({"job": None, "state": "done", "result": result})
