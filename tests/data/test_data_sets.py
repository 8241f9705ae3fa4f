"""open_image_sets on folders, single images, tensor files and Fashion-MNIST; ImageSet batches and hashes."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from viscnn.data import FASHION_MNIST_CLASSES, ImageSet, imagenet_classes, load_fashion_mnist, open_image_sets
from viscnn.errors import ViscnnError
from viscnn.models import Preprocess

FMNIST_PRE = Preprocess(size=28, resize=None, mean=(0.2860,), std=(0.3530,), channels=1)


def test_image_folder_labels_by_index_and_name(image_folder):
    sets = open_image_sets(str(image_folder), class_names=list(FASHION_MNIST_CLASSES) + ["x"] * 250)
    assert list(sets) == ["12", "243-bull_mastiff", "7_seven", "Ankle Boot", "mystery", "overall"]
    assert sets["243-bull_mastiff"].labels == [243, 243]
    assert sets["7_seven"].labels == [7]  # images in nested folders belong to the class folder
    assert sets["12"].labels == [12]
    assert sets["Ankle Boot"].labels == [9]  # 'Ankle boot', matched ignoring case and space
    assert sets["mystery"].labels == [-1]  # notes.txt and .hidden.png skipped
    assert len(sets["overall"]) == 6 and sorted(sets["overall"].labels) == [-1, 7, 9, 12, 243, 243]


def test_image_folder_without_class_names(image_folder):
    sets = open_image_sets(str(image_folder))
    assert sets["Ankle Boot"].labels == [-1] and sets["243-bull_mastiff"].labels == [243, 243]


def test_label_by_imagenet_name(tmp_path, write_image):
    write_image(tmp_path / "GoldFish" / "a.png")
    write_image(tmp_path / "bull_mastiff" / "b.png")
    sets = open_image_sets(str(tmp_path), imagenet_classes())
    assert sets["GoldFish"].labels == [1] and sets["bull_mastiff"].labels == [243]


def test_loose_image_folder(tmp_path, write_image):
    folder = tmp_path / "holiday"
    write_image(folder / "b.png")
    write_image(folder / "a.jpg")
    (folder / "README.txt").write_text("hi")
    sets = open_image_sets(str(folder))
    assert list(sets) == ["holiday", "overall"]
    assert [item.source.name for item in sets["holiday"].items] == ["a.jpg", "b.png"]
    assert sets["overall"].labels == [-1, -1]


def test_single_image(tmp_path, write_image):
    path = write_image(tmp_path / "cat.webp")
    sets = open_image_sets(str(path))
    assert list(sets) == ["cat", "overall"] and len(sets["cat"]) == 1 and sets["cat"].items[0].source == path


def test_tensor_files(tmp_path):
    floats = torch.rand(5, 3, 16, 12)
    torch.save(floats, tmp_path / "floats.pt")
    sets = open_image_sets(str(tmp_path / "floats.pt"))
    assert list(sets) == ["floats", "overall"] and len(sets["floats"]) == 5 and sets["floats"].labels == [-1] * 5
    assert torch.allclose(sets["floats"].load_pixels(2), floats[2])

    grey = np.random.default_rng(0).integers(0, 256, (4, 1, 28, 28), dtype=np.uint8)
    np.save(tmp_path / "grey.npy", grey)
    assert torch.allclose(open_image_sets(str(tmp_path / "grey.npy"))["grey"].load_pixels(3), torch.from_numpy(grey[3]) / 255.0)

    np.save(tmp_path / "last.npy", grey.transpose(0, 2, 3, 1))  # channels-last is accepted
    assert open_image_sets(str(tmp_path / "last.npy"))["last"].load_pixels(0).shape == (1, 28, 28)

    torch.save({"images": floats, "labels": torch.tensor([3, 1, 4, 1, -1])}, tmp_path / "labelled.pth")
    assert open_image_sets(str(tmp_path / "labelled.pth"))["labelled"].labels == [3, 1, 4, 1, -1]

    save_file({"images": torch.from_numpy(grey), "labels": torch.tensor([0, 1, 2, 3])}, str(tmp_path / "st.safetensors"))
    assert open_image_sets(str(tmp_path / "st.safetensors"))["overall"].labels == [0, 1, 2, 3]


def test_fashion_mnist_sets_with_cap(fashion_mnist):
    sets = open_image_sets("fashion-mnist:test:7")
    assert list(sets)[:2] == ["t-shirt_top", "trouser"] and "ankle_boot" in sets and len(sets) == 11
    images, labels = load_fashion_mnist("test")
    for label, name in enumerate(list(sets)[:10]):
        assert sets[name].labels == [label] * 7
        first = torch.nonzero(labels == label).flatten()[:7].tolist()  # the first 7 of the class, in order
        assert [item.source for item in sets[name].items] == first
    assert len(sets["overall"]) == 70
    assert torch.equal(sets["bag"].load_pixels(0)[0], images[sets["bag"].items[0].source] / 255.0)
    assert sets["overall"].hash() == open_image_sets("fashion-mnist:test:7")["overall"].hash()
    assert sets["overall"].hash() != open_image_sets("fashion-mnist:train:7")["overall"].hash()
    x, y = next(sets["overall"].batches(FMNIST_PRE, batch_size=16))
    assert x.shape == (16, 1, 28, 28) and y.tolist() == [0] * 7 + [1] * 7 + [2] * 2


def test_fashion_mnist_default_split_is_test(fashion_mnist):
    sets = open_image_sets("fashion-mnist:3")
    assert [item.source for item in sets["trouser"].items] == [
        item.source for item in open_image_sets("fashion-mnist:test:3")["trouser"].items]


def test_batches_shape_and_normalisation(tmp_path, write_image):
    for i in range(5):
        write_image(tmp_path / "set" / f"{i}.png", (255, 0, 128), size=(60 + i, 40))
    image_set = open_image_sets(str(tmp_path / "set"))["set"]
    pre = Preprocess(size=32, resize=36)
    batches = list(image_set.batches(pre, batch_size=2))
    assert [x.shape[0] for x, _ in batches] == [2, 2, 1]
    x, labels = batches[0]
    assert x.shape == (2, 3, 32, 32) and x.dtype == torch.float32 and labels.dtype == torch.int64
    expected = (torch.tensor([1.0, 0.0, 128 / 255]) - torch.tensor(pre.mean)) / torch.tensor(pre.std)
    assert torch.allclose(x[0, :, 16, 16], expected, atol=1e-5)


def test_tensor_and_file_give_the_same_input(tmp_path, write_image):
    path = write_image(tmp_path / "noise.png", size=(64, 48), noise=3)
    pixels = open_image_sets(str(path))["noise"].load_pixels(0)
    torch.save(pixels.unsqueeze(0), tmp_path / "noise.pt")
    for pre in (Preprocess(), Preprocess(size=28, resize=None), FMNIST_PRE):
        from_file = next(open_image_sets(str(path))["overall"].batches(pre))[0]
        from_tensor = next(open_image_sets(str(tmp_path / "noise.pt"), resize=True)["overall"].batches(pre))[0]
        assert from_file.shape == from_tensor.shape == (1, *pre.input_shape)
        assert (from_file - from_tensor).abs().mean() < 0.1  # PIL and torch resizing differ only slightly


def test_grey_tensor_for_rgb_model_is_resized_only_when_asked(tmp_path, capsys):
    torch.save((torch.rand(3, 1, 28, 28) * 255).to(torch.uint8), tmp_path / "g.pt")
    with pytest.raises(ViscnnError, match="holds 28x28 tensor images but the model takes 224x224 inputs"):
        next(open_image_sets(str(tmp_path / "g.pt"))["g"].batches(Preprocess()))
    x, _ = next(open_image_sets(str(tmp_path / "g.pt"), resize=True)["g"].batches(Preprocess()))
    assert x.shape == (3, 3, 224, 224)
    assert "1-channel tensor images; the model takes 3: each is repeated on all 3 channels" in capsys.readouterr().err


def test_tensor_at_the_models_size_is_fed_as_it_is(tmp_path, capsys):
    pixels = torch.rand(2, 3, 32, 32)
    torch.save(pixels, tmp_path / "t.pt")
    pre = Preprocess(size=32, resize=36, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    x, _ = next(open_image_sets(str(tmp_path / "t.pt"))["t"].batches(pre))
    assert torch.allclose(x, (pixels - 0.5) / 0.25)  # no resize to 36 and crop back to 32
    assert capsys.readouterr().err == ""  # nothing assumed, nothing said


def test_hash_stable_and_sensitive(image_folder, tmp_path, write_image):
    first = open_image_sets(str(image_folder))["overall"].hash()
    assert first == open_image_sets(str(image_folder))["overall"].hash()
    copy = shutil.copytree(image_folder, tmp_path / "copy")
    assert open_image_sets(str(copy))["overall"].hash() == first  # content, not location
    write_image(copy / "mystery" / "f.png", (1, 2, 3))
    assert open_image_sets(str(copy))["overall"].hash() != first  # one image changed
    (image_folder / "mystery").rename(image_folder / "5")
    assert open_image_sets(str(image_folder))["overall"].hash() != first  # one label changed


def test_tensor_hash_covers_labels(tmp_path):
    images = torch.rand(2, 3, 8, 8)
    torch.save({"images": images, "labels": torch.tensor([0, 1])}, tmp_path / "a.pt")
    torch.save({"images": images, "labels": torch.tensor([0, 2])}, tmp_path / "b.pt")
    torch.save({"images": images, "labels": torch.tensor([0, 1])}, tmp_path / "c.pt")
    a, b, c = (open_image_sets(str(tmp_path / f"{n}.pt"))["overall"].hash() for n in "abc")
    assert a == c != b


def test_load_pixels_from_files(image_folder):
    image_set = open_image_sets(str(image_folder))["243-bull_mastiff"]
    pixels = image_set.load_pixels(1)
    assert pixels.shape == (3, 30, 40) and torch.allclose(pixels[:, 0, 0], torch.tensor([10, 20, 30]) / 255.0)
    assert isinstance(image_set, ImageSet) and len(image_set) == 2
