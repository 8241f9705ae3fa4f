"""Fixtures shared by the feature-visualization tests."""
import pytest
import torch

from viscnn.graph import build_graph
from viscnn.models import load_model


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Two cores shared with other jobs: more threads only oversubscribe them (10-20x slower here)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def fmnist():
    loaded = load_model("fmnist-convnet")
    return loaded, build_graph(loaded.module, loaded.input_shape, loaded.name)
