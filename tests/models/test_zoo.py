"""The model zoo: real weights that install offline, user models from files, and clear faults."""
import glob
import importlib.util
import os
import textwrap

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from torch import nn

from viscnn.errors import ViscnnError
from viscnn.models import ZOO, load_model


def foolbox_photos():
    folder = importlib.util.find_spec("foolbox").submodule_search_locations[0]  # the photos, not the package
    files = sorted(glob.glob(os.path.join(folder, "data", "imagenet_*.jpg")))
    return files, [int(f.rsplit("_", 1)[1].split(".")[0]) for f in files]


def test_efficientnet_lite0_top1_on_foolbox_photos(lite0):
    loaded, _ = lite0
    files, labels = foolbox_photos()
    assert len(files) == 20
    x = torch.stack([loaded.preprocess(Image.open(f)) for f in files])
    with torch.no_grad():
        predicted = loaded.module(x).argmax(1)
    right = int((predicted == torch.tensor(labels)).sum())
    assert right >= 17, f"{right}/20"


def test_tf_normalisation_matters(lite0):
    """With torchvision's ImageNet mean/std the same photos do worse: the zoo's preprocessing is not a guess."""
    from viscnn.models.preprocess import Preprocess

    loaded, _ = lite0
    files, labels = foolbox_photos()
    wrong = Preprocess()  # ImageNet mean/std
    with torch.no_grad():
        right = loaded.module(torch.stack([loaded.preprocess(Image.open(f)) for f in files])).argmax(1)
        off = loaded.module(torch.stack([wrong(Image.open(f)) for f in files])).argmax(1)
    assert (off == torch.tensor(labels)).sum() < (right == torch.tensor(labels)).sum()


def test_every_zoo_entry_declares_its_preprocessing():
    for name, spec in ZOO.items():
        assert spec.preprocess.size > 0 and len(spec.preprocess.mean) == spec.preprocess.channels, name
    assert ZOO["efficientnet-lite0"].preprocess.mean == (0.498,) * 3
    assert ZOO["fmnist-convnet"].preprocess.input_shape == (1, 28, 28)


def test_fingerprint_changes_with_weights():
    a = load_model("alexnet")
    b = load_model("alexnet")
    assert a.fingerprint() != b.fingerprint()  # random init differs
    b.module.load_state_dict(a.module.state_dict())
    assert a.fingerprint() == b.fingerprint()


MODEL_FILE = """
import torch
from torch import nn

PREPROCESS = dict(size=16, resize=None, mean=(0.5,), std=(0.25,), channels=1)

def tiny():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 3))

def broken():
    raise RuntimeError("boom")

not_a_model = lambda: 42
"""


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text(textwrap.dedent(MODEL_FILE))
    return path


def test_user_model_from_file_with_its_preprocessing(model_file, tmp_path):
    loaded = load_model(f"{model_file}:tiny")
    assert loaded.input_shape == (1, 16, 16)
    state = {k: torch.full_like(v, 0.5) for k, v in loaded.module.state_dict().items()}
    torch.save(state, tmp_path / "w.pt")
    save_file(state, str(tmp_path / "w.safetensors"))
    for weights in ("w.pt", "w.safetensors"):
        again = load_model(f"{model_file}:tiny", weights=tmp_path / weights)
        assert torch.all(again.module[0].weight == 0.5)


@pytest.mark.parametrize("reference, message", [
    ("no-such-model", "unknown model 'no-such-model'"),
    ("/nowhere/model.py:make", "does not exist"),
    ("{file}:missing", "no callable named 'missing'"),
    ("{file}:broken", "broken() failed: RuntimeError: boom"),
    ("{file}:not_a_model", "returned int, not a torch.nn.Module"),
])
def test_bad_model_references(model_file, reference, message):
    with pytest.raises(ViscnnError, match=None) as error:
        load_model(reference.format(file=model_file))
    assert message in str(error.value)


def test_weights_that_do_not_fit(model_file, tmp_path):
    torch.save({"0.weight": torch.zeros(5, 1, 3, 3)}, tmp_path / "bad.pt")
    with pytest.raises(ViscnnError, match=r"do not fit model .*shape mismatch: 0.weight \(5, 1, 3, 3\) vs \(4, 1, 3, 3\).*missing 3 keys"):
        load_model(f"{model_file}:tiny", weights=tmp_path / "bad.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(ViscnnError, match="cannot read weights"):
        load_model(f"{model_file}:tiny", weights=tmp_path / "junk.pt")
    with pytest.raises(ViscnnError, match="does not exist"):
        load_model("alexnet", weights=tmp_path / "none.pt")


def test_pickled_code_is_refused(model_file, tmp_path):
    """torch.load(weights_only=True): a file that would run code on load is an error, not an execution."""
    torch.save({"0.weight": nn.ReLU()}, tmp_path / "evil.pt")
    with pytest.raises(ViscnnError, match="cannot read weights"):
        load_model(f"{model_file}:tiny", weights=tmp_path / "evil.pt")
