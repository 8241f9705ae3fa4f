"""The real fmnist-convnet (trained weights) with its graph, and a few real Fashion-MNIST test images."""
import pytest
import torch

from viscnn.data import open_image_sets
from viscnn.graph import build_graph
from viscnn.models import load_model


@pytest.fixture(scope="session")
def fmnist():
    torch.set_num_threads(1)
    loaded = load_model("fmnist-convnet")
    return loaded, build_graph(loaded.module, loaded.input_shape, loaded.name)


@pytest.fixture(scope="session")
def fmnist_sets():
    return open_image_sets("fashion-mnist:test:4")  # 4 images of each of the 10 classes
