"""actgrad: the paper's Taylor importance, mean |activation x gradient| of each kernel's map."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from viscnn.circuits.methods import Batch, labelled, register
from viscnn.graph import Graph
from viscnn.scoring.engine import score_batches
from viscnn.scoring.scores import Scores
from viscnn.scoring.targets import Target


@register("actgrad", description="mean |map x dT/dmap| per kernel (Molchanov et al. 2017; the paper's eq. 4)")
def actgrad(model: nn.Module, graph: Graph, batches: Sequence[Batch], target: Target, keep: float, *, seed: int = 0,
            device: str | torch.device = "cpu") -> Scores:
    return score_batches(model, graph, labelled(batches), target, ("taylor",), device=device)["taylor"]


@register("actgrad_signed", description="|sum of map x dT/dmap| per kernel: the first-order effect of removing it")
def actgrad_signed(model: nn.Module, graph: Graph, batches: Sequence[Batch], target: Target, keep: float, *, seed: int = 0,
                   device: str | torch.device = "cpu") -> Scores:
    return score_batches(model, graph, labelled(batches), target, ("taylor_signed",), device=device)["taylor_signed"].abs()
