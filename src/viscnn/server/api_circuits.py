"""Routes: circuit extraction and faithfulness evaluation, as jobs with stored results."""
from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterable
from typing import Annotated, Any

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from viscnn.errors import ViscnnError
from viscnn.scoring.expression import Expression, parse_expression
from viscnn.scoring.targets import Target
from viscnn.server.jobs import JobContext
from viscnn.server.queries import SetHashes
from viscnn.server.responses import answers, done, one_of, pending
from viscnn.server.state import ServerState
from viscnn.store import Store

MAX_IMAGES = 2000  # a circuit's or an evaluation's images are held in memory at once
MAX_SEED = 2**32 - 1  # every generator takes it (torch's stops at 2**64 - 1: "Overflow" beyond)


def _methods() -> list[str]:
    from viscnn.circuits import all_methods

    return sorted(all_methods())


def _rules() -> tuple[str, ...]:
    from viscnn.circuits.build import RULES

    return RULES


def _seed() -> Any:
    return Field(0, ge=0, le=MAX_SEED, description="seeds the methods that draw random numbers")


class CircuitRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    images: str = Field("overall", min_length=1, max_length=1000,
                        description="a set, or a sum of sets (their images together)")
    target: str = Field(..., min_length=1, max_length=500, description="a target of README's Scores table")
    method: str = Field("actgrad", json_schema_extra=one_of(_methods))
    keep: float = Field(0.05, gt=0, le=1, allow_inf_nan=False, description="the kept fraction of the target's upstream kernels")
    rule: str = Field("top", json_schema_extra=one_of(_rules))
    seed: int = _seed()


class FaithfulnessRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    images: str = Field("overall", min_length=1, max_length=1000)
    held_out: str | None = Field(None, min_length=1, max_length=1000,
                                 description="default: the second half of `images`")
    target: str = Field(..., min_length=1, max_length=500)
    methods: list[str] = Field(default_factory=lambda: ["actgrad", "magnitude", "random"], min_length=1, max_length=20,
                               json_schema_extra={"uniqueItems": True})
    fractions: list[Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)]] = Field(default_factory=lambda: [0.01, 0.05, 0.2], min_length=1,
                                                                  max_length=20, description="kept fractions")
    seed: int = _seed()


def routes(state: ServerState) -> APIRouter:
    router = APIRouter(tags=["circuits"])
    hashes = SetHashes()

    def parse(expression: str) -> Expression:
        return parse_expression(expression, list(state.image_sets))

    def items(parsed: Expression) -> list[tuple]:  # (ImageSet, item index) of every image the expression adds
        expression = parsed.text
        negative = [name for name, c in parsed.terms.items() if c <= 0]
        if negative:
            raise ViscnnError(f"circuits take images, not contrasts: {', '.join(negative)} has a negative coefficient "
                              f"in {expression!r}; write a set or a sum of sets")
        chosen = [(state.image_sets[name], k) for name in parsed.terms for k in range(len(state.image_sets[name]))]
        if len(chosen) > MAX_IMAGES:
            raise ViscnnError(f"{expression!r} holds {len(chosen)} images; use at most {MAX_IMAGES}")
        if not chosen:
            raise ViscnnError(f"{expression!r} holds no images")
        return chosen

    def batches(chosen: list[tuple], context: JobContext | None, start: float, stop: float) -> list:
        import torch

        size = state.batch_size
        result = []
        starts = range(0, len(chosen), size)
        steps: Iterable[int] = starts
        if context is not None:
            steps = context.track(starts, len(starts), start=start, stop=stop, message="reading images", unit="batches")
        for k in steps:
            part = chosen[k:k + size]
            x = torch.stack([s._model_input(s.items[i], state.loaded.preprocess) for s, i in part])
            result.append((x.to(state.device), torch.tensor([s.items[i].label for s, i in part], dtype=torch.long)))
        return result

    def cached_or_job(kind: str, key: str, description: str, work: Callable[[JobContext], dict],
                      meta: Callable[[dict], dict] | None = None) -> Response:
        if state.store is not None and (data := state.store.get_bytes(kind, key)) is not None:
            return done(json.loads(data))

        def run(context: JobContext) -> dict:
            result = work(context)
            if state.store is not None:
                state.store.put_bytes(kind, key, json.dumps(result).encode(), suffix=".json",
                                      meta=meta(result) if meta else None)
            return result

        return pending(state.jobs.submit(kind, run, description, key=f"{kind}|{key}"))

    def set_hashes(parsed: Expression) -> list[str]:
        return [hashes(state.image_sets[name]) for name in parsed.terms]

    def check_methods(methods: list[str], target: Target) -> None:
        check_circuit_methods(state, methods, target)

    def method_scores(method: str, data: list, target: Target, keep: float, seed: int,
                      progress: Callable[..., None]) -> Any:
        """The method's scores computed here with a `progress` callable, when its function takes one (the
        `learned` method: its steps); else None (extract_circuit then calls the method as usual)."""
        from viscnn.circuits import get_method

        function = get_method(method).function
        if "progress" not in inspect.signature(function).parameters:
            return None
        return function(state.loaded.module, state.graph, data, target, keep, seed=seed, device=state.device,
                        progress=progress)

    @router.post("/circuit", summary="extract the circuit a target cannot do without (a job; docs/circuit-format.md)",
                 responses=answers(body="job", write=True))
    def circuit(request: CircuitRequest) -> Response:
        from viscnn.circuits import extract_circuit
        from viscnn.circuits.build import RULES
        from viscnn.circuits.select import check_fraction

        target = state.target(request.target)
        check_methods([request.method], target)
        if request.rule not in RULES:
            raise ViscnnError(f"unknown selection rule {request.rule!r}: choose from {', '.join(RULES)}")
        check_fraction(request.keep, "keep fraction")
        images = parse(request.images)
        chosen = items(images)
        key = Store.key("server-circuit-signed", model=state.fingerprint, sets=set_hashes(images), target=str(target),
                        method=request.method, keep=request.keep, rule=request.rule, seed=request.seed)

        def work(context: JobContext) -> dict:
            data = batches(chosen, context, 0.0, 0.2)
            message = f"extracting the {request.method} circuit of {target}"
            context.report(0.25, message)
            scores = method_scores(request.method, data, target, request.keep, request.seed,
                                   context.stage("steps", message, start=0.25, stop=0.95))
            found = extract_circuit(state.loaded.module, state.graph, data, target, request.keep, request.method,
                                    rule=request.rule, seed=request.seed, device=state.device,
                                    model_name=state.loaded.name, fingerprint=state.fingerprint, scores=scores)
            return {**found.to_json(state.graph, state.loaded.module), "key": key, "seconds": round(context.job.seconds, 3)}

        return cached_or_job("circuit", key, f"{request.method} circuit of {target} over {request.images}", work,
                             lambda result: circuit_meta(state, result, images=request.images))

    @router.post("/faithfulness", summary="how well circuits of each method and size reproduce the target (a job)",
                 responses=answers(body="job", write=True))
    def faithfulness(request: FaithfulnessRequest) -> Response:
        from viscnn.circuits.evaluate import check_fractions, evaluate

        target = state.target(request.target)
        check_methods(request.methods, target)
        fractions = check_fractions(request.fractions)
        images = parse(request.images)
        held_out = parse(request.held_out) if request.held_out is not None else None
        train = items(images)
        if held_out is not None:
            held = items(held_out)
        else:
            if len(train) < 2:
                raise ViscnnError(f"{request.images!r} holds {len(train)} image: need two to split into training and held-out halves")
            train, held = train[0::2], train[1::2]
        key = Store.key("server-faithfulness", model=state.fingerprint, sets=set_hashes(images),
                        held_out=set_hashes(held_out) if held_out is not None else None, target=str(target),
                        methods=request.methods, fractions=fractions, seed=request.seed)
        def work(context: JobContext) -> dict:
            train_batches = batches(train, context, 0.0, 0.05)
            held_batches = batches(held, context, 0.05, 0.1)

            def count(done: int, total: int, next_one: str) -> None:
                context.steps(done, total, "circuits", f"extracting {next_one}" if next_one else None, start=0.1, stop=1.0)

            evaluation = evaluate(state.loaded.module, state.graph, train_batches, held_batches, [target],
                                  request.methods, fractions, seed=request.seed, device=state.device,
                                  model_name=state.loaded.name, counted=count)
            return {**evaluation.to_json(), "key": key}

        return cached_or_job("faithfulness", key, f"faithfulness of circuits for {target}", work)

    from viscnn.server import api_subfeatures  # it uses this module's helpers

    router.include_router(api_subfeatures.routes(state))  # sub-feature circuits: a job of the same kind of work
    return router


def check_circuit_methods(state: ServerState, methods: list[str], target: Target) -> None:
    """Each method known, none twice, and ablation only where it reruns the model a bearable number of times."""
    from viscnn.circuits import get_method, upstream_layers
    from viscnn.circuits.methods.ablation import MAX_EDGES

    for k, method in enumerate(methods):
        get_method(method)
        if method in methods[:k]:
            raise ViscnnError(f"methods: {method!r} is given twice")
        kernels = sum(state.graph[n].num_edges for n in upstream_layers(state.graph, target)) if method == "ablation" else 0
        if kernels > MAX_EDGES:
            raise ViscnnError(f"method ablation reruns the model once per kernel: {kernels:,} kernels upstream of "
                              f"target {target} is more than {MAX_EDGES:,}; choose a target in an early layer")


def circuit_meta(state: ServerState, circuit: dict, **extra: object) -> dict:
    """What /api/circuits lists of a stored circuit (and how it knows the model's own)."""
    return {"fingerprint": state.fingerprint, "model": state.loaded.name, "target": circuit["target"]["text"],
            "method": circuit["method"], "keep": circuit["keep"], "edges": len(circuit["edges"]),
            "kept_fraction": circuit["kept_fraction"], **extra}
