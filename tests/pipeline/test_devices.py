"""Batch sizes by device: the CPU defaults as given; a number asked for is kept; nonsense is one clear error."""
import pytest

from viscnn.errors import ViscnnError
from viscnn.pipeline.devices import batch_size, per_image_bytes


def test_cpu_keeps_its_default_and_a_given_size_is_kept(fmnist):
    _, graph = fmnist
    assert batch_size(None, graph, "cpu", cpu=32) == 32
    assert batch_size(None, graph, "cpu", cpu=64, gradients=False) == 64
    assert batch_size(7, graph, "cuda:3", cpu=32) == 7  # never asks the device when told
    with pytest.raises(ViscnnError, match="--batch-size must be at least 1, not 0"):
        batch_size(0, graph, "cpu", cpu=32)


def test_memory_per_image_counts_every_map(fmnist):
    _, graph = fmnist
    maps = 32 * 28 * 28 + 28 * 28  # features.0's output and input alone
    assert per_image_bytes(graph, gradients=False) > 4 * maps
    assert per_image_bytes(graph) == 4 * per_image_bytes(graph, gradients=False)
    assert per_image_bytes(graph, gradients=False, size=56) == pytest.approx(4 * per_image_bytes(graph, gradients=False), rel=1e-6)
