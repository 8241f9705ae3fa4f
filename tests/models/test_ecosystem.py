"""tv:NAME and timm:NAME: the library's architecture, preprocessing and class names; published weights from a cache.

No network here: each pretrained test writes a weights file into a temporary cache laid out as the library's
own, so the real loading code runs (torch hub's checkpoints folder; Hugging Face's snapshot folders).
"""
from __future__ import annotations

import os

import pytest
import torch

from viscnn.errors import ViscnnError
from viscnn.models import load_model

timm = pytest.importorskip("timm")


def test_torchvision_preprocessing_and_classes_come_from_its_weights():
    loaded = load_model("tv:resnet50")
    pre = loaded.preprocess
    assert (pre.size, pre.resize, pre.interpolation) == (224, 232, "bilinear")  # ResNet50_Weights.IMAGENET1K_V2
    assert pre.mean == pytest.approx((0.485, 0.456, 0.406))
    names = loaded.extra["class_names"]
    assert len(names) == 1000 and names[0] == "tench"
    assert not loaded.pretrained


def test_timm_preprocessing_comes_from_resolve_data_config():
    loaded = load_model("timm:resnet10t")
    config = timm.data.resolve_data_config({}, model=loaded.module)
    size = config["input_size"][-1]
    assert loaded.preprocess.size == size
    assert loaded.preprocess.resize == round(size / config["crop_pct"])
    assert loaded.preprocess.interpolation == config["interpolation"]
    assert loaded.preprocess.mean == pytest.approx(config["mean"])


@pytest.mark.parametrize("name, message", [
    ("tv:resnt50", "did you mean resnet50"),
    ("timm:resnet26dd", "did you mean resnet26d"),
    ("tv:resnet18", None),  # --pretrained without a cached file: where it would come from
])
def test_unknown_names_and_missing_weights_are_one_clear_error(name, message, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(ViscnnError) as error:
        load_model(name, pretrained=message is None)
    text = str(error.value)
    if message is None:
        assert "resnet18-f37072fd.pth" in text and str(tmp_path) in text and "--weights" in text
    else:
        assert message in text


def test_pretrained_is_refused_for_models_with_their_own_weights():
    with pytest.raises(ViscnnError, match="--pretrained is for tv:NAME and timm:NAME"):
        load_model("fmnist-convnet", pretrained=True)


def test_torchvision_pretrained_weights_load_from_torch_hubs_cache(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    weights = torchvision.models.ResNet18_Weights.DEFAULT
    reference = torchvision.models.resnet18()
    with torch.no_grad():
        for parameter in reference.parameters():
            parameter.normal_(generator=torch.Generator().manual_seed(3))
    folder = tmp_path / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save(reference.state_dict(), folder / os.path.basename(weights.url))
    loaded = load_model("tv:resnet18", pretrained=True)
    assert loaded.pretrained
    for name, tensor in reference.state_dict().items():
        assert torch.equal(loaded.module.state_dict()[name], tensor), name


def test_torchvision_cache_holding_a_pickle_is_refused(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    folder = tmp_path / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save({"fc.weight": os.getcwd}, folder / os.path.basename(torchvision.models.ResNet18_Weights.DEFAULT.url))
    with pytest.raises(ViscnnError, match="cannot read cached weights") as error:
        load_model("tv:resnet18", pretrained=True)
    assert "could run code: refused" in str(error.value) and "weights_only" not in str(error.value)


def test_timm_pretrained_weights_load_from_the_hugging_face_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants
    from safetensors.torch import save_file

    arch = "resnet10t"
    hub_id = timm.models.get_pretrained_cfg(arch).hf_hub_id
    reference = timm.create_model(arch)
    with torch.no_grad():
        for parameter in reference.parameters():
            parameter.uniform_(-0.1, 0.1, generator=torch.Generator().manual_seed(5))
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / f"models--{hub_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(snapshot / "model.safetensors"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    loaded = load_model(f"timm:{arch}", pretrained=True)
    assert loaded.pretrained
    for name, tensor in reference.state_dict().items():
        assert torch.equal(loaded.module.state_dict()[name], tensor), name


def test_timm_pretrained_without_cache_says_where_from(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ViscnnError, match="Hugging Face Hub repository timm/resnet10t"):
        load_model("timm:resnet10t", pretrained=True)


def test_cli_names_a_missing_model_in_one_line():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "viscnn", "graph", "--model", "tv:resnt50"], capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "viscnn graph: error: torchvision (classification models) has no model 'resnt50' "
        "(did you mean resnet50, resnet152, resnet101?)"]


def test_random_weights_are_the_same_every_run_and_said(capsys):
    torch.manual_seed(123)
    before = torch.rand(3)
    first = load_model("tv:squeezenet1_1")
    assert "tv:squeezenet1_1 has random weights" in capsys.readouterr().err
    torch.manual_seed(123)
    second = load_model("tv:squeezenet1_1")
    assert first.fingerprint() == second.fingerprint()  # a circuit saved in one run loads in the next
    assert torch.equal(torch.rand(3), before)  # the user's global RNG is untouched
    assert all(torch.equal(a, b) for a, b in zip(first.module.state_dict().values(), second.module.state_dict().values()))
