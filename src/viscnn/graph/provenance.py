"""Channel provenance: for every channel of a traced tensor, which filter(s) it comes from.

A provenance maps a source layer to one or more int arrays over the tensor's dim 1 (its channels),
holding the source channel, NO_SOURCE or ALL_CHANNELS. Several arrays for one layer appear when a
channel mixes two different channels of that layer (x + x[:, perm]).

Data-movement ops (view, cat, getitem, permute, channel shuffle...) are followed exactly by running the
same op on "id tensors": tensors shaped like the data whose elements hold the channel ids. That is
what lets the tracer handle any reshuffle without a rule per op.
"""
from __future__ import annotations

import numpy as np
import torch

from viscnn.graph.types import ALL_CHANNELS, NO_SOURCE

Provenance = dict[str, list[np.ndarray]]


def fresh(layer: str, channels: int) -> Provenance:
    """The provenance of a layer's own output: channel c comes from (layer, c)."""
    return {layer: [np.arange(channels, dtype=np.int64)]}


def _compatible(a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """One array standing for both, if they never name different channels for the same position."""
    if a.shape != b.shape:
        return None
    if np.any(a == ALL_CHANNELS) or np.any(b == ALL_CHANNELS):
        return np.where((a == ALL_CHANNELS) | (b == ALL_CHANNELS), ALL_CHANNELS, np.maximum(a, b))
    clash = (a >= 0) & (b >= 0) & (a != b)
    if clash.any():
        return None
    return np.where(a >= 0, a, b)


def merge(provenances: list[Provenance]) -> Provenance:
    """The provenance of an elementwise combination (add, mul...) of tensors with equal channel counts."""
    result: Provenance = {}
    for prov in provenances:
        for layer, arrays in prov.items():
            bucket = result.setdefault(layer, [])
            for array in arrays:
                if not np.any(array != NO_SOURCE):
                    continue
                for k, existing in enumerate(bucket):
                    combined = _compatible(existing, array)
                    if combined is not None:
                        bucket[k] = combined
                        break
                else:
                    bucket.append(array.copy())
    return {layer: arrays for layer, arrays in result.items() if arrays}


def lift(array: np.ndarray, shape: torch.Size) -> torch.Tensor:
    """An id tensor of `shape` (channels on dim 1) holding array[c] at every element of channel c."""
    ids = torch.as_tensor(array, dtype=torch.int64)
    view = [1] * len(shape)
    view[1] = len(array)
    return ids.view(view).expand(shape).contiguous()


def lower(ids: torch.Tensor) -> np.ndarray:
    """The per-channel array of an id tensor; a channel holding several sources becomes ALL_CHANNELS."""
    channels = ids.shape[1]
    flat = ids.transpose(0, 1).reshape(channels, -1)
    if flat.shape[1] == 0:
        return np.full(channels, NO_SOURCE, dtype=np.int64)
    high = flat.max(dim=1).values
    low = flat.min(dim=1).values
    uniform = high == low
    values = torch.where(uniform, high, torch.where(high >= 0, torch.full_like(high, ALL_CHANNELS), high))
    return values.numpy().astype(np.int64)


def broadcast(prov: Provenance, source_shape: torch.Size, target_shape: torch.Size) -> Provenance:
    """The provenance of `prov`'s tensor broadcast to `target_shape` (for elementwise ops)."""
    if len(source_shape) == len(target_shape) and source_shape[1] == target_shape[1]:
        return prov
    if len(source_shape) == len(target_shape) and source_shape[1] == 1:
        return {layer: [np.repeat(a, target_shape[1]) for a in arrays] for layer, arrays in prov.items()}
    out: Provenance = {}
    for layer, arrays in prov.items():
        out[layer] = [lower(torch.broadcast_to(lift(a, source_shape), target_shape)) for a in arrays]
    return out


def all_of(prov: Provenance, channels: int) -> Provenance:
    """Every one of `channels` output channels depends on every channel of every source of `prov`."""
    return {layer: [np.full(channels, ALL_CHANNELS, dtype=np.int64)] for layer in prov}
