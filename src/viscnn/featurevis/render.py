"""Batched feature visualisation: optimise one image per objective, many objectives at once.

The design follows Lucent/Lucid (parametrisation, transforms, objectives, render loop), but viscnn
does not depend on Lucent: it is unmaintained since 2021, leaves forward hooks registered on the model
between calls, compares torch versions as strings and renders one objective at a time. Here maps are
read by the scoring `Recorder` (a TorchFunctionMode entered with `with`, so nothing stays attached to
the model, even when a step raises), the forward pass stops at the deepest layer the objectives need,
and N objectives are optimised together as a batch of N images (image b maximises objective b; BN runs
in eval mode and Adam is elementwise, so the images do not interact unless `diversity` asks them to).

Determinism: each image has its own generators, seeded by (seed, objective, copy): one for its starting
noise, one for its random transforms. A seed reproduces an objective's render whatever else is rendered
with it and in whatever batch (up to floating-point rounding, which batching may change), so `batch` is
only a speed setting and not part of a render's identity (`RenderSettings.to_json`).

Only the image gets gradients (`torch.autograd.grad`): the model's weights get none, which halves the
backward pass and leaves the model's `.grad` untouched. While optimising, each eval-mode BatchNorm is
folded into its conv (`Recorder(fold=...)`), which saves a sixth of a step; the values reported on the
starting and final images come from the model as it is.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from viscnn import distributed
from viscnn.errors import ViscnnError
from viscnn.featurevis.objectives import check_objective, deepest, forward
from viscnn.featurevis.param import image_param
from viscnn.featurevis.redirect import RedirectedReLU
from viscnn.featurevis.transforms import (
    TRANSFORMS,
    Transform,
    apply,
    standard_transforms,
)
from viscnn.graph import Graph
from viscnn.graph.recorder import Folds, Recorder
from viscnn.models.preprocess import Preprocess
from viscnn.scoring.targets import Target

if TYPE_CHECKING:
    from tqdm import tqdm

_T = TypeVar("_T")
StepProgress = Callable[[int, int], None]  # (image-steps done, image-steps in all), after every optimisation step


class _Steps:
    """A `progress` callable behind tqdm's `update`, counting image-steps (passes may run in threads)."""

    def __init__(self, report: StepProgress, total: int) -> None:
        self.report, self.total, self.done = report, total, 0
        self._lock = threading.Lock()

    def update(self, n: int) -> None:
        with self._lock:
            self.done += n
            done = self.done
        self.report(done, self.total)

    def close(self) -> None:
        pass


# Bumped when the same settings would make other images, so renders cached by older code are not served
# as this code's. 2: the transform chain is one resampling (transforms.apply), ReLU gradients redirected
# for the first `redirect_steps` only, the last eighth of the steps untransformed (`sharpen`).
RECIPE = 2


@dataclass
class RenderSettings:
    """Everything besides the model and objectives that changes a render (and so belongs in cache keys)."""

    steps: int = 256
    size: int | None = None  # None: the model's own input size
    lr: float = 0.05
    seed: int = 0
    batch: int | None = None  # objectives per optimisation pass; None: `pass_size` (renders do not depend on it)
    workers: int | None = None  # passes optimised at once; None: `parallel_passes` (renders do not depend on it)
    param: str = "fft"  # "fft" or "pixel"
    decay_power: float = 1.0
    transforms: str = "standard"  # "standard", "strong" or "none" (see transforms.standard_transforms)
    copies: int = 1  # images per objective
    diversity: float = 0.0  # weight of the diversity term between an objective's copies
    sharpen: float = 0.125  # the last fraction of the steps optimise the image untransformed (see `_render_batch`)
    redirect_steps: int = 16  # the first steps use Lucid's redirected ReLU gradient (Lucid: 16); 0: none

    def to_json(self) -> dict:
        """What decides the images (for cache keys and metadata): every setting but the speed ones (`batch`,
        `workers`), and the recipe."""
        return {**{k: v for k, v in self.__dict__.items() if k not in ("batch", "workers")}, "recipe": RECIPE}


@dataclass
class RenderResult:
    """Renders (0-1 pixels, [N * copies, C, H, W], on the CPU) and the objectives' values on them."""

    objectives: list[Target]
    images: torch.Tensor
    values: torch.Tensor  # on the final images, untransformed
    initial_values: torch.Tensor  # on the starting images (grey noise)
    seconds: float
    settings: RenderSettings
    owners: list[int] = field(default_factory=list)  # image k renders objectives[owners[k]]


def check_settings(settings: RenderSettings) -> None:
    if settings.steps <= 0:
        raise ViscnnError(f"steps must be a positive number, not {settings.steps}")
    if settings.size is not None and settings.size <= 0:
        raise ViscnnError(f"image size must be positive, not {settings.size}")
    if settings.batch is not None and settings.batch <= 0:
        raise ViscnnError(f"batch must be positive, not {settings.batch}")
    if not 0 <= settings.sharpen <= 1:
        raise ViscnnError(f"sharpen is a fraction of the steps, from 0 to 1, not {settings.sharpen}")
    if settings.redirect_steps < 0:
        raise ViscnnError(f"redirect_steps must be 0 or more, not {settings.redirect_steps}")
    if settings.workers is not None and settings.workers <= 0:
        raise ViscnnError(f"workers must be positive, not {settings.workers}")
    if settings.copies <= 0:
        raise ViscnnError(f"copies must be positive, not {settings.copies}")
    if not settings.lr > 0:
        raise ViscnnError(f"learning rate must be positive, not {settings.lr}")
    if settings.transforms not in TRANSFORMS:
        raise ViscnnError(f"unknown transforms {settings.transforms!r}: use {', '.join(TRANSFORMS)}")
    if settings.param not in ("fft", "pixel"):
        raise ViscnnError(f"unknown image parametrisation {settings.param!r}: use fft or pixel")


def check_size(module: nn.Module, graph: Graph, preprocess: Preprocess, size: int, device: torch.device) -> Folds:
    """One whole forward pass at `size` px; a model that cannot take it is an error naming the reason.
    Returns the eval-mode BNs it met, to fold into their convs while rendering (`Recorder`)."""
    x = torch.full((1, preprocess.channels, size, size), 0.5, device=device)
    recorder = Recorder(graph, keep=set())
    try:
        with torch.no_grad(), recorder:
            module(preprocess.normalize(x))
    except (RuntimeError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ViscnnError(f"the model cannot take {size}x{size} px images (it was built for "
                          f"{preprocess.size} px): {first}") from exc
    return recorder.folds


CPU_PASS_PIXELS = 2 * 224 * 224  # on a CPU, larger passes are slower per image (their maps leave the cache)


def pass_size(settings: RenderSettings, size: int, device: torch.device) -> int:
    """Objectives optimised together in one pass: `settings.batch`, or else 32 on a GPU and, on a CPU, as
    many as keep a pass within CPU_PASS_PIXELS input pixels (2 at 224 px, 6 at 128, 32 at 28: with channels-last
    maps and `parallel_passes`, passes of 2 beat passes of 4 by 5-15% per image, on one thread or two;
    measured in benchmarks/featurevis.py)."""
    if settings.batch is not None:
        return settings.batch
    if device.type != "cpu":
        return 32
    return max(1, min(32, CPU_PASS_PIXELS // (size * size * settings.copies)))


def parallel_passes(settings: RenderSettings, passes: int, device: torch.device) -> int:
    """Passes optimised at once: `settings.workers`, or else, on a CPU, one per intra-op thread, each pass
    then running on one thread (2 passes on 2 cores give 1.9x the throughput of one pass on both: a pass's
    small ops parallelise poorly), and 1 on a GPU."""
    if settings.workers is not None:
        return max(1, min(settings.workers, passes))
    return max(1, min(passes, torch.get_num_threads())) if device.type == "cpu" else 1


def _one_thread(work: Callable[[], _T]) -> _T:
    """Run `work` with this thread's intra-op parallelism at 1 (ATen keeps the setting per thread)."""
    torch.set_num_threads(1)
    return work()


def image_seed(seed: int, objective: Target, copy: int, stream: str) -> int:
    """The seed of one image's `stream` ("start" noise or "transforms"), from what the image renders."""
    digest = hashlib.sha256(f"{seed}|{objective}|{copy}|{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def _diversity(maps: torch.Tensor, copies: int) -> torch.Tensor:
    """Lucid's diversity term per objective: mean cosine similarity of the Gram matrices of its copies."""
    n, c = maps.shape[:2]
    flat = maps.reshape(n, c, -1)
    grams = F.normalize(torch.bmm(flat, flat.transpose(1, 2)).reshape(n, -1), dim=1).reshape(n // copies, copies, -1)
    similarity = torch.einsum("gid,gjd->gij", grams, grams)
    off_diagonal = similarity.sum(dim=(1, 2)) - similarity.diagonal(dim1=1, dim2=2).sum(dim=1)
    return off_diagonal.sum() / max(1, copies * (copies - 1))


def _render_batch(module: nn.Module, graph: Graph, preprocess: Preprocess, objectives: list[Target],
                  copies: list[int], settings: RenderSettings, size: int, device: torch.device,
                  transforms: Sequence[Transform], fold: Folds,
                  bar: tqdm | _Steps | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    channels = preprocess.channels
    seeds = [image_seed(settings.seed, o, c, "start") for o, c in zip(objectives, copies)]
    options = {"decay_power": settings.decay_power} if settings.param == "fft" else {}
    image = image_param(len(objectives), channels, size, kind=settings.param, seeds=seeds, device=device, **options)
    generator = [torch.Generator().manual_seed(image_seed(settings.seed, o, c, "transforms"))
                 for o, c in zip(objectives, copies)]
    parameters = list(image.parameters())
    optimizer = torch.optim.Adam(parameters, lr=settings.lr)
    diversity_layer = None
    if settings.diversity and settings.copies > 1:
        diversity_layer = deepest(graph, {o.layer for o in objectives if o.layer}) or graph.conv_layers[-1].name
    with torch.no_grad():
        initial = forward(module, graph, objectives, preprocess.normalize(image()))[0]
    # the transforms make a render robust (no pixel-exact tricks); a last few steps without them then lift the
    # objective on the image as it is by a third (Lite0's expand nodes), which looks the same (see RECIPE)
    transformed = settings.steps - round(settings.steps * settings.sharpen)
    for step in range(settings.steps):
        optimizer.zero_grad(set_to_none=True)
        pixels = image()
        if transforms and step < transformed:
            pixels = apply(transforms, pixels, generator)
        # channels-last: mkldnn's convs (depthwise above all) run about 2x faster on it, forward and backward
        pixels = pixels.contiguous(memory_format=torch.channels_last)
        keep = {diversity_layer} if diversity_layer else None
        with RedirectedReLU() if step < settings.redirect_steps else contextlib.nullcontext():
            values, calls = forward(module, graph, objectives, preprocess.normalize(pixels), keep=keep, fold=fold)
        loss = -values.sum()
        if diversity_layer:
            loss = loss + settings.diversity * _diversity(calls[diversity_layer].ready_map(), settings.copies)
        if not torch.isfinite(loss):
            raise ViscnnError("the objective became NaN or infinite during rendering; lower the learning rate")
        for parameter, grad in zip(parameters, torch.autograd.grad(loss, parameters)):
            parameter.grad = grad
        optimizer.step()
        if bar is not None:
            bar.update(len(objectives))
    with torch.no_grad():
        final = image().detach()
        values = forward(module, graph, objectives, preprocess.normalize(final))[0]
    return final.cpu(), values.cpu(), initial.cpu()


def render(module: nn.Module, graph: Graph, preprocess: Preprocess, objectives: Sequence[Target],
           settings: RenderSettings | None = None, *, device: str | torch.device | None = None,
           transforms: Sequence[Transform] | None = None, progress: bool | StepProgress = False) -> RenderResult:
    """Render every objective (settings.copies images each), `pass_size` objectives per optimisation pass.

    `module` is the model (or a circuit's masked model, `Circuit.module(...)`), `graph` its kernel graph,
    `preprocess` its input normalisation (applied inside: the image is optimised as 0-1 pixels), `device`
    where the images live (default: the model's device). With `progress` True, a tqdm bar counts image-steps;
    a callable `progress(done, total)` is called with the image-steps done after every optimisation step.
    """
    settings = settings or RenderSettings()
    check_settings(settings)
    if not objectives:
        raise ViscnnError("nothing to render: give at least one objective")
    for objective in objectives:
        check_objective(objective)
    own = next((p.device for p in module.parameters()), torch.device("cpu"))
    device = torch.device(device) if device is not None else own
    if device.type != own.type:
        raise ViscnnError(f"the model is on {own} but rendering was asked on {device}: load the model there")
    size = settings.size or preprocess.size
    fold = check_size(module, graph, preprocess, size, device)  # BN folded while optimising; values are unfolded
    if transforms is None:
        transforms = [] if settings.transforms == "none" else standard_transforms(size, strong=settings.transforms == "strong")
    expanded = [o for o in objectives for _ in range(settings.copies)]
    copies = [c for _ in objectives for c in range(settings.copies)]
    owners = [k for k in range(len(objectives)) for _ in range(settings.copies)]
    per_batch = pass_size(settings, size, device) * settings.copies  # an objective's copies share a pass
    bar: tqdm | _Steps | None = None
    if callable(progress):
        bar = _Steps(progress, len(expanded) * settings.steps)
    elif progress:
        from tqdm import tqdm

        bar = tqdm(total=len(expanded) * settings.steps, unit="img-step", desc="render", leave=False)
    start = time.perf_counter()
    images, values, initial = [], [], []
    passes = [functools.partial(_render_batch, module, graph, preprocess, expanded[first:first + per_batch],
                                copies[first:first + per_batch], settings, size, device, transforms, fold, bar)
              for first in range(0, len(expanded), per_batch)]
    workers = parallel_passes(settings, len(passes), device)
    try:
        if workers == 1:
            done = [run() for run in passes]
        else:  # threads: the ops release the GIL, and TorchFunctionModes are per thread
            with ThreadPoolExecutor(workers, thread_name_prefix="viscnn-render") as pool:
                done = list(pool.map(_one_thread, passes))
        for got in done:
            images.append(got[0])
            values.append(got[1])
            initial.append(got[2])
    finally:
        if bar is not None:
            bar.close()
    return RenderResult(list(objectives), torch.cat(images), torch.cat(values), torch.cat(initial),
                        time.perf_counter() - start, settings, owners)


def render_split(module: nn.Module, graph: Graph, preprocess: Preprocess, objectives: Sequence[Target],
                 settings: RenderSettings | None = None, *, device: str | torch.device | None = None,
                 progress: bool = False) -> RenderResult:
    """`render`, with the objectives dealt across the processes of a torchrun group: each renders its share
    and every process gets the whole result, in the order of `objectives` (a render depends only on its
    seed, objective and settings). Outside torchrun, `render`."""
    if not distributed.active():
        return render(module, graph, preprocess, objectives, settings, device=device, progress=progress)
    settings = settings or RenderSettings()
    check_settings(settings)
    if not objectives:
        raise ViscnnError("nothing to render: give at least one objective")
    mine = distributed.assign([1.0] * len(objectives))  # equal costs: dealt round-robin
    start = time.perf_counter()

    def work() -> tuple[list[int], torch.Tensor, torch.Tensor, torch.Tensor] | None:
        if not mine:
            return None
        done = render(module, graph, preprocess, [objectives[k] for k in mine], settings, device=device,
                      progress=progress and distributed.is_main())
        return mine, done.images, done.values, done.initial_values

    per_objective: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
    for part in distributed.gather(work):
        if part is None:
            continue
        indices, images, values, initial = part
        copies = settings.copies
        for j, k in enumerate(indices):
            rows = slice(j * copies, (j + 1) * copies)
            per_objective[k] = (images[rows], values[rows], initial[rows])
    order = range(len(objectives))
    return RenderResult(list(objectives), torch.cat([per_objective[k][0] for k in order]),
                        torch.cat([per_objective[k][1] for k in order]), torch.cat([per_objective[k][2] for k in order]),
                        time.perf_counter() - start, settings,
                        [k for k in order for _ in range(settings.copies)])


def measure(module: nn.Module, graph: Graph, objective: Target, x: torch.Tensor, batch: int = 32) -> torch.Tensor:
    """One objective's value on each of a set of normalised images `x` [N, C, H, W] (no gradients)."""
    out = []
    with torch.no_grad():
        for start in range(0, x.shape[0], batch):
            chunk = x[start:start + batch]
            out.append(forward(module, graph, [objective] * chunk.shape[0], chunk)[0].cpu())
    return torch.cat(out)

