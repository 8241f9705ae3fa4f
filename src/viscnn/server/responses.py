"""Responses shared by the routes: fast JSON, the answer of work that may run as a job, and the one table of
the statuses the API gives, from which every route declares its responses (so /api/openapi.json lists
what the server really answers, and nothing it never does, such as FastAPI's default 422)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

import orjson
from fastapi import FastAPI, Path, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.routing import Match, Mount

from viscnn.server.jobs import STATES, Job


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


# --- the schema's side: what each status means, and which routes give it ----------------------------------
class Problem(BaseModel):
    """Every error the API gives: one message naming the fault (the field, id or value at fault)."""

    detail: str = Field(..., description="one line naming the fault")


class JobAnswer(BaseModel):
    """Work that may run as a job: `job` null and `state` done with the result (200) when it was ready,
    else the job's id and state (202): follow it with /api/jobs/{id} or its event stream."""

    job: str | None = Field(..., description="the job's id, or null when the answer needed no job")
    state: Literal[STATES] = Field(..., description="the job's state")  # type: ignore[valid-type]
    result: Any = Field(None, description="the result once done, else null")


ERRORS: dict[int, str] = {
    400: "bad input: a parameter or field the server cannot use (the message names it), or a request addressed "
         "to a host name that is not this machine's (servers without a token)",
    401: "the server's token is missing or wrong (servers started with --token)",
    403: "a request from another site (its Origin or Referer is not this server's): it may not write or queue work",
    404: "an unknown id: image, set, layer, channel, kernel, unit, job, query or stored result",
    413: "the request body (or the uploaded file) is larger than the server's limit",
    415: "the upload is not an image this server can read",
    429: "the job queue is full: try again once some jobs have finished",
    503: "this server cannot do it (e.g. renders and dataset examples when it runs without a store)",
}
# where a 202's job id leads (operation ids of the job routes in api_query.py)
JOB_LINKS = {name: {"operationId": name, "parameters": {"job_id": "$response.body#/job"}}
             for name in ("get_job", "cancel_job")}
EVERY_ROUTE = (400, 413)  # the host-name check and request validation answer on every route; so does the body limit
QUEUES = (403, 429)  # what work that may be queued can meet besides its own faults
WRITES = (403, 413)  # a request with a body, which writes or queues something
PNG = {"image/png": {"schema": {"type": "string", "format": "binary"}}}
EVENTS = {"text/event-stream": {"schema": {"type": "string"}}}
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
Body = Literal["json", "job", "png", "events"]
Index = Annotated[int, Path(ge=0, description="an index: a channel, kernel input or unit position (too large: 404)")]


def answers(*errors: int, body: Body = "json", job: bool = False, write: bool = False) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route, from `ERRORS`: its 200 (`body`: its own JSON, the job answer `JobAnswer`, a
    PNG or an event stream); with `job` (implied by body "job") 202 and the job answer, and 403/429 (work that
    may be queued); with `write` 403/413 (a body that writes); and the error statuses `errors` (400 is on every
    route), each with the JSON error shape `Problem`."""
    job = job or body == "job"
    codes = set(EVERY_ROUTE) | set(errors) | (set(QUEUES) if job else set()) | (set(WRITES) if write else set())
    unknown = codes - set(ERRORS)
    if unknown:
        raise ValueError(f"no entry in ERRORS for status {sorted(unknown)}")
    table: dict[int | str, dict[str, Any]] = {code: {"description": ERRORS[code], "model": Problem} for code in sorted(codes)}
    if body == "png":
        table[200] = {"description": "the picture", "content": PNG}
    elif body == "events":
        table[200] = {"description": "Server-Sent Events", "content": EVENTS}
    elif body == "job":
        table[200] = {"description": "done: the result (it needed no job, or its job had finished)", "model": JobAnswer}
    if job:
        table[202] = {"description": "queued or running: the answer names the job to follow", "model": JobAnswer,
                      "links": JOB_LINKS}
    return table


def one_of(values: Callable[[], Any]) -> Callable[[dict[str, Any]], None]:
    """`json_schema_extra` for a string field whose choices are known only at run time (`values()`, asked when
    the schema is built): the schema lists them; the route's own check says what is wrong with another."""
    def extra(schema: dict[str, Any]) -> None:
        schema["enum"] = list(values())

    return extra


def install_openapi(app: FastAPI, *, token: bool) -> None:
    """Make `app.openapi()` the schema of what the server answers: FastAPI's 422 (never given: validation
    errors are 400 here) and its schemas removed, the app-wide 400 (and 401 with a token) on every route."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                responses.pop("422", None)
                for code in EVERY_ROUTE + ((401,) if token else ()):
                    responses.setdefault(str(code), {"description": ERRORS[code], **error})
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        components.setdefault("Problem", Problem.model_json_schema())
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def allowed_methods(request: Request) -> list[str]:
    """The methods some route of the app takes at this request's path (for a 405's `Allow`); the page's
    static files (a Mount, which takes every path) do not count."""
    routes = [route for route in request.app.router.routes if not isinstance(route, Mount)]
    return [method for method in METHODS
            if any(route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes)]


def http_error(request: Request, exc: HTTPException) -> JSONResponse:
    """Starlette's and FastAPI's own errors (unknown path, wrong method) in the API's error shape; a 405 names
    the methods the path takes in `Allow`."""
    path = request.url.path
    api = path == "/api" or path.startswith("/api/")
    if exc.status_code in (404, 405):
        # a GET to a POST-only API path falls through to the page's files, whose 404 is really a 405
        allowed = allowed_methods(request) if api or exc.status_code == 405 else []
        if exc.status_code == 405 and not allowed and not api:
            allowed = ["GET", "HEAD"]  # the page's files: only read
        if allowed and request.method not in allowed:
            allow = ", ".join(allowed)
            return JSONResponse({"detail": f"{request.method} is not allowed here: use {allow}"}, status_code=405,
                                headers={"Allow": allow})
        if api:  # no route has this path (the page's files may have said 405)
            return JSONResponse({"detail": f"no such endpoint: {request.method} {path[:200]} (see /api/docs)"},
                                status_code=404)
    detail = "no such page" if exc.status_code == 404 else exc.detail
    return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)
