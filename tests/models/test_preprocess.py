"""Preprocessing contracts: `to_pixels` undoes `normalize`; a model's class names come from its vocabulary."""
import pytest
import torch

from viscnn.errors import ViscnnError
from viscnn.models import ZOO, Preprocess, class_names, load_model


def test_to_pixels_inverts_normalize_and_clamps():
    pre = Preprocess(size=4, resize=None, mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3))
    pixels = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(pre.to_pixels(pre.normalize(pixels)), pixels, atol=1e-6)
    assert torch.allclose(pre.to_pixels(pre.normalize(pixels[0])), pixels[0], atol=1e-6)  # one image [C, H, W]
    far = pre.normalize(torch.tensor([-1.0, 0.5, 2.0]).view(3, 1, 1))
    assert pre.to_pixels(far).flatten().tolist() == [0.0, 0.5, 1.0]
    grey = Preprocess(size=4, resize=None, mean=(0.5,), std=(0.25,), channels=1)
    assert pre.to_pixels(torch.zeros(3, 2, 2)).dtype == torch.float32
    assert torch.allclose(grey.to_pixels(torch.full((1, 1, 2, 2), -1.0)), torch.full((1, 1, 2, 2), 0.25))


def test_class_names_by_vocabulary(fmnist):
    loaded, _ = fmnist
    assert loaded.class_names == class_names("fashion-mnist")
    assert loaded.class_names[0] == "T-shirt/top" and len(loaded.class_names) == 10
    assert class_names(ZOO["efficientnet-lite0"].classes)[0] == "tench" and len(class_names("imagenet")) == 1000
    assert class_names(None) is None
    loaded.class_names.append("not kept")  # a fresh list each time: callers cannot change the model's
    assert len(loaded.class_names) == 10
    with pytest.raises(ViscnnError, match="unknown class names 'klingon'"):
        class_names("klingon")


def test_class_names_of_a_library_model_are_the_ones_its_library_gave():
    loaded = load_model("tv:alexnet")
    assert loaded.classes is None and loaded.class_names == loaded.extra["class_names"]
    assert len(loaded.class_names) == 1000 and loaded.class_names[0] == "tench"
