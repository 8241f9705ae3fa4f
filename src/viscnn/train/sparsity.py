r"""Hierarchical group sparsity on the 2D kernels of conv layers: penalty, proximal step, statistics.

For a conv weight :math:`W \in \mathbb{R}^{C_{out} \times C_{in} \times k \times k}` the penalty is a
group lasso over two nested levels of groups, each group's L2 norm scaled by the square root of its size:

.. math::

    \Omega(W) = a_k \sum_{j,i} \sqrt{k^2}\,\lVert W_{j,i} \rVert_2
              + a_f \sum_{j} \sqrt{C_{in} k^2}\,\lVert W_{j} \rVert_2
              \;[+\, a_c \sum_{i} \sqrt{C_{out} k^2}\,\lVert W_{:,i} \rVert_2]

where :math:`W_{j,i}` is one 2D kernel (an edge of the kernel graph), :math:`W_j` one filter (a node),
:math:`W_{:,i}` one input-channel slice. The defaults (`GroupLevels`) are :math:`a_k = 1, a_f = 0.5, a_c = 0`:
the lighter filter level still removes whole filters but leaves more of the sparsity to single kernels
(edges); on fmnist-convnet it gave more zero kernels at higher accuracy than :math:`a_f = 1` did.
The training loss is
:math:`\mathrm{CE} + \lambda \sum_{\text{conv layers}} \Omega(W)`. This is the convex, group-lasso member of
the hierarchical group sparse regularisers of Mitsuno, Miyao & Kurita (2020), "Hierarchical group sparse
regularization for deep convolutional neural networks", used for the 'sparse AlexNet' of the viscnn paper.

It is optimised by proximal gradient: after every optimiser step with learning rate :math:`\eta`, each group
is soft-thresholded, :math:`g \leftarrow g \cdot \max(0,\ 1 - \eta\lambda a \sqrt{|g|} / \lVert g \rVert_2)`,
kernels first, then filters (then input slices). Kernels nest inside filters (a tree of groups), so this
leaves-to-root composition is the exact proximal operator of :math:`\eta\lambda\,\Omega` (Jenatton et al.,
JMLR 2011); with the input-slice level on, the groups overlap and the composition is only an approximation.
Unlike a subgradient of the penalty, the prox sets whole kernels to exactly zero. (With momentum SGD, as in
`viscnn.train.loop`, this is the usual heuristic proximal SGD rather than the textbook algorithm.)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

#: A kernel counts as near-zero when its L2 norm is <= this fraction of the largest kernel norm in its layer.
NEAR_ZERO_REL = 1e-3


@dataclass(frozen=True)
class GroupLevels:
    """Weights of the three group levels in the penalty (0 switches a level off)."""

    kernel: float = 1.0
    filter: float = 0.5
    input: float = 0.0


def conv_weights(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """(module name, weight) of every Conv2d in the model, in definition order."""
    return [(name, module.weight) for name, module in model.named_modules() if isinstance(module, nn.Conv2d)]


def kernel_norms(weight: torch.Tensor) -> torch.Tensor:
    """L2 norm of every 2D kernel of a conv weight [C_out, C_in, kh, kw] -> [C_out, C_in]."""
    return weight.detach().flatten(2).norm(dim=2)


def penalty(weight: torch.Tensor, levels: GroupLevels = GroupLevels()) -> torch.Tensor:
    """Omega(W) of the module docstring for one conv weight (differentiable; for logging and checks)."""
    c_out, c_in = weight.shape[:2]
    area = weight.shape[2] * weight.shape[3]
    squares = weight.pow(2).flatten(2).sum(dim=2)  # [C_out, C_in]
    total = weight.new_zeros(())
    if levels.kernel:
        total = total + levels.kernel * math.sqrt(area) * squares.sqrt().sum()
    if levels.filter:
        total = total + levels.filter * math.sqrt(c_in * area) * squares.sum(dim=1).sqrt().sum()
    if levels.input:
        total = total + levels.input * math.sqrt(c_out * area) * squares.sum(dim=0).sqrt().sum()
    return total


def _shrink(norms: torch.Tensor, threshold: float) -> torch.Tensor:
    """Group soft-threshold factors max(0, 1 - threshold / norm), with 0 for zero-norm groups."""
    safe = torch.where(norms > 0, norms, torch.ones_like(norms))
    return torch.where(norms > threshold, 1.0 - threshold / safe, torch.zeros_like(norms))


@torch.no_grad()
def prox_(weight: torch.Tensor, step: float, levels: GroupLevels = GroupLevels()) -> torch.Tensor:
    """Apply the proximal operator of ``step * Omega`` to a conv weight in place (``step`` = lr * lambda).

    Kernels whose norm is below ``step * a_k * k`` become exactly zero, the others shrink towards zero
    by that much; then the same happens to whole filters with threshold ``step * a_f * sqrt(C_in) * k``.
    """
    c_out, c_in = weight.shape[:2]
    area = weight.shape[2] * weight.shape[3]
    if levels.kernel:
        factor = _shrink(kernel_norms(weight), step * levels.kernel * math.sqrt(area))
        weight.mul_(factor[:, :, None, None])
    if levels.filter:
        factor = _shrink(weight.flatten(1).norm(dim=1), step * levels.filter * math.sqrt(c_in * area))
        weight.mul_(factor[:, None, None, None])
    if levels.input:
        factor = _shrink(weight.transpose(0, 1).flatten(1).norm(dim=1), step * levels.input * math.sqrt(c_out * area))
        weight.mul_(factor[None, :, None, None])
    return weight


@dataclass(frozen=True)
class LayerSparsity:
    """How many 2D kernels of one conv layer are exactly zero / near zero."""

    name: str
    kernels: int
    zero: int
    near_zero: int
    dead_filters: int

    @property
    def near_zero_fraction(self) -> float:
        return self.near_zero / self.kernels


def layer_sparsity(model: nn.Module, rel: float = NEAR_ZERO_REL) -> list[LayerSparsity]:
    """Per conv layer: kernel count, exactly-zero kernels, near-zero kernels (norm <= rel * layer max), all-zero filters."""
    layers = []
    for name, weight in conv_weights(model):
        norms = kernel_norms(weight)
        limit = rel * float(norms.max())
        layers.append(LayerSparsity(name, norms.numel(), int((norms == 0).sum()), int((norms <= limit).sum()),
                                    int((norms.sum(dim=1) == 0).sum())))
    return layers
