"""The scoring engine: one forward and one backward per batch give every node and edge score.

Images stream in batches; sums are kept per layer and divided by the image count at the end. Under
torchrun, each process scores its share of the images (`viscnn.distributed.share`) and, with
`split=True`, the sums are added across the processes in float64, so N processes give the
single-process scores.
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from viscnn import distributed
from viscnn.errors import ViscnnError
from viscnn.graph import Graph
from viscnn.graph.recorder import ConvCall, Recorder
from viscnn.scoring import baseline as baseline_sums
from viscnn.scoring.criteria import CRITERIA, NEEDS_GRADIENT, edge_sums, node_sums, weight_scores
from viscnn.scoring.scores import Scores
from viscnn.scoring.targets import Target

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass
class Sums:
    """Per-criterion, per-layer sums over the images seen so far."""

    count: int = 0
    nodes: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    edges: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    fixed: dict[str, tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]] = field(default_factory=dict)
    calls: dict[str, ConvCall] = field(default_factory=dict)  # the first batch's calls (weights, geometry)

    def add(self, table: dict[str, dict[str, torch.Tensor]], criterion: str, layer: str, value: torch.Tensor) -> None:
        bucket = table.setdefault(criterion, {})
        bucket[layer] = bucket[layer] + value if layer in bucket else value.detach()

    def all_reduce(self) -> None:
        """Sum the image sums and counts of every process, in float64 (weights need no reduction)."""
        self.count = int(distributed.all_sum(torch.tensor([float(self.count)], dtype=torch.float64)).item())
        for table in (self.nodes, self.edges):
            for criterion in sorted(table):
                bucket = table[criterion]
                for layer in sorted(bucket):
                    bucket[layer] = distributed.all_sum(bucket[layer].double()).float()


def scored_layers(graph: Graph, target: Target) -> list[str]:
    """The conv layers a target depends on (all of them for loss and logits), in call order."""
    if target.layer is None:  # not inside
        return [layer.name for layer in graph.conv_layers]
    return [name for name in graph.upstream(target.layer) if graph[name].kind == "conv"] + [target.layer]


def accumulate(model: nn.Module, graph: Graph, batches: Iterable[Batch], target: Target, criteria: Sequence[str], *,
               edges: bool | Sequence[str] = True, device: str | torch.device = "cpu",
               max_bytes: int = 256 << 20, sums: Sums | None = None, baseline: str = "zero") -> Sums:
    """Add every batch's per-layer criterion sums to `sums`.

    A baseline other than "zero" also keeps the spatial sums its correction needs (see baseline.py).
    """
    unknown = [c for c in criteria if c not in CRITERIA]
    if unknown:
        raise ViscnnError(f"unknown criterion {unknown[0]!r}: choose from {', '.join(CRITERIA)}")
    sums = sums or Sums()
    layers = scored_layers(graph, target)
    needs_grad = any(c in NEEDS_GRADIENT for c in criteria)
    image_criteria = [c for c in criteria if c != "weight"]
    edge_criteria = set(image_criteria if edges is True else (edges or []))
    keep_spatial = baseline != "zero" and "taylor_signed" in criteria
    copies = [False, True]
    for x, labels in batches:
        x = x.to(device)
        if not torch.isfinite(x).all():
            raise ViscnnError("the images contain NaN or infinite values")
        x.requires_grad_(needs_grad)
        # first without copying the maps the model goes on with; if an in-place op rewrote one, again with copies
        for copy in list(copies):
            recorder = Recorder(graph, stop_at=target.layer if target.inside else None, keep=set(layers), copy=copy)
            with torch.set_grad_enabled(needs_grad):
                output = recorder.run(model, x)
            if not recorder.overwritten():
                break
            copies = [True]  # this model rewrites maps in place: copy from now on
        calls = recorder.calls
        if keep_spatial and not sums.calls:
            sums.calls = {name: calls[name] for name in layers}
        if "weight" in criteria and "weight" not in sums.fixed:
            fixed = {name: weight_scores(calls[name]) for name in layers if name in calls}
            sums.fixed["weight"] = ({k: v[0] for k, v in fixed.items()}, {k: v[1] for k, v in fixed.items()})
        sums.count += x.shape[0]
        if not image_criteria:
            continue
        node_grads: dict[str, torch.Tensor | None] = {}
        out_grads: dict[str, torch.Tensor | None] = {}
        if needs_grad:
            if target.layer is not None:  # inside
                values = target.from_map(calls[target.layer].ready_map())
            else:
                values = target.from_output(output, labels)
            if not torch.isfinite(values).all():
                raise ViscnnError(f"target {target} is not finite on these images")
            wanted = [calls[n].ready_map() for n in layers] + [calls[n].output for n in layers]
            grads = torch.autograd.grad(values.sum(), wanted, allow_unused=True)
            node_grads = dict(zip(layers, grads[: len(layers)]))
            out_grads = dict(zip(layers, grads[len(layers):]))
        with torch.no_grad():
            for name in layers:
                call = calls[name]
                node_map = call.ready_map().detach()
                grad = node_grads.get(name)
                if needs_grad and grad is None:  # the layer does not reach the target
                    grad = torch.zeros_like(node_map)
                for criterion, value in node_sums(set(image_criteria), node_map, grad).items():
                    sums.add(sums.nodes, criterion, name, value)
                if keep_spatial:
                    assert grad is not None  # keep_spatial is for taylor_signed, which needs the gradient
                    out_grad = out_grads.get(name)
                    sums.add(sums.nodes, baseline_sums.MAP, name, node_map.sum(0))
                    sums.add(sums.nodes, baseline_sums.GRAD, name, grad.sum(0))
                    sums.add(sums.edges, baseline_sums.INPUT, name, call.input.detach().sum(0))
                    sums.add(sums.edges, baseline_sums.OUT_GRAD, name,
                             out_grad.sum(0) if out_grad is not None else torch.zeros_like(call.output[0]))
                for criterion in image_criteria:
                    if criterion in edge_criteria:
                        out_grad = out_grads.get(name)
                        if criterion in NEEDS_GRADIENT and out_grad is None:
                            out_grad = torch.zeros_like(call.output)
                        sums.add(sums.edges, criterion, name, edge_sums(criterion, call, out_grad, max_bytes))
    return sums


def apply_baseline(sums: Sums, reference: baseline_sums.Reference | None) -> None:
    """Turn the zero-baseline signed Taylor sums into sums against the mean maps or a reference."""
    if "taylor_signed" not in sums.nodes or baseline_sums.GRAD not in sums.nodes:
        return
    for name, grad_sum in sums.nodes[baseline_sums.GRAD].items():
        ref_map = reference.maps[name] if reference else sums.nodes[baseline_sums.MAP][name] / sums.count
        sums.nodes["taylor_signed"][name] = sums.nodes["taylor_signed"][name] - baseline_sums.node_correction(grad_sum, ref_map)
        if name in sums.edges.get("taylor_signed", {}):
            ref_input = reference.inputs[name] if reference else sums.edges[baseline_sums.INPUT][name] / sums.count
            correction = baseline_sums.edge_correction(sums.calls[name], sums.edges[baseline_sums.OUT_GRAD][name], ref_input)
            sums.edges["taylor_signed"][name] = sums.edges["taylor_signed"][name] - correction


def reference_maps(model: nn.Module, graph: Graph, image: torch.Tensor, device: str | torch.device = "cpu") -> baseline_sums.Reference:
    """The node maps and conv inputs one reference image (preprocessed, [C, H, W]) gives."""
    recorder = Recorder(graph)
    with torch.no_grad(), recorder:
        model(image[None].to(device))
    return baseline_sums.Reference({n: c.ready_map()[0] for n, c in recorder.calls.items()},
                                   {n: c.input[0] for n, c in recorder.calls.items()})


def to_scores(sums: Sums, graph: Graph, target: Target, criteria: Sequence[str], *, images: str,
              model_id: str = "", seconds: float = 0.0) -> dict[str, Scores]:
    """Divide the sums by the image count: one Scores per criterion."""
    if sums.count == 0:
        raise ViscnnError(f"image set {images!r} is empty: nothing to score")
    groups = {layer.name: layer.groups for layer in graph.conv_layers}
    result = {}
    for criterion in criteria:
        if criterion == "weight":
            nodes, edge_table = sums.fixed["weight"]
        else:
            nodes = {k: v / sums.count for k, v in sums.nodes.get(criterion, {}).items()}
            edge_table = {k: v / sums.count for k, v in sums.edges.get(criterion, {}).items()}
        result[criterion] = Scores(criterion, str(target), images, sums.count,
                                   {k: v.float().cpu() for k, v in nodes.items()},
                                   {k: v.float().cpu() for k, v in edge_table.items()},
                                   {k: groups[k] for k in nodes}, model_id, seconds)
    return result


def score_batches(model: nn.Module, graph: Graph, batches: Iterable[Batch], target: Target,
                  criteria: Sequence[str] = ("taylor",), *, edges: bool | Sequence[str] = True, images: str = "images",
                  device: str | torch.device = "cpu", model_id: str = "", max_bytes: int = 256 << 20,
                  baseline: str | torch.Tensor = "zero", split: bool = False) -> dict[str, Scores]:
    """Scores of every node (and edge) for each criterion, over the batches given.

    `edges` is True (edge scores for every criterion), False, or the criteria to score edges for.
    `baseline` (signed Taylor only): "zero", "mean" (each map's mean over the images) or a reference
    image tensor [C, H, W] (preprocessed) whose maps replace a removed one.
    `split`: the images are split across the processes of a torch.distributed group (the caller gives
    each its share); the sums are added across them here and every process gets the whole scores.
    """
    start = time.perf_counter()
    if isinstance(baseline, torch.Tensor):
        image, mode = baseline, "image"
    elif baseline in ("zero", "mean"):
        image, mode = None, baseline
    else:
        raise ViscnnError(f"unknown baseline {baseline!r}: use zero, mean or a reference image")
    def work() -> Sums:
        return accumulate(model, graph, batches, target, criteria, edges=edges, device=device, max_bytes=max_bytes,
                          baseline=mode)

    if split and distributed.active():
        sums = distributed.agree(work)  # a fault in one process's share stops them all, before the sums meet
        sums.all_reduce()
    else:
        sums = work()
    if mode != "zero" and sums.count:
        apply_baseline(sums, reference_maps(model, graph, image, device) if image is not None else None)
    return to_scores(sums, graph, target, criteria, images=images, model_id=model_id, seconds=time.perf_counter() - start)
