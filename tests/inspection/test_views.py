"""Inspection views: kernel grids, one kernel, activation maps through every layer, receptive-field boxes."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from viscnn.data import open_image_sets
from viscnn.data.imageset import read_image
from viscnn.errors import ViscnnError
from viscnn.inspection import draw
from viscnn.inspection.views import (
    activation_grid,
    activation_maps,
    cached_kernel_grid,
    draw_box,
    image_input,
    kernel_grid,
    kernel_heatmap,
    kernels,
    receptive_box,
)
from viscnn.store import Store

pytestmark = pytest.mark.usefixtures("single_thread")  # one torch thread: two shared cores


@pytest.fixture(scope="module")
def goldfish(lite0):
    loaded, _ = lite0
    demo = open_image_sets("demo")
    return image_input(read_image(demo["001-goldfish"].items[0].source), loaded.preprocess)


def colours(picture: Image.Image) -> set[tuple[int, int, int]]:
    pixels = np.asarray(picture.convert("RGB")).reshape(-1, 3).astype(np.int64)
    packed = np.unique(pixels[:, 0] << 16 | pixels[:, 1] << 8 | pixels[:, 2])
    return {(int(v) >> 16, (int(v) >> 8) & 255, int(v) & 255) for v in packed}


def test_kernels_are_bn_folded(lite0) -> None:
    loaded, graph = lite0
    raw = kernels(loaded.module, graph, "_blocks.2._project_conv", fold_bn=False)
    folded = kernels(loaded.module, graph, "_blocks.2._project_conv")
    bn = loaded.module.get_submodule(graph["_blocks.2._project_conv"].batchnorm)
    scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().numpy()
    np.testing.assert_allclose(folded, raw * scale[:, None, None, None], rtol=1e-6)


def test_rgb_first_layer_in_colour(lite0) -> None:
    loaded, graph = lite0
    picture = kernel_grid(loaded.module, graph, "_conv_stem")
    pixels = np.asarray(picture).astype(int)
    chroma = (pixels.max(axis=2) - pixels.min(axis=2))
    assert (chroma > 60).sum() > 500  # colour filters, not grey


def test_layer_scaling_matches_weights(lite0) -> None:
    """With one scale per layer, the cell of the largest |w| is the darkest end of the colour map."""
    loaded, graph = lite0
    layer = "_blocks.3._project_conv"  # 1x1: one pixel per kernel, zoom from the picture size
    weight = kernels(loaded.module, graph, layer)[:, :, 0, 0]
    picture = kernel_grid(loaded.module, graph, layer, scaling="layer")
    ends = {tuple(draw.diverging(np.array(v), 1.0).tolist()) for v in (-1.0, 1.0)}
    sign = np.sign(weight.flat[np.abs(weight).argmax()])
    assert tuple(draw.diverging(np.array(sign), 1.0).tolist()) in colours(picture)
    assert ends & colours(picture)
    # 40 x 144 kernels laid out as a matrix: wider than tall
    assert picture.width > picture.height


def test_depthwise_grid_and_bad_scaling(lite0) -> None:
    loaded, graph = lite0
    picture = kernel_grid(loaded.module, graph, "_blocks.1._depthwise_conv", scaling="kernel")
    assert 200 < picture.width < 2200 and 200 < picture.height < 2200
    with pytest.raises(ViscnnError, match="unknown scaling 'loud'"):
        kernel_grid(loaded.module, graph, "_blocks.1._depthwise_conv", scaling="loud")
    with pytest.raises(ViscnnError, match="unknown conv layer '_blocks.99'"):
        kernel_grid(loaded.module, graph, "_blocks.99")
    with pytest.raises(ViscnnError, match="output channel 500 is out of range"):
        kernel_grid(loaded.module, graph, "_blocks.1._depthwise_conv", outs=[0, 500])


def test_single_kernel(lite0, fmnist) -> None:
    loaded, graph = lite0
    picture = kernel_heatmap(loaded.module, graph, "_blocks.1._depthwise_conv", 5, 5, cell=30)
    assert picture.width >= 90 and picture.height >= 90
    with pytest.raises(ViscnnError, match="no kernel _blocks.1._depthwise_conv:5<-6"):
        kernel_heatmap(loaded.module, graph, "_blocks.1._depthwise_conv", 5, 6)  # depthwise: no cross-channel kernel
    with pytest.raises(ViscnnError, match="input channel 99 is out of range"):
        kernel_heatmap(loaded.module, graph, "_blocks.1._depthwise_conv", 5, 99)
    fm, fgraph = fmnist
    assert kernel_heatmap(fm.module, fgraph, "features.3", 2, 7).width > 100


def test_activation_maps_through_every_layer(lite0, goldfish) -> None:
    loaded, graph = lite0
    x, pixels = goldfish
    maps = activation_maps(loaded.module, graph, x)
    assert list(maps) == [layer.name for layer in graph.conv_layers]
    for layer in graph.conv_layers:
        assert maps[layer.name].shape == tuple(layer.output_shape)
    # the head's maps, pooled and fed to the classifier, give the model's own logits
    with torch.no_grad():
        logits = loaded.module(x[None])[0]
    pooled = torch.nn.functional.relu6(torch.from_numpy(maps["_conv_head"])).mean(dim=(1, 2))
    with torch.no_grad():
        torch.testing.assert_close(loaded.module._fc(pooled), logits, rtol=1e-4, atol=1e-4)
    assert int(logits.argmax()) == 1  # goldfish
    only = activation_maps(loaded.module, graph, x, ["_blocks.2._expand_conv"])
    np.testing.assert_array_equal(only["_blocks.2._expand_conv"], maps["_blocks.2._expand_conv"])
    picture = activation_grid(maps["_blocks.2._expand_conv"], "_blocks.2._expand_conv")
    assert np.asarray(picture).std() > 10
    assert activation_grid(maps["_conv_stem"], scaling="map").width > 200
    assert pixels.shape == (224, 224, 3) and pixels.min() >= 0 and pixels.max() <= 1


def test_activation_maps_match_hooks(fmnist) -> None:
    loaded, graph = fmnist
    images = open_image_sets("fashion-mnist:test:1")["overall"]
    x, _ = next(images.batches(loaded.preprocess, 1))
    seen = {}
    conv = loaded.module.get_submodule(graph["features.6"].module)
    # (a hook that returned the clone would replace the module's output, which the ReLU then rewrites)
    handle = conv.register_forward_hook(lambda _m, _i, out: seen.update(map=out.detach().clone()))
    try:
        maps = activation_maps(loaded.module, graph, x[0])
    finally:
        handle.remove()
    np.testing.assert_allclose(maps["features.6"], seen["map"][0].numpy(), rtol=1e-6)
    assert (maps["features.6"] < 0).any()  # before the in-place ReLU


def test_activation_bad_input(lite0) -> None:
    loaded, graph = lite0
    with pytest.raises(ViscnnError, match="takes inputs of shape \\[3, 224, 224\\]"):
        activation_maps(loaded.module, graph, torch.zeros(3, 100, 100))
    with pytest.raises(ViscnnError, match="one image"):
        activation_maps(loaded.module, graph, torch.zeros(2, 3, 224, 224))
    with pytest.raises(ViscnnError, match="unknown conv layer"):
        activation_maps(loaded.module, graph, torch.zeros(3, 224, 224), ["nope"])
    with pytest.raises(ViscnnError, match="unknown scaling"):
        activation_grid(np.ones((2, 3, 3)), scaling="odd")
    with pytest.raises(ViscnnError, match="must be \\[C, h, w\\]"):
        activation_grid(np.ones((3, 3)))


def test_receptive_box(lite0, goldfish) -> None:
    _loaded, graph = lite0
    rf = graph["_blocks.6._expand_conv"].receptive_field
    assert receptive_box(graph, "_blocks.6._expand_conv", 5, 3, clip=False) == rf.box(5, 3)
    top, left, bottom, _right = receptive_box(graph, "_blocks.6._expand_conv", 0, 0)
    assert (top, left) == (0.0, 0.0) and bottom == rf.box(0, 0)[2]
    assert receptive_box(graph, "_conv_head", 3, 3) == (0.0, 0.0, 224.0, 224.0)  # an 851 px field, clipped
    with pytest.raises(ViscnnError, match="unit 14,0 is outside the 14x14 map"):
        receptive_box(graph, "_blocks.6._expand_conv", 14, 0)
    picture = draw_box(goldfish[1], (10, 20, 50, 60), zoom=2)
    array = np.asarray(picture)
    assert picture.size == (448, 448) and tuple(array[20, 60]) == (255, 40, 40)


def test_cached_kernel_grid(fmnist, tmp_path, monkeypatch) -> None:
    loaded, graph = fmnist
    with Store(tmp_path / "store") as store:
        path, meta = cached_kernel_grid(store, loaded, graph, "features.3", "layer")
        assert meta["out_channels"] == 64 and Image.open(path).width > 100
        monkeypatch.setattr("viscnn.inspection.views.kernel_grid", lambda *a, **k: pytest.fail("drawn twice"))
        assert cached_kernel_grid(store, loaded, graph, "features.3", "layer")[0] == path
