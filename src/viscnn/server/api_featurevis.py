"""Routes: feature visualizations of nodes and edges, and dataset examples: from the store, else as jobs.

A render is queued by a POST (`.../render`: 200 when stored, else 202 and a job) and read by a GET
(`.../render.png`: the PNG, or 404 until it is rendered), so no `<img>` anywhere can make the server work.
An example set that is not stored yet is answered with 202 and a job (JSON, not a PNG); the page follows
the job and asks again. Render cache keys are those of `viscnn visualize`, so renders made on the command
line are served as they are.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, Response

from viscnn.errors import ViscnnError
from viscnn.scoring.targets import Target
from viscnn.server.jobs import JobContext
from viscnn.server.responses import FastJSON, Index, answers, done, pending
from viscnn.server.state import LRU, NotFound, ServerState, Unavailable
from viscnn.store import Store

if TYPE_CHECKING:
    from viscnn.circuits import Circuit
    from viscnn.inspection.examples import LayerExamples

EXAMPLES_K = 9  # what `viscnn prepare` computes, so its results are served as they are
NO_STORE = "this server runs without a store (--no-cache): renders and dataset examples need one"
CIRCUIT_KIND = "circuit"  # the store's kind of the circuits the server extracted (api_circuits, api_subfeatures)
_KEY = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Through:
    """A stored circuit that renders run through: its store key, the circuit, and the digest of its stored JSON
    (which names it in render cache keys, as `viscnn visualize --circuit FILE` names a file by its bytes)."""

    key: str
    circuit: Circuit
    digest: str

    @property
    def name(self) -> str:
        return f"the {self.circuit.method} circuit of {self.circuit.target} ({self.circuit.num_edges:,} kernels)"

    def describe(self) -> dict:
        return {"circuit": self.key, "method": self.circuit.method, "circuit_edges": self.circuit.num_edges,
                "kept_fraction": round(self.circuit.kept_fraction, 6)}


def stored_circuit(state: ServerState, store: Store, key: str, cache: LRU) -> Through:
    """The circuit stored under `key` (from /api/circuit or /api/subfeatures), parsed once; unknown: 404."""
    found = cache.get(key)
    if found is not None:
        return found
    from viscnn.circuits import Circuit

    data = store.get_bytes(CIRCUIT_KIND, key) if _KEY.fullmatch(key) else None
    if data is None:
        raise NotFound(f"unknown circuit {key[:70]!r}: use a key from /api/circuits (or a circuit's answer)")
    meta = store.meta(CIRCUIT_KIND, key) or {}
    if meta.get("fingerprint") not in (None, state.fingerprint):
        raise NotFound(f"circuit {key[:16]}... belongs to another model ({meta.get('model')})")
    import hashlib

    circuit = Circuit.from_json(json.loads(data), state.graph, state.fingerprint, class_names=state.class_names)
    through = Through(key, circuit, hashlib.sha256(data).hexdigest()[:16])
    cache.put(key, through)
    return through


def circuit_entries(state: ServerState, store: Store) -> list:
    """The store's entries of the circuits extracted on this server's model, newest first."""
    entries = [e for e in store.entries(CIRCUIT_KIND) if e.meta.get("fingerprint") == state.fingerprint]
    return sorted(entries, key=lambda e: e.created, reverse=True)


def model_circuits(state: ServerState) -> list[Through]:
    """Every circuit extracted on this server's model (by the page or the API), newest first, parsed."""
    if state.store is None:
        return []
    cache = LRU(1)
    return [stored_circuit(state, state.store, entry.key, cache) for entry in circuit_entries(state, state.store)]


def circuit_objective(state: ServerState, circuit: Circuit, text: str | None) -> Target:
    """What to render through `circuit`: `text` (a node, neuron, edge or class logit), by default the circuit's own
    target; refused when the circuit does not hold it (its map there would be the bias alone, or the whole model)."""
    from viscnn.featurevis.objectives import check_objective
    from viscnn.scoring.targets import parse_target

    target = circuit.target
    if text is None:
        if target.kind == "loss":
            raise ViscnnError("a loss circuit has no one objective to render: give objective=logit:K (or class:NAME) "
                              "or a node of the circuit (LAYER:C)")
        objective = target
    else:
        objective = check_objective(parse_target(text, state.graph, state.class_names))
    if objective.layer is None:
        if target.inside:
            raise ViscnnError(f"objective {objective} is the model's output, but the circuit ends at {target}: "
                              f"render a node of the circuit instead")
        return objective
    kept = circuit.masks.get(objective.layer)
    if kept is None:
        raise ViscnnError(f"objective {objective}: layer {objective.layer} is not upstream of the circuit's target "
                          f"{target}")
    if objective.is_edge:
        row, local = state.graph.kernel_index(objective.edge)
        if not bool(kept[row, local]):
            raise ViscnnError(f"edge {objective} is not in the circuit: its kernel is zeroed there")
    elif objective.kind in ("node", "neuron") and not bool(kept[objective.channel].any()):
        raise ViscnnError(f"node {objective.layer}:{objective.channel} is not in the circuit: none of its kernels is "
                          f"kept, so its map there is its bias alone")
    return objective


def routes(state: ServerState, render_steps: int = 256) -> APIRouter:
    router = APIRouter(tags=["feature visualization"])

    def store() -> Store:
        if state.store is None:
            raise Unavailable(NO_STORE)
        return state.store

    # --- renders ---------------------------------------------------------------------------------------
    def render_answer(objective: Target, png: str, *, queue: bool, through: Through | None = None) -> Response:
        """The stored render's PNG (`queue` False: 404 if there is none), or (`queue`) its job answer.
        `through`: render on the circuit's model (only its kernels), cached apart from the whole model's."""
        from viscnn.featurevis.keys import KIND, render_key, render_meta, render_parts, render_setup
        from viscnn.featurevis.render import RenderSettings, render
        from viscnn.store.cache import cached_image

        the_store = store()
        settings = RenderSettings(steps=render_steps)
        setup = render_setup(state.loaded, settings, fingerprint=state.fingerprint,
                             circuit=through.digest if through is not None else None)
        parts = render_parts(setup, objective)
        path = the_store.get_path(KIND, render_key(parts))
        if not queue:
            if path is None:
                raise NotFound(f"{objective} is not rendered yet{' through that circuit' if through else ''}: "
                               f"POST {png.rsplit('.png', 1)[0]} queues its render")
            return _png_file(path)
        answer = {"objective": str(objective), "png": png, **(through.describe() if through else {})}
        if path is not None:
            return done(answer)
        module = through.circuit.module(state.loaded.module, state.graph) if through else state.loaded.module
        where = f" through {through.name}" if through else ""

        def work(context: JobContext) -> dict:
            message = f"rendering {objective}{where}"
            context.steps(0, settings.steps, "steps", message)

            def step(done: int, total: int) -> None:  # image-steps (copies of the image) -> optimisation steps
                context.steps(done * settings.steps // max(total, 1), settings.steps, "steps", message)

            result = render(module, state.graph, state.loaded.preprocess, [objective], settings, progress=step)
            image = result.images[0].permute(1, 2, 0).numpy()
            meta = render_meta(objective, [float(result.values[0])], float(result.initial_values[0]), settings)
            cached_image(the_store, KIND, parts, lambda: (image, meta))
            return {**answer, "value": float(result.values[0]), "seconds": round(result.seconds, 3)}

        key = f"render|{objective}|{through.key if through else ''}"
        return pending(state.jobs.submit("render", work, f"render {objective}{where}", key=key))

    circuits_cache = LRU(8)

    def through(key: str) -> Through:
        return stored_circuit(state, store(), key, circuits_cache)

    @router.get("/circuits", summary="the circuits extracted on this server's model, newest first",
                responses=answers(503))
    def circuits() -> list[dict]:
        return [{"key": e.key, "created": e.created, **{k: v for k, v in e.meta.items() if k != "fingerprint"}}
                for e in circuit_entries(state, store())]

    @router.get("/circuits/{key}", summary="a stored circuit, as its file (docs/circuit-format.md)",
                response_class=Response, responses=answers(404, 503))
    def circuit_file(key: str) -> Response:
        through(key)  # a known circuit of this model
        data = store().get_bytes(CIRCUIT_KIND, key)
        if data is None:
            raise NotFound(f"circuit {key[:16]}... is no longer stored")
        return Response(data, media_type="application/json",
                        headers={"Content-Disposition": f'attachment; filename="circuit-{key[:12]}.json"'})

    def circuit_png(key: str, objective: Target) -> str:
        return f"/api/circuits/{key}/render.png?{urlencode({'objective': str(objective)})}"

    @router.post("/circuits/{key}/render", summary="render an objective (default: the circuit's target) through a "
                 "stored circuit: only its kernels (a job unless stored)", responses=answers(404, 503, job=True))
    def circuit_render_job(key: str, objective: str | None = Query(None, min_length=1, max_length=500)) -> Response:
        found = through(key)
        target = circuit_objective(state, found.circuit, objective)
        return render_answer(target, circuit_png(key, target), queue=True, through=found)

    @router.get("/circuits/{key}/render.png", summary="an objective rendered through a stored circuit (404 until "
                "rendered)", response_class=Response, responses=answers(404, 503, body="png"))
    def circuit_render(key: str, objective: str | None = Query(None, min_length=1, max_length=500)) -> Response:
        found = through(key)
        target = circuit_objective(state, found.circuit, objective)
        return render_answer(target, circuit_png(key, target), queue=False, through=found)

    @router.get("/layers/{layer}/renders", summary="which nodes of a layer have a stored feature visualization",
                responses=answers(404, 503))
    def layer_renders(layer: str, mode: Literal["channel", "neuron"] = "channel") -> Response:
        from viscnn.featurevis.keys import KIND, render_key, render_parts, render_setup
        from viscnn.featurevis.render import RenderSettings

        spec = state.conv_layer(layer)
        setup = render_setup(state.loaded, RenderSettings(steps=render_steps), fingerprint=state.fingerprint)
        stored = {entry.key for entry in store().entries(KIND)}
        kind = "neuron" if mode == "neuron" else "node"
        rendered = [c for c in range(spec.out_channels)
                    if render_key(render_parts(setup, Target(kind, layer, c))) in stored]
        return FastJSON({"layer": layer, "mode": mode, "channels": spec.out_channels, "rendered": rendered})

    def node_objective(layer: str, channel: int, mode: str) -> tuple[Target, str]:
        state.check_channel(layer, channel)
        png = f"/api/nodes/{quote(layer)}/{channel}/render.png" + ("?mode=neuron" if mode == "neuron" else "")
        return Target("neuron" if mode == "neuron" else "node", layer, channel), png

    def edge_objective(layer: str, out: int, inp: int) -> tuple[Target, str]:
        state.check_edge(layer, out, inp)
        return Target("edge", layer, out, inp=inp), f"/api/edges/{quote(layer)}/{out}/{inp}/render.png"

    @router.get("/nodes/{layer}/{channel}/render.png", summary="a node's feature visualization (404 until rendered)",
                response_class=Response, responses=answers(404, 503, body="png"))
    def node_render(layer: str, channel: Index, mode: Literal["channel", "neuron"] = "channel") -> Response:
        return render_answer(*node_objective(layer, channel, mode), queue=False)

    @router.post("/nodes/{layer}/{channel}/render", summary="render a node's feature visualization (a job unless stored)",
                 responses=answers(404, 503, job=True))
    def node_render_job(layer: str, channel: Index, mode: Literal["channel", "neuron"] = "channel") -> Response:
        return render_answer(*node_objective(layer, channel, mode), queue=True)

    @router.get("/edges/{layer}/{out}/{inp}/render.png", summary="an edge's visualization (404 until rendered)",
                response_class=Response, responses=answers(404, 503, body="png"))
    def edge_render(layer: str, out: Index, inp: Index) -> Response:
        return render_answer(*edge_objective(layer, out, inp), queue=False)

    @router.post("/edges/{layer}/{out}/{inp}/render", summary="render an edge's visualization (a job unless stored)",
                 responses=answers(404, 503, job=True))
    def edge_render_job(layer: str, out: Index, inp: Index) -> Response:
        return render_answer(*edge_objective(layer, out, inp), queue=True)

    # --- dataset examples ----------------------------------------------------------------------------
    def layer_examples(layer: str) -> LayerExamples | None:  # None: a job must compute them
        from viscnn.inspection.examples import KIND, dataset_examples, examples_key

        overall = state.image_sets["overall"]
        if store().get_path(KIND, examples_key(state.loaded, overall, layer, min(EXAMPLES_K, len(overall)))) is None:
            return None
        return dataset_examples(store(), state.loaded, state.graph, overall, [layer], k=min(EXAMPLES_K, len(overall)),
                                batch_size=state.batch_size)[layer]

    def examples_job(layer: str) -> Response:
        from viscnn.inspection.examples import dataset_examples

        overall = state.image_sets["overall"]
        k = min(EXAMPLES_K, len(overall))

        def work(context: JobContext) -> dict:
            message = f"finding the top {k} images of every node over {len(overall):,} images"
            context.steps(0, len(overall), "images", message)

            def counted(batches: Iterable) -> Iterator:
                done = 0
                for batch in batches:
                    yield batch
                    done += next(len(part) for part in batch if hasattr(part, "shape"))  # its images tensor
                    context.steps(done, len(overall), "images", message)

            # every layer in one pass: the next node clicked is then ready too
            dataset_examples(store(), state.loaded, state.graph, overall, None, k=k, batch_size=state.batch_size,
                             progress=counted)
            return {"layers": len(state.graph.conv_layers), "k": k}

        return pending(state.jobs.submit("examples", work, "dataset examples of every node", key="examples"))

    @router.get("/nodes/{layer}/{channel}/examples", summary="the images that excite and inhibit a node most (202 + job if not computed)",
                responses=answers(404, 503, body="job"))
    def node_examples(layer: str, channel: Index) -> Response:
        spec = state.check_channel(layer, channel)
        examples = layer_examples(layer)
        if examples is None:
            return examples_job(layer)
        node = examples.node(channel, spec.receptive_field)
        for side in ("excite", "inhibit"):
            for entry in node[side]:
                entry["image_id"] = f"i{entry['image']}"
        node["png"] = f"/api/nodes/{layer}/{channel}/examples.png"
        return done(node)

    @router.get("/nodes/{layer}/{channel}/examples.png", summary="a node's example patches as one picture",
                response_class=Response, responses=answers(404, 503, job=True, body="png"))
    def node_examples_png(layer: str, channel: Index) -> Response:
        from viscnn.inspection.examples import examples_png

        state.check_channel(layer, channel)
        examples = layer_examples(layer)
        if examples is None:
            return examples_job(layer)
        path, _ = examples_png(store(), state.loaded, state.graph, state.image_sets["overall"], examples, channel)
        return _png_file(path)

    return router


def _png_file(path: Path) -> FileResponse:
    return FileResponse(path, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})
