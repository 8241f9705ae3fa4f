"""fmnist-convnet: architecture, weight lookup, and the committed trained weights (accuracy, sparsity)."""
import json

import pytest
import torch
from torch import nn

from viscnn.data.fashion_mnist import load_fashion_mnist
from viscnn.errors import ViscnnError
from viscnn.models import fmnist
from viscnn.models.fmnist import FmnistConvNet, load_fmnist_convnet, packaged_weights_path
from viscnn.models.zoo import ZOO, load_model
from viscnn.train.sparsity import layer_sparsity


@pytest.fixture(autouse=True)
def empty_home(monkeypatch, tmp_path):
    """Make sure the user's own trained weights never shadow the committed ones."""
    monkeypatch.setenv("VISCNN_HOME", str(tmp_path))


@pytest.fixture(scope="module")
def test_split():
    images, labels = load_fashion_mnist("test")
    return images[:2000], labels[:2000]


def _record(sparse: bool) -> dict:
    return json.loads(packaged_weights_path(sparse=sparse).with_suffix(".json").read_text())


def _accuracy(name: str, images: torch.Tensor, labels: torch.Tensor) -> float:
    loaded = load_model(name)
    inputs = loaded.preprocess.normalize(images.float().div(255).unsqueeze(1))
    with torch.no_grad():
        return float((loaded.module(inputs).argmax(1) == labels).float().mean())


def test_architecture_is_five_plain_convs():
    model = FmnistConvNet()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(1, 32), (32, 64), (64, 96), (96, 96), (96, 64)]
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)) for m in model.modules())
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_normalisation_matches_the_zoo():
    for name in fmnist.MODEL_NAMES:
        assert ZOO[name].preprocess.mean == (fmnist.MEAN,) and ZOO[name].preprocess.std == (fmnist.STD,)
        assert ZOO[name].preprocess.input_shape == (1, 28, 28)


def test_committed_weights_are_small():
    for sparse in (False, True):
        assert packaged_weights_path(sparse=sparse).stat().st_size < 2_000_000


def test_dense_model_accuracy(test_split):
    assert _accuracy("fmnist-convnet", *test_split) >= 0.88


def test_sparse_model_accuracy_and_reported_sparsity(test_split):
    assert _accuracy("fmnist-convnet-sparse", *test_split) >= 0.86
    record = _record(True)
    layers = layer_sparsity(load_fmnist_convnet(sparse=True))
    kernels = sum(layer.kernels for layer in layers)
    assert sum(layer.near_zero for layer in layers) / kernels == pytest.approx(record["zero_fraction"], abs=1e-9)
    assert sum(layer.zero for layer in layers) / kernels == pytest.approx(record["exact_zero_fraction"], abs=1e-9)
    assert {layer.name: layer.near_zero_fraction for layer in layers} == pytest.approx(record["layer_zero_fractions"])
    assert record["zero_fraction"] > 0.5


def test_home_weights_take_precedence(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(1)
    state = {k: v.contiguous() for k, v in FmnistConvNet().state_dict().items()}
    (tmp_path / "models").mkdir()
    save_file(state, str(tmp_path / "models" / "fmnist-convnet.safetensors"))
    loaded = load_fmnist_convnet()
    assert torch.equal(loaded.state_dict()["features.0.weight"], state["features.0.weight"])
    assert not loaded.training


def test_missing_weights_tell_the_user_to_train(monkeypatch, tmp_path):
    monkeypatch.setattr(fmnist, "_WEIGHTS_DIR", tmp_path / "none")
    with pytest.raises(ViscnnError, match=r"viscnn train --model fmnist-convnet-sparse"):
        load_fmnist_convnet(sparse=True)
