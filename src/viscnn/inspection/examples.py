"""Dataset examples: per node, the image patches over an image set that excite (and inhibit) it most.

One forward pass per batch feeds every requested layer at once. A node's map is its BN-folded map
(the map after the conv's BatchNorm, before any ReLU, as the scoring recorder sees it). Per image and
node, the map's maximum (and minimum) and where it is are reduced on the fly, over all channels of a
layer in one op, and merged into a running top-k per node: an image counts once per node, at its
best position, and no map outlives its batch. Ties go to the earlier image, and within a map to the
first position in row-major order. Patches and pictures of the examples are in `patches`.

Under torchrun (`split=True`) each process takes its share of the images (whole batches), keeps its own
top k, and the tops are merged by value, ties to the earlier image: the single-process result.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from viscnn import distributed
from viscnn.data.imageset import ImageSet
from viscnn.errors import ViscnnError
from viscnn.graph import Graph
from viscnn.graph.recorder import Recorder
from viscnn.graph.types import ReceptiveField
from viscnn.inspection.patches import (
    PixelCache,
    Pixels,
    cut,
    layer_sheet,
    model_pixels,
    node_grid,
    node_patches,
    patch_size,
    patch_window,
)
from viscnn.models.preprocess import Preprocess
from viscnn.store.cache import cache_key, cached_image, load_arrays, store_arrays

if TYPE_CHECKING:
    from viscnn.models import LoadedModel
    from viscnn.store import Store

__all__ = [
    "GRID_KIND",
    "KIND",
    "LayerExamples",
    # the patch helpers, re-exported: callers find everything about examples here
    "PixelCache",
    "Pixels",
    "RunningTopK",
    "TopK",
    "check_layers",
    "compute_examples",
    "cut",
    "dataset_examples",
    "examples_key",
    "examples_png",
    "layer_sheet",
    "merge_examples",
    "model_pixels",
    "node_grid",
    "node_patches",
    "patch_size",
    "patch_window",
]

KIND = "examples"
GRID_KIND = "examples-png"
VERSION = 1  # bump when the computation changes: old cache entries are then ignored
Progress = Callable[[Iterable], Iterable]


@dataclass
class TopK:
    """Per node of a layer, its k best images, best first: arrays [C, k]."""

    values: np.ndarray  # float32 activation at the image's best unit
    images: np.ndarray  # int64 index of the image in its set
    ys: np.ndarray  # int32 row of the unit in the node's map
    xs: np.ndarray  # int32 column

    @property
    def k(self) -> int:
        return int(self.values.shape[1])


@dataclass
class LayerExamples:
    """The most exciting and most inhibiting images of every node of one layer over one image set."""

    layer: str
    excite: TopK  # highest maxima first
    inhibit: TopK  # lowest minima first
    map_size: tuple[int, int]
    image_count: int
    cache_ids: tuple[str, str] | None = None  # (model fingerprint, image-set hash) when they came through the store

    @property
    def channels(self) -> int:
        return int(self.excite.values.shape[0])

    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays = {f"{side}_{name}": getattr(getattr(self, side), name)
                  for side in ("excite", "inhibit") for name in ("values", "images", "ys", "xs")}
        arrays["map_size"] = np.array(self.map_size, np.int64)
        arrays["image_count"] = np.array(self.image_count, np.int64)
        return arrays

    @classmethod
    def from_arrays(cls, layer: str, arrays: dict[str, np.ndarray]) -> LayerExamples:
        def side(name: str) -> TopK:
            return TopK(*(arrays[f"{name}_{field}"] for field in ("values", "images", "ys", "xs")))

        size = arrays["map_size"].tolist()
        return cls(layer, side("excite"), side("inhibit"), (int(size[0]), int(size[1])), int(arrays["image_count"]))

    def node(self, channel: int, rf: ReceptiveField | None = None, image_set: ImageSet | None = None) -> dict[str, Any]:
        """JSON for one node: per side, a list of {image, y, x, value} (plus the field's box and image source)."""
        if not 0 <= channel < self.channels:
            raise ViscnnError(f"channel {channel} is out of range: layer {self.layer} has {self.channels} channels")

        def entries(top: TopK) -> list[dict[str, Any]]:
            out = []
            for rank in range(top.k):
                y, x = int(top.ys[channel, rank]), int(top.xs[channel, rank])
                item: dict[str, Any] = {"image": int(top.images[channel, rank]), "y": y, "x": x,
                                        "value": float(top.values[channel, rank])}
                if rf is not None and not rf.whole_image:
                    item["box"] = [float(v) for v in rf.box(y, x)]
                if image_set is not None:
                    source = image_set.items[item["image"]].source
                    item["source"] = source if isinstance(source, int) else str(source)
                    item["label"] = image_set.items[item["image"]].label
                out.append(item)
            return out

        return {"node": f"{self.layer}:{channel}", "map_size": list(self.map_size), "image_count": self.image_count,
                "excite": entries(self.excite), "inhibit": entries(self.inhibit)}


class RunningTopK:
    """The k largest (or smallest) per-image values of every channel seen so far, with where they were."""

    def __init__(self, channels: int, k: int, *, largest: bool, device: torch.device) -> None:
        self.k, self.largest = k, largest
        self.values = torch.empty((channels, 0), device=device)
        self.images = torch.empty((channels, 0), dtype=torch.long, device=device)
        self.where = torch.empty((channels, 0), dtype=torch.long, device=device)

    def update(self, values: torch.Tensor, flat: torch.Tensor, first_image: int) -> None:
        """Merge one batch: `values` [B, C] are each image's extreme value of each channel's map `flat` [B, C, HW].

        Positions are looked up (argmax / argmin) only for the batch's entries that make it into the top k.
        """
        batch, channels = values.shape
        kept = self.values.shape[1]
        ids = torch.arange(first_image, first_image + batch, device=values.device).expand(channels, batch)
        all_values = torch.cat([self.values, values.t().float()], dim=1)
        # a stable sort keeps earlier images first among equal values (the kept ones are all earlier)
        order = torch.sort(all_values, dim=1, descending=self.largest, stable=True).indices[:, : self.k]
        where = torch.cat([self.where, torch.zeros((channels, batch), dtype=torch.long, device=values.device)], dim=1)
        where = where.gather(1, order)
        new = order >= kept
        if new.any():
            channel, rank = new.nonzero(as_tuple=True)
            image = order[channel, rank] - kept
            if channel.numel() * 4 > batch * channels:
                # many survivors (the first batches): one argmax over the batch beats copying their maps out
                full = flat.argmax(dim=2) if self.largest else flat.argmin(dim=2)
                where[channel, rank] = full[image, channel]
            else:
                maps = flat[image, channel]
                where[channel, rank] = maps.argmax(dim=1) if self.largest else maps.argmin(dim=1)
        self.values = all_values.gather(1, order)
        self.images = torch.cat([self.images, ids], dim=1).gather(1, order)
        self.where = where

    def result(self, width: int) -> TopK:
        where = self.where.cpu().numpy()
        return TopK(self.values.cpu().numpy().astype(np.float32), self.images.cpu().numpy().astype(np.int64),
                    (where // width).astype(np.int32), (where % width).astype(np.int32))


def check_layers(graph: Graph, layers: Sequence[str] | None) -> list[str]:
    """The named conv layers in call order (all of them if None); an unknown name is a ViscnnError."""
    convs = [layer.name for layer in graph.conv_layers]
    if layers is None:
        return convs
    if not layers:
        raise ViscnnError("no layers given: name at least one conv layer")
    unknown = [name for name in layers if name not in convs]
    if unknown:
        raise ViscnnError(f"unknown conv layer {unknown[0]!r}: choose from {', '.join(convs[:8])}"
                          f"{' ...' if len(convs) > 8 else ''}")
    wanted = set(layers)
    return [name for name in convs if name in wanted]


def _check_request(image_set: ImageSet, k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ViscnnError(f"k must be a positive whole number of examples per node, not {k!r}")
    if len(image_set) == 0:
        raise ViscnnError(f"image set {image_set.name!r} is empty: dataset examples need at least one image")


def compute_examples(model: nn.Module, graph: Graph, image_set: ImageSet, preprocess: Preprocess,
                     layers: Sequence[str] | None = None, *, k: int = 9, batch_size: int = 32,
                     device: str | torch.device = "cpu", progress: Progress | None = None,
                     split: bool = False) -> dict[str, LayerExamples]:
    """Top-k exciting and inhibiting images (one position each) of every node of `layers` (default all).

    `split`: under torchrun, each process goes through its share of the images and every process gets
    the merged result (call it in every process)."""
    names = check_layers(graph, layers)
    _check_request(image_set, k)
    k = min(k, len(image_set))
    if split and distributed.active():
        indices = distributed.share(len(image_set), batch_size)

        def mine() -> dict[str, LayerExamples]:
            return _compute(model, graph, image_set, preprocess, names, k, batch_size, device, progress, indices)

        return merge_examples(distributed.gather(mine), k, len(image_set))
    return _compute(model, graph, image_set, preprocess, names, k, batch_size, device, progress, None)


def _compute(model: nn.Module, graph: Graph, image_set: ImageSet, preprocess: Preprocess, names: list[str], k: int,
             batch_size: int, device: str | torch.device, progress: Progress | None,
             indices: list[int] | None) -> dict[str, LayerExamples]:
    """The top k over the images at `indices` (default all), which keep their index in the whole set."""
    wanted = set(names)
    device = torch.device(device)
    tops: dict[str, tuple[RunningTopK, RunningTopK]] = {}
    widths: dict[str, tuple[int, int]] = {}
    first = [0]  # the index in the set of the current batch's first image

    def reduce(layer: str, node_map: torch.Tensor) -> torch.Tensor:
        if layer in wanted:
            flat = node_map.detach().flatten(2)
            if layer not in tops:
                channels = node_map.shape[1]
                tops[layer] = (RunningTopK(channels, k, largest=True, device=flat.device),
                                RunningTopK(channels, k, largest=False, device=flat.device))
                widths[layer] = (int(node_map.shape[2]), int(node_map.shape[3]))
            # amax/amin are several times faster than max/argmax over a whole map; positions come later
            tops[layer][0].update(flat.amax(dim=2), flat, first[0])
            tops[layer][1].update(flat.amin(dim=2), flat, first[0])
        return node_map

    batches: Iterable = _numbered(image_set, preprocess, batch_size, indices)
    if progress is not None:
        batches = progress(batches)
    for start, x in batches:
        first[0] = start
        recorder = Recorder(graph, stop_at=names[-1], edit_node=reduce, keep=set(), copy=False)
        with torch.no_grad():
            recorder.run(model, x.to(device))
    missing = wanted - set(tops)
    if missing:
        raise ViscnnError(f"layer {sorted(missing)[0]} did not run on these images: its map was never recorded")
    return {name: LayerExamples(name, tops[name][0].result(widths[name][1]), tops[name][1].result(widths[name][1]),
                                widths[name], len(image_set)) for name in names}


def _numbered(image_set: ImageSet, preprocess: Preprocess, batch_size: int,
              indices: list[int] | None) -> Iterator[tuple[int, torch.Tensor]]:
    """(index of the first image in the set, batch) over the images at `indices` (all if None), batched
    within each run of consecutive indices."""
    runs: list[tuple[int, int]] = []
    for i in range(len(image_set)) if indices is None else indices:
        if runs and runs[-1][1] == i:
            runs[-1] = (runs[-1][0], i + 1)
        else:
            runs.append((i, i + 1))
    for begin, stop in runs:
        for x, _ in image_set.subset(image_set.items[begin:stop]).batches(preprocess, batch_size):
            yield begin, x
            begin += x.shape[0]


def merge_examples(parts: Sequence[dict[str, LayerExamples]], k: int, image_count: int) -> dict[str, LayerExamples]:
    """One process's worth of examples from several processes' tops over disjoint images: per node the k
    highest maxima (lowest minima), ties to the earlier image, as one pass over all the images gives."""
    merged = {}
    for name, first in parts[0].items():
        sides = []
        for side, largest in (("excite", True), ("inhibit", False)):
            tops = [getattr(part[name], side) for part in parts]
            values = np.concatenate([t.values for t in tops], axis=1)
            images = np.concatenate([t.images for t in tops], axis=1)
            ys = np.concatenate([t.ys for t in tops], axis=1)
            xs = np.concatenate([t.xs for t in tops], axis=1)
            # per row: by value (descending for maxima), then by image index; lexsort's last key sorts first
            order = np.lexsort((images, -values if largest else values), axis=1)[:, :k]
            sides.append(TopK(*(np.take_along_axis(a, order, axis=1) for a in (values, images, ys, xs))))
        merged[name] = LayerExamples(name, sides[0], sides[1], first.map_size, image_count)
    return merged


def _parts(fingerprint: str, images_hash: str, layer: str, k: int) -> dict[str, Any]:
    return {"model": fingerprint, "images": images_hash, "layer": layer, "k": k, "version": VERSION}


def dataset_examples(store: Store | None, loaded: LoadedModel, graph: Graph, image_set: ImageSet,
                     layers: Sequence[str] | None = None, *, k: int = 9, batch_size: int = 32,
                     progress: Progress | None = None, split: bool = False) -> dict[str, LayerExamples]:
    """`compute_examples`, cached per layer in `store` (if given): layers already stored are not recomputed,
    and the missing ones are computed together in one pass over the images.

    `split`: under torchrun (call it in every process), rank 0 alone reads and writes the store (the others
    may pass None), the images are split across the processes and every process gets the whole result."""
    names = check_layers(graph, layers)
    _check_request(image_set, k)

    def lookup() -> tuple[tuple[str, str], dict[str, dict[str, np.ndarray]]] | None:
        if store is None:
            return None
        ids = (loaded.fingerprint(), image_set.hash())
        stored = {name: load_arrays(store, KIND, _parts(*ids, name, k)) for name in names}
        return ids, {name: arrays[0] for name, arrays in stored.items() if arrays is not None}

    looked = distributed.from_main(lookup) if split else lookup()
    found: dict[str, LayerExamples] = {}
    if looked is not None:
        for name, arrays in looked[1].items():
            found[name] = LayerExamples.from_arrays(name, arrays)
            found[name].cache_ids = looked[0]
    missing = [name for name in names if name not in found]
    if missing:
        computed = compute_examples(loaded.module, graph, image_set, loaded.preprocess, missing, k=k,
                                    batch_size=batch_size, device=_device(loaded.module), progress=progress, split=split)
        for name, result in computed.items():
            if looked is not None:
                result.cache_ids = looked[0]
                if store is not None and (distributed.is_main() or not split):
                    meta = {"model": loaded.name, "layer": name, "k": k, "images": image_set.name,
                            "image_count": len(image_set)}
                    store_arrays(store, KIND, _parts(*looked[0], name, k), result.to_arrays(), meta=meta)
        found.update(computed)
    return {name: found[name] for name in names}


def _device(module: nn.Module) -> torch.device:
    return next((p.device for p in module.parameters()), torch.device("cpu"))


def examples_png(store: Store, loaded: LoadedModel, graph: Graph, image_set: ImageSet, examples: LayerExamples,
                 channel: int, *, cell: int = 80, pixels: PixelCache | None = None) -> tuple[Path, dict[str, Any]]:
    """The cached PNG (path, metadata) of one node's example grid; rendered once per model, set, k and cell.

    Give a `PixelCache` of `image_set` when drawing many nodes, so each image is decoded once. Examples from
    `dataset_examples` with a store carry the model's and the set's hashes, which are then not recomputed."""
    node = examples.node(channel)  # checks the channel
    images = [e["image"] for e in node["excite"] + node["inhibit"]]
    fingerprint, images_hash = examples.cache_ids or (loaded.fingerprint(), image_set.hash())
    parts = {**_parts(fingerprint, images_hash, examples.layer, examples.excite.k), "channel": channel, "cell": cell}

    def render() -> tuple[Image.Image, dict[str, Any]]:
        rf = graph[examples.layer].receptive_field
        source = pixels if pixels is not None else model_pixels(image_set, loaded.preprocess, images)
        picture = node_grid(examples, rf, channel, source, loaded.input_shape[1:], cell=cell, set_name=image_set.name)
        return picture, node

    return cached_image(store, GRID_KIND, parts, render)


def examples_key(loaded: LoadedModel, image_set: ImageSet, layer: str, k: int, *,
                 ids: tuple[str, str] | None = None) -> str:
    """The store key of one layer's cached examples (kind `examples`). `ids`: (the model's fingerprint, the
    set's hash) when the caller has them (they read every weight and every image)."""
    return cache_key(KIND, _parts(*(ids or (loaded.fingerprint(), image_set.hash())), layer, k))
