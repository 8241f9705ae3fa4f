"""Class-wise node importance: for every class, every node's Taylor score, in as few backward passes as possible.

Two targets per class:

- ``loss``: the cross-entropy of the class's own images. Every image's loss reaches only its own row of
  every node map (the model runs in eval mode), so the gradient of the *summed* loss of a batch holds each
  image's own gradient: one backward per batch gives each image's per-node score, and summing the rows
  by label gives every class at once, whatever the number of classes.
- ``logit``: the class's logit over all images (for small sets, a few images per class). Each class
  needs its own gradient; all of them reuse one forward pass (the graph is retained), and a chunk of
  classes goes through one batched vector-Jacobian product (``torch.autograd.grad(...,
  is_grads_batched=True)``), chunks sized to a memory budget. On CPU the batching itself buys nothing
  (efficientnet-lite0, 4 photos x 8 classes: 2.2-2.6 CPU-s in one chunk, 1.8 in chunks of one); the
  shared forward is what saves time over one scoring pass per class.

Node maps and their gradients come from `viscnn.graph.recorder.Recorder` (BN folded in).
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from viscnn import distributed
from viscnn.errors import ViscnnError
from viscnn.graph import Graph
from viscnn.graph.recorder import Recorder

Batch = tuple[torch.Tensor, torch.Tensor]
MODES = ("loss", "logit")
CRITERIA = ("taylor", "taylor_signed")
MIN_PER_CLASS = 5  # fewer images than this in some class: mode "auto" takes the logits


@dataclass
class ClassScores:
    """`nodes[layer]` is [C, K]: node c's mean score for class `classes[k]`."""

    classes: list[int]
    counts: list[int]  # images averaged per class (loss mode: the class's own; logit mode: all)
    nodes: dict[str, torch.Tensor]
    mode: str = "loss"
    criterion: str = "taylor"
    seconds: float = 0.0
    meta: dict = field(default_factory=dict)

    def vectors(self, layer: str) -> np.ndarray:
        """[C, K] float64: each node's class-wise vector scaled to length 1 (all-zero rows stay zero)."""
        values = self.nodes[layer].double().numpy()
        norms = np.linalg.norm(values, axis=1, keepdims=True)
        return np.divide(values, norms, out=np.zeros_like(values), where=norms > 0)

    def save(self, path: str | Path) -> None:
        """A .safetensors file: `nodes/<layer>`, `classes`, `counts`, and the header as metadata."""
        from safetensors.torch import save_file

        tensors = {f"nodes/{k}": v.contiguous().float() for k, v in self.nodes.items()}
        tensors["classes"] = torch.tensor(self.classes, dtype=torch.int64)
        tensors["counts"] = torch.tensor(self.counts, dtype=torch.int64)
        header = {"mode": self.mode, "criterion": self.criterion, "seconds": self.seconds, "meta": self.meta,
                  "layers": list(self.nodes)}
        save_file(tensors, str(path), metadata={"viscnn.classwise": json.dumps(header)})

    @classmethod
    def load(cls, path: str | Path) -> ClassScores:
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as handle:
                text = (handle.metadata() or {}).get("viscnn.classwise")
                if not text:
                    raise ViscnnError(f"{path} holds no viscnn class-wise scores")
                header = json.loads(text)
                nodes = {name: handle.get_tensor(f"nodes/{name}") for name in header["layers"]}
                classes = handle.get_tensor("classes").tolist()
                counts = handle.get_tensor("counts").tolist()
        except (OSError, SafetensorError) as exc:
            raise ViscnnError(f"cannot read class-wise scores {path}: {exc}") from exc
        return cls(classes, counts, nodes, header["mode"], header["criterion"], header["seconds"], header["meta"])


def choose_mode(labels: Sequence[int]) -> str:
    """"loss" if every labelled class has at least MIN_PER_CLASS images, else "logit"."""
    known = [label for label in labels if label >= 0]
    if not known:
        return "loss"  # unlabelled images: each is its own top-1 class, and there is no class list to take logits of
    counts = np.bincount(known)
    return "loss" if counts[counts > 0].min() >= MIN_PER_CLASS else "logit"


def _per_image(criterion: str, node_map: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """[..., N, C]: each image's score of every channel (maps [..., N, C, H, W])."""
    product = node_map * grad
    if criterion == "taylor":
        return product.abs_().mean(dim=(-2, -1))
    return product.sum(dim=(-2, -1))


def _forward(model: nn.Module, graph: Graph, x: torch.Tensor, copy: bool) -> tuple[torch.Tensor, list[torch.Tensor], bool]:
    recorder = Recorder(graph, copy=copy)
    x = x.detach().requires_grad_(True)  # the model's parameters may be frozen: the graph starts at the input
    with torch.enable_grad(), recorder:
        output = model(x)
    if not isinstance(output, torch.Tensor) or output.dim() != 2:
        shape = list(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise ViscnnError(f"class-wise scores need a classifier's logits [N, classes]; the model returned {shape} "
                          "(the weights and grid projections need no classes)")
    maps = [recorder.calls[layer.name].ready_map() for layer in graph.conv_layers]
    return output, maps, recorder.overwritten()


def classwise_scores(model: nn.Module, graph: Graph, batches: Iterable[Batch], *, mode: str = "loss",
                     classes: Sequence[int] | None = None, criterion: str = "taylor", unlabelled: str = "skip",
                     device: str | torch.device = "cpu", max_bytes: int = 1 << 30,
                     progress: Callable[[int], None] | None = None, split: bool = False) -> ClassScores:
    """Every conv node's importance for each class, averaged over the class's images (loss) or all images (logit).

    `classes`: the logit indices to score in logit mode (default: the labelled classes seen in the
    batches' labels, which then must be known before the first batch: pass them). In loss mode the
    classes are those of the images; `unlabelled` says what an image with label -1 counts as: "skip"
    it, or "predict" (the model's own top-1). `progress(n_images)` is called after each batch.
    `split`: the batches are this process's share of the images under torchrun; the per-class sums and
    counts are added across the processes (float64) and every process gets the whole result.
    """
    if mode not in MODES:
        raise ViscnnError(f"unknown class-wise mode {mode!r}: use {', '.join(MODES)} or auto")
    if criterion not in CRITERIA:
        raise ViscnnError(f"unknown class-wise criterion {criterion!r}: use {', '.join(CRITERIA)}")
    if unlabelled not in ("skip", "predict"):
        raise ViscnnError(f"unknown option unlabelled={unlabelled!r}: use skip or predict")
    if mode == "logit" and not classes:
        raise ViscnnError("class-wise scores by logit need the class indices to score")
    logits = list(classes or [])  # the classes scored in logit mode
    start = time.perf_counter()
    layers = [layer.name for layer in graph.conv_layers]

    def accumulate() -> tuple[list[torch.Tensor] | None, torch.Tensor | None, int, int]:
        sums: list[torch.Tensor] | None = None
        counts: torch.Tensor | None = None
        n_images, n_outputs = 0, 0
        copy = False
        for x, labels in batches:
            x = x.to(device)
            if not torch.isfinite(x).all():
                raise ViscnnError("the images contain NaN or infinite values")
            output, maps, overwritten = _forward(model, graph, x, copy)
            if overwritten:  # an in-place op rewrote a recorded map: copy maps from now on
                copy = True
                output, maps, _ = _forward(model, graph, x, copy)
            n_outputs = output.shape[1]
            if mode == "loss":
                batch_sums, batch_counts = _loss_batch(output, maps, labels.to(device), criterion, unlabelled)
            else:
                batch_sums = _logit_batch(output, maps, logits, criterion, max_bytes)
                batch_counts = torch.full((len(logits),), x.shape[0], dtype=torch.int64)
            if sums is None or counts is None:
                sums, counts = batch_sums, batch_counts
            else:
                sums = [a + b for a, b in zip(sums, batch_sums)]
                counts = counts + batch_counts
            n_images += x.shape[0]
            if progress is not None:
                progress(x.shape[0])
        return sums, counts, n_images, n_outputs

    if split and distributed.active():  # every process has a share of the images (and so sums and counts)
        sums, counts, n_images, n_outputs = distributed.agree(accumulate)
        assert sums is not None and counts is not None  # each process has at least one image (distributed.share)
        sums = [distributed.all_sum(s) for s in sums]
        counts = distributed.all_sum(counts)
        n_images = int(distributed.all_sum(torch.tensor(n_images)))
    else:
        sums, counts, n_images, n_outputs = accumulate()
    if sums is None or counts is None:
        raise ViscnnError("the image set is empty: no class-wise scores")
    sums = [s.cpu() for s in sums]
    if mode == "loss":
        present = torch.nonzero(counts > 0).flatten()
        if present.numel() == 0:
            raise ViscnnError("no image has a label: use unlabelled='predict' to score each by its top-1 class")
        chosen = present.tolist()
    else:
        chosen = list(range(len(logits)))
    denominator = counts[chosen].clamp(min=1).double()
    nodes = {name: (s[chosen].double() / denominator[:, None]).T.float().contiguous().cpu()
             for name, s in zip(layers, sums)}
    class_ids = chosen if mode == "loss" else logits
    return ClassScores([int(c) for c in class_ids], counts[chosen].tolist(), nodes, mode, criterion,
                       time.perf_counter() - start, {"images": n_images, "outputs": int(n_outputs)})


def _loss_batch(output: torch.Tensor, maps: list[torch.Tensor], labels: torch.Tensor, criterion: str,
                unlabelled: str) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Per-class sums [n_outputs, C] of each layer and image counts [n_outputs], from one backward."""
    n_outputs = output.shape[1]
    own = output.detach().argmax(dim=1)
    if (labels >= n_outputs).any():
        raise ViscnnError(f"label {int(labels.max())} is out of range: the model has {n_outputs} outputs")
    targets = torch.where(labels >= 0, labels, own)
    use = (labels >= 0) if unlabelled == "skip" else torch.ones_like(labels, dtype=torch.bool)
    losses = F.cross_entropy(output, targets, reduction="none")
    if not torch.isfinite(losses).all():
        raise ViscnnError("the loss is not finite on these images")
    grads = torch.autograd.grad((losses * use).sum(), maps, allow_unused=True)
    index = targets[use]
    result = []
    with torch.no_grad():
        for node_map, grad in zip(maps, grads):
            table = torch.zeros(n_outputs, node_map.shape[1], dtype=torch.float64, device=node_map.device)
            if grad is not None and index.numel():
                per_image = _per_image(criterion, node_map.detach()[use], grad[use])
                table.index_add_(0, index, per_image.double())
            result.append(table)
    counts = torch.bincount(index.cpu(), minlength=n_outputs)
    return result, counts


def _logit_batch(output: torch.Tensor, maps: list[torch.Tensor], classes: list[int], criterion: str,
                 max_bytes: int) -> list[torch.Tensor]:
    """Per-class sums over the batch's images [K, C] of each layer: batched VJPs, a chunk of classes at a time."""
    n, n_outputs = output.shape
    bad = [c for c in classes if not 0 <= c < n_outputs]
    if bad:
        raise ViscnnError(f"class {bad[0]} is out of range: the model has {n_outputs} outputs")
    map_bytes = sum(m.numel() * m.element_size() for m in maps)
    chunk = max(1, min(len(classes), max_bytes // max(1, 2 * map_bytes)))
    sums = [torch.zeros(len(classes), m.shape[1], dtype=torch.float64, device=m.device) for m in maps]
    index = torch.tensor(classes, device=output.device)
    for begin in range(0, len(classes), chunk):
        part = index[begin:begin + chunk]
        seeds = torch.zeros(len(part), n, n_outputs, dtype=output.dtype, device=output.device)
        seeds[torch.arange(len(part)), :, part] = 1.0
        last = begin + chunk >= len(classes)
        grads = torch.autograd.grad(output, maps, seeds, retain_graph=not last, allow_unused=True,
                                    is_grads_batched=True)
        with torch.no_grad():
            for total, node_map, grad in zip(sums, maps, grads):
                if grad is not None:
                    total[begin:begin + len(part)] += _per_image(criterion, node_map.detach(), grad).sum(1).double()
    return sums
