"""Sub-feature circuits of a polysemantic node (the preprint's section 4.2).

For a node, take its most exciting patch in every image (the unit where its map peaks), keep the
`top_n` images with the highest peaks, describe each patch by the activation vector of the node's
whole layer at that unit, and cluster those vectors with HDBSCAN. Each cluster gets its own circuit,
scored against the node's unit at each member image's own peak position. Separability is the IoU of
two clusters' kept kernels, |A & B| / |A | B| (lower = more separable); the control is the same
after scrambling the clusters' images into mixed sets of the same sizes (the paper: 0.24 vs 0.70).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from viscnn.circuits.build import extract_circuit
from viscnn.circuits.circuit import Circuit
from viscnn.circuits.methods import get_method
from viscnn.circuits.select import check_fraction
from viscnn.data.imageset import ImageSet
from viscnn.errors import ViscnnError
from viscnn.graph import Graph, Node
from viscnn.graph.ids import check_node
from viscnn.graph.recorder import Recorder
from viscnn.models.preprocess import Preprocess
from viscnn.scoring.engine import Sums, accumulate, to_scores
from viscnn.scoring.scores import Scores
from viscnn.scoring.targets import Target

if TYPE_CHECKING:
    from PIL import Image

# methods whose scores are sums over images: streamed batch by batch, each with its own positions
_STREAMED = {"actgrad": "taylor", "actgrad_signed": "taylor_signed"}


@dataclass(frozen=True)
class PositionTarget(Target):
    """Node `channel` of `layer`, read at a different unit in each image: `positions[i]` = (y, x) of image i.

    Only valid for a batch of exactly len(positions) images, in that order.
    """

    positions: tuple[tuple[int, int], ...] = ()

    def __str__(self) -> str:
        return f"{self.layer}:{self.channel}:argmax"

    def from_map(self, node_map: torch.Tensor) -> torch.Tensor:
        if node_map.shape[0] != len(self.positions):
            raise ValueError(f"{len(self.positions)} positions for a batch of {node_map.shape[0]} images")
        where = torch.tensor(self.positions, dtype=torch.long, device=node_map.device).view(-1, 2)
        rows = torch.arange(node_map.shape[0], device=node_map.device)
        return node_map[rows, self.channel, where[:, 0], where[:, 1]]


@dataclass
class Patch:
    """One image's most exciting unit for the node: image index in the set, map position, value."""

    image: int
    y: int
    x: int
    value: float
    vector: np.ndarray = field(repr=False)  # the node's layer at (y, x): one value per channel


@dataclass
class SubfeatureResult:
    """Patches (best first), their HDBSCAN labels, clusters (patch indices), circuits and separability."""

    node: Node
    patches: list[Patch]
    labels: np.ndarray
    clusters: list[list[int]]
    circuits: list[Circuit]
    iou: np.ndarray  # [K, K] IoU of the clusters' kept kernels
    scrambled_iou: np.ndarray  # [K, K] the same for mixed sets of the same sizes (averaged over scrambles)
    scrambled_sets: list[list[list[int]]]  # per scramble, the patch indices of each mixed set
    settings: dict
    message: str = ""

    @staticmethod
    def mean_off_diagonal(matrix: np.ndarray) -> float:
        """Mean IoU over distinct cluster pairs (nan with fewer than 2 clusters)."""
        k = matrix.shape[0]
        return float(matrix[~np.eye(k, dtype=bool)].mean()) if k >= 2 else math.nan

    def to_json(self, image_set: ImageSet | None = None, graph: Graph | None = None) -> dict:
        """Sizes, members (image, position, value, receptive-field box), IoU matrices and the control."""
        rf = graph[self.node.layer].receptive_field if graph is not None else None

        def member(i: int) -> dict:
            patch = self.patches[i]
            item: dict[str, Any] = {"image": patch.image, "y": patch.y, "x": patch.x, "value": patch.value}
            if image_set is not None:
                source = image_set.items[patch.image].source
                item.update(source=source if isinstance(source, int) else str(source), label=image_set.items[patch.image].label)
            if rf is not None and not rf.whole_image:
                item["box"] = list(rf.box(patch.y, patch.x))
            return item

        def finite(matrix: np.ndarray) -> list[list[float | None]]:
            return [[None if math.isnan(v) else round(float(v), 4) for v in row] for row in matrix]

        mean, control = self.mean_off_diagonal(self.iou), self.mean_off_diagonal(self.scrambled_iou)
        return {
            "node": str(self.node), **self.settings, "patches": len(self.patches),
            "noise": int((self.labels < 0).sum()), "message": self.message,
            "clusters": [{"id": k, "size": len(members), "circuit_edges": self.circuits[k].num_edges if k < len(self.circuits) else None,
                          "members": [member(i) for i in members]} for k, members in enumerate(self.clusters)],
            "iou": finite(self.iou), "scrambled_iou": finite(self.scrambled_iou),
            "mean_iou": None if math.isnan(mean) else round(mean, 4),
            "mean_scrambled_iou": None if math.isnan(control) else round(control, 4),
            "scrambled_sets": [[[self.patches[i].image for i in s] for s in sets] for sets in self.scrambled_sets],
        }


def top_patches(model: nn.Module, graph: Graph, image_set: ImageSet, preprocess: Preprocess, node: Node, *, top_n: int,
                device: str | torch.device = "cpu", batch_size: int = 64) -> list[Patch]:
    """Per image, the unit where the node's map peaks; the `top_n` images with the highest peaks, best first."""
    patches: list[Patch] = []
    start = 0
    for x, _ in image_set.batches(preprocess, batch_size):
        recorder = Recorder(graph, stop_at=node.layer, keep={node.layer})
        with torch.no_grad():
            recorder.run(model, x.to(device))
        layer_map = recorder.calls[node.layer].ready_map().detach().float().cpu()
        flat = layer_map[:, node.channel].flatten(1)
        values, where = flat.max(dim=1)
        width = layer_map.shape[-1]
        for i in range(x.shape[0]):
            y, xx = divmod(int(where[i]), width)
            patches.append(Patch(start + i, y, xx, float(values[i]), layer_map[i, :, y, xx].numpy().astype(np.float64)))
        start += x.shape[0]
    patches.sort(key=lambda p: (-p.value, p.image))
    return patches[:top_n]


def _subset(image_set: ImageSet, patches: list[Patch], members: list[int]) -> tuple[ImageSet, list[tuple[int, int]]]:
    items = [image_set.items[patches[i].image] for i in members]
    return ImageSet(f"{image_set.name}[{len(items)}]", items, image_set.tensor), [(patches[i].y, patches[i].x) for i in members]


def _batches(subset: ImageSet, positions: list[tuple[int, int]], preprocess: Preprocess, node: Node,
             batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, PositionTarget]]:
    start = 0
    for x, labels in subset.batches(preprocess, batch_size):
        yield x, labels, PositionTarget("neuron", node.layer, node.channel, positions=tuple(positions[start:start + len(x)]))
        start += len(x)


def cluster_scores(model: nn.Module, graph: Graph, subset: ImageSet, positions: list[tuple[int, int]],
                   preprocess: Preprocess, node: Node, *, method: str, keep: float, seed: int = 0,
                   device: str | torch.device = "cpu", batch_size: int = 64) -> Scores:
    """Edge scores of `method` for the node's unit at each image's own position, over `subset`.

    actgrad / actgrad_signed stream the images batch by batch; other methods see one batch of them all.
    """
    if method in _STREAMED:
        criterion, sums = _STREAMED[method], Sums()
        for x, labels, target in _batches(subset, positions, preprocess, node, batch_size):
            accumulate(model, graph, [(x, labels)], target, (criterion,), device=device, sums=sums)
        whole = PositionTarget("neuron", node.layer, node.channel, positions=tuple(positions))  # names the scores
        scores = to_scores(sums, graph, whole, (criterion,), images=subset.name)[criterion]
        return scores.abs() if criterion == "taylor_signed" else scores
    parts = list(_batches(subset, positions, preprocess, node, max(1, len(subset))))
    x, labels, target = parts[0]
    return get_method(method)(model, graph, [(x, labels)], target, keep, seed=seed, device=device)


def circuit_for(model: nn.Module, graph: Graph, image_set: ImageSet, preprocess: Preprocess, node: Node,
                patches: list[Patch], members: list[int], *, keep: float, method: str, seed: int = 0,
                device: str | torch.device = "cpu", batch_size: int = 64, model_name: str = "",
                fingerprint: str = "") -> Circuit:
    """The circuit of the node's peak units over the member patches' images."""
    subset, positions = _subset(image_set, patches, members)
    scores = cluster_scores(model, graph, subset, positions, preprocess, node, method=method, keep=keep, seed=seed,
                            device=device, batch_size=batch_size)
    target = PositionTarget("neuron", node.layer, node.channel, positions=tuple(positions))
    first = next(subset.batches(preprocess, 1))
    circuit = extract_circuit(model, graph, [first], target, keep, method, seed=seed, device=device,
                              model_name=model_name, fingerprint=fingerprint, scores=scores)
    circuit.target = Target("node", node.layer, node.channel)  # a node target in files (same upstream kernels)
    return circuit


def kernel_iou(a: Circuit, b: Circuit) -> float:
    """|edges(A) & edges(B)| / |edges(A) | edges(B)| over the kept kernels of two circuits."""
    inter = union = 0
    for name in set(a.masks) | set(b.masks):
        ma, mb = a.masks.get(name), b.masks.get(name)
        if ma is not None and mb is not None:
            inter += int((ma & mb).sum())
            union += int((ma | mb).sum())
        else:  # a layer of one circuit only
            union += sum(int(m.sum()) for m in (ma, mb) if m is not None)
    return inter / union if union else math.nan


def iou_matrix(circuits: list[Circuit]) -> np.ndarray:
    k = len(circuits)
    matrix = np.eye(k)
    for i in range(k):
        for j in range(i + 1, k):
            matrix[i, j] = matrix[j, i] = kernel_iou(circuits[i], circuits[j])
    return matrix


def cluster_patches(vectors: np.ndarray, min_cluster_size: int) -> tuple[np.ndarray, list[list[int]]]:
    """HDBSCAN labels (-1 = noise) and the clusters as patch-index lists, largest first."""
    from sklearn.cluster import HDBSCAN

    labels = HDBSCAN(min_cluster_size=min_cluster_size, copy=True).fit_predict(vectors)
    clusters = [np.flatnonzero(labels == k).tolist() for k in sorted(set(labels.tolist()) - {-1})]
    clusters.sort(key=lambda members: (-len(members), members[0]))
    return labels, clusters


def find_subfeatures(model: nn.Module, graph: Graph, image_set: ImageSet, preprocess: Preprocess, node: Node, *,
                     top_n: int = 300, min_cluster_size: int = 20, keep: float = 0.05, method: str = "actgrad",
                     seed: int = 0, device: str | torch.device = "cpu", batch_size: int = 64, scrambles: int = 1,
                     model_name: str = "", fingerprint: str = "",
                     progress: Callable[[float, str], None] | None = None) -> SubfeatureResult:
    """Cluster the node's `top_n` most exciting patches (one per image) and extract a circuit per cluster.

    Returns the clusters with their circuits, the IoU of every pair of cluster circuits and the
    scrambled control (mixed sets of the same sizes, `scrambles` times, averaged). Fewer than 2
    clusters is not an error: the result says so in `message` and has no pairs to compare. `progress(share,
    message)` hears of each step (share of the work done, 0..1).
    """
    check_node(node, graph)
    if top_n < 2:
        raise ViscnnError(f"top_n must be at least 2, not {top_n}")
    if min_cluster_size < 2:
        raise ViscnnError(f"min cluster size must be at least 2, not {min_cluster_size}")
    if scrambles < 1:
        raise ViscnnError(f"scrambles must be at least 1, not {scrambles}")
    check_fraction(keep, "keep fraction")
    get_method(method)
    if len(image_set) < 2 * min_cluster_size or top_n < 2 * min_cluster_size:
        raise ViscnnError(f"too few images for min cluster size {min_cluster_size}: {min(len(image_set), top_n)} patches "
                          f"(image set {image_set.name!r} has {len(image_set)}, top_n {top_n}) cannot form 2 clusters; "
                          f"give at least {2 * min_cluster_size}")
    say = progress or (lambda share, message: None)
    say(0.0, f"finding the top {top_n} patches of {node} over {len(image_set)} images")
    patches = top_patches(model, graph, image_set, preprocess, node, top_n=top_n, device=device, batch_size=batch_size)
    say(0.15, f"clustering {len(patches)} patches (HDBSCAN, min cluster size {min_cluster_size})")
    labels, clusters = cluster_patches(np.stack([p.vector for p in patches]), min_cluster_size)
    total = len(clusters) * (1 + (scrambles if len(clusters) >= 2 else 0))
    made = [0]

    def make(members: list[int]) -> Circuit:
        which = "cluster" if made[0] < len(clusters) else "scrambled set"
        say(0.2 + 0.8 * made[0] / max(total, 1), f"extracting circuit {made[0] + 1}/{total} ({which} of {len(members)} patches)")
        made[0] += 1
        return circuit_for(model, graph, image_set, preprocess, node, patches, members, keep=keep, method=method,
                           seed=seed, device=device, batch_size=batch_size, model_name=model_name, fingerprint=fingerprint)

    circuits = [make(members) for members in clusters]
    settings = {"top_n": top_n, "min_cluster_size": min_cluster_size, "keep": keep, "method": method, "seed": seed,
                "scrambles": scrambles, "images": image_set.name, "image_count": len(image_set), "model": model_name}
    empty = np.zeros((len(clusters), len(clusters)))
    if len(clusters) < 2:
        message = (f"HDBSCAN found {len(clusters)} cluster{'s' if len(clusters) != 1 else ''} among {len(patches)} patches "
                   f"of {node} (min cluster size {min_cluster_size}, {int((labels < 0).sum())} noise): "
                   "no sub-features to separate")
        return SubfeatureResult(node, patches, labels, clusters, circuits, empty, empty, [], settings, message)
    rng = np.random.default_rng(seed)
    pooled = [i for members in clusters for i in members]
    sizes = np.cumsum([len(members) for members in clusters])[:-1]
    control, scrambled_sets = np.zeros_like(empty), []
    for _ in range(scrambles):
        mixed = [part.tolist() for part in np.split(rng.permutation(pooled), sizes)]
        scrambled_sets.append(mixed)
        control += iou_matrix([make(members) for members in mixed]) / scrambles
    return SubfeatureResult(node, patches, labels, clusters, circuits, iou_matrix(circuits), control, scrambled_sets, settings)


def crop(pixels: torch.Tensor, box: tuple[float, float, float, float], fill: float = 0.5) -> torch.Tensor:
    """The [C, h, w] window `box` = (top, left, bottom, right) of `pixels`, parts outside the image filled."""
    top, left, bottom, right = (int(math.floor(v)) for v in box)
    channels, height, width = pixels.shape
    out = pixels.new_full((channels, max(1, bottom - top), max(1, right - left)), fill)
    y0, x0, y1, x1 = max(top, 0), max(left, 0), min(bottom, height), min(right, width)
    if y1 > y0 and x1 > x0:
        out[:, y0 - top:y1 - top, x0 - left:x1 - left] = pixels[:, y0:y1, x0:x1]
    return out


def patch_crops(graph: Graph, image_set: ImageSet, preprocess: Preprocess, node: Node, patches: list[Patch],
                members: list[int]) -> list[torch.Tensor]:
    """0-1 pixel crops [C, h, w] of the model's input at each member patch's receptive field."""
    rf = graph[node.layer].receptive_field
    subset, _ = _subset(image_set, patches, members)
    crops: list[torch.Tensor] = []
    for x, _ in subset.batches(preprocess, 64):
        for pixels in preprocess.to_pixels(x):
            patch = patches[members[len(crops)]]
            crops.append(pixels if rf is None or rf.whole_image else crop(pixels, rf.box(patch.y, patch.x)))
    return crops


def patch_grid(crops: list[torch.Tensor], columns: int = 4, cell: int = 72, title: str = "") -> Image.Image:
    """A PIL image: the crops in a grid, each scaled to `cell` pixels (nearest neighbour), with a title line."""
    from PIL import Image, ImageDraw

    rows = max(1, math.ceil(len(crops) / columns))
    header = 14 if title else 0
    grid = Image.new("RGB", (columns * (cell + 2) + 2, rows * (cell + 2) + 2 + header), (255, 255, 255))
    for k, pixels in enumerate(crops):
        array = (pixels.expand(3, -1, -1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        tile = Image.fromarray(array).resize((cell, cell), Image.Resampling.NEAREST)
        grid.paste(tile, (2 + (k % columns) * (cell + 2), header + 2 + (k // columns) * (cell + 2)))
    if title:
        ImageDraw.Draw(grid).text((2, 1), title, fill=(0, 0, 0))
    return grid
