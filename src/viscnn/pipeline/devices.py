"""Batch sizes for the device: the CPU defaults as they were measured, or on a GPU as many images as fit.

On CUDA a batch takes half the device's free memory at most, by an estimate of what one image costs:
every conv layer's input and output map (float32), times four when gradients flow (the maps, their
gradients and what autograd keeps for BN, ReLU and the scoring recorder). The result is a power of two
(batch shapes then repeat, which cuDNN's autotuning likes), capped at `limit`.
"""
from __future__ import annotations

import math

import torch

from viscnn.errors import ViscnnError
from viscnn.graph import Graph

GRADIENT_FACTOR = 4  # maps + gradients + what autograd saves, relative to the maps alone
MEMORY_SHARE = 0.5  # of the free device memory, for one batch


def per_image_bytes(graph: Graph, *, gradients: bool = True, size: int | None = None) -> int:
    """An estimate of the device memory one image takes in a pass (at `size` px if given, else the model's)."""
    elements = 0
    for layer in graph.conv_layers:
        elements += math.prod(layer.input_shape) + math.prod(layer.output_shape)
    if size is not None:
        base = graph.conv_layers[0].input_shape[-1] if graph.conv_layers else size
        elements = int(elements * (size / max(1, base)) ** 2)
    return max(1, elements * 4 * (GRADIENT_FACTOR if gradients else 1))


def batch_size(requested: int | None, graph: Graph, device: str | torch.device, *, cpu: int, gradients: bool = True,
               limit: int = 256, size: int | None = None) -> int:
    """`requested` if given (at least 1), else `cpu` on a CPU, else the largest power of two (up to `limit`)
    whose images fit in half the CUDA device's free memory."""
    if requested is not None:
        if requested < 1:
            raise ViscnnError(f"--batch-size must be at least 1, not {requested}")
        return requested
    where = torch.device(device)
    if where.type != "cuda":
        return cpu
    free, _ = torch.cuda.mem_get_info(where)
    fits = int(free * MEMORY_SHARE) // per_image_bytes(graph, gradients=gradients, size=size)
    return max(1, min(limit, 2 ** int(math.log2(fits)) if fits >= 1 else 1))
