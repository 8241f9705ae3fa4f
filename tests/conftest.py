"""Models shared by the whole suite: each is loaded and traced once per session (tests must not change them)."""
import pytest
import torch

from viscnn.data import open_image_sets
from viscnn.graph import build_graph
from viscnn.models import load_model


@pytest.fixture(scope="session")
def fmnist():
    """The trained fmnist-convnet and its graph."""
    loaded = load_model("fmnist-convnet")
    return loaded, build_graph(loaded.module, loaded.input_shape, loaded.name)


@pytest.fixture(scope="session")
def lite0():
    """EfficientNet-Lite0 with its ImageNet weights, and its graph."""
    loaded = load_model("efficientnet-lite0")
    return loaded, build_graph(loaded.module, loaded.input_shape, loaded.name)


@pytest.fixture(scope="session")
def fmnist_sets():
    """4 real Fashion-MNIST test images of each of the 10 classes, one set per class plus overall."""
    return open_image_sets("fashion-mnist:test:4")


@pytest.fixture(scope="module")
def single_thread():
    """Torch on one thread for a module's tests (two cores shared with other jobs: more threads only
    oversubscribe them, 10-20x slower here); the thread count is restored after the module."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
