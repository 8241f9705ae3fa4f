"""`Layout`: where every node of a graph sits: per layer a depth, a lateral offset and 2D points in a unit disc.

The JSON form is documented in docs/layout.md (format ``viscnn-layout/1``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from viscnn.errors import ViscnnError
from viscnn.graph import Graph

FORMAT = "viscnn-layout/1"
LATERAL_STEP = 2.5  # disc radii between the centres of layers side by side at one depth


@dataclass
class LayerLayout:
    """One layer: `positions[c]` is channel c's (x, y) in the layer's unit disc (JSON: a list indexed by channel)."""

    name: str
    index: int
    depth: int
    lateral: float
    positions: np.ndarray
    rotation: float = 0.0
    flipped: bool = False

    @property
    def centre(self) -> np.ndarray:
        return np.array([self.lateral, 0.0])

    def world(self) -> np.ndarray:
        """[C, 2] positions in the picture's plane: the disc centre shifted by `lateral`."""
        return self.positions + self.centre

    def to_json(self) -> dict:
        return {"index": self.index, "depth": self.depth, "lateral": round(float(self.lateral), 6),
                "nodes": len(self.positions), "rotation": round(float(self.rotation), 6), "flipped": bool(self.flipped),
                "positions": np.round(self.positions, 6).tolist()}


@dataclass
class Layout:
    """Layer layouts in the graph's call order, with what made them."""

    layers: dict[str, LayerLayout]
    model: str = ""
    fingerprint: str = ""
    images: str = ""
    projection: str = "grid"
    smoothed: bool = False
    rotated: bool = False
    quality: dict = field(default_factory=dict)

    def __getitem__(self, name: str) -> LayerLayout:
        return self.layers[name]

    def to_json(self) -> dict:
        data = {"format": FORMAT, "model": self.model, "fingerprint": self.fingerprint, "images": self.images,
                "projection": self.projection, "smoothed": self.smoothed, "rotated": self.rotated,
                "layers": {name: layer.to_json() for name, layer in self.layers.items()}}
        if self.quality:
            data["quality"] = self.quality
        return data

    @classmethod
    def from_json(cls, data: dict) -> Layout:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ViscnnError(f"not a viscnn layout (expected format {FORMAT!r})")
        layers = {}
        for name, item in data["layers"].items():
            count = int(item["nodes"])
            positions = np.array(item["positions"], dtype=np.float64).reshape(-1, 2)
            if len(positions) != count:
                raise ViscnnError(f"layout layer {name} lists {len(positions)} positions for {count} nodes")
            layers[name] = LayerLayout(name, int(item["index"]), int(item["depth"]), float(item["lateral"]), positions,
                                       float(item.get("rotation", 0.0)), bool(item.get("flipped", False)))
        return cls(layers, data.get("model", ""), data.get("fingerprint", ""), data.get("images", ""),
                   data.get("projection", ""), bool(data.get("smoothed")), bool(data.get("rotated")),
                   data.get("quality", {}))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json()))

    @classmethod
    def load(cls, path: str | Path) -> Layout:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise ViscnnError(f"cannot read layout {path}: {exc}") from exc
        return cls.from_json(data)


def depth_slots(graph: Graph) -> dict[str, tuple[int, float]]:
    """(depth, lateral) of the input and every conv layer: layers sharing a depth sit side by side, in call order."""
    names = [name for name, layer in graph.layers.items() if layer.kind in ("input", "conv")]
    by_depth: dict[int, list[str]] = {}
    for name in names:
        by_depth.setdefault(graph[name].depth, []).append(name)
    slots = {}
    for depth, group in by_depth.items():
        for i, name in enumerate(group):
            slots[name] = (depth, (i - (len(group) - 1) / 2) * LATERAL_STEP)
    return {name: slots[name] for name in names}


def input_positions(channels: int) -> np.ndarray:
    """The input image's channels: one at the centre, or evenly on a circle of radius 0.5."""
    if channels == 1:
        return np.zeros((1, 2))
    angle = np.pi / 2 + 2 * np.pi * np.arange(channels) / channels
    return 0.5 * np.stack([np.cos(angle), np.sin(angle)], axis=1)
