"""What `viscnn prepare` will cost, for 1 process and for N, from a short sample of each step measured here.

Each step runs on a sample of its real work, on this device, with the batch size prepare would use:

- scores, class-wise scores, dataset examples: a warm-up batch, then `sample_batches` batches of images
  spread over the set, timed (image decoding included); the cost per image times the images of the set;
- projections: UMAP (or MDS) of random node vectors of each sampled layer's real shape, a few layers of
  spread sizes, fitted as a + b x nodes and summed over every layer (the first UMAP call, numba's
  compilation, counted once per process);
- layout: smoothing and the quality figures run whole (on grid places); the rotation, which dominates on
  big models and grows with the kernels, timed on layers holding about `ROTATION_EDGES` kernels and scaled
  to all of them;
- renders: one round of objectives (as many as run at once) for two step counts, the difference giving the
  cost of a step and the rest the fixed cost of a render.

N processes split images, layers and nodes as `viscnn.distributed` deals them; the layout runs in every
process and the image hash (3 reads of every image) on rank 0 only. On a CPU each of the N processes is
measured with the threads torchrun gives it (OMP_NUM_THREADS, else 1), and N processes beyond this
machine's cores share them; on a GPU each process is assumed to have its own device like this one.
Memory is the peak seen while each sample ran, per process (resident memory on a CPU, CUDA allocations
on a GPU): batches bound it, so the full run's peak is the sample's.
"""
from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch

from viscnn import distributed
from viscnn.data import ImageSet
from viscnn.graph import Graph
from viscnn.models import LoadedModel

ROTATION_EDGES = 100_000  # kernels whose rotation is timed
HASH_READS = 3  # full reads of the image set by rank 0 in a fresh prepare (the set's hash)


@dataclass
class Estimate:
    """One step: how N processes share it, its units of work, and the time and memory it takes."""

    step: str
    split: str
    unit: str
    units: int
    per_unit: float  # seconds per unit in one process
    seconds: float  # one process
    seconds_n: float  # N processes (the slowest one)
    memory: int  # peak bytes per process while the sample ran
    sample: str = ""


@dataclass
class Plan:
    model: str
    images: str
    count: int
    device: str
    threads: int
    processes: int
    threads_n: int
    cores: int
    estimates: list[Estimate] = field(default_factory=list)
    seconds: float = 0.0  # the plan's own measurement time
    decode: float = 0.0  # seconds per image to read and preprocess it (part of every image step's cost)

    def total(self, *, n: bool = False) -> float:
        return sum(e.seconds_n if n else e.seconds for e in self.estimates)

    def peak(self) -> int:
        return max((e.memory for e in self.estimates), default=0)

    def to_json(self) -> dict[str, Any]:
        return {**{k: v for k, v in asdict(self).items() if k != "estimates"},
                "steps": [asdict(e) for e in self.estimates], "total": self.total(), "total_n": self.total(n=True),
                "peak_memory": self.peak()}

    def table(self) -> str:
        n = self.processes
        head = ["step", "split", "per unit", "1 process", f"{n} processes", "peak memory"]
        rows = [[e.step, e.split, _per_unit(e), _duration(e.seconds), _duration(e.seconds_n), _bytes(e.memory)]
                for e in self.estimates]
        rows.append(["total", "", "", _duration(self.total()), _duration(self.total(n=True)), _bytes(self.peak())])
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
        lines = ["  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                 for r in [head, *rows]]
        return "\n".join(lines[:1] + ["-" * len(lines[0])] + lines[1:-1] + ["-" * len(lines[0])] + lines[-1:])


def _per_unit(e: Estimate) -> str:
    if not e.unit:
        return ""
    value = e.per_unit
    text = f"{value * 1e3:.3g} ms" if value < 1 else f"{value:.3g} s"
    return f"{text} / {e.unit}"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _bytes(count: int) -> str:
    return f"{count / 2**20:.0f} MiB" if count < 2**30 else f"{count / 2**30:.2f} GiB"


@contextmanager
def peak_memory(device: torch.device, out: list[int]) -> Iterator[None]:
    """Appends to `out` the peak memory while the block runs: CUDA allocations on a GPU, else resident memory
    (sampled every 2 ms from /proc; elsewhere the process's lifetime peak)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        yield
        torch.cuda.synchronize(device)
        out.append(int(torch.cuda.max_memory_allocated(device)))
        return
    if not os.path.exists("/proc/self/statm"):
        import resource

        yield
        out.append(int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024)
        return
    page = os.sysconf("SC_PAGE_SIZE")
    peak = [0]
    stop = threading.Event()

    def watch() -> None:
        while True:
            with open("/proc/self/statm") as handle:
                peak[0] = max(peak[0], int(handle.read().split()[1]) * page)
            if stop.wait(0.002):
                return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()
        out.append(peak[0])


@contextmanager
def threads(count: int) -> Iterator[None]:
    """Torch's intra-op threads at `count` for the block."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _timed(work: Callable[[], Any], device: torch.device, memory: list[int]) -> float:
    with peak_memory(device, memory):
        start = time.perf_counter()
        work()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start


@dataclass
class Planner:
    """Measures the steps of a prepare of `image_set` with `settings` (a `viscnn.pipeline.Settings`)."""

    loaded: LoadedModel
    graph: Graph
    image_set: ImageSet
    settings: Any
    processes: int = 1
    sample_batches: int = 2
    spec: str = ""
    say: Callable[[str], None] = lambda text: None
    classes: int | None = None  # class-wise vector width for the projections (default: the images' classes)

    def __post_init__(self) -> None:
        self.device = torch.device(self.settings.device)
        self.threads = torch.get_num_threads()
        self.cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        self.cpu = self.device.type != "cuda"
        self.threads_n = int(os.environ.get("OMP_NUM_THREADS", "1")) if self.processes > 1 else self.threads
        # N processes of threads_n threads on `cores` cores: beyond the cores they take turns
        self.contention = max(1.0, self.processes * self.threads_n / self.cores) if self.cpu else 1.0
        n, batch = len(self.image_set), self.settings.batch_size
        size = min(n, (self.sample_batches + 1) * batch)
        indices = sorted({int(round(i)) for i in np.linspace(0, n - 1, size)})
        items = [self.image_set.items[i] for i in indices]
        self.warm = self.image_set.subset(items[:batch])
        self.timed = self.image_set.subset(items[batch:] or items)
        self.top: list[Any] = []  # the top nodes of the sampled scores (the renders' objectives)
        self.class_scores: Any = None  # the sampled class-wise scores (vectors for the projections)

    # --- helpers ----------------------------------------------------------------------------------
    def _per_image(self, work: Callable[[ImageSet], Any], memory: list[int]) -> tuple[float, float, float]:
        """(seconds per image with this process's threads, with an N-process share's threads, and what the first
        batch costs beyond its images: each process pays it once)."""
        warm = _timed(lambda: work(self.warm), self.device, memory)
        one = _timed(lambda: work(self.timed), self.device, memory) / len(self.timed)
        first = max(0.0, warm - one * len(self.warm))
        if not self.cpu or self.threads_n == self.threads:
            return one, one, first
        with threads(self.threads_n):
            work(self.warm)
            return one, _timed(lambda: work(self.timed), self.device, memory) / len(self.timed), first

    def _images_step(self, name: str, work: Callable[[ImageSet], Any]) -> Estimate:
        memory: list[int] = []
        one, each, first = self._per_image(work, memory)
        n = len(self.image_set)
        share = max(len(s) for s in distributed.deal_images(n, self.settings.batch_size, self.processes))
        self.say(f"{name}: {one * 1e3:.3g} ms per image")
        return Estimate(name, "images", "image", n, one, first + one * n, first + each * share * self.contention,
                        max(memory), f"{len(self.timed)} images after a warm-up batch of {len(self.warm)} "
                                     f"(its extra {first:.2f} s counted once)")

    # --- the steps --------------------------------------------------------------------------------
    def plan(self, *, load_seconds: float = 0.0, launcher_seconds: float = 0.0) -> Plan:
        """Measure every step. `load_seconds`: a process's start and model load, as the caller measured it;
        `launcher_seconds`: what torchrun's own start adds to N processes (it imports torch too)."""
        start = time.perf_counter()
        settings, graph = self.settings, self.graph
        plan = Plan(self.loaded.name, self.spec, len(self.image_set), str(self.device), self.threads, self.processes,
                    self.threads_n, self.cores)
        memory: list[int] = []
        _timed(lambda: None, self.device, memory)  # what the loaded model holds
        launcher = launcher_seconds if self.processes > 1 else 0.0
        plan.estimates.append(Estimate("start, load model, trace graph", "every process", "", 1, load_seconds, load_seconds,
                                       load_seconds + launcher, memory[0],
                                       "this command's own start (Python, torch), model load and image listing"
                                       + (f"; N processes: + {launcher:.1f} s for torchrun's start" if launcher else "")))
        plan.estimates.append(self._hash())
        batches = self.timed.batches(self.loaded.preprocess, self.settings.batch_size)
        plan.decode = _timed(lambda: list(batches), torch.device("cpu"), []) / len(self.timed)
        plan.estimates.append(self._scores())
        uses_classes = settings.projection in ("umap", "mds")
        if uses_classes:
            plan.estimates.append(self._classwise())
        if settings.projection != "grid":
            plan.estimates.append(self._projections())
        plan.estimates.append(self._layout())
        if settings.examples > 0:
            plan.estimates.append(self._examples())
        renders = sum(layer.out_channels for layer in graph.conv_layers) if settings.projection == "featurevis" \
            else settings.renders
        if renders > 0:
            plan.estimates.append(self._renders(renders))
        plan.seconds = time.perf_counter() - start
        return plan

    def _hash(self) -> Estimate:
        memory: list[int] = []
        per = _timed(self.timed.hash, self.device, memory) / len(self.timed)
        n = len(self.image_set)
        return Estimate("hash images", "rank 0", "image", n, per * HASH_READS, per * n * HASH_READS,
                        per * n * HASH_READS, max(memory), f"{HASH_READS} reads of each image")

    def _scores(self) -> Estimate:
        from viscnn.scoring.engine import score_batches
        from viscnn.scoring.targets import Target

        def work(images: ImageSet) -> None:
            scores = score_batches(self.loaded.module, self.graph,
                                   images.batches(self.loaded.preprocess, self.settings.batch_size), Target("loss"),
                                   ["taylor"], device=self.device)["taylor"]
            self.top = [node for node, _ in scores.top(max(1, self.settings.renders))]  # what renders would render

        return self._images_step("scores (loss, |Taylor|, nodes and edges)", work)

    def _classwise(self) -> Estimate:
        from viscnn.layout.classwise import choose_mode, classwise_scores

        labels = self.image_set.labels
        mode = choose_mode(labels) if self.settings.mode == "auto" else self.settings.mode
        classes = sorted({label for label in labels if label >= 0})

        def work(images: ImageSet) -> None:
            self.class_scores = classwise_scores(
                self.loaded.module, self.graph, images.batches(self.loaded.preprocess, self.settings.batch_size),
                mode=mode, classes=classes or None, unlabelled="skip" if classes else "predict", device=self.device)

        return self._images_step(f"class-wise scores ({mode}{f', {len(classes)} classes' if mode == 'logit' else ''})",
                                 work)

    def _projections(self) -> Estimate:
        from viscnn.layout.projection import project
        from viscnn.layout.vectors import weight_vectors

        method = {"weights": "mds", "featurevis": "umap"}.get(self.settings.projection, self.settings.projection)
        rng = np.random.default_rng(0)
        width = self.classes or max(2, len({label for label in self.image_set.labels if label >= 0}) or 10)

        def vectors(layer: str) -> np.ndarray:  # how fast UMAP and MDS converge depends on the data: real where we can
            if self.settings.projection == "weights":
                return weight_vectors(self.loaded.module, self.graph, layer)
            if self.class_scores is not None and not self.classes:
                return self.class_scores.vectors(layer)  # of the sampled images
            return rng.standard_normal((self.graph[layer].out_channels, width))

        layers = self.graph.conv_layers
        by_size = {layer.out_channels: layer.name for layer in layers}
        sizes = sorted(by_size)
        sampled = sorted({sizes[int(q * (len(sizes) - 1))] for q in (0.0, 0.25, 0.5, 0.75, 0.9, 1.0)})
        memory: list[int] = []
        # the first call imports the library (and numba compiles UMAP): once per process
        warm = _timed(lambda: project(rng.random((16, width)), method), self.device, memory)
        times = [_timed(partial(project, vectors(by_size[c]), method, seed=self.settings.seed), self.device, memory)
                 for c in sampled]
        costs = [float(np.interp(layer.out_channels, sampled, times)) for layer in layers]
        loads = [sum(costs[i] for i in units) for units in distributed.deal_units(costs, self.processes)]
        self.say(f"projections: {sum(costs):.1f} s for {len(layers)} layers")
        source = "weights" if self.settings.projection == "weights" else \
            "random vectors" if self.class_scores is None or self.classes else "the sample's class-wise scores"
        return Estimate(f"projections ({method})", "layers", "layer", len(layers), sum(costs) / len(layers),
                        warm + sum(costs), warm + max(loads), max(memory),
                        f"{len(sampled)} layers of {', '.join(map(str, sampled))} nodes ({source}), interpolated by "
                        f"size; the first call (imports, numba's compilation) {warm:.1f} s")

    def _layout(self) -> Estimate:
        from viscnn.layout.build import assemble, grid_projections
        from viscnn.layout.rotation import best_rotation, layer_terms
        from viscnn.pipeline.prepare import measure_quality

        graph = self.graph
        memory: list[int] = []
        rng = np.random.default_rng(0)
        places = grid_projections(graph)
        weights = {layer.name: rng.random((layer.out_channels, layer.in_per_group)) for layer in graph.conv_layers}
        smooth = self.settings.projection != "grid"
        vectors = {layer.name: rng.random((layer.out_channels, 10)) for layer in graph.conv_layers}
        layout = None

        def unrotated() -> None:
            nonlocal layout
            layout = assemble(graph, places, smooth=smooth, rotate=False, edge_weights=weights)
            measure_quality(layout, graph, weights, vectors=vectors.__getitem__ if smooth else None,
                            projections=places if smooth else None)

        fixed = _timed(unrotated, self.device, memory)
        assert layout is not None
        total = sum(layer.num_edges for layer in graph.conv_layers)
        chosen, edges = [], 0
        for layer in sorted(graph.conv_layers[1:], key=lambda layer: layer.num_edges):  # the first has no sources
            if edges and edges + layer.num_edges > ROTATION_EDGES:
                break
            chosen.append(layer.name)
            edges += layer.num_edges

        def rotate() -> None:
            for name in chosen:
                terms = layer_terms(layout, graph, name, weights[name])
                if terms is not None:
                    best_rotation(terms)

        rotation = _timed(rotate, self.device, memory) * total / max(1, edges)
        seconds = fixed + rotation
        self.say(f"layout: {seconds:.1f} s")
        return Estimate("layout (smoothing, rotation, quality)", "every process", "kernel", total, seconds / max(1, total),
                        seconds, seconds, max(memory), f"rotation of {len(chosen)} layers ({edges} kernels)")

    def _examples(self) -> Estimate:
        from viscnn.inspection.examples import compute_examples

        def work(images: ImageSet) -> None:
            compute_examples(self.loaded.module, self.graph, images, self.loaded.preprocess, k=self.settings.examples,
                             batch_size=self.settings.batch_size, device=self.device)

        return self._images_step(f"dataset examples (k={self.settings.examples})", work)

    def _renders(self, count: int) -> Estimate:
        from viscnn.featurevis.render import RenderSettings, parallel_passes, pass_size, render
        from viscnn.graph import Node
        from viscnn.scoring.targets import Target

        steps = self.settings.render_steps
        layers = self.graph.conv_layers
        size = self.loaded.preprocess.size
        memory: list[int] = []
        warmed: list[float] = []  # what the first render of a process costs beyond the others

        def per_round(objectives: int) -> tuple[int, float, float]:
            """(objectives rendered at once with the current threads, fixed seconds of such a round, seconds per step)."""
            base = RenderSettings(steps=1, seed=self.settings.seed)
            at_once = min(objectives, pass_size(base, size, self.device) * parallel_passes(base, 10**6, self.device))
            nodes = self.top if self.settings.projection != "featurevis" else \
                [Node(layer.name, 0) for layer in layers]  # every node of every layer: a spread of depths
            targets = [Target("node", nodes[k % len(nodes)].layer, nodes[k % len(nodes)].channel) for k in range(at_once)]
            short, long = 3, 9
            first = _timed(partial(render, self.loaded.module, self.graph, self.loaded.preprocess, targets,
                                   RenderSettings(steps=1, seed=self.settings.seed), device=self.device),
                           self.device, memory)  # a warm-up: threads, kernels
            times = [_timed(partial(render, self.loaded.module, self.graph, self.loaded.preprocess, targets,
                                    RenderSettings(steps=s, seed=self.settings.seed), device=self.device),
                            self.device, memory) for s in (short, long)]
            per_step = max(0.0, (times[1] - times[0]) / (long - short))
            fixed = max(0.0, times[0] - short * per_step)
            warmed.append(max(0.0, first - fixed - per_step))
            return at_once, fixed, per_step

        at_once, fixed, per_step = per_round(count)
        one = warmed[0] + math.ceil(count / at_once) * (fixed + steps * per_step)
        share = math.ceil(count / self.processes)
        if self.cpu and self.threads_n != self.threads:
            with threads(self.threads_n):
                at_n, fixed_n, step_n = per_round(share)
        else:
            at_n, fixed_n, step_n = at_once, fixed, per_step
        n_seconds = warmed[0] + math.ceil(share / max(1, min(at_n, share))) * (fixed_n + steps * step_n) * self.contention
        self.say(f"renders: {one:.1f} s")
        return Estimate(f"renders ({count} nodes x {steps} steps)", "nodes", "render", count, one / count, one,
                        n_seconds, max(memory), f"{at_once} renders at once for 3 and 9 steps, after a warm-up")
