"""circuit.extract(): a physically smaller network whose target equals the masked circuit's exactly."""
import pytest
import torch
from torch import nn

from viscnn.circuits import extract_circuit, target_output
from viscnn.errors import ViscnnError
from viscnn.graph import build_graph
from viscnn.models import load_model
from viscnn.scoring import parse_target


class Residual(nn.Module):
    """Stem, an inverted residual block (1x1 expand, depthwise, 1x1 project, BN, add) and a head."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.stem_bn = nn.BatchNorm2d(8)
        self.expand = nn.Conv2d(8, 24, 1)
        self.depthwise = nn.Conv2d(24, 24, 3, padding=1, groups=24)
        self.project = nn.Conv2d(24, 8, 1)
        self.project_bn = nn.BatchNorm2d(8)
        self.last = nn.Conv2d(8, 16, 3, padding=1)
        self.head = nn.Linear(16, 5)
        for bn in (self.stem_bn, self.project_bn):  # non-trivial statistics, so folding matters
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.bias.data.uniform_(-0.5, 0.5)

    def forward(self, x):
        x = torch.relu(self.stem_bn(self.stem(x)))
        y = self.project_bn(self.project(torch.relu(self.depthwise(torch.relu(self.expand(x))))))
        x = torch.relu(self.last(x + y))
        return self.head(x.mean(dim=(2, 3)))


def masked_and_extracted(model, graph, target_text, keep, images, labels=None):
    target = parse_target(target_text, graph)
    circuit = extract_circuit(model, graph, [(images, labels)], target, keep, "actgrad")
    extracted = circuit.extract(model, graph)
    masked = target_output(model, graph, images, labels, target, masks={k: v.float() for k, v in circuit.masks.items()})
    smaller = target_output(extracted.module, extracted.graph, images, labels, extracted.target)
    return circuit, extracted, masked, smaller


@pytest.fixture(scope="module")
def residual():
    model = Residual().eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model, build_graph(model, (3, 12, 12)), torch.randn(6, 3, 12, 12, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("target", ["project:3", "last:5", "depthwise:7:neuron", "logit:2"])
def test_residual_depthwise_bn_extraction_is_exact(residual, target):
    model, graph, images = residual
    before = {k: v.clone() for k, v in model.state_dict().items()}
    _circuit, extracted, masked, smaller = masked_and_extracted(model, graph, target, 0.2, images)
    assert torch.allclose(masked, smaller, atol=1e-5, rtol=1e-5)
    assert extracted.removed_filters > 0 and extracted.parameters_after < extracted.parameters_before
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), "the user's model was changed"
    if target.startswith(("project", "last", "depthwise")):
        layer, channel = target.split(":")[:2]
        assert extracted.channels[layer][int(extracted.target.channel)] == int(channel)
    # the residual add couples stem and project channels: one is kept exactly when the other is
    assert extracted.channels["stem"] == extracted.channels["project"]


def test_kept_filters_are_exactly_those_the_circuit_reads(residual):
    model, graph, images = residual
    circuit, extracted, _, _ = masked_and_extracted(model, graph, "last:5", 0.2, images)
    kept_kernels_into = {name: set(mask.any(dim=1).nonzero().flatten().tolist()) for name, mask in circuit.masks.items()}
    assert set(extracted.channels["expand"]) == kept_kernels_into["expand"]  # 1x1 expand: read by the depthwise kernels
    assert set(extracted.channels["depthwise"]) == kept_kernels_into["depthwise"]


def test_fmnist_convnet_circuit_is_much_smaller_and_exact():
    loaded = load_model("fmnist-convnet")
    graph = build_graph(loaded.module, loaded.input_shape, loaded.name)
    images = torch.randn(8, *loaded.input_shape, generator=torch.Generator().manual_seed(0))
    for target, keep in (("features.8:5", 0.05), ("loss", 0.1)):
        labels = torch.arange(8) % 10
        _, extracted, masked, smaller = masked_and_extracted(loaded.module, graph, target, keep, images, labels)
        assert torch.allclose(masked, smaller, atol=1e-4, rtol=1e-4), target
        assert extracted.parameters_after < 0.6 * extracted.parameters_before, target


def test_a_conv_called_twice_cannot_be_extracted():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(1, 4, 3, padding=1)
            self.b = nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, x):
            return self.b(torch.relu(self.b(torch.relu(self.a(x)))))

    model = Twice().eval()
    graph = build_graph(model, (1, 8, 8))
    assert [layer.name for layer in graph.conv_layers] == ["a", "b", "b@2"]
    target = parse_target("b@2:1", graph)
    circuit = extract_circuit(model, graph, [(torch.randn(4, 1, 8, 8), None)], target, 0.5, "actgrad")
    with pytest.raises(ViscnnError, match="called more than once"):
        circuit.extract(model, graph)


def test_circuit_command_extracts_and_checks(tmp_path, capsys):
    from viscnn.cli import main

    code = main(["circuit", "--model", "fmnist-convnet", "--images", "fashion-mnist:test:2", "--target", "features.6:3",
                 "--keep", "0.1", "--out", str(tmp_path / "c.json"), "--extract"])
    out = capsys.readouterr().out
    assert code == 0 and "extracted network:" in out and "(was features.6:3)" in out
    difference = float(out.rsplit("masked circuit ", 1)[1].split()[0])
    assert difference < 1e-4


def _frozen(model: nn.Module, shape: tuple[int, int, int]):
    model = model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model, build_graph(model, shape), torch.randn(4, *shape, generator=torch.Generator().manual_seed(2))


class Grouped(nn.Module):
    """RegNet/ResNeXt-like: a grouped (not depthwise) 3x3 conv between two 1x1 convs."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.reduce = nn.Conv2d(16, 16, 1)
        self.grouped = nn.Conv2d(16, 16, 3, padding=1, groups=4)
        self.expand = nn.Conv2d(16, 12, 1)
        self.head = nn.Linear(12, 4)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = torch.relu(self.expand(torch.relu(self.grouped(torch.relu(self.reduce(x))))))
        return self.head(x.mean(dim=(2, 3)))


class Shuffle(nn.Module):
    """ShuffleNet's channel shuffle (reshape, transpose, reshape) between two convs."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(4)
        self.first = nn.Conv2d(3, 8, 3, padding=1)
        self.second = nn.Conv2d(8, 8, 1)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        x = torch.relu(self.first(x))
        n, c, h, w = x.shape
        x = x.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)
        return self.head(torch.relu(self.second(x)).mean(dim=(2, 3)))


@pytest.mark.parametrize("target", ["expand:5", "logit:1"])
def test_grouped_conv_extraction_is_exact(target):
    model, graph, images = _frozen(Grouped(), (3, 10, 10))
    _circuit, extracted, masked, smaller = masked_and_extracted(model, graph, target, 0.2, images)
    assert torch.allclose(masked, smaller, atol=1e-5)
    assert extracted.removed_filters > 0  # filters away from the grouped conv still go


def test_channel_shuffle_extraction_is_refused_where_torch_pruning_mis_shuffles():
    model, graph, images = _frozen(Shuffle(), (3, 8, 8))
    circuit = extract_circuit(model, graph, [(images, None)], parse_target("logit:1", graph), 0.15, "actgrad")
    with pytest.raises(ViscnnError, match="a coupling it mis-handled"):  # torch-pruning 1.6 mis-shuffles silently
        circuit.extract(model, graph)


@pytest.mark.parametrize("keep", [0.1, 0.3, 0.6])
def test_channel_shuffle_extraction_is_exact_or_refused(keep):
    model, graph, images = _frozen(Shuffle(), (3, 8, 8))
    circuit = extract_circuit(model, graph, [(images, None)], parse_target("logit:1", graph), keep, "actgrad")
    try:
        extracted = circuit.extract(model, graph)
    except ViscnnError as error:
        assert str(error).startswith("cannot extract a circuit of this model physically") and "\n" not in str(error)
        return
    masked = target_output(model, graph, images, None, circuit.target, masks={k: v.float() for k, v in circuit.masks.items()})
    smaller = target_output(extracted.module, extracted.graph, images, None, extracted.target)
    assert torch.allclose(masked, smaller, atol=1e-5)


def test_what_torch_pruning_cannot_follow_is_refused_in_one_line(monkeypatch):
    import torch_pruning as tp

    def fail(*args, **kwargs):
        raise ZeroDivisionError("integer division or modulo by zero")  # as on ShuffleNetV2's reshapes

    model, graph, images = _frozen(Shuffle(), (3, 8, 8))
    circuit = extract_circuit(model, graph, [(images, None)], parse_target("logit:1", graph), 0.3, "actgrad")
    monkeypatch.setattr(tp.DependencyGraph, "build_dependency", fail)
    with pytest.raises(ViscnnError) as error:
        circuit.extract(model, graph)
    text = str(error.value)
    assert "\n" not in text and "ZeroDivisionError" in text and "the masked circuit (without --extract) is unaffected" in text


def test_a_dependency_search_that_runs_too_long_is_refused(monkeypatch):
    import time

    import torch_pruning as tp

    def endless(*args, **kwargs):  # as on ReXNet, where one group search runs for hours
        time.sleep(30)

    model, graph, images = _frozen(Grouped(), (3, 10, 10))
    circuit = extract_circuit(model, graph, [(images, None)], parse_target("logit:1", graph), 0.3, "actgrad")
    monkeypatch.setattr(tp.DependencyGraph, "get_pruning_group", endless)
    start = time.perf_counter()
    with pytest.raises(ViscnnError, match="dependency search took more than 0.5 s"):
        circuit.extract(model, graph, seconds=0.5)
    assert time.perf_counter() - start < 5
