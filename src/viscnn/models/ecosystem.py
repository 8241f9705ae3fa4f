"""Models by name from the ecosystem: `tv:NAME` (any torchvision classification model), `timm:NAME` (any timm model).

The architecture comes from the library; so does its preprocessing (torchvision's weight transforms,
timm's `resolve_data_config`), never a guess. With `pretrained`, the library's own published weights are
loaded from the user's local cache (torch hub's for torchvision, Hugging Face's for timm); nothing is
downloaded here: a weights file that is not cached is one error saying where it would come from.
"""
from __future__ import annotations

import difflib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from viscnn.data.safeload import load_error_text
from viscnn.errors import ViscnnError
from viscnn.models.preprocess import Preprocess

PREFIXES = ("tv", "timm")


@dataclass
class EcosystemModel:
    """A model built by its library, with the library's preprocessing and class names."""

    module: nn.Module
    preprocess: Preprocess
    class_names: list[str] | None
    pretrained: bool
    source: str  # where the preprocessing (and weights) came from, said once to the user


def is_ecosystem_name(name: str) -> bool:
    prefix, _, rest = name.partition(":")
    return prefix in PREFIXES and bool(rest) and "/" not in rest and not rest.endswith(".py")


RANDOM_SEED = 0


def load_ecosystem(name: str, *, pretrained: bool = False) -> EcosystemModel:
    """Build `tv:NAME` or `timm:NAME`; with `pretrained`, load the library's published weights from its cache.

    Without them the weights are the library's random initialisation drawn with seed `RANDOM_SEED` (the
    global RNG is left as it was), so two runs see the same model: a circuit saved by one loads in the other.
    """
    prefix, _, arch = name.partition(":")
    if prefix not in PREFIXES:
        raise ViscnnError(f"unknown model library {prefix!r} in {name!r}: use tv:NAME or timm:NAME")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_SEED)
        return _torchvision(arch, pretrained=pretrained) if prefix == "tv" else _timm(arch, pretrained=pretrained)


def _unknown(library: str, arch: str, known: list[str]) -> ViscnnError:
    close = difflib.get_close_matches(arch, known, n=3, cutoff=0.6)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return ViscnnError(f"{library} has no model {arch!r}{hint}")


# --- torchvision --------------------------------------------------------------------------------------
_AUX = {"googlenet": ("aux1.", "aux2."), "inception_v3": ("AuxLogits.",)}


def _torchvision(arch: str, *, pretrained: bool) -> EcosystemModel:
    import torchvision.models as tv

    known = tv.list_models(module=tv)
    if arch not in known:
        raise _unknown("torchvision (classification models)", arch, known)
    weights = tv.get_model_weights(arch).DEFAULT
    kwargs: dict[str, Any] = {"num_classes": len(weights.meta["categories"])}
    if arch in _AUX:  # as torchvision builds them for their published weights: no auxiliary heads at inference
        kwargs.update(aux_logits=False, transform_input=True, init_weights=False)
    module = tv.get_model(arch, weights=None, **kwargs)
    if pretrained:
        state = _torchvision_state(arch, weights)
        skip = _AUX.get(arch, ())
        state = {k: v for k, v in state.items() if not k.startswith(skip)} if skip else state
        from viscnn.models.zoo import apply_weights

        apply_weights(module, state, weights.url, f"tv:{arch}")
    transforms = weights.transforms()
    preprocess = Preprocess(size=_one(transforms.crop_size), resize=_one(transforms.resize_size),
                            mean=tuple(transforms.mean), std=tuple(transforms.std),
                            interpolation=transforms.interpolation.value)
    return EcosystemModel(module, preprocess, list(weights.meta["categories"]), pretrained,
                          f"torchvision's {weights} transforms")


def _one(value: Any) -> int:
    return int(value[0] if isinstance(value, (list, tuple)) else value)


def _torchvision_state(arch: str, weights: Any) -> dict[str, torch.Tensor]:
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)
    if not cached.is_file():
        raise ViscnnError(f"the pretrained weights of tv:{arch} ({weights}) are not in torch hub's cache: torchvision "
                          f"would download {weights.url} to {cached}; this machine cannot. Put the file there "
                          f"(or set TORCH_HOME), or pass a state dict with --weights FILE")
    try:  # the library's loader, reading the cached file; weights only: a checkpoint never runs code
        with warnings.catch_warnings():  # torch's notes on pickle protocols come before its own refusal
            warnings.simplefilter("ignore")
            return weights.get_state_dict(progress=False, check_hash=True, weights_only=True)
    except Exception as exc:  # a corrupt or foreign file in the cache: say which
        raise ViscnnError(f"cannot read cached weights {cached} of tv:{arch}: {load_error_text(exc)}") from exc


# --- timm ---------------------------------------------------------------------------------------------
def _timm(arch: str, *, pretrained: bool) -> EcosystemModel:
    try:
        import timm
        from timm.data import resolve_data_config
    except ImportError as exc:
        raise ViscnnError("timm models need the timm package: pip install timm") from exc
    base = arch.split(".", 1)[0]
    if not timm.is_model(base):
        raise _unknown("timm", arch, timm.list_models())
    overlay: dict[str, Any] = {}
    if pretrained:
        overlay["file"] = _timm_cached_file(timm, arch)
    try:
        with warnings.catch_warnings():  # torch's notes on pickle protocols come before its own refusal
            warnings.simplefilter("ignore")
            module = timm.create_model(arch, pretrained=pretrained, pretrained_cfg_overlay=overlay or None)
    except ViscnnError:
        raise
    except Exception as exc:  # timm's own refusal (e.g. an unknown pretrained tag) or a file that does not fit
        raise ViscnnError(f"timm could not build {arch!r}: {load_error_text(exc)}") from exc
    config = resolve_data_config({}, model=module)
    channels, height, width = config["input_size"]
    if height != width:
        raise ViscnnError(f"timm:{arch} wants {height}x{width} inputs: viscnn handles square inputs only")
    crop_pct = float(config.get("crop_pct") or 1.0)
    resize = round(height / crop_pct) if config.get("crop_mode", "center") == "center" else None
    preprocess = Preprocess(size=int(height), resize=resize, mean=tuple(config["mean"]), std=tuple(config["std"]),
                            channels=int(channels), interpolation=str(config.get("interpolation", "bicubic")))
    return EcosystemModel(module, preprocess, _timm_class_names(module), pretrained,
                          f"timm's resolve_data_config for {arch}")


def _timm_cached_file(timm: Any, arch: str) -> str:
    cfg = timm.models.get_pretrained_cfg(arch, allow_unregistered=False)
    if cfg is None:
        raise ViscnnError(f"timm has no pretrained weights for {arch!r}")
    hub_id = cfg.hf_hub_id
    if hub_id:
        from huggingface_hub import constants, try_to_load_from_cache

        for filename in ("model.safetensors", "pytorch_model.bin"):
            found = try_to_load_from_cache(hub_id, filename, cache_dir=constants.HF_HUB_CACHE)
            if isinstance(found, str):
                return found
        where = f"the Hugging Face Hub repository {hub_id} (cache: {constants.HF_HUB_CACHE})"
    else:
        where = cfg.url or "timm's release page"
    raise ViscnnError(f"the pretrained weights of timm:{arch} are not in the local cache: timm would download them "
                      f"from {where}; this machine cannot. Fetch them where you can reach the hub (they land in "
                      f"that cache), or pass a state dict with --weights FILE")


def _timm_class_names(module: nn.Module) -> list[str] | None:
    """ImageNet class names where the head is an ImageNet-1k head (timm's own label info), else None."""
    classes = getattr(module, "num_classes", None)
    if classes != 1000:
        return None
    try:
        from timm.data import ImageNetInfo
    except ImportError:  # an older timm without label info: the class names are then unknown, not guessed
        return None
    info = ImageNetInfo()
    return [info.index_to_description(i) for i in range(1000)]
