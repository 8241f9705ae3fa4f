"""Training fmnist-convnet (dense or hierarchically group-sparse) deterministically on the CPU."""
from __future__ import annotations

import contextlib
import functools
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from viscnn.data.fashion_mnist import load_fashion_mnist
from viscnn.errors import ViscnnError
from viscnn.models.fmnist import MEAN, STD, FmnistConvNet, model_name
from viscnn.train.sparsity import NEAR_ZERO_REL, GroupLevels, conv_weights, layer_sparsity, prox_

DEFAULT_EPOCHS = 4
DEFAULT_LR = 0.05
DEFAULT_LAMBDA = 1e-3  # group_lambda of the sparse model; the dense model uses 0
DEFAULT_BATCH = 128
MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4
WARMUP_STEPS = 200


@dataclass
class TrainReport:
    """What a training run produced. Fractions count 2D kernels; 'near zero' means norm <= threshold_rel * layer max."""

    model: str
    test_accuracy: float
    test_images: int
    zero_fraction: float  # near-zero kernels over all conv layers
    exact_zero_fraction: float  # kernels that are exactly zero (set so by the prox step)
    layer_zero_fractions: dict[str, float]  # near-zero fraction per conv layer
    layer_kernels: dict[str, int]
    dead_filters: dict[str, int]  # filters whose kernels are all exactly zero, per conv layer
    threshold_rel: float
    seconds: float
    steps: int
    epochs: int
    seed: int
    lr: float
    group_lambda: float
    batch_size: int
    levels: dict[str, float] = field(default_factory=dict)  # weights of the kernel / filter / input group levels
    weights_path: Path | None = None
    module: nn.Module | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        """A JSON-ready dict of everything except the module."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "module"}
        data["weights_path"] = str(self.weights_path) if self.weights_path else None
        return data


@functools.lru_cache(maxsize=2)
def _split(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Fashion-MNIST split, read once per process (the idx files take a few seconds to decompress)."""
    return load_fashion_mnist(name)


def images_to_inputs(images: torch.Tensor) -> torch.Tensor:
    """uint8 images [N, 28, 28] -> normalised float inputs [N, 1, 28, 28] (the zoo's preprocessing)."""
    return ((images.float() / 255.0 - MEAN) / STD).unsqueeze(1)


@torch.no_grad()
def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> float:
    """Top-1 accuracy of the model on uint8 images [N, 28, 28] with labels [N]."""
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for start in range(0, len(images), batch_size):
        inputs = images_to_inputs(images[start:start + batch_size]).to(device)
        correct += int((model(inputs).argmax(dim=1).cpu() == labels[start:start + batch_size]).sum())
    return correct / max(1, len(images))


@contextlib.contextmanager
def _deterministic(threads: int | None, warn_only: bool = False) -> Iterator[None]:
    """Deterministic kernels and a fixed thread count for the duration; the previous settings come back after."""
    previous_flag = torch.are_deterministic_algorithms_enabled()
    previous_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    previous_threads = torch.get_num_threads()
    torch.use_deterministic_algorithms(True, warn_only=warn_only)
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous_flag, warn_only=previous_warn)
        torch.set_num_threads(previous_threads)


def _lr_at(step: int, total: int, base: float) -> float:
    """Linear warm-up over WARMUP_STEPS (or a tenth of a short run), then cosine decay to zero."""
    warmup = min(WARMUP_STEPS, max(1, total // 10))
    if step < warmup:
        return base * (step + 1) / warmup
    return base * 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def save_weights(model: nn.Module, path: Path, metadata: dict[str, str]) -> Path:
    """Write the state dict as float32 safetensors (atomically: a temporary file, then a rename)."""
    from safetensors.torch import save_file

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        state = {k: v.detach().cpu().float().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(tmp), metadata=metadata)
        tmp.replace(path)
    except OSError as exc:
        raise ViscnnError(f"cannot write weights to {path}: {exc.strerror or exc}") from exc
    return path


def train_fmnist(*, sparse: bool, epochs: int = DEFAULT_EPOCHS, seed: int = 0, lr: float = DEFAULT_LR,
                 group_lambda: float | None = None, batch_size: int = DEFAULT_BATCH, out: Path | None = None,
                 progress: bool = True, max_steps: int | None = None, subset: int | None = None,
                 test_subset: int | None = None, device: str = "cpu", threads: int | None = 2,
                 levels: GroupLevels | None = None) -> TrainReport:
    """Train FmnistConvNet on Fashion-MNIST with SGD (momentum, warm-up + cosine lr) and return a TrainReport.

    ``sparse`` turns on the hierarchical group-sparse prox step (`viscnn.train.sparsity`) with strength
    ``group_lambda`` (default DEFAULT_LAMBDA; a non-zero ``group_lambda`` also applies it to a dense run).
    The run is reproducible bit for bit on one machine: the seed fixes initialisation, shuffling and dropout,
    deterministic algorithms are on and the thread count is fixed to ``threads`` while training.
    ``subset`` / ``max_steps`` / ``test_subset`` shorten a run (tests); ``out`` saves the weights there.
    """
    levels = levels or GroupLevels()
    if epochs < 1:
        raise ViscnnError(f"epochs must be at least 1, got {epochs}")
    if group_lambda is None:
        group_lambda = DEFAULT_LAMBDA if sparse else 0.0
    if group_lambda < 0 or lr <= 0 or batch_size < 1:
        raise ViscnnError("lambda must be >= 0, lr > 0 and batch size >= 1")
    try:
        torch_device = torch.device(device)
        torch.empty(1, device=torch_device)
    except (RuntimeError, AssertionError) as exc:
        raise ViscnnError(f"cannot use device {device!r}: {str(exc).splitlines()[0]}") from exc
    train_images, train_labels = _split("train")
    test_images, test_labels = _split("test")
    if subset:
        train_images, train_labels = train_images[:subset], train_labels[:subset]
    if test_subset:
        test_images, test_labels = test_images[:test_subset], test_labels[:test_subset]
    inputs = images_to_inputs(train_images)
    steps_per_epoch = math.ceil(len(inputs) / batch_size)
    total = epochs * steps_per_epoch if max_steps is None else min(max_steps, epochs * steps_per_epoch)

    started = time.perf_counter()
    on_cpu = torch_device.type == "cpu"
    with _deterministic(threads if on_cpu else None, warn_only=not on_cpu):
        torch.manual_seed(seed)
        model = FmnistConvNet().to(torch_device)
        shuffler = torch.Generator().manual_seed(seed)
        optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
        convs = [weight for _, weight in conv_weights(model)]
        bar = tqdm(total=total, desc=f"train {model_name(sparse=sparse)}", unit="step", disable=not progress, leave=False)
        step = 0
        model.train()
        while step < total:
            order = torch.randperm(len(inputs), generator=shuffler)
            for start in range(0, len(inputs), batch_size):
                if step >= total:
                    break
                index = order[start:start + batch_size]
                batch, target = inputs[index].to(torch_device), train_labels[index].to(torch_device)
                step_lr = _lr_at(step, total, lr)
                for group in optimizer.param_groups:
                    group["lr"] = step_lr
                optimizer.zero_grad(set_to_none=True)
                loss = nn.functional.cross_entropy(model(batch), target)
                loss.backward()
                optimizer.step()
                if group_lambda > 0:
                    for weight in convs:
                        prox_(weight.data, step_lr * group_lambda, levels)
                step += 1
                bar.update(1)
                if step % 50 == 0:
                    bar.set_postfix(loss=f"{loss.item():.3f}")
        bar.close()
        accuracy = evaluate(model, test_images, test_labels)
    seconds = time.perf_counter() - started

    model = model.cpu().eval()
    layers = layer_sparsity(model)
    kernels = sum(layer.kernels for layer in layers)
    report = TrainReport(
        model=model_name(sparse=sparse), test_accuracy=accuracy, test_images=len(test_images),
        zero_fraction=sum(layer.near_zero for layer in layers) / kernels,
        exact_zero_fraction=sum(layer.zero for layer in layers) / kernels,
        layer_zero_fractions={layer.name: layer.near_zero_fraction for layer in layers},
        layer_kernels={layer.name: layer.kernels for layer in layers},
        dead_filters={layer.name: layer.dead_filters for layer in layers},
        threshold_rel=NEAR_ZERO_REL, seconds=seconds, steps=total, epochs=epochs, seed=seed, lr=lr,
        group_lambda=group_lambda, batch_size=batch_size,
        levels={"kernel": levels.kernel, "filter": levels.filter, "input": levels.input}, module=model)
    if out is not None:
        metadata = {"model": report.model, "seed": str(seed), "epochs": str(epochs), "lr": str(lr),
                    "group_lambda": str(group_lambda), "batch_size": str(batch_size), "steps": str(total),
                    "levels": f"kernel={levels.kernel},filter={levels.filter},input={levels.input}",
                    "test_accuracy": f"{accuracy:.4f}", "zero_fraction": f"{report.zero_fraction:.4f}"}
        report.weights_path = save_weights(model, Path(out), metadata)
    return report
