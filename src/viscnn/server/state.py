"""What one server holds: the model, its graph, the image sets with their ids, uploads, caches and jobs."""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from viscnn.errors import ViscnnError
from viscnn.graph import Graph, Layer
from viscnn.models import LoadedModel
from viscnn.server.jobs import JobManager

if TYPE_CHECKING:
    from viscnn.data import ImageSet
    from viscnn.scoring.targets import Target
    from viscnn.store import Store

UPLOADS = "uploads"


class NotFound(ViscnnError):
    """An id (image, layer, channel, job, query) the server does not know: a 404."""


class Unavailable(ViscnnError):
    """A part of viscnn this build does not have (yet): a 503."""


@dataclass(frozen=True)
class ImageRef:
    """An image the page can name by id: which set it is listed in, where it lives, its label."""

    id: str
    set: str
    index: int  # index into `ServerState.image_sets[set]`
    label: int
    name: str


class LRU:
    """A small thread-safe least-recently-used cache."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Any:
        with self._lock:
            if key not in self._data:
                return None
            self._data.move_to_end(key)
            return self._data[key]

    def latest(self) -> Any:
        """The value put or read last, or None when empty."""
        with self._lock:
            return next(reversed(self._data.values()), None)

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)


class ServerState:
    """Everything the routes share. Built once by `viscnn serve` / `viscnn.show`, or by tests."""

    def __init__(self, loaded: LoadedModel, graph: Graph, images_spec: str, *, store: Store | None = None,
                 token: str | None = None,
                 upload_dir: Path | None = None, max_upload_bytes: int = 10 * 1024 * 1024, batch_size: int = 32,
                 resize: bool = False) -> None:
        from viscnn.data import open_image_sets

        self.loaded = loaded
        self.graph = graph
        self.images_spec = images_spec
        self.store = store
        self.token = token
        self.batch_size = batch_size
        self.max_upload_bytes = max_upload_bytes
        self.class_names = loaded.class_names
        self.image_sets = open_image_sets(images_spec, self.class_names, resize=resize)
        self.fingerprint = loaded.fingerprint()
        self.device = next((p.device for p in loaded.module.parameters()), torch.device("cpu"))
        self.num_outputs = _num_outputs(loaded, self.device)
        self.jobs = JobManager()
        self.queries = LRU(8)  # key -> combined Scores of a query (Lite0: 13 MB each)
        self.upload_dir = upload_dir
        self._uploads_lock = threading.Lock()
        self.images: dict[str, ImageRef] = {}
        self._index_images()

    # --- images ---------------------------------------------------------------------------------------
    def _index_images(self) -> None:
        """Ids `i<k>` for the k-th image of `overall`; every other set's images map onto those."""
        overall = self.image_sets["overall"]
        where: dict[Any, str] = {}
        for k, item in enumerate(overall.items):
            image_id = f"i{k}"
            where[item.source] = image_id
            self.images[image_id] = ImageRef(image_id, "overall", k, item.label, _item_name(item.source, k))
        self.members: dict[str, list[str]] = {"overall": list(where.values())}
        for name, image_set in self.image_sets.items():
            if name != "overall":
                self.members[name] = [where[item.source] for item in image_set.items if item.source in where]

    def image(self, image_id: str) -> ImageRef:
        ref = self.images.get(image_id)
        if ref is None:
            raise NotFound(f"unknown image {image_id[:100]!r}: use an id from /api/images")
        return ref

    def set_of(self, ref: ImageRef) -> ImageSet:
        return self.image_sets[ref.set]

    def model_input(self, ref: ImageRef) -> torch.Tensor:
        """The normalised model input [C, H, W] of an image."""
        image_set = self.set_of(ref)
        return image_set._model_input(image_set.items[ref.index], self.loaded.preprocess)

    def pixels(self, ref: ImageRef) -> torch.Tensor:
        """The image as the model sees it, before normalisation: 0-1 pixels [C, H, W]."""
        return self.loaded.preprocess.to_pixels(self.model_input(ref))

    def add_upload(self, data: bytes, filename: str) -> ImageRef:
        """Keep an uploaded (already checked) image; the same bytes give the same id."""
        from viscnn.data import ImageItem, ImageSet

        digest = hashlib.sha256(data).hexdigest()[:16]
        image_id = f"u{digest}"
        with self._uploads_lock:
            if image_id in self.images:
                return self.images[image_id]
            if self.upload_dir is None:
                raise Unavailable("this server takes no uploads (it has no folder to keep them in)")
            self.upload_dir.mkdir(parents=True, exist_ok=True)
            path = self.upload_dir / f"{digest}.img"
            path.write_bytes(data)
            current = self.image_sets.get(UPLOADS)
            items = (current.items if current is not None else []) + [ImageItem(path)]
            # a new set object: a query running over the old one keeps a consistent list
            self.image_sets = {**self.image_sets, UPLOADS: ImageSet(UPLOADS, items)}
            ref = ImageRef(image_id, UPLOADS, len(items) - 1, -1, filename)
            self.images[image_id] = ref
            self.members = {**self.members, UPLOADS: self.members.get(UPLOADS, []) + [image_id]}
        return ref

    def label_name(self, label: int) -> str | None:
        if self.class_names is None or not 0 <= label < len(self.class_names):
            return None
        return self.class_names[label]

    # --- graph ids ------------------------------------------------------------------------------------
    def conv_layer(self, name: str) -> Layer:
        layer = self.graph.layers.get(name)
        if layer is None or layer.kind != "conv":
            raise NotFound(f"unknown conv layer {name[:100]!r}: see /api/model for the layers")
        return layer

    def check_channel(self, layer_name: str, channel: int) -> Layer:
        layer = self.conv_layer(layer_name)
        if not 0 <= channel < layer.out_channels:
            raise NotFound(f"layer {layer_name} has channels 0..{layer.out_channels - 1}, not {channel}")
        return layer

    def check_edge(self, layer_name: str, out: int, inp: int) -> Layer:
        layer = self.check_channel(layer_name, out)
        group = out // layer.out_per_group
        low, high = group * layer.in_per_group, (group + 1) * layer.in_per_group
        if not low <= inp < high:
            raise NotFound(f"layer {layer_name} has no kernel {out}<-{inp}: output {out} reads input channels {low}..{high - 1}")
        return layer

    def target(self, text: str, *, what: str = "target") -> Target:
        """A scorable target (README's Scores table), checked against this model before any work: its layer,
        channel, unit (inside the layer's map), class (one of the model's outputs)."""
        from viscnn.scoring.targets import check_scorable, parse_target

        target = check_scorable(parse_target(text, self.graph, self.class_names))
        shown = f"{what} {text[:80]!r}"
        if target.kind in ("loss", "logit") and self.num_outputs is None:
            raise ViscnnError(f"{shown}: this model's output is not [images, classes], so it has no loss or logits; "
                              f"use a target inside the network (LAYER:C)")
        if target.kind == "logit" and not 0 <= target.logit_class < (self.num_outputs or 0):
            raise ViscnnError(f"{shown}: class {target.logit_class} is out of range: the model has {self.num_outputs} "
                              f"outputs (0..{(self.num_outputs or 1) - 1})")
        if target.kind == "direction" and not any(weight for _, weight in target.weights):
            raise ViscnnError(f"{shown}: every weight of the direction is 0, so it scores nothing")
        if target.position is not None and target.layer is not None:
            height, width = self.graph.layers[target.layer].output_shape[-2:]
            y, x = target.position
            if not (0 <= y < height and 0 <= x < width):
                raise ViscnnError(f"{shown}: unit {y},{x} is outside the {height}x{width} map of layer {target.layer}")
        return target

    def close(self) -> None:
        self.jobs.shutdown()


def _num_outputs(loaded: LoadedModel, device: torch.device) -> int | None:
    """How many logits the model gives (one forward pass of a blank image), or None when its output is not
    [images, classes]."""
    with torch.no_grad():
        output = loaded.module(torch.zeros((1, *loaded.input_shape), device=device))
    return int(output.shape[1]) if isinstance(output, torch.Tensor) and output.dim() == 2 else None


def _item_name(source: Any, index: int) -> str:
    return source.name if isinstance(source, Path) else f"#{index}"
