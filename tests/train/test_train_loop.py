"""train_fmnist: bitwise determinism, the sparse prox at work, saved weights (short runs on a subset)."""
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from viscnn.train import train_fmnist
from viscnn.train.sparsity import conv_weights, kernel_norms

SHORT = {"epochs": 1, "max_steps": 8, "subset": 8 * 32, "batch_size": 32, "test_subset": 100, "progress": False}


def _state(report):
    return report.module.state_dict()


def test_same_seed_gives_bitwise_identical_weights_and_restores_torch_settings():
    threads, flag = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    first = train_fmnist(sparse=False, seed=3, **SHORT)
    second = train_fmnist(sparse=False, seed=3, **SHORT)
    assert first.steps == 8
    assert all(torch.equal(a, b) for a, b in zip(_state(first).values(), _state(second).values()))
    other = train_fmnist(sparse=False, seed=4, **SHORT)
    assert not torch.equal(_state(first)["features.0.weight"], _state(other)["features.0.weight"])
    assert torch.get_num_threads() == threads and torch.are_deterministic_algorithms_enabled() == flag


def test_group_sparsity_lowers_kernel_norms_and_zeroes_kernels():
    dense = train_fmnist(sparse=False, seed=0, **SHORT)
    sparse = train_fmnist(sparse=True, seed=0, group_lambda=0.2, **SHORT)
    assert dense.exact_zero_fraction == 0.0
    assert sparse.exact_zero_fraction > 0.05
    for (name, dense_weight), (_, sparse_weight) in zip(conv_weights(dense.module), conv_weights(sparse.module)):
        assert kernel_norms(sparse_weight).mean() < kernel_norms(dense_weight).mean(), name
    assert sparse.zero_fraction >= sparse.exact_zero_fraction
    assert set(sparse.layer_zero_fractions) == {name for name, _ in conv_weights(sparse.module)}


def test_weights_are_written_as_safetensors_with_metadata(tmp_path):
    out = tmp_path / "sub" / "w.safetensors"
    report = train_fmnist(sparse=True, seed=1, group_lambda=0.01, out=out, **SHORT)
    assert report.weights_path == out and out.is_file()
    state = load_file(str(out))
    assert all(torch.equal(state[k], v) for k, v in _state(report).items())
    with safe_open(str(out), "pt") as handle:
        meta = handle.metadata()
    assert meta["model"] == "fmnist-convnet-sparse" and meta["seed"] == "1" and meta["group_lambda"] == "0.01"
    assert "module" not in report.to_dict() and report.to_dict()["weights_path"] == str(out)
