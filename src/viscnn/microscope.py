"""`viscnn.load`: the microscope from Python, each step returning Python objects.

    import viscnn

    mic = viscnn.load("timm:resnet26d", images="demo")          # model, graph and image sets
    scores = mic.score("overall", target="loss")                  # Scores: every node and edge
    circuit = mic.circuit("logit:1", keep=0.05)                   # Circuit: the kernels the target needs
    renders = mic.visualize(["layer1.0.conv1:3"], steps=64)       # RenderResult: images and objective values
    mic.show()                                                    # the page, in a notebook

Targets, expressions and ids are the CLI's (`viscnn score --help`); each is parsed once here.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from viscnn.circuits import Circuit, extract_circuit
from viscnn.data import ImageSet, open_image_sets
from viscnn.errors import ViscnnError
from viscnn.featurevis import RenderResult, RenderSettings, render
from viscnn.featurevis.objectives import check_objective
from viscnn.graph import Graph, build_graph
from viscnn.models import LoadedModel, load_model
from viscnn.scoring import Scores, Target, parse_target
from viscnn.scoring.expression import parse_expression
from viscnn.scoring.query import score_sets
from viscnn.scoring.targets import check_scorable
from viscnn.store import Store

if TYPE_CHECKING:
    from viscnn.server.notebook import Shown


@dataclass
class Microscope:
    """A loaded model, its kernel graph and the image sets it is studied on."""

    loaded: LoadedModel
    graph: Graph
    images: str
    image_sets: dict[str, ImageSet]
    device: str = "cpu"
    store: Store | None = None
    batch_size: int = 32

    def target(self, text: str) -> Target:
        """A target, objective or id text parsed against this model (class names included)."""
        return parse_target(text, self.graph, self.loaded.class_names)

    def score(self, expression: str = "overall", target: str = "loss", criterion: str = "taylor", *,
              edges: bool = True) -> Scores:
        """Every node's (and edge's) score for `target` over an image-set expression ('tiger - overall')."""
        result = score_sets(self.loaded, self.graph, self.image_sets, parse_expression(expression, list(self.image_sets)),
                            check_scorable(self.target(target)), criteria=[criterion], edges=edges, store=self.store,
                            batch_size=self.batch_size, device=self.device)
        return result.scores[criterion]

    def circuit(self, target: str, keep: float = 0.05, *, method: str = "actgrad", rule: str = "top",
                images: str = "overall", seed: int = 0) -> Circuit:
        """The circuit `method` finds for `target` on the set `images`, keeping `keep` of its upstream kernels."""
        if images not in self.image_sets:
            raise ViscnnError(f"unknown image set {images!r}: choose from {', '.join(sorted(self.image_sets))}")
        batches = [(x.to(self.device), y) for x, y in
                   self.image_sets[images].batches(self.loaded.preprocess, self.batch_size)]
        return extract_circuit(self.loaded.module, self.graph, batches, check_scorable(self.target(target)), keep,
                               method, rule=rule, seed=seed, device=self.device, model_name=self.loaded.name,
                               fingerprint=self.loaded.fingerprint())

    def visualize(self, targets: str | Sequence[str], *, steps: int = 256, size: int | None = None,
                  seed: int = 0) -> RenderResult:
        """Feature visualisations of nodes, neurons, edges (`L:O<-I`) or class logits, rendered together."""
        texts = [targets] if isinstance(targets, str) else list(targets)
        objectives = [check_objective(self.target(text)) for text in texts]
        settings = RenderSettings(steps=steps, size=size, seed=seed)
        return render(self.loaded.module, self.graph, self.loaded.preprocess, objectives, settings, device=self.device)

    def show(self, *, port: int | None = None, height: int = 800, prepare: str | None = "umap",
             proxy: bool | str | None = None, base_url: str | None = None) -> Shown:
        """The microscope's page for this model and these images (in Jupyter, the cell shows it; a remote notebook
        server is reached through its proxy: see `viscnn.server.notebook.proxy_url`). The object returned also
        gives the page's last query (`.scores()`) and its circuits (`.circuits()`) as Python objects."""
        from viscnn.server.notebook import show

        return show(self.loaded, self.images, port=port, height=height, prepare=prepare, proxy=proxy,
                    base_url=base_url)


def load(model: str = "efficientnet-lite0", images: str | None = None, *, weights: str | Path | None = None,
         pretrained: bool = False, device: str = "cpu", resize: bool = False, cache: bool | str | Path = False,
         batch_size: int = 32) -> Microscope:
    """Load `model` (a zoo name, tv:NAME, timm:NAME or path/to/file.py:factory), trace it and open `images`
    (an image-set spec; default: the model's own kind of images).

    `cache`: False computes everything afresh; True keeps per-set scores in viscnn's store; a path names a store.
    """
    loaded = load_model(model, weights, device, pretrained=pretrained, images=images)
    spec = images or loaded.default_images()
    graph = build_graph(loaded.module, loaded.input_shape, loaded.name)
    store = None if cache is False else Store(None if cache is True else cache)
    sets = open_image_sets(spec, loaded.class_names, resize=resize)
    return Microscope(loaded, graph, spec, sets, device, store, batch_size)
