"""Node vectors that need no image set (filter weights) or that come from feature visualizations.

- `weight_vectors`: each filter's kernels, flattened (the cheap "weight similarity" projection).
- `featurevis_vectors`: each node's mean activation in response to the feature visualization of every
  node of its layer (the paper's "feature-viz UMAP"): nodes excited by each other's renders end up
  near each other. The renders are an input: any [C, channels, H, W] batch of preprocessed images.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from viscnn.errors import ViscnnError
from viscnn.graph import Graph
from viscnn.graph.recorder import Recorder


def weight_vectors(model: nn.Module, graph: Graph, layer: str) -> np.ndarray:
    """[C_out, C_in/groups * kh * kw]: the layer's filters flattened (BN scale left out: rows are normalised later)."""
    if layer not in graph or graph[layer].kind != "conv":
        raise ViscnnError(f"unknown conv layer {layer!r}")
    try:
        kernels = graph.kernels(model, layer)
    except KeyError as exc:
        raise ViscnnError(f"layer {layer} has no weight parameter to compare filters by") from exc
    return kernels.flatten(1).double().cpu().numpy()


@torch.no_grad()
def layer_activations(model: nn.Module, graph: Graph, layer: str, images: torch.Tensor,
                      batch_size: int = 32) -> torch.Tensor:
    """[N, C]: the mean of each of `layer`'s node maps (BN folded) for each image; the pass stops at the layer."""
    if layer not in graph or graph[layer].kind != "conv":
        raise ViscnnError(f"unknown conv layer {layer!r}")
    if images.dim() != 4 or tuple(images.shape[1:]) != tuple(graph.layers["input"].output_shape):
        raise ViscnnError(f"renders must be [N, {', '.join(map(str, graph.layers['input'].output_shape))}] model inputs, "
                          f"got {list(images.shape)}")
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    rows = []
    for begin in range(0, len(images), batch_size):
        recorder = Recorder(graph, stop_at=layer, keep={layer})
        recorder.run(model, images[begin:begin + batch_size].to(device))
        rows.append(recorder.calls[layer].ready_map().mean(dim=(2, 3)).float().cpu())
    return torch.cat(rows)


def featurevis_vectors(model: nn.Module, graph: Graph, layer: str, renders: torch.Tensor,
                       batch_size: int = 32) -> np.ndarray:
    """[C, C]: row i holds node i's mean activation to the render of each node j of the layer.

    `renders[j]` is node j's feature visualization as a preprocessed model input. Each column (one
    render's effect on the whole layer) is standardised, so that a render that drives every node hard
    does not dominate; rows are L2-normalised by the projection.
    """
    channels = graph[layer].out_channels if layer in graph else None
    if channels is None or graph[layer].kind != "conv":
        raise ViscnnError(f"unknown conv layer {layer!r}")
    if renders.dim() != 4 or renders.shape[0] != channels:
        raise ViscnnError(f"layer {layer} has {channels} nodes: give one render per node ([{channels}, C, H, W]), "
                          f"got {list(renders.shape)}")
    activations = layer_activations(model, graph, layer, renders, batch_size).double().numpy()  # [render j, node i]
    centred = activations - activations.mean(axis=1, keepdims=True)
    spread = centred.std(axis=1, keepdims=True)
    standardised = np.divide(centred, spread, out=np.zeros_like(centred), where=spread > 0)
    return standardised.T.copy()
