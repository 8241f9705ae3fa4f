"""Dataset examples against a slow per-node, per-image reference; receptive-field patches; the cache."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from viscnn.data import open_image_sets
from viscnn.data.imageset import ImageSet
from viscnn.errors import ViscnnError
from viscnn.graph import build_graph
from viscnn.inspection.examples import (
    LayerExamples,
    PixelCache,
    compute_examples,
    cut,
    dataset_examples,
    examples_png,
    layer_sheet,
    model_pixels,
    node_grid,
    patch_size,
    patch_window,
)
from viscnn.store import Store

pytestmark = pytest.mark.usefixtures("single_thread")  # one torch thread: two shared cores

FMNIST_LAYERS = ["features.0", "features.6", "features.10"]
LITE0_LAYERS = ["_conv_stem", "_blocks.6._depthwise_conv", "_conv_head"]


@pytest.fixture(scope="module")
def fmnist_examples(fmnist, fmnist_sets):
    """The session's fmnist-convnet and graph, and its 40 Fashion-MNIST test images."""
    loaded, graph = fmnist
    return loaded, graph, fmnist_sets["overall"]


@pytest.fixture(scope="module")
def lite0_demo12(lite0):
    """The session's EfficientNet-Lite0 and graph, and the first 12 demo photos."""
    loaded, graph = lite0
    demo = open_image_sets("demo")["overall"]
    return loaded, graph, ImageSet("demo12", demo.items[:12])


def reference_maps(loaded, graph, image_set, layers) -> dict[str, np.ndarray]:
    """Each layer's BN-folded node maps [N, C, H, W] for all images, from plain module forward hooks."""
    maps: dict[str, list[np.ndarray]] = {name: [] for name in layers}
    handles = []
    for name in layers:
        module_name = graph[name].batchnorm or graph[name].module
        module = loaded.module.get_submodule(module_name)
        handles.append(module.register_forward_hook(
            lambda _m, _i, out, name=name: maps[name].append(out.detach().clone().double().numpy())))
    try:
        with torch.no_grad():
            for x, _ in image_set.batches(loaded.preprocess, 5):
                loaded.module(x)
    finally:
        for handle in handles:
            handle.remove()
    return {name: np.concatenate(parts) for name, parts in maps.items()}


def reference_topk(maps: np.ndarray, k: int, largest: bool) -> list[list[tuple[int, int, int, float]]]:
    """Per channel, (image, y, x, value) of the k best images, one unit each, by plain Python loops."""
    n, channels, _, width = maps.shape
    result = []
    for c in range(channels):
        best = []
        for i in range(n):
            flat = maps[i, c].ravel()
            pos = int(flat.argmax() if largest else flat.argmin())
            best.append((i, pos // width, pos % width, float(flat[pos])))
        best.sort(key=lambda item: (-item[3] if largest else item[3], item[0]))
        result.append(best[:k])
    return result


def assert_matches(examples: LayerExamples, maps: np.ndarray, k: int) -> None:
    for side, largest in ((examples.excite, True), (examples.inhibit, False)):
        expected = reference_topk(maps, k, largest)
        assert side.values.shape == (maps.shape[1], k)
        for c, ref in enumerate(expected):
            ref_values = np.array([v for *_, v in ref])
            np.testing.assert_allclose(side.values[c], ref_values, rtol=1e-4, atol=1e-4)
            scale = np.abs(maps[:, c]).max() + 1e-12
            for rank, (image, y, x, value) in enumerate(ref):
                got = (int(side.images[c, rank]), int(side.ys[c, rank]), int(side.xs[c, rank]))
                # each reported unit holds the reported value in the reference maps
                assert maps[got[0], c, got[1], got[2]] == pytest.approx(side.values[c, rank], rel=1e-4, abs=1e-4 * scale)
                neighbours = np.delete(ref_values, rank)
                tied = np.abs(neighbours - value).min(initial=np.inf) < 1e-4 * scale
                spatial = np.sum(np.abs(maps[image, c] - value) < 1e-4 * scale) > 1
                if not tied and not spatial:
                    assert got == (image, y, x), f"channel {c} rank {rank}"


def test_fmnist_matches_reference(fmnist_examples) -> None:
    loaded, graph, images = fmnist_examples
    k = 5
    found = compute_examples(loaded.module, graph, images, loaded.preprocess, FMNIST_LAYERS, k=k, batch_size=7)
    assert list(found) == FMNIST_LAYERS
    maps = reference_maps(loaded, graph, images, FMNIST_LAYERS)
    for name in FMNIST_LAYERS:
        assert found[name].image_count == len(images) == 40
        assert found[name].map_size == maps[name].shape[2:]
        assert_matches(found[name], maps[name], k)
    # inhibiting examples go negative: the maps are taken before the (in-place) ReLU
    assert (found["features.6"].inhibit.values < 0).all()


def test_lite0_matches_reference(lite0_demo12) -> None:
    loaded, graph, images = lite0_demo12
    k = 4
    found = compute_examples(loaded.module, graph, images, loaded.preprocess, LITE0_LAYERS, k=k, batch_size=5)
    maps = reference_maps(loaded, graph, images, LITE0_LAYERS)
    for name in LITE0_LAYERS:
        assert found[name].channels == graph[name].out_channels
        assert_matches(found[name], maps[name], k)


def test_k_larger_than_set_and_batch_independence(fmnist_examples) -> None:
    loaded, graph, images = fmnist_examples
    small = ImageSet("three", images.items[:3], images.tensor)
    found = compute_examples(loaded.module, graph, small, loaded.preprocess, ["features.3"], k=10)["features.3"]
    assert found.excite.k == 3 and sorted(found.excite.images[0].tolist()) == [0, 1, 2]
    one = compute_examples(loaded.module, graph, images, loaded.preprocess, ["features.3"], k=6, batch_size=1)["features.3"]
    many = compute_examples(loaded.module, graph, images, loaded.preprocess, ["features.3"], k=6, batch_size=40)["features.3"]
    np.testing.assert_allclose(one.excite.values, many.excite.values, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(one.inhibit.values, many.inhibit.values, rtol=1e-5, atol=1e-5)


def test_stem_patch_reproduces_activation(lite0_demo12) -> None:
    """The stem's patch is exactly what its unit sees: conv + BN on the patch gives the recorded value."""
    loaded, graph, images = lite0_demo12
    found = compute_examples(loaded.module, graph, images, loaded.preprocess, ["_conv_stem"], k=3)["_conv_stem"]
    rf = graph["_conv_stem"].receptive_field
    weight = loaded.module.get_parameter(graph["_conv_stem"].weight_name).detach().double()
    bn = loaded.module.get_submodule(graph["_conv_stem"].batchnorm)
    scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().double()
    shift = (bn.bias - bn.running_mean * bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().double()
    mean, std = torch.tensor(loaded.preprocess.mean).double(), torch.tensor(loaded.preprocess.std).double()
    checked = 0
    for c in range(0, 32, 4):
        image, y, x = int(found.excite.images[c, 0]), int(found.excite.ys[c, 0]), int(found.excite.xs[c, 0])
        window = patch_window(rf, y, x, (224, 224))
        if min(window) < 0 or max(window) > 224:
            continue  # touches the padding
        pixels = model_pixels(images, loaded.preprocess, [image])[image]
        patch = torch.from_numpy(cut(pixels, window)).double()  # [3, 3, 3] h, w, C
        normalised = ((patch - mean) / std).permute(2, 0, 1)
        value = float((weight[c] * normalised).sum() * scale[c] + shift[c])
        assert value == pytest.approx(float(found.excite.values[c, 0]), rel=1e-3, abs=1e-3)
        checked += 1
    assert checked >= 4


def test_patch_geometry(fmnist, lite0) -> None:
    _, graph = fmnist
    rf = graph["features.0"].receptive_field  # 5 px, stride 1, offset -2
    assert patch_window(rf, 0, 0, (28, 28)) == (-2, -2, 3, 3)
    pixels = np.arange(28 * 28, dtype=np.float32).reshape(28, 28, 1) / 1000
    patch = cut(pixels, (-2, -2, 3, 3))
    assert patch.shape == (5, 5, 1) and (patch[:2] == 0.5).all() and (patch[:, :2] == 0.5).all()
    assert np.array_equal(patch[2:, 2:, 0], pixels[:3, :3, 0])
    deep = lite0[1]["_conv_head"].receptive_field  # 851 px field: capped at the 224 px image, centred on the unit
    assert patch_size(deep, (224, 224)) == (224, 224)
    top, left, bottom, right = patch_window(deep, 3, 3, (224, 224))
    centre = deep.box(3, 3)
    assert (bottom - top, right - left) == (224, 224)
    assert abs((top + bottom) / 2 - (centre[0] + centre[2]) / 2) <= 0.5


def test_grid_picture(fmnist_examples, tmp_path: Path) -> None:
    loaded, graph, images = fmnist_examples
    found = compute_examples(loaded.module, graph, images, loaded.preprocess, ["features.6"], k=4)["features.6"]
    pixels = PixelCache(images, loaded.preprocess)
    picture = node_grid(found, graph["features.6"].receptive_field, 2, pixels, (28, 28), cell=48, set_name="fmnist")
    assert picture.width > 4 * 48 and picture.height > 2 * 48
    array = np.asarray(picture)
    assert array.std() > 20  # not blank
    red = np.array([255, 40, 40])
    assert not (array == red).all(axis=2).any()  # a 24 px field fits the 28 px image: no unit cell marked
    deep = compute_examples(loaded.module, graph, images, loaded.preprocess, ["features.10"], k=2)["features.10"]
    marked = np.asarray(node_grid(deep, graph["features.10"].receptive_field, 0, pixels, (28, 28), cell=48))
    assert (marked == red).all(axis=2).sum() >= 4 * 12  # 40 px field cut to 28 px: each patch marks its unit's cell
    sheet = layer_sheet(found, graph["features.6"].receptive_field, pixels, (28, 28), range(10), cell=32)
    assert sheet.width > 3 * 32 and np.asarray(sheet).std() > 20
    with pytest.raises(ViscnnError, match="channel 96 is out of range"):
        layer_sheet(found, graph["features.6"].receptive_field, pixels, (28, 28), [96])
    node = found.node(2, graph["features.6"].receptive_field, images)
    assert [e["image"] for e in node["excite"]] == found.excite.images[2].tolist()
    assert node["excite"][0]["box"] == list(graph["features.6"].receptive_field.box(node["excite"][0]["y"], node["excite"][0]["x"]))
    assert isinstance(node["excite"][0]["label"], int)


def test_cached_examples_compute_once(fmnist_examples, tmp_path: Path, monkeypatch) -> None:
    loaded, graph, images = fmnist_examples
    calls = []
    handle = loaded.module.register_forward_pre_hook(lambda *_: calls.append(1))
    try:
        with Store(tmp_path / "store") as store:
            first = dataset_examples(store, loaded, graph, images, ["features.0", "features.3"], k=3, batch_size=40)
            assert len(calls) == 1
            again = dataset_examples(store, loaded, graph, images, ["features.3", "features.0"], k=3)
            assert len(calls) == 1 and list(again) == ["features.0", "features.3"]
            np.testing.assert_array_equal(again["features.3"].excite.images, first["features.3"].excite.images)
            dataset_examples(store, loaded, graph, images, ["features.0", "features.6"], k=3, batch_size=40)
            assert len(calls) == 2  # only features.6 was missing: one more pass
            # examples from the store carry their hashes: drawing many nodes never re-hashes the images
            monkeypatch.setattr(images, "hash", lambda: pytest.fail("image set hashed again"))
            path, meta = examples_png(store, loaded, graph, images, first["features.3"], 1)
            path2, _ = examples_png(store, loaded, graph, images, first["features.3"], 1)
            assert path == path2 and path.suffix == ".png" and meta["node"] == "features.3:1"
            assert len(store.entries("examples")) == 3 and len(store.entries("examples-png")) == 1
    finally:
        handle.remove()


def test_bad_input(fmnist_examples, tmp_path: Path) -> None:
    loaded, graph, images = fmnist_examples
    run = lambda **kw: compute_examples(loaded.module, graph, kw.pop("images", images), loaded.preprocess, **kw)  # noqa: E731
    with pytest.raises(ViscnnError, match="unknown conv layer 'features.99'"):
        run(layers=["features.99"])
    with pytest.raises(ViscnnError, match="unknown conv layer 'input'"):
        run(layers=["input"])
    with pytest.raises(ViscnnError, match="no layers"):
        run(layers=[])
    for k in (0, -3, True, 2.5):
        with pytest.raises(ViscnnError, match="k must be a positive"):
            run(layers=["features.0"], k=k)
    with pytest.raises(ViscnnError, match="is empty"):
        run(layers=["features.0"], images=ImageSet("nothing", []))
    found = run(layers=["features.0"], k=2)["features.0"]
    with pytest.raises(ViscnnError, match="channel 32 is out of range"):
        found.node(32)
    with pytest.raises(ViscnnError, match="channel -1 is out of range"):
        found.node(-1)


def test_units_that_see_the_whole_image() -> None:
    """A conv after global pooling (squeeze-excite style): its patch is the whole image."""
    from torch import nn

    from viscnn.data.imageset import ImageItem
    from viscnn.models.preprocess import Preprocess

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Conv2d(4, 5, 1)).eval()
    preprocess = Preprocess(size=16, resize=None, mean=(0.5,) * 3, std=(0.25,) * 3)
    graph = build_graph(model, preprocess.input_shape, "se")
    images = ImageSet("noise", [ImageItem(i) for i in range(6)], torch.rand(6, 3, 16, 16))
    found = compute_examples(model, graph, images, preprocess, k=2, batch_size=4)
    last = graph.conv_layers[-1]
    assert last.receptive_field.whole_image and found[last.name].map_size == (1, 1)
    assert patch_window(last.receptive_field, 0, 0, (16, 16)) == (0, 0, 16, 16)
    with torch.no_grad():
        expected = model(images.tensor * 4 - 2)[:, :, 0, 0]  # (x - 0.5) / 0.25
    np.testing.assert_allclose(found[last.name].excite.values[:, 0], expected.max(0).values.numpy(), rtol=1e-5)
    picture = node_grid(found[last.name], last.receptive_field, 1, PixelCache(images, preprocess), (16, 16), cell=32)
    assert picture.width > 2 * 32


def test_only_images_below_zero_count_as_inhibiting(fmnist_examples) -> None:
    """A node no image drives below 0 has no inhibiting examples (its least exciting ones are not inhibiting): the
    JSON lists none and gives its lowest value, and the picture's bottom row says so instead of showing patches."""
    import dataclasses

    loaded, graph, images = fmnist_examples
    found = compute_examples(loaded.module, graph, images, loaded.preprocess, ["features.6"], k=4)["features.6"]
    rf = graph["features.6"].receptive_field
    mixed = found.node(2, rf)
    assert mixed["inhibit"] and all(e["value"] < 0 for e in mixed["inhibit"])
    assert mixed["lowest"] == mixed["inhibit"][0]["value"]
    lifted = found.inhibit.values - found.inhibit.values.min() + 0.25  # every minimum now above 0
    positive = dataclasses.replace(found, inhibit=dataclasses.replace(found.inhibit, values=lifted))
    node = positive.node(2, rf)
    assert node["inhibit"] == [] and node["lowest"] == pytest.approx(float(lifted[2, 0]))
    pixels = PixelCache(images, loaded.preprocess)
    with_patches = np.asarray(node_grid(found, rf, 2, pixels, (28, 28), cell=48))
    without = np.asarray(node_grid(positive, rf, 2, pixels, (28, 28), cell=48))
    bottom = slice(without.shape[0] * 3 // 5, without.shape[0] - 4)
    assert without[bottom].std() < with_patches[bottom].std() / 2  # a line of text, not a row of patches
