"""The precompute the browser needs, as resumable steps: each step's result goes to the store atomically.

Steps: overall scores (loss, |Taylor|, nodes and edges), class-wise scores, one projection per layer,
the layout (smoothed, rotated, with its quality figures), dataset examples, node renders of the top
nodes (when the feature-visualisation modules are installed), and a manifest naming every result.
Before running a step, its result is looked up in the store; a rerun after a kill therefore redoes at
most the step that was running (the store never serves a half-written file).

Under torchrun every process runs the same steps in the same order (call `run` in each): rank 0 alone
reads the store and tells the others what it found, each step splits its work (images for the scores,
class-wise scores and examples; layers for the projections; nodes for the renders), and rank 0 alone
writes. The others may be given no store at all (docs/scaling.md).
"""
from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from viscnn import distributed
from viscnn.data import ImageSet
from viscnn.errors import ViscnnError
from viscnn.graph import Graph
from viscnn.layout import quality
from viscnn.layout.build import assemble, grid_projections
from viscnn.layout.classwise import ClassScores, choose_mode, classwise_scores
from viscnn.layout.placement import Layout
from viscnn.layout.projection import project
from viscnn.layout.vectors import featurevis_vectors, weight_vectors
from viscnn.models import LoadedModel
from viscnn.store import Store

if TYPE_CHECKING:
    from viscnn.scoring.query import QueryResult
    from viscnn.scoring.scores import Scores

VERSION = 1  # bump when a step's computation changes: old store entries are then ignored
PROJECTIONS = ("umap", "mds", "weights", "grid", "featurevis")
RENDER_CHUNK = 32  # renders stored after each chunk, so an interrupted run resumes
Echo = Callable[[str], None]


@dataclass
class Step:
    """One unit of work: its name, where its result lives in the store, a cost estimate and how to compute it."""

    name: str
    kind: str
    key: str
    cost: float
    compute: Callable[[], None]
    done: Callable[[], bool] | None = None  # default: the store holds (kind, key)


@dataclass
class Settings:
    projection: str = "umap"
    mode: str = "auto"  # class-wise target: auto, loss or logit
    batch_size: int = 32
    seed: int = 0
    examples: int = 9  # dataset examples per node (0: none)
    renders: int = 0  # nodes to render, the top ones by overall score (0: none)
    render_steps: int = 256  # the server's default, so its cache finds these renders
    device: str = "cpu"


@dataclass
class Preparer:
    """Plans and runs the steps for one model and image set (the spec's `overall` set)."""

    loaded: LoadedModel
    graph: Graph
    image_sets: dict[str, ImageSet]
    store: Any  # viscnn.store.Store (under torchrun, None is fine for every process but rank 0)
    settings: Settings = field(default_factory=Settings)
    spec: str = ""
    progress: Callable[..., Any] | None = None  # tqdm-like: progress(total=..., desc=...) -> bar with update()
    echo: Echo = print

    def __post_init__(self) -> None:
        if self.settings.projection not in PROJECTIONS:
            raise ViscnnError(f"unknown projection {self.settings.projection!r}: choose from {', '.join(PROJECTIONS)}")
        if self.settings.mode not in ("auto", "loss", "logit"):
            raise ViscnnError(f"unknown class-wise mode {self.settings.mode!r}: use auto, loss or logit")
        if "overall" not in self.image_sets or len(self.image_sets["overall"]) == 0:
            raise ViscnnError(f"image-set spec {self.spec!r} holds no images")
        self.images = self.image_sets["overall"]
        self.fingerprint = self.loaded.fingerprint()
        self.images_hash = distributed.from_main(self.images.hash)  # reads every image file: once is enough
        self.labels = self.images.labels
        self.mode = choose_mode(self.labels) if self.settings.mode == "auto" else self.settings.mode
        self.classes = sorted({label for label in self.labels if label >= 0})
        self.unlabelled = "skip" if self.classes else "predict"
        if self.mode == "logit" and not self.classes:
            raise ViscnnError("class-wise scores by logit need labelled images (class folders): use --mode loss")
        self._memo: dict[str, Any] = {}

    # --- keys ------------------------------------------------------------------------------------------
    def key(self, kind: str, **parts: Any) -> str:
        return Store.key(kind, model=self.fingerprint, images=self.images_hash, version=VERSION, **parts)

    @property
    def uses_classes(self) -> bool:
        return self.settings.projection in ("umap", "mds")

    def classwise_key(self) -> str:
        return self.key("classwise", mode=self.mode, criterion="taylor", unlabelled=self.unlabelled,
                        classes=self.classes if self.mode == "logit" else None)

    def projection_key(self, layer: str) -> str:
        source = self.classwise_key() if self.uses_classes else None
        renders = self.settings.render_steps if self.settings.projection == "featurevis" else None
        return self.key("projection", layer=layer, method=self.settings.projection, seed=self.settings.seed,
                        classwise=source, render_steps=renders)

    def layout_key(self) -> str:
        return self.key("layout", method=self.settings.projection, seed=self.settings.seed,
                        projections=[self.projection_key(layer.name) for layer in self.graph.conv_layers])

    def manifest_key(self) -> str:
        return manifest_key(Store, self.fingerprint, self.images_hash, self.settings.projection)

    # --- the store, as rank 0 sees it (every read here is a collective under torchrun) --------------------
    def _stored(self, kind: str, key: str) -> bool:
        return distributed.from_main(lambda: (kind, key) in self.store)

    def _get_bytes(self, kind: str, key: str) -> bytes | None:
        return distributed.from_main(lambda: self.store.get_bytes(kind, key))

    def _say(self, text: str) -> None:
        if distributed.is_main():
            self.echo(text)

    # --- steps -----------------------------------------------------------------------------------------
    def plan(self) -> list[Step]:
        if self.settings.projection == "featurevis" and not _has_featurevis():
            raise ViscnnError("the featurevis projection needs viscnn.featurevis (the renderer), which is not installed")
        n = len(self.images)
        steps = [Step("scores", "scores", "", 8.0 * n, self._scores, self._scores_done)]
        if self.uses_classes:
            cost = 1.5 * n if self.mode == "loss" else 0.5 * n * len(self.classes)
            steps.append(Step("classwise", "classwise", self.classwise_key(), cost, self._classwise))
        if self.settings.projection != "grid":
            per_node = {"umap": 0.05, "mds": 0.02, "weights": 0.02,
                        "featurevis": 0.01 * self.settings.render_steps}[self.settings.projection]
            if distributed.world() > 1:  # one step, its layers dealt across the processes
                steps.append(Step(f"projections of {len(self.graph.conv_layers)} layers", "projection", "",
                                  sum(1.0 + per_node * layer.out_channels for layer in self.graph.conv_layers),
                                  self._projections, lambda: not self._missing_projections()))
            else:
                for layer in self.graph.conv_layers:
                    steps.append(Step(f"projection {layer.name}", "projection", self.projection_key(layer.name),
                                      1.0 + per_node * layer.out_channels, partial(self._projection, layer.name)))
        steps.append(Step("layout", "layout", self.layout_key(), 0.2 * len(self.graph.conv_layers), self._layout))
        if self.settings.examples > 0:
            steps.append(Step("examples", "examples", "", 1.0 * n, self._examples, self._examples_done))
        if self.settings.renders > 0 and _has_featurevis():
            steps.append(Step(f"renders of the top {self.settings.renders} nodes", "render", "",
                              0.05 * self.settings.renders * self.settings.render_steps,
                              lambda: self._render(self.top_nodes()), lambda: not self._missing_renders(self.top_nodes())))
        steps.append(Step("manifest", "prepared", self.manifest_key(), 0.0, self._manifest))
        return steps

    def run(self) -> dict:
        """Run every step not yet in the store; returns the manifest."""
        steps = self.plan()
        bar = None
        if self.progress and distributed.is_main():
            bar = self.progress(total=sum(s.cost for s in steps), desc="prepare", unit="u")
        start = time.perf_counter()
        try:
            for k, step in enumerate(steps, 1):
                if bar is not None:
                    bar.set_description(f"prepare [{k}/{len(steps)}] {step.name[:40]}")
                done = step.done() if step.done is not None else self._stored(step.kind, step.key)
                if done:
                    self._say(f"[{k}/{len(steps)}] {step.name}: cached")
                else:
                    began = time.perf_counter()
                    step.compute()
                    self._say(f"[{k}/{len(steps)}] {step.name}: done in {time.perf_counter() - began:.1f} s")
                if bar is not None:
                    bar.update(step.cost)
        finally:
            if bar is not None:
                bar.close()
        manifest = json.loads(self._get_bytes("prepared", self.manifest_key()) or b"{}")
        processes = f", {distributed.world()} processes" if distributed.world() > 1 else ""
        self._say(f"prepared {self.loaded.name} on {len(self.images)} images in {time.perf_counter() - start:.1f} s "
                  f"(store {self.store.root if self.store is not None else None}{processes})")
        return manifest

    # --- overall scores --------------------------------------------------------------------------------
    def _score(self) -> QueryResult:  # from the store when cached
        from viscnn.scoring.expression import parse_expression
        from viscnn.scoring.query import score_sets
        from viscnn.scoring.targets import Target

        return score_sets(self.loaded, self.graph, {"overall": self.images}, parse_expression("overall"), Target("loss"),
                          criteria=["taylor"], store=self.store, batch_size=self.settings.batch_size,
                          device=self.settings.device)

    def _scores_done(self) -> bool:
        from viscnn.scoring.query import KIND, score_key

        return distributed.from_main(
            lambda: self.store.get_path(KIND, score_key(self.fingerprint, self.images, "loss", "taylor",
                                                        images_hash=self.images_hash)) is not None)

    def _scores(self) -> None:
        self._memo["scores"] = self._score().scores["taylor"]

    def overall(self) -> Scores:
        if "scores" not in self._memo:
            self._memo["scores"] = self._score().scores["taylor"]  # from the store when cached
        return self._memo["scores"]

    # --- class-wise scores and projections -------------------------------------------------------------
    def _classwise(self) -> None:
        from viscnn.scoring.query import share

        mine = share(self.images, self.settings.batch_size)  # this process's images (all of them for one process)
        batches = mine.batches(self.loaded.preprocess, self.settings.batch_size)
        scores = classwise_scores(self.loaded.module, self.graph, batches, mode=self.mode, classes=self.classes or None,
                                  unlabelled=self.unlabelled, device=self.settings.device, split=True)
        scores.meta.update({"images": self.spec, "model": self.loaded.name})
        if distributed.is_main():
            self.store.put_file("classwise", self.classwise_key(), scores.save, meta={"mode": self.mode},
                                suffix=".safetensors")
        self._memo["classwise"] = scores

    def class_scores(self) -> ClassScores:
        if "classwise" not in self._memo:
            def stored() -> ClassScores | None:
                path = self.store.get_path("classwise", self.classwise_key())
                return None if path is None else ClassScores.load(path)

            found = distributed.from_main(stored)
            if found is None:
                self._classwise()
            else:
                self._memo["classwise"] = found
        return self._memo["classwise"]

    def vectors(self, layer: str) -> np.ndarray:
        if self.settings.projection == "weights":
            return weight_vectors(self.loaded.module, self.graph, layer)
        if self.settings.projection == "featurevis":
            return featurevis_vectors(self.loaded.module, self.graph, layer, self.renders(layer), self.settings.batch_size)
        return self.class_scores().vectors(layer)

    def _projection(self, layer: str) -> None:
        self._memo.setdefault("projections", {}).update(self._project([layer]))

    def _project(self, layers: list[str]) -> dict[str, np.ndarray]:
        """Project `layers` (under torchrun: dealt across the processes, every process gets all) and store them."""
        method = {"weights": "mds", "featurevis": "umap"}.get(self.settings.projection, self.settings.projection)
        vectors = {layer: self.vectors(layer) for layer in layers}  # in every process: may render, in turns
        mine = distributed.assign([float(self.graph[layer].out_channels) for layer in layers])
        points: dict[str, np.ndarray] = {}
        for part in distributed.gather(lambda: {layers[i]: project(vectors[layers[i]], method, seed=self.settings.seed)
                                                for i in mine}):
            points.update(part)
        if distributed.is_main():
            for layer in layers:
                buffer = io.BytesIO()
                np.save(buffer, points[layer])
                self.store.put_bytes("projection", self.projection_key(layer), buffer.getvalue(),
                                     meta={"layer": layer}, suffix=".npy")
        return points

    def _projections(self) -> None:
        self.projections()

    def _stored_projections(self) -> dict[str, np.ndarray]:
        def read() -> dict[str, np.ndarray]:
            found = {}
            for layer in self.graph.conv_layers:
                data = self.store.get_bytes("projection", self.projection_key(layer.name))
                if data is not None:
                    found[layer.name] = np.load(io.BytesIO(data))
            return found

        return distributed.from_main(read)

    def _missing_projections(self) -> list[str]:
        stored = self._stored_projections()
        return [layer.name for layer in self.graph.conv_layers if layer.name not in stored]

    def projections(self) -> dict[str, np.ndarray]:
        if self.settings.projection == "grid":
            return grid_projections(self.graph)
        known = self._memo.setdefault("projections", {})
        if len(known) < len(self.graph.conv_layers):
            known.update(self._stored_projections())
            missing = [layer.name for layer in self.graph.conv_layers if layer.name not in known]
            if missing:
                known.update(self._project(missing))
        return {layer.name: known[layer.name] for layer in self.graph.conv_layers}

    # --- layout ----------------------------------------------------------------------------------------
    def edge_weights(self) -> dict[str, np.ndarray]:
        return {name: values.abs().numpy() for name, values in self.overall().edges.items()}

    def _layout(self) -> None:  # in every process (each needs the same inputs anyway); rank 0 stores it
        projections = self.projections()
        weights = self.edge_weights()
        smooth = self.settings.projection != "grid"
        layout = assemble(self.graph, projections, smooth=smooth, rotate=True, edge_weights=weights,
                          projection=self.settings.projection, model=self.loaded.name, fingerprint=self.fingerprint,
                          images=self.spec)
        layout.quality = measure_quality(layout, self.graph, weights, vectors=self.vectors if smooth else None,
                                         projections=projections if smooth else None)
        data = json.dumps(layout.to_json()).encode()
        if distributed.is_main():
            self.store.put_bytes("layout", self.layout_key(), data,
                                 meta={"model": self.loaded.name, "projection": self.settings.projection}, suffix=".json")
        self._memo["layout"] = data

    def layout(self) -> Layout:
        data = self._memo.get("layout") or self._get_bytes("layout", self.layout_key())
        if data is None:
            self._layout()
            data = self._memo["layout"]
        return Layout.from_json(json.loads(data))

    # --- dataset examples and renders ------------------------------------------------------------------
    def _examples_module(self) -> ModuleType | None:
        try:
            from viscnn.inspection import examples
        except ImportError:
            return None
        return examples

    def _examples_done(self) -> bool:
        module = self._examples_module()
        if module is None:
            return True
        ids = (self.fingerprint, self.images_hash)
        return distributed.from_main(lambda: all(
            self.store.get_path(module.KIND, module.examples_key(self.loaded, self.images, layer.name,
                                                                 self.settings.examples, ids=ids)) is not None
            for layer in self.graph.conv_layers))

    def _examples(self) -> None:
        module = self._examples_module()
        if module is not None:
            module.dataset_examples(self.store, self.loaded, self.graph, self.images, None, k=self.settings.examples,
                                    batch_size=self.settings.batch_size, split=True)

    def top_nodes(self) -> list[tuple[str, int]]:
        """The nodes with the highest overall score, `settings.renders` of them."""
        return [(node.layer, node.channel) for node, _ in self.overall().top(self.settings.renders)]

    def _render_parts(self, nodes: list[tuple[str, int]]) -> tuple[Any, list[Any], list[dict[str, Any]]]:
        """(settings, objectives, cache parts) of the renders of `nodes`: the parts `viscnn visualize` and the
        server use, so what is rendered here is what they serve."""
        from viscnn.featurevis.keys import render_parts, render_setup
        from viscnn.featurevis.render import RenderSettings
        from viscnn.scoring.targets import Target

        settings = RenderSettings(steps=self.settings.render_steps, seed=self.settings.seed)
        objectives = [Target("node", layer, channel) for layer, channel in nodes]
        setup = render_setup(self.loaded, settings, fingerprint=self.fingerprint)
        return settings, objectives, [render_parts(setup, o) for o in objectives]

    def _render_keys(self, nodes: list[tuple[str, int]]) -> list[str]:
        from viscnn.featurevis.keys import render_key

        return [render_key(p) for p in self._render_parts(nodes)[2]]

    def _missing_renders(self, nodes: list[tuple[str, int]]) -> list[int]:
        from viscnn.featurevis.keys import KIND

        keys = self._render_keys(nodes)
        return distributed.from_main(lambda: [k for k, key in enumerate(keys) if self.store.get_path(KIND, key) is None])

    def _render(self, nodes: list[tuple[str, int]]) -> None:
        """Render the nodes whose renders are not stored yet, storing them batch by batch (a rerun resumes);
        under torchrun each batch's nodes are dealt across the processes."""
        from viscnn.featurevis.keys import KIND, render_meta
        from viscnn.featurevis.render import render_split
        from viscnn.store.cache import cached_image

        settings, objectives, parts = self._render_parts(nodes)
        missing = self._missing_renders(nodes)
        chunk_size = RENDER_CHUNK * distributed.world()
        for begin in range(0, len(missing), chunk_size):
            chunk = missing[begin:begin + chunk_size]
            result = render_split(self.loaded.module, self.graph, self.loaded.preprocess,
                                  [objectives[k] for k in chunk], settings, device=self.settings.device)
            if not distributed.is_main():
                continue
            for j, k in enumerate(chunk):
                image = result.images[j].permute(1, 2, 0).numpy()
                meta = render_meta(objectives[k], [float(result.values[j])], float(result.initial_values[j]), settings)

                def computed(image: np.ndarray = image, meta: dict[str, Any] = meta) -> tuple[np.ndarray, dict[str, Any]]:
                    return image, meta

                cached_image(self.store, KIND, parts[k], computed)

    def renders(self, layer: str) -> torch.Tensor:
        """[C, channels, H, W]: every node's render of `layer` as model input (rendered first where missing)."""
        nodes = [(layer, c) for c in range(self.graph[layer].out_channels)]
        self._render(nodes)
        mode = "L" if self.loaded.preprocess.channels == 1 else "RGB"
        keys = self._render_keys(nodes)

        def read() -> torch.Tensor:  # uint8: a quarter of the bytes to send to the other processes
            pixels = []
            for key in keys:
                with Image.open(self.store.get_path("render", key)) as image:
                    array = np.asarray(image.convert(mode), dtype=np.uint8)
                pixels.append(torch.from_numpy(array.reshape(array.shape[0], array.shape[1], -1).copy()).permute(2, 0, 1))
            return torch.stack(pixels)

        return self.loaded.preprocess.normalize(distributed.from_main(read).float() / 255.0)

    # --- manifest --------------------------------------------------------------------------------------
    def _manifest(self) -> None:
        results: dict[str, Any] = {
            "scores": {"input": "overall", "target": "loss", "criterion": "taylor", "edges": True},
            "layout": ["layout", self.layout_key()],
        }
        if self.uses_classes:
            results["classwise"] = ["classwise", self.classwise_key()]
        if self.settings.projection != "grid":
            results["projections"] = {layer.name: ["projection", self.projection_key(layer.name)]
                                      for layer in self.graph.conv_layers}
        if self.settings.examples > 0 and self._examples_module() is not None:
            results["examples"] = {"k": self.settings.examples}
        if self.settings.renders > 0 and _has_featurevis():
            nodes = self.top_nodes()
            results["renders"] = {"nodes": [[layer, channel] for layer, channel in nodes],
                                  "keys": [["render", key] for key in self._render_keys(nodes)]}
        manifest = {"model": self.loaded.name, "fingerprint": self.fingerprint, "images": self.spec,
                    "images_hash": self.images_hash, "count": len(self.images), "projection": self.settings.projection,
                    "classwise_mode": self.mode if self.uses_classes else None, "results": results}
        if distributed.is_main():
            self.store.put_bytes("prepared", self.manifest_key(), json.dumps(manifest).encode(), suffix=".json")


def _has_featurevis() -> bool:
    import importlib.util

    return importlib.util.find_spec("viscnn.featurevis.render") is not None


def manifest_key(store: Any, fingerprint: str, images_hash: str, projection: str) -> str:
    """The store key of `prepare`'s manifest for a model fingerprint, an image set's hash and a projection."""
    return store.key("prepared", model=fingerprint, images=images_hash, projection=projection, version=VERSION)


def measure_quality(layout: Layout, graph: Graph, weights: dict[str, np.ndarray], *,
                    vectors: Callable[[str], np.ndarray] | None = None,
                    projections: dict[str, np.ndarray] | None = None) -> dict:
    """The layout's quality figures (see viscnn.layout.quality): edge length vs random, and with `vectors` and
    `projections` the trustworthiness."""
    result: dict[str, Any] = {"edge_length": quality.edge_length(layout, graph, weights)}
    if vectors is not None:
        result["trustworthiness"] = quality.trustworthiness(layout, vectors, projections)
    return result

