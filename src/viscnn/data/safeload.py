"""Reading tensors from files without ever running code in them: `.safetensors`, `.npy` (no pickles) and torch
files (`weights_only=True`). Every fault is one line naming the file and what is wrong with it, never torch's
advice to load a refused file unsafely (that would run whatever the file holds)."""
from __future__ import annotations

import pickle
import re
import warnings
from pathlib import Path

import numpy as np
import torch

from viscnn.errors import ViscnnError

WEIGHTS = "torch.save(model.state_dict(), 'weights.pt')"  # how to save tensors alone, for `load_tensors(resave=)`
IMAGES = "torch.save({'images': images, 'labels': labels}, 'images.pt')"
_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def load_tensors(path: Path, what: str, *, resave: str = WEIGHTS) -> object:
    """What a `.safetensors`, `.npy` or torch file holds (a tensor, or a dict of them); `what` names the file
    in errors ('weights', 'tensor file'), `resave` how to save tensors alone. A ViscnnError (one line) when it
    is missing, empty, corrupt, or holds anything but tensors."""
    if path.is_dir():
        raise ViscnnError(f"{what} {path} is a folder, not a file")
    if not path.is_file():
        raise ViscnnError(f"{what} {path} does not exist")
    if path.stat().st_size == 0:
        raise ViscnnError(f"cannot read {what} {path}: the file is empty")
    suffix = path.suffix.lower()
    try:
        with warnings.catch_warnings():  # torch's notes on pickle protocols come before its own refusal
            warnings.simplefilter("ignore")
            if suffix == ".npy":
                return torch.from_numpy(np.load(path, allow_pickle=False))
            if suffix == ".safetensors":
                from safetensors.torch import load_file

                return load_file(str(path))
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt or foreign files fail in many ways: say which file and why
        raise ViscnnError(f"cannot read {what} {path}: {load_error_text(exc, resave=resave)}") from exc


def load_error_text(exc: Exception, *, resave: str = WEIGHTS) -> str:
    """Why a tensor file could not be read, in one line (never torch's advice to load it with weights_only=False;
    instead how to save the tensors alone, `resave`)."""
    text = str(exc)
    if isinstance(exc, pickle.UnpicklingError) or "weights_only" in text:
        found = _GLOBAL.search(text)
        if found:
            what = f"it holds Python objects besides tensors ({found.group(1)}), and loading them could run code: refused"
        else:
            what = "it is not a weights-only torch file (a plain pickle, or not a torch file at all): refused"
        return (f"{what}. viscnn loads only weights-only files (tensors, never code): if you trust this one, load it "
                f"in your own Python and save the tensors alone, e.g. {resave}")
    if isinstance(exc, EOFError):
        return "the file ends early (cut off while it was written or copied?)"
    if isinstance(exc, KeyError):  # torch's reader of old-style files, on bytes that are no torch file
        return "not a torch file (nor .safetensors or .npy)"
    first = re.split(r"(?<=[.?!])\s|\n", text.strip(), maxsplit=1)[0] if text.strip() else "unreadable"
    return f"{type(exc).__name__}: {first[:200]}"
