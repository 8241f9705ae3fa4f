"""snip: |dT/dmask| for a multiplicative mask on every kernel, at mask = 1 (Lee et al. 2019)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import nn

from viscnn.circuits.circuit import upstream_layers
from viscnn.circuits.methods import Batch, kernel_norms, register
from viscnn.circuits.run import target_output
from viscnn.graph import Graph
from viscnn.scoring.scores import Scores
from viscnn.scoring.targets import Target


def mask_saliency(model: nn.Module, graph: Graph, batches: Sequence[Batch], target: Target,
                  masks: dict[str, torch.Tensor], *, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """sum over batches of |dT/dmask| at the given masks (T summed over images), per layer."""
    masks = {k: v.detach().clone().float().to(device).requires_grad_(True) for k, v in masks.items()}
    totals = {k: torch.zeros_like(v) for k, v in masks.items()}
    for x, labels in batches:
        values = target_output(model, graph, x.to(device), labels, target, masks=masks)
        grads = torch.autograd.grad(values.sum(), list(masks.values()), allow_unused=True)
        for (name, _), grad in zip(masks.items(), grads):
            if grad is not None:
                totals[name] += grad.detach()
    return {k: v.abs().cpu() for k, v in totals.items()}


def ones(graph: Graph, target: Target) -> dict[str, torch.Tensor]:
    """A mask of ones over the kernels of every layer upstream of `target`."""
    return {n: torch.ones(graph[n].out_channels, graph[n].in_per_group) for n in upstream_layers(graph, target)}


@register("snip", description="|dT/dmask| on kernel masks at mask = 1")
def snip(model: nn.Module, graph: Graph, batches: Sequence[Batch], target: Target, keep: float, *, seed: int = 0,
         device: str | torch.device = "cpu") -> Scores:
    saliency = mask_saliency(model, graph, batches, target, ones(graph, target), device=device)
    shape = kernel_norms(model, graph, batches, target, device=device)
    return replace(shape, criterion="snip", edges=saliency, nodes={k: v.sum(dim=1) for k, v in saliency.items()})
