"""Composition paths: contributors match a brute-force activation x gradient, saliency stays in the field."""
import json
import math

import pytest
import torch
from torch import nn

from viscnn.circuits.composition import compose
from viscnn.cli import main
from viscnn.data import open_image_sets
from viscnn.errors import ViscnnError
from viscnn.graph import Unit, build_graph
from viscnn.graph.ids import parse_unit
from viscnn.models import load_model


class Chain(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.c1 = nn.Conv2d(1, 5, 3, padding=1)
        self.c2 = nn.Conv2d(5, 6, 3, padding=1)
        self.c3 = nn.Conv2d(6, 4, 3, padding=1)

    def forward(self, x):
        x = torch.relu(self.c1(x))
        x = torch.relu(self.c2(x))
        return self.c3(nn.functional.max_pool2d(x, 2))


@pytest.fixture(scope="module")
def chain():
    model = Chain().eval()
    graph = build_graph(model, (1, 20, 20))
    image = torch.randn(1, 20, 20, generator=torch.Generator().manual_seed(1))
    return model, graph, image


def brute_force(model, image, layer, channel, y, x):
    """Every conv output of `model` on `image` and, per lower layer, act x grad of unit (layer, channel, y, x)."""
    outputs = {}
    hooks = [getattr(model, name).register_forward_hook(lambda m, i, o, name=name: outputs.__setitem__(name, o))
             for name in ("c1", "c2", "c3")]
    try:
        model(image[None])
    finally:
        for hook in hooks:
            hook.remove()
    lower = [name for name in ("c1", "c2", "c3") if name < layer]
    grads = torch.autograd.grad(outputs[layer][0, channel, y, x], [outputs[n] for n in lower])
    return {name: (outputs[name] * grad)[0].detach() for name, grad in zip(lower, grads)}


def test_children_and_layers_match_brute_force(chain):
    model, graph, image = chain
    result = compose(model, graph, image, parse_unit("c3:1:4,5", graph), top_k=3, depth=2)
    assert result.root.unit == Unit("c3", 1, 4, 5)
    products = brute_force(model, image, "c3", 1, 4, 5)
    sums = products["c2"].sum(dim=(1, 2))
    best = sums.topk(3)
    assert [child.unit.channel for child in result.root.children] == best.indices.tolist()
    for child, value in zip(result.root.children, best.values):
        assert child.unit.layer == "c2" and child.contribution == pytest.approx(float(value), rel=1e-4, abs=1e-6)
        peak = products["c2"][child.unit.channel]
        assert child.peak == pytest.approx(float(peak.max()), rel=1e-4) and peak[child.unit.y, child.unit.x] == peak.max()
    # the layer view: the root's top channels in every lower layer, from one backward pass
    for name in ("c1", "c2"):
        expected = products[name].sum(dim=(1, 2)).topk(3)
        assert [e["channel"] for e in result.layers[name]] == expected.indices.tolist()
        assert [e["contribution"] for e in result.layers[name]] == pytest.approx(expected.values.tolist(), rel=1e-4)
    # one level down: the units of c1 that most drive the chosen c2 unit
    child = result.root.children[0]
    below = brute_force(model, image, "c2", child.unit.channel, child.unit.y, child.unit.x)["c1"].sum(dim=(1, 2))
    positive = below[below != 0]
    assert [g.unit.channel for g in child.children] == below.topk(min(3, positive.numel())).indices.tolist()
    assert all(g.unit.layer == "c1" and not g.children for g in child.children)


def test_masked_saliency_stays_in_the_root_field_and_sums_to_the_gradient(chain):
    model, graph, image = chain
    result = compose(model, graph, image, parse_unit("c3:2:2,2", graph), top_k=6, depth=2)
    top, left, bottom, right = graph["c3"].receptive_field.box(2, 2)
    inside = torch.zeros(20, 20, dtype=torch.bool)
    inside[max(0, math.floor(top)):math.ceil(bottom), max(0, math.floor(left)):math.ceil(right)] = True
    assert not bool(inside.all())  # the field is a part of the image
    for _, node in result.root.walk():
        assert node.saliency.shape == (1, 20, 20)
        assert float(node.saliency[:, ~inside].abs().max()) == 0.0
    assert float(result.root.saliency.abs().max()) > 0
    # every c2 channel that contributes is a child: their masked gradients add up to the root's gradient
    x = image[None].clone().requires_grad_(True)
    out = model.c3(nn.functional.max_pool2d(torch.relu(model.c2(torch.relu(model.c1(x)))), 2))
    full = torch.autograd.grad(out[0, 2, 2, 2], x)[0][0]
    assert torch.allclose(result.root.saliency, full, atol=1e-6)
    total = sum(child.saliency for child in result.root.children)
    assert torch.allclose(total, full, atol=1e-5)


def test_masked_saliency_is_the_gradient_through_one_channel(chain):
    model, graph, image = chain
    result = compose(model, graph, image, parse_unit("c3:0", graph), top_k=2, depth=1)
    child = result.root.children[0]
    x = image[None].clone().requires_grad_(True)
    h1 = torch.relu(model.c1(x))
    keep = torch.zeros(1, 6, 1, 1)
    keep[0, child.unit.channel] = 1.0
    c2 = model.c2(h1)
    c2 = c2 * keep + (c2 * (1 - keep)).detach()  # gradient through the one channel, forward unchanged
    out = model.c3(nn.functional.max_pool2d(torch.relu(c2), 2))
    root = result.root.unit
    expected = torch.autograd.grad(out[0, 0, root.y, root.x], x)[0][0]
    assert torch.allclose(child.saliency, expected, atol=1e-6)
    peak = out[0, 0].detach()
    assert peak[root.y, root.x] == peak.max()  # without a position, the channel's peak on the image


def test_to_json_and_paths(chain):
    model, graph, image = chain
    result = compose(model, graph, image, Unit("c3", 3, 1, 1), top_k=2, depth=2, model_name="chain", image_name="noise")
    data = json.loads(json.dumps(result.to_json()))
    assert data["root"] == "c3:3:1,1" and data["tree"]["unit"] == "c3:3:1,1" and data["model"] == "chain"
    assert len(data["tree"]["children"]) == len(result.root.children)
    paths = result.paths()
    assert all(p[0] == "c3:3:1,1" and len(p) <= 3 for p in paths)
    assert len(paths) == sum(1 for _, node in result.root.walk() if not node.children)
    assert compose(model, graph, image, parse_unit("c3:3:1,1", graph), depth=0).root.children == []


@pytest.mark.parametrize("unit, message", [
    ("nope:0", "unknown conv layer 'nope'"),
    ("input:0", "unknown conv layer 'input'"),
    ("c3:4", "channel 4 of unit 'c3:4' is out of range: layer c3 has 4 channels"),
    ("c3:1:10,0", "position 10,0 is outside the 10x10 map of layer c3"),
    ("c3", "cannot read unit 'c3'"),
    ("c3:1:2", "unknown conv layer 'c3:1' in unit 'c3:1:2'"),
    ("c3:-1", "cannot read unit"),
])
def test_bad_units(chain, unit, message):
    model, graph, image = chain
    with pytest.raises(ViscnnError, match=message):
        compose(model, graph, image, parse_unit(unit, graph))


def test_bad_arguments(chain):
    model, graph, image = chain
    with pytest.raises(ViscnnError, match="top-k must be at least 1"):
        compose(model, graph, image, parse_unit("c3:0", graph), top_k=0)
    with pytest.raises(ViscnnError, match="depth must be at least 0"):
        compose(model, graph, image, parse_unit("c3:0", graph), depth=-1)
    assert parse_unit("c2:5:3,4", graph) == Unit("c2", 5, 3, 4)
    assert parse_unit(" c2:5 ", graph) == Unit("c2", 5) and Unit("c2", 5).position is None


def test_fmnist_convnet_cli_writes_json_and_pngs(tmp_path, capsys):
    code = main(["composition", "--model", "fmnist-convnet", "--image", "fashion-mnist:test:1", "--index", "1",
                 "--unit", "features.10:7", "--top-k", "2", "--depth", "2", "--out", str(tmp_path)])
    assert code == 0
    assert "features.10:7:" in capsys.readouterr().out
    data = json.loads((tmp_path / "composition.json").read_text())
    assert data["model"] == "fmnist-convnet" and len(data["tree"]["children"]) == 2
    assert data["tree"]["children"][0]["layer"] == "features.8"
    files = sorted(p.name for p in tmp_path.glob("saliency_*.png"))
    assert len(files) == 1 + 2 + 4 and data["tree"]["saliency"] == "saliency_root.png"
    assert data["tree"]["children"][1]["children"][0]["saliency"] == "saliency_1_0.png"
    first = data["layers"]["features.8"][0]
    child = data["tree"]["children"][0]
    assert (first["channel"], first["y"], first["x"]) == (child["channel"], child["y"], child["x"])
    assert first["contribution"] == pytest.approx(child["contribution"])


def test_fmnist_convnet_saliency_inside_the_field():
    loaded = load_model("fmnist-convnet")
    graph = build_graph(loaded.module, loaded.input_shape)
    x, _ = next(open_image_sets("fashion-mnist:test:1")["overall"].batches(loaded.preprocess, 2))
    result = compose(loaded.module, graph, x[1], parse_unit("features.6:3:1,1", graph), top_k=2, depth=2)
    top, left, bottom, right = graph["features.6"].receptive_field.box(1, 1)
    inside = torch.zeros(28, 28, dtype=torch.bool)
    inside[max(0, math.floor(top)):math.ceil(bottom), max(0, math.floor(left)):math.ceil(right)] = True
    assert not bool(inside.all())
    for _, node in result.root.walk():
        assert float(node.saliency[:, ~inside].abs().max()) == 0.0


def test_cli_bad_unit_is_one_line(capsys):
    code = main(["composition", "--model", "fmnist-convnet", "--image", "fashion-mnist:test:1",
                 "--unit", "features.10:64", "--out", "/tmp/never-written"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "channel 64" in err and "64 channels" in err
