"""Routes: feature visualizations of nodes and edges, and dataset examples: from the store, else as jobs.

A render is queued by a POST (`.../render`: 200 when stored, else 202 and a job) and read by a GET
(`.../render.png`: the PNG, or 404 until it is rendered), so no `<img>` anywhere can make the server work.
An example set that is not stored yet is answered with 202 and a job (JSON, not a PNG); the page follows
the job and asks again. Render cache keys are those of `viscnn visualize`, so renders made on the command
line are served as they are.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import quote

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response

from viscnn.scoring.targets import Target
from viscnn.server.jobs import JobContext
from viscnn.server.responses import Index, answers, done, pending
from viscnn.server.state import NotFound, ServerState, Unavailable
from viscnn.store import Store

if TYPE_CHECKING:
    from viscnn.inspection.examples import LayerExamples

EXAMPLES_K = 9  # what `viscnn prepare` computes, so its results are served as they are
NO_STORE = "this server runs without a store (--no-cache): renders and dataset examples need one"


def routes(state: ServerState, render_steps: int = 256) -> APIRouter:
    router = APIRouter(tags=["feature visualization"])

    def store() -> Store:
        if state.store is None:
            raise Unavailable(NO_STORE)
        return state.store

    # --- renders -------------------------------------------------------------------------------------
    def render_answer(objective: Target, png: str, *, queue: bool) -> Response:
        """The stored render's PNG (`queue` False: 404 if there is none), or (`queue`) its job answer."""
        from viscnn.featurevis.keys import KIND, render_key, render_meta, render_parts, render_setup
        from viscnn.featurevis.render import RenderSettings, render
        from viscnn.store.cache import cached_image

        the_store = store()
        settings = RenderSettings(steps=render_steps)
        parts = render_parts(render_setup(state.loaded, settings, fingerprint=state.fingerprint), objective)
        path = the_store.get_path(KIND, render_key(parts))
        if not queue:
            if path is None:
                raise NotFound(f"{objective} is not rendered yet: POST {png.rsplit('.png', 1)[0]} queues its render")
            return _png_file(path)
        if path is not None:
            return done({"objective": str(objective), "png": png})

        def work(context: JobContext) -> dict:
            message = f"rendering {objective}"
            context.steps(0, settings.steps, "steps", message)

            def step(done: int, total: int) -> None:  # image-steps (copies of the image) -> optimisation steps
                context.steps(done * settings.steps // max(total, 1), settings.steps, "steps", message)

            result = render(state.loaded.module, state.graph, state.loaded.preprocess, [objective], settings,
                            progress=step)
            image = result.images[0].permute(1, 2, 0).numpy()
            meta = render_meta(objective, [float(result.values[0])], float(result.initial_values[0]), settings)
            cached_image(the_store, KIND, parts, lambda: (image, meta))
            return {"objective": str(objective), "value": float(result.values[0]), "seconds": round(result.seconds, 3),
                    "png": png}

        return pending(state.jobs.submit("render", work, f"render {objective}", key=f"render|{objective}"))

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
