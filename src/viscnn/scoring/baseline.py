"""Baselines for the signed Taylor score: what a removed map is replaced by.

With the zero baseline a map's removal sets it to 0. With a 'mean' baseline it is replaced by its
mean over the image set; with a reference image, by the map that image gives. Because the score is
linear in the baseline, no second pass is needed: the engine also sums the maps, conv inputs and
gradients over the images, and the correction  sum_n <g_n, ref> = <sum_n g_n, ref>  is applied at
the end (for edges through one weight-gradient convolution: the edge map is linear in its input).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn.grad import conv2d_weight

from viscnn.graph.recorder import ConvCall
from viscnn.scoring.criteria import geometry

# names of the extra sums kept in the engine's Sums tables
MAP, GRAD, INPUT, OUT_GRAD = "_map", "_grad", "_input", "_out_grad"


@dataclass
class Reference:
    """Per layer: the baseline node map [C, H, W] and conv input [C_in, H_in, W_in]."""

    maps: dict[str, torch.Tensor]
    inputs: dict[str, torch.Tensor]


def node_correction(grad_sum: torch.Tensor, reference_map: torch.Tensor) -> torch.Tensor:
    """[C]: sum over images and positions of g * ref, from the summed gradient."""
    return (grad_sum * reference_map).sum(dim=(1, 2))


def edge_correction(call: ConvCall, out_grad_sum: torch.Tensor, reference_input: torch.Tensor) -> torch.Tensor:
    """[C_out, C_in/g]: sum over images and positions of g_j * (W_ji conv ref_i)."""
    geo = geometry(call)
    weight = call.weight.detach()
    padded = geo.pad(reference_input[None])
    weight_grad = conv2d_weight(padded, weight.shape, out_grad_sum[None], geo.stride, 0, geo.dilation, geo.groups)
    return (weight * weight_grad).sum(dim=(2, 3))
