"""Each bad input is one ViscnnError, on one line, naming the path at fault."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from viscnn.data import open_image_sets
from viscnn.errors import ViscnnError
from viscnn.models import Preprocess


def _fails(spec, *needles):
    with pytest.raises(ViscnnError) as info:
        open_image_sets(str(spec))
    message = str(info.value)
    assert "\n" not in message
    for needle in needles:
        assert str(needle) in message, message
    return message


def test_missing_path(tmp_path):
    _fails(tmp_path / "nowhere", tmp_path / "nowhere", "does not exist")


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    _fails(tmp_path / "empty", tmp_path / "empty", "empty")


def test_folder_without_images(tmp_path):
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "README.txt").write_text("hello")
    (folder / "sub" / "data.csv").write_text("1,2")
    _fails(folder, folder, "no images")


def test_corrupt_image_in_folder(tmp_path, write_image):
    write_image(tmp_path / "set" / "cats" / "good.png")
    (tmp_path / "set" / "cats" / "bad.jpg").write_bytes(b"this is no jpeg")
    _fails(tmp_path / "set", tmp_path / "set" / "cats" / "bad.jpg", "not a readable image")


def test_corrupt_single_image(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    _fails(tmp_path / "broken.png", tmp_path / "broken.png")


def test_empty_image_file(tmp_path):
    (tmp_path / "zero.jpg").write_bytes(b"")
    _fails(tmp_path / "zero.jpg", tmp_path / "zero.jpg")


def test_truncated_image_fails_when_decoded(tmp_path, write_image):
    path = write_image(tmp_path / "noise.jpg", size=(200, 200), noise=1)
    path.write_bytes(path.read_bytes()[:2000])
    image_set = open_image_sets(str(path))["noise"]  # the header is fine...
    with pytest.raises(ViscnnError, match="noise.jpg"):  # ...the pixels are not
        next(image_set.batches(Preprocess()))


def test_non_image_file(tmp_path):
    (tmp_path / "notes.txt").write_text("not a picture")
    _fails(tmp_path / "notes.txt", tmp_path / "notes.txt", "not an image")


@pytest.mark.parametrize("shape", [(3, 8, 8), (2, 5, 8, 8), (8, 8), (0, 3, 8, 8)])
def test_tensor_of_wrong_shape(tmp_path, shape):
    torch.save(torch.rand(shape), tmp_path / "wrong.pt")
    _fails(tmp_path / "wrong.pt", tmp_path / "wrong.pt")


def test_tensor_out_of_range(tmp_path):
    np.save(tmp_path / "big.npy", np.full((2, 3, 4, 4), 255.0, dtype=np.float32))
    _fails(tmp_path / "big.npy", tmp_path / "big.npy", "0-1")


def test_tensor_dict_without_images(tmp_path):
    torch.save({"pixels": torch.rand(1, 3, 4, 4)}, tmp_path / "d.pt")
    _fails(tmp_path / "d.pt", tmp_path / "d.pt", "pixels")


def test_tensor_labels_wrong_length(tmp_path):
    torch.save({"images": torch.rand(2, 3, 4, 4), "labels": torch.tensor([1, 2, 3])}, tmp_path / "l.pt")
    _fails(tmp_path / "l.pt", tmp_path / "l.pt", "labels")


def test_garbage_tensor_file(tmp_path):
    for name in ("junk.pt", "junk.npy", "junk.safetensors"):
        (tmp_path / name).write_bytes(b"\x00garbage" * 10)
        _fails(tmp_path / name, tmp_path / name, "cannot read tensor file")


def test_index_out_of_range(tmp_path, write_image):
    write_image(tmp_path / "set" / "12-twelve" / "a.png")
    with pytest.raises(ViscnnError, match="12-twelve"):
        open_image_sets(str(tmp_path / "set"), class_names=["a", "b"])


def test_reserved_set_name(tmp_path, write_image):
    write_image(tmp_path / "set" / "overall" / "a.png")
    _fails(tmp_path / "set", "overall")


@pytest.mark.parametrize("spec", ["fashion-mnist:valid", "fashion-mnist:test:0", "fashion-mnist:test:5:6"])
def test_bad_fashion_mnist_spec(spec):
    _fails(spec, spec)


@pytest.mark.parametrize("name", ["bad\nname", "tab\there", "bell\x07", "line\u2028separator"])
def test_set_names_with_control_characters_are_refused_on_one_line(tmp_path, write_image, name):
    write_image(tmp_path / "set" / "fine" / "a.png")
    write_image(tmp_path / "set" / name / "b.png")
    _fails(tmp_path / "set", repr(name), "holds a control character", "rename")


def test_tensor_files_that_hold_code_are_refused_with_how_to_resave(tmp_path):
    import os

    class Payload:
        def __reduce__(self):
            return (os.system, ("echo the payload ran",))

    torch.save({"images": torch.rand(2, 3, 4, 4), "x": Payload()}, tmp_path / "payload.pt")
    _fails(tmp_path / "payload.pt", "payload.pt", "(posix.system), and loading them could run code: refused",
           "torch.save({'images': images, 'labels': labels}, 'images.pt')")
    (tmp_path / "empty.pt").write_bytes(b"")
    _fails(tmp_path / "empty.pt", "empty.pt", "the file is empty")
