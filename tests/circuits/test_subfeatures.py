"""Sub-feature circuits: a node fed by two disjoint paths splits into two separable circuits.

The constructed model: c1 has a horizontal-bar (channel 0) and a vertical-bar (channel 1) detector,
a weak blob detector (2) and a weak random channel (3); c2 passes each of the first three on through
its own kernel (channel 3 is weak and random); node c3:0 is c2:0 + c2:1 + 0.3 c2:2 (an 'or' of the
two patterns, plus a weak path both share), c3:1 reads only the horizontal path and c3:2 only the
vertical one, so the layer's activation vectors separate the patterns.
"""
import json
import textwrap

import numpy as np
import pytest
import torch

from viscnn.circuits import Circuit
from viscnn.circuits.subfeatures import (
    PositionTarget,
    crop,
    find_subfeatures,
    kernel_iou,
    top_patches,
)
from viscnn.cli import main
from viscnn.data import open_image_sets
from viscnn.errors import ViscnnError
from viscnn.graph import Node, build_graph
from viscnn.graph.ids import check_node, parse_node
from viscnn.graph.recorder import Recorder
from viscnn.models import load_model
from viscnn.scoring.targets import Target

NET = """
import torch
from torch import nn

PREPROCESS = dict(size=12, resize=None, mean=(0.0,), std=(1.0,), channels=1)


class TwoPaths(nn.Module):
    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.c1 = nn.Conv2d(1, 4, 3, padding=1, bias=False)
        self.c2 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.c3 = nn.Conv2d(4, 3, 1, bias=False)
        bar = torch.tensor([[-1.0, -1.0, -1.0], [2.0, 2.0, 2.0], [-1.0, -1.0, -1.0]])
        with torch.no_grad():
            self.c1.weight.copy_(0.05 * torch.randn(4, 1, 3, 3, generator=g))
            self.c1.weight[0, 0] = bar
            self.c1.weight[1, 0] = bar.t()
            self.c1.weight[2, 0] = 0.15  # a weak blob detector: fires on both patterns
            self.c2.weight.copy_(0.02 * torch.randn(4, 4, 3, 3, generator=g))
            self.c2.weight[:3] = 0.0
            self.c2.weight[0, 0, 1, 1] = 1.0
            self.c2.weight[1, 1, 1, 1] = 1.0
            self.c2.weight[2, 2, 1, 1] = 0.5
            self.c3.weight.copy_(0.02 * torch.randn(3, 4, 1, 1, generator=g))
            self.c3.weight[:, :3] = torch.tensor([[1.0, 1.0, 0.3], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).view(3, 3, 1, 1)

    def forward(self, x):
        return self.c3(torch.relu(self.c2(torch.relu(self.c1(x)))))


def make():
    return TwoPaths().eval()
"""


def bar_images(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Half horizontal bars (label 0), half vertical (label 1), random place, length and brightness."""
    g = torch.Generator().manual_seed(seed)
    images = (0.04 * torch.rand(count, 1, 12, 12, generator=g))
    labels = torch.arange(count) % 2
    for i in range(count):
        length = int(torch.randint(5, 9, (1,), generator=g))
        row = int(torch.randint(2, 10, (1,), generator=g))
        start = int(torch.randint(1, 12 - length, (1,), generator=g))
        value = 0.5 + 0.5 * float(torch.rand(1, generator=g))
        if labels[i] == 0:
            images[i, 0, row, start:start + length] = value
        else:
            images[i, 0, start:start + length, row] = value
    return images.clamp(0, 1), labels


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    folder = tmp_path_factory.mktemp("twopaths")
    (folder / "net.py").write_text(textwrap.dedent(NET))
    images, labels = bar_images(120, seed=1)
    torch.save({"images": images, "labels": labels}, folder / "bars.pt")
    loaded = load_model(f"{folder / 'net.py'}:make")
    graph = build_graph(loaded.module, loaded.input_shape)
    image_set = open_image_sets(str(folder / "bars.pt"))["overall"]
    result = find_subfeatures(loaded.module, graph, image_set, loaded.preprocess, Node("c3", 0), top_n=100,
                              min_cluster_size=15, keep=0.25, scrambles=2)
    return folder, loaded, graph, image_set, result


def test_two_patterns_give_two_pure_clusters(case):
    _, _, _, image_set, result = case
    assert len(result.clusters) == 2 and not result.message
    for members in result.clusters:
        assert len(members) >= 15
        kinds = [image_set.items[result.patches[i].image].label for i in members]
        assert max(kinds.count(0), kinds.count(1)) / len(kinds) >= 0.95  # one pattern per cluster
    first = {image_set.items[result.patches[i].image].label for i in result.clusters[0]}
    second = {image_set.items[result.patches[i].image].label for i in result.clusters[1]}
    assert first != second
    assert not set(result.clusters[0]) & set(result.clusters[1])


def test_cluster_circuits_are_separable_and_the_scrambled_control_is_not(case):
    _, _, _, image_set, result = case
    assert result.iou.shape == (2, 2) and result.scrambled_iou.shape == (2, 2)
    assert result.iou[0, 1] < 0.5 < 0.8 < result.scrambled_iou[0, 1]
    # each cluster's circuit holds its own pattern's path and not the other's
    for members, circuit in zip(result.clusters, result.circuits):
        label = image_set.items[result.patches[members[0]].image].label
        own, other = (0, 1) if label == 0 else (1, 0)
        assert circuit.masks["c1"][own, 0] and not circuit.masks["c1"][other, 0]
        assert circuit.masks["c2"][own, own] and circuit.masks["c3"][0, own] and not circuit.masks["c3"][0, other]
    # the scrambled sets keep the cluster sizes and mix the two patterns
    for mixed in result.scrambled_sets:
        assert [len(s) for s in mixed] == [len(m) for m in result.clusters]
        for s in mixed:
            kinds = {image_set.items[result.patches[i].image].label for i in s}
            assert kinds == {0, 1}


def test_patches_are_each_images_peak_unit(case):
    _, loaded, _graph, image_set, result = case
    values = [p.value for p in result.patches]
    assert values == sorted(values, reverse=True) and len({p.image for p in result.patches}) == len(values) == 100
    x, _ = next(image_set.batches(loaded.preprocess, len(image_set)))
    out = loaded.module.c3(torch.relu(loaded.module.c2(torch.relu(loaded.module.c1(x))))).detach()
    peaks = out[:, 0].flatten(1).max(dim=1).values
    assert torch.allclose(torch.tensor(values), peaks.sort(descending=True).values[:100], atol=1e-5)
    for patch in result.patches[:10]:
        assert out[patch.image, 0, patch.y, patch.x] == pytest.approx(patch.value, abs=1e-5)
        assert np.allclose(patch.vector, out[patch.image, :, patch.y, patch.x].numpy(), atol=1e-5)


def test_position_target_reads_each_images_own_unit(case):
    _, _loaded, _graph, _image_set, _ = case
    node_map = torch.arange(2 * 3 * 4 * 4, dtype=torch.float).view(2, 3, 4, 4)
    target = PositionTarget("neuron", "c3", 1, positions=((0, 3), (2, 1)))
    assert target.from_map(node_map).tolist() == [node_map[0, 1, 0, 3].item(), node_map[1, 1, 2, 1].item()]
    with pytest.raises(ValueError):
        target.from_map(node_map[:1])


def test_iou_and_crop():
    a = Circuit("m", "", Target("node", "c3", 0), "actgrad", 0.1, {"c1": torch.tensor([[True], [True], [False]])})
    b = Circuit("m", "", Target("node", "c3", 0), "actgrad", 0.1, {"c1": torch.tensor([[True], [False], [True]])})
    assert kernel_iou(a, b) == pytest.approx(1 / 3) and kernel_iou(a, a) == 1.0
    pixels = torch.arange(16, dtype=torch.float).view(1, 4, 4)
    window = crop(pixels, (-1, 2, 2, 5), fill=-1.0)  # one row above the image, one column right of it
    assert window.shape == (1, 3, 3)
    assert window[0, 0].tolist() == [-1.0] * 3 and window[0, :, 2].tolist() == [-1.0] * 3
    assert window[0, 1:, :2].tolist() == [[2.0, 3.0], [6.0, 7.0]]


def test_cli_writes_clusters_pngs_and_loadable_circuits(case, capsys):
    folder, _loaded, graph, _, _ = case
    out = folder / "out"
    code = main(["subfeatures", "--model", f"{folder / 'net.py'}:make", "--images", str(folder / "bars.pt"),
                 "--node", "c3:0", "--top-n", "100", "--min-cluster-size", "15", "--keep", "0.25", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "2 clusters" in printed and "scrambled control" in printed
    data = json.loads((out / "clusters.json").read_text())
    assert data["node"] == "c3:0" and len(data["clusters"]) == 2 and len(data["iou"]) == 2
    assert data["mean_iou"] < data["mean_scrambled_iou"]
    member = data["clusters"][0]["members"][0]
    assert {"image", "y", "x", "value", "box", "source", "label"} <= set(member)
    assert member["box"] == list(graph["c3"].receptive_field.box(member["y"], member["x"]))
    for k in range(2):
        from PIL import Image

        with Image.open(out / f"cluster_{k}.png") as png:
            assert png.size[0] > 100
        circuit = Circuit.load(out / f"circuit_{k}.json", graph)
        assert circuit.num_edges == data["clusters"][k]["circuit_edges"]


def test_fewer_than_two_clusters_is_reported_not_raised(case):
    folder, loaded, graph, _, _ = case
    same = bar_images(2, seed=3)[0][:1].expand(60, -1, -1, -1).clone()  # one image, 60 times: no structure
    torch.save({"images": same}, folder / "same.pt")
    image_set = open_image_sets(str(folder / "same.pt"))["overall"]
    result = find_subfeatures(loaded.module, graph, image_set, loaded.preprocess, Node("c3", 0), top_n=60,
                              min_cluster_size=20, keep=0.25)
    assert len(result.clusters) < 2 and "no sub-features to separate" in result.message
    data = result.to_json(image_set, graph)
    assert data["mean_iou"] is None and data["message"] == result.message
    json.dumps(data)


@pytest.mark.parametrize("node, message", [
    ("nope:0", "unknown conv layer 'nope'"),
    ("c3:7", "channel 7 of node 'c3:7' is out of range: layer c3 has 3 channels"),
    ("input:0", "unknown conv layer 'input'"),
    ("c3", "cannot read node 'c3'"),
])
def test_bad_nodes(case, node, message):
    _, _, graph, _, _ = case
    with pytest.raises(ViscnnError, match=message.replace("(", r"\(")):
        parse_node(node, graph)


def test_bad_input_is_one_line(case, capsys):
    folder, loaded, graph, image_set, _ = case
    with pytest.raises(ViscnnError, match="channel -1 of node 'c3:-1' is out of range"):
        check_node(Node("c3", -1), graph)
    with pytest.raises(ViscnnError, match="too few images for min cluster size 70"):
        find_subfeatures(loaded.module, graph, image_set, loaded.preprocess, Node("c3", 0), min_cluster_size=70)
    with pytest.raises(ViscnnError, match="keep fraction"):
        find_subfeatures(loaded.module, graph, image_set, loaded.preprocess, Node("c3", 0), keep=0.0)
    for node, args in (("c3:9", []), ("c3:0", ["--min-cluster-size", "80"])):
        code = main(["subfeatures", "--model", f"{folder / 'net.py'}:make", "--images", str(folder / "bars.pt"),
                     "--node", node, "--out", str(folder / "bad"), *args])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and err.startswith("viscnn subfeatures: error:")


def test_fmnist_convnet_patches_and_clusters():
    loaded = load_model("fmnist-convnet")
    graph = build_graph(loaded.module, loaded.input_shape)
    image_set = open_image_sets("fashion-mnist:test:20")["overall"]
    node = parse_node("features.8:0", graph)
    result = find_subfeatures(loaded.module, graph, image_set, loaded.preprocess, node, top_n=100, min_cluster_size=10,
                              keep=0.05)
    assert len(result.patches) == 100 and len(result.labels) == 100
    patch = result.patches[0]
    recorder = Recorder(graph, stop_at="features.8", keep={"features.8"})
    x, _ = next(open_image_sets("fashion-mnist:test:20")["overall"].batches(loaded.preprocess, 200))
    with torch.no_grad():
        recorder.run(loaded.module, x)
    node_map = recorder.calls["features.8"].node_map
    assert float(node_map[:, 0].max()) == pytest.approx(patch.value, rel=1e-5)
    assert float(node_map[patch.image, 0, patch.y, patch.x]) == pytest.approx(patch.value, rel=1e-5)
    for members, circuit in zip(result.clusters, result.circuits):
        assert len(members) >= 10 and circuit.num_edges > 0 and str(circuit.target) == "features.8:0"
    if len(result.clusters) >= 2:
        assert np.all((result.iou >= 0) & (result.iou <= 1)) and np.all(np.diag(result.iou) == 1)
    assert top_patches(loaded.module, graph, image_set, loaded.preprocess, node, top_n=5)[0].value == patch.value
