"""No silent input assumptions: a model file without PREPROCESS takes its input from the images, and says so once."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

from viscnn.errors import ViscnnError
from viscnn.models import load_model

NET = """
import torch
from torch import nn

def make():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 2))
"""


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "net.py"
    path.write_text(textwrap.dedent(NET))
    return path


def test_size_and_channels_come_from_the_tensors_and_are_said(model_file, tmp_path, capsys):
    torch.save(torch.rand(4, 3, 32, 32), tmp_path / "t.pt")
    loaded = load_model(f"{model_file}:make", images=str(tmp_path / "t.pt"))
    pre = loaded.preprocess
    assert (pre.size, pre.resize, pre.channels, pre.mean, pre.std) == (32, None, 3, (0.0,) * 3, (1.0,) * 3)
    said = capsys.readouterr().err
    assert said.count("has no PREPROCESS") == 1 and "3x32x32" in said and "without resizing or normalisation" in said


def test_without_images_or_preprocess_it_stops(model_file):
    with pytest.raises(ViscnnError, match="has no PREPROCESS, so viscnn does not know its input size"):
        load_model(f"{model_file}:make")


def test_images_of_several_sizes_give_no_size(model_file, tmp_path):
    from PIL import Image

    (tmp_path / "set").mkdir()
    Image.new("RGB", (32, 32)).save(tmp_path / "set" / "a.png")
    Image.new("RGB", (40, 30)).save(tmp_path / "set" / "b.png")
    with pytest.raises(ViscnnError, match="differ in size"):
        load_model(f"{model_file}:make", images=str(tmp_path / "set"))


def test_cli_feeds_the_tensors_as_they_are_and_says_it_once(model_file, tmp_path):
    torch.save({"images": torch.rand(6, 3, 32, 32), "labels": torch.tensor([0, 1, 0, 1, 0, 1])}, tmp_path / "t.pt")
    done = subprocess.run([sys.executable, "-m", "viscnn", "score", "--model", f"{model_file}:make", "--images",
                           str(tmp_path / "t.pt"), "--input", "overall", "--target", "loss", "--no-cache"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("has no PREPROCESS") == 1


def test_each_model_has_its_own_default_images(model_file, tmp_path):
    assert load_model("fmnist-convnet").default_images().startswith("fashion-mnist")
    assert load_model("efficientnet-lite0").default_images() == "demo"
    torch.save(torch.rand(2, 3, 32, 32), tmp_path / "t.pt")
    with pytest.raises(ViscnnError, match="has no default image set"):
        load_model(f"{model_file}:make", images=str(tmp_path / "t.pt")).default_images()


def test_the_server_of_fmnist_opens_fashion_mnist_by_default():
    from viscnn.server.launch import build_state

    state = build_state("fmnist-convnet", no_cache=True)
    assert state.images_spec.startswith("fashion-mnist")
    assert "ankle_boot" in state.image_sets and len(state.image_sets["overall"]) == 1000
