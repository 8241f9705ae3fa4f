"""magnitude: keep the kernels with the largest (BN-folded) L2 norm; no images needed."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from viscnn.circuits.methods import Batch, kernel_norms, register
from viscnn.graph import Graph
from viscnn.scoring.scores import Scores
from viscnn.scoring.targets import Target


@register("magnitude", description="kernel L2 norm with BN folded in")
def magnitude(model: nn.Module, graph: Graph, batches: Sequence[Batch], target: Target, keep: float, *, seed: int = 0,
              device: str | torch.device = "cpu") -> Scores:
    return kernel_norms(model, graph, batches, target, device=device)
