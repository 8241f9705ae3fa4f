"""Fixtures shared by the feature-visualization tests."""
import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Two cores shared with other jobs: more threads only oversubscribe them (10-20x slower here)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

