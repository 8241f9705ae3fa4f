"""Rendering on the real fmnist-convnet: objectives rise, edges beat natural images, seeds repeat,
batches match single renders, nothing stays attached to the model, circuits are rendered through."""
import importlib

import pytest
import torch

from viscnn.circuits.masking import CircuitModel
from viscnn.errors import ViscnnError
from viscnn.featurevis.render import RenderSettings, measure, render
from viscnn.scoring.targets import parse_target

STEPS = 24


@pytest.fixture(scope="module")
def natural(fmnist):
    from viscnn.data import open_image_sets

    loaded, _ = fmnist
    return torch.cat([x for x, _ in open_image_sets("fashion-mnist:test:20")["overall"].batches(loaded.preprocess, 100)])


def _render(fmnist, texts, **settings):
    loaded, graph = fmnist
    objectives = [parse_target(t, graph) for t in texts]
    return render(loaded.module, graph, loaded.preprocess, objectives, RenderSettings(**{"steps": STEPS, **settings}))


def test_objectives_rise_when_optimised(fmnist):
    texts = ["features.6:0", "features.8:2:neuron", "logit:1", "-features.6:3", "features.10:dir(1=1,2=-1)"]
    result = _render(fmnist, texts)
    assert result.images.shape == (5, 1, 28, 28)
    assert result.images.min() >= 0 and result.images.max() <= 1
    gains = result.values - result.initial_values
    assert torch.all(gains > 0.1), gains
    assert result.values[2] > 3  # a class logit well above where grey noise starts


def _positive_edges(fmnist, count):
    """Edges of features.3 whose kernel sums most positive: their mean map can rise above zero."""
    loaded, graph = fmnist
    weight = graph.kernels(loaded.module, "features.3")
    order = weight.sum(dim=(2, 3)).flatten().argsort(descending=True)[:count]
    return [f"features.3:{int(k) // weight.shape[1]}<-{int(k) % weight.shape[1]}" for k in order]


def test_edge_renders_beat_natural_images(fmnist, natural):
    """The paper's edge renders were noise; here each edge's own output on its render beats every image."""
    loaded, graph = fmnist
    texts = [f"{t}:neuron" for t in _positive_edges(fmnist, 2)] + ["features.8:5<-7:neuron", "features.3:35<-12"]
    result = _render(fmnist, texts, steps=96)
    for text, value in zip(texts, result.values):
        own = measure(loaded.module, graph, parse_target(text, graph), natural)
        assert value > own.max() and value > 1.5 * own.quantile(0.99), (text, float(value), float(own.max()))
    deep = measure(loaded.module, graph, parse_target(texts[2], graph), natural)
    assert result.values[2] > 3 * deep.quantile(0.99)


def test_same_seed_same_images_other_seed_other_images(fmnist):
    a = _render(fmnist, ["features.6:0", "features.8:1"], steps=5, seed=3)
    b = _render(fmnist, ["features.6:0", "features.8:1"], steps=5, seed=3)
    c = _render(fmnist, ["features.6:0", "features.8:1"], steps=5, seed=4)
    assert torch.equal(a.images, b.images)
    assert not torch.equal(a.images, c.images)


def test_an_objective_renders_the_same_alone_or_in_any_batch(fmnist):
    """Each image has its own seeded start and transforms, so batching changes only floating-point rounding
    (which the optimisation can amplify a little: a max-pool tie broken the other way moves a gradient)."""
    texts = ["features.6:0", "features.6:2", "features.8:4", "logit:7"]
    together = _render(fmnist, texts, batch=4)
    split = _render(fmnist, texts, batch=3)
    alone = _render(fmnist, texts[2:3], batch=1)
    assert torch.allclose(together.values[:3], split.values[:3], rtol=1e-3, atol=1e-3)
    assert (together.images[:3] - split.images[:3]).abs().max() < 1e-2
    # the logit reads the whole model: its render may drift a little from rounding (a max-pool tie in the grey
    # border broken the other way sends a gradient elsewhere), still the same image
    assert torch.allclose(together.values[3], split.values[3], rtol=5e-2)
    assert (together.images[3] - split.images[3]).abs().mean() < 0.05
    correlation = torch.corrcoef(torch.stack([together.images[3].flatten(), split.images[3].flatten()]))[0, 1]
    assert correlation > 0.9
    assert (alone.images[0] - together.images[2]).abs().max() < 1e-2
    assert abs(float(alone.values[0] - together.values[2])) < 1e-3
    other_seed = _render(fmnist, texts[2:3], batch=1, seed=1)
    assert (other_seed.images[0] - alone.images[0]).abs().max() > 0.05


def test_rendering_gives_the_model_no_gradients(fmnist):
    loaded, _ = fmnist
    parameters = list(loaded.module.parameters())
    wanted = [p.requires_grad for p in parameters]
    for p in parameters:
        p.requires_grad_(True)
        p.grad = None
    try:
        result = _render(fmnist, ["features.8:1", "logit:3"], steps=3)
        assert torch.all(result.values > result.initial_values)
        assert all(p.grad is None for p in parameters)  # weights' gradients are neither computed nor stored
    finally:
        for p, w in zip(parameters, wanted):
            p.requires_grad_(w)


def test_pass_size_fits_the_cpu_cache_unless_given():
    from viscnn.featurevis.render import pass_size

    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert pass_size(RenderSettings(), 224, cpu) == 2
    assert pass_size(RenderSettings(), 28, cpu) == 32 and pass_size(RenderSettings(), 128, cpu) == 6
    assert pass_size(RenderSettings(copies=4), 224, cpu) == 1
    assert pass_size(RenderSettings(), 224, gpu) == 32 and pass_size(RenderSettings(batch=7), 224, cpu) == 7


def _no_modes_or_hooks(module):
    assert torch._C._len_torch_function_stack() == 0
    for sub in module.modules():
        assert not sub._forward_hooks and not sub._forward_pre_hooks and not sub._backward_hooks


def test_nothing_left_attached_after_render_or_error(fmnist):
    loaded, _ = fmnist
    _render(fmnist, ["features.6:0"], steps=2)
    _no_modes_or_hooks(loaded.module)
    with pytest.raises(ViscnnError, match="outside the 7x7 map"):
        _render(fmnist, ["features.6:0:20,20"], steps=2)
    _no_modes_or_hooks(loaded.module)


def test_copies_with_diversity_differ(fmnist):
    result = _render(fmnist, ["features.8:3"], copies=3, diversity=1.0, steps=10)
    assert result.images.shape[0] == 3 and result.owners == [0, 0, 0]
    assert (result.images[0] - result.images[1]).abs().mean() > 0.01


def test_circuit_model_is_rendered_through(fmnist):
    loaded, graph = fmnist
    masks = {layer.name: torch.ones(layer.out_channels, layer.in_per_group) for layer in graph.conv_layers}
    masks["features.6"][2] = 0
    masks["features.6"][2, :8] = 1  # node features.6:2 keeps only 8 of its 64 kernels
    circuit = CircuitModel(loaded.module, graph, masks)
    objective = [parse_target("features.6:2", graph)]
    full = render(loaded.module, graph, loaded.preprocess, objective, RenderSettings(steps=STEPS))
    through = render(circuit, graph, loaded.preprocess, objective, RenderSettings(steps=STEPS))
    assert through.values[0] > through.initial_values[0]
    assert not torch.allclose(full.images, through.images, atol=1e-3)
    # the circuit's render, measured in the circuit, comes from those 8 kernels alone
    x = loaded.preprocess.normalize(through.images)
    assert torch.allclose(measure(circuit, graph, objective[0], x), through.values, atol=1e-4)
    assert not torch.allclose(measure(loaded.module, graph, objective[0], x), through.values, atol=1e-3)


@pytest.mark.parametrize("settings, message", [
    ({"steps": 0}, "steps must be a positive"),
    ({"steps": -3}, "steps must be a positive"),
    ({"size": 32}, "cannot take 32x32 px images"),
    ({"size": 0}, "image size must be positive"),
    ({"batch": 0}, "batch must be positive"),
    ({"param": "wavelet"}, "unknown image parametrisation"),
    ({"transforms": "heavy"}, "unknown transforms"),
])
def test_bad_settings_are_clear_errors(fmnist, settings, message):
    with pytest.raises(ViscnnError, match=message):
        _render(fmnist, ["features.6:0"], **settings)


def test_nothing_to_render_is_an_error(fmnist):
    loaded, graph = fmnist
    with pytest.raises(ViscnnError, match="nothing to render"):
        render(loaded.module, graph, loaded.preprocess, [], RenderSettings(steps=1))


def _dead_start_model():
    """conv (ReLU, dead on the grey start: bias -0.6, weights summing to 1) -> 1x1 conv reading it."""
    torch.manual_seed(0)
    first = torch.nn.Conv2d(1, 1, 3, padding=1)
    first.weight.data.fill_(1 / 9)
    first.bias.data.fill_(-0.6)
    second = torch.nn.Conv2d(1, 1, 1)
    second.weight.data.fill_(1.0)
    second.bias.data.zero_()
    return torch.nn.Sequential(first, torch.nn.ReLU(), second).eval()


@pytest.mark.parametrize("redirect_steps", [0, 16])
def test_a_unit_dead_at_the_start_wakes_only_with_the_redirected_gradient(redirect_steps):
    from viscnn.graph import build_graph
    from viscnn.models.preprocess import Preprocess

    model = _dead_start_model()
    graph = build_graph(model, (1, 16, 16))
    preprocess = Preprocess(size=16, channels=1, mean=(0.0,), std=(1.0,))  # pixels as they are
    objective = parse_target(f"{graph.conv_layers[1].name}:0", graph)
    result = render(model, graph, preprocess, [objective], RenderSettings(steps=48, size=16, redirect_steps=redirect_steps,
                                                                          transforms="none", param="pixel"))
    assert float(result.initial_values[0]) == 0.0
    if redirect_steps:
        assert float(result.values[0]) > 0.1  # woke up, then the true gradient took over
    else:
        assert float(result.values[0]) == 0.0  # no gradient ever reaches the image


def test_passes_run_in_parallel_give_the_same_renders(fmnist):
    texts = ["features.6:0", "features.6:2", "features.8:4", "features.8:5"]
    threads = torch.get_num_threads()
    serial = _render(fmnist, texts, batch=1, workers=1)
    parallel = _render(fmnist, texts, batch=1, workers=2)
    assert torch.get_num_threads() == threads  # the workers' one-thread setting stays in the workers
    assert torch.allclose(serial.values, parallel.values, rtol=1e-4, atol=1e-5)
    assert (serial.images - parallel.images).abs().max() < 1e-3


def test_an_error_in_a_parallel_pass_is_raised_once(fmnist):
    loaded, graph = fmnist
    objectives = [parse_target(t, graph) for t in ["features.6:0", "features.6:1"]]
    with pytest.raises(ViscnnError, match="NaN"):
        render(loaded.module, graph, loaded.preprocess, objectives, RenderSettings(steps=3, batch=1, workers=2, lr=float("inf")))


def test_folding_bn_while_optimising_does_not_change_the_render(monkeypatch):
    from viscnn.graph import build_graph
    from viscnn.models.preprocess import Preprocess

    render_module = importlib.import_module("viscnn.featurevis.render")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3, padding=1, bias=False), torch.nn.BatchNorm2d(6),
                                torch.nn.ReLU6(), torch.nn.Conv2d(6, 4, 3, padding=1), torch.nn.BatchNorm2d(4)).eval()
    for bn in (model[1], model[4]):
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.3, 2)
        bn.weight.data.uniform_(-1.5, 1.5)
    graph = build_graph(model, (3, 16, 16))
    preprocess = Preprocess(size=16, resize=None, mean=(0.5,) * 3, std=(0.25,) * 3)
    objectives = [parse_target(t, graph) for t in ["3:0", "3:2<-4", "0:5:neuron"]]
    settings = RenderSettings(steps=12)
    folded = render(model, graph, preprocess, objectives, settings)
    check_size = render_module.check_size
    monkeypatch.setattr(render_module, "check_size", lambda *a: check_size(*a) and {})  # nothing to fold
    plain = render(model, graph, preprocess, objectives, settings)
    assert torch.allclose(folded.values, plain.values, rtol=1e-3, atol=1e-4)
    assert (folded.images - plain.images).abs().max() < 1e-3
