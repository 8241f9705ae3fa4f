"""The hierarchical group-sparse penalty and its proximal step, checked against hand computations."""
import math

import torch
from torch import nn

from viscnn.train.sparsity import GroupLevels, layer_sparsity, penalty, prox_


def _weight() -> torch.Tensor:
    # two filters, two input channels, 1x2 kernels: kernel norms 5, 0.5 | 1, 0
    return torch.tensor([[[[3.0, 4.0]], [[0.3, 0.4]]],
                         [[[0.6, 0.8]], [[0.0, 0.0]]]])


def test_kernel_level_prox_zeroes_small_kernels_and_shrinks_the_others():
    weight = _weight()
    step = 1 / math.sqrt(2)  # threshold = step * sqrt(kernel size 2) = 1
    prox_(weight, step, GroupLevels(kernel=1.0, filter=0.0))
    expected = torch.tensor([[[[2.4, 3.2]], [[0.0, 0.0]]],   # 5 -> 4 ; 0.5 < 1 -> 0
                             [[[0.0, 0.0]], [[0.0, 0.0]]]])  # norm exactly 1 is not above the threshold -> 0
    torch.testing.assert_close(weight, expected)


def test_hierarchical_prox_is_kernels_then_filters():
    weight = _weight()
    step = 0.5  # kernel threshold 0.5*sqrt(2) = 0.7071, filter threshold 0.5*sqrt(2*2) = 1
    prox_(weight, step, GroupLevels(kernel=1.0, filter=1.0))
    k = 0.5 * math.sqrt(2)
    first = torch.tensor([3.0, 4.0]) * (1 - k / 5)  # kernel [0,0] shrinks, kernel [0,1] (0.5) is zeroed
    second = torch.tensor([0.6, 0.8]) * (1 - k / 1)  # norm 1 -> 0.2929, then its filter (norm 0.29 < 1) is zeroed
    assert second.norm() < 1
    first = first * (1 - 1 / first.norm())  # filter 0 has only one non-zero kernel left
    expected = torch.zeros(2, 2, 1, 2)
    expected[0, 0, 0] = first
    torch.testing.assert_close(weight, expected)


def test_prox_minimises_the_proximal_objective():
    torch.manual_seed(0)
    weight = torch.randn(4, 3, 3, 3) * 0.3
    step, levels = 0.05, GroupLevels(kernel=1.0, filter=1.0)
    solution = prox_(weight.clone(), step, levels)

    def objective(x):
        return 0.5 * (x - weight).pow(2).sum() + step * penalty(x, levels)

    best = objective(solution)
    for _ in range(200):
        assert objective(solution + 1e-3 * torch.randn_like(solution)) >= best - 1e-6


def test_penalty_by_hand():
    weight = _weight()
    # kernel level: sqrt(2) * (5 + 0.5 + 1 + 0); filter level: sqrt(4) * (sqrt(25.25) + 1); input level: sqrt(4) * (sqrt(26) + 0.5)
    assert math.isclose(float(penalty(weight, GroupLevels(1.0, 0.0, 0.0))), math.sqrt(2) * 6.5, rel_tol=1e-6)
    assert math.isclose(float(penalty(weight, GroupLevels(0.0, 1.0, 0.0))), 2 * (math.sqrt(25.25) + 1), rel_tol=1e-6)
    assert math.isclose(float(penalty(weight, GroupLevels(0.0, 0.0, 1.0))), 2 * (math.sqrt(26) + 0.5), rel_tol=1e-6)


def test_input_level_zeroes_an_input_slice():
    weight = _weight()
    prox_(weight, 0.3, GroupLevels(kernel=0.0, filter=0.0, input=1.0))  # threshold 0.3 * 2 = 0.6 > slice 1's norm 0.5
    assert torch.count_nonzero(weight[:, 1]) == 0 and torch.count_nonzero(weight[:, 0]) == 4


def test_layer_sparsity_counts_zero_near_zero_and_dead_filters():
    model = nn.Sequential(nn.Conv2d(2, 3, 1))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 0.0], [1e-5, 0.5], [0.0, 0.0]]).view(3, 2, 1, 1))
    (layer,) = layer_sparsity(model)
    assert (layer.kernels, layer.zero, layer.near_zero, layer.dead_filters) == (6, 3, 4, 1)
    assert layer.near_zero_fraction == 4 / 6
