"""`Scores`: one number per node and per edge of a graph, for one (images, target, criterion) query."""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, overload

import torch

from viscnn.errors import ViscnnError
from viscnn.graph import Edge, Node


@dataclass
class Scores:
    """Per-layer tensors: `nodes[layer]` is [C_out], `edges[layer]` is [C_out, C_in / groups].

    Values are means over the images, so scores of image sets combine linearly (`tiger - overall`).
    """

    criterion: str
    target: str
    images: str
    n_images: int
    nodes: dict[str, torch.Tensor]
    edges: dict[str, torch.Tensor] = field(default_factory=dict)
    groups: dict[str, int] = field(default_factory=dict)
    model: str = ""
    seconds: float = 0.0

    # --- arithmetic (linear combinations of image sets) ------------------------------------------------
    def _combine(self, other: Scores, a: float, b: float, images: str) -> Scores:
        if (self.criterion, self.target, self.model) != (other.criterion, other.target, other.model):
            raise ViscnnError("only scores of one model, target and criterion can be combined")
        edges = {k: a * v + b * other.edges[k] for k, v in self.edges.items() if k in other.edges}
        return replace(self, images=images, n_images=self.n_images + other.n_images,
                       nodes={k: a * v + b * other.nodes[k] for k, v in self.nodes.items()}, edges=edges)

    def __add__(self, other: Scores) -> Scores:
        return self._combine(other, 1.0, 1.0, f"{self.images} + {other.images}")

    def __sub__(self, other: Scores) -> Scores:
        return self._combine(other, 1.0, -1.0, f"{self.images} - {other.images}")

    def __mul__(self, factor: float) -> Scores:
        return replace(self, images=f"{factor:g}*({self.images})", nodes={k: v * factor for k, v in self.nodes.items()},
                       edges={k: v * factor for k, v in self.edges.items()})

    __rmul__ = __mul__

    def abs(self) -> Scores:
        """Magnitudes only (an edge that helps and one that hurts the target equally both matter)."""
        return replace(self, nodes={k: v.abs() for k, v in self.nodes.items()}, edges={k: v.abs() for k, v in self.edges.items()})

    def clip(self, minimum: float = 0.0) -> Scores:
        """Negative contrasts set to `minimum` (kept by default; clip on request)."""
        return replace(self, nodes={k: v.clamp(min=minimum) for k, v in self.nodes.items()},
                       edges={k: v.clamp(min=minimum) for k, v in self.edges.items()})

    # --- reading ---------------------------------------------------------------------------------------
    def node(self, node: Node) -> float:
        return float(self.nodes[node.layer][node.channel])

    def edge(self, edge: Edge) -> float:
        values = self.edges[edge.layer]
        out_pg, in_pg = values.shape[0] // self.groups.get(edge.layer, 1), values.shape[1]
        return float(values[edge.out, edge.inp - (edge.out // out_pg) * in_pg])

    @overload
    def top(self, k: int = ..., kind: Literal["nodes"] = ..., *, absolute: bool = ...,
            layers: list[str] | None = ...) -> list[tuple[Node, float]]: ...

    @overload
    def top(self, k: int, kind: Literal["edges"], *, absolute: bool = ...,
            layers: list[str] | None = ...) -> list[tuple[Edge, float]]: ...

    def top(self, k: int = 10, kind: str = "nodes", *, absolute: bool = False,
            layers: list[str] | None = None) -> list[tuple[Node, float]] | list[tuple[Edge, float]]:
        """The k highest-scoring nodes or edges over all (or the given) layers, best first."""
        if kind not in ("nodes", "edges"):
            raise ValueError(f"kind must be 'nodes' or 'edges', not {kind!r}")
        table = self.nodes if kind == "nodes" else self.edges
        names = [name for name in table if layers is None or name in layers]
        if not names:
            return []
        flat = torch.cat([table[name].flatten() for name in names])
        order = flat.abs() if absolute else flat
        _values, index = order.topk(min(k, flat.numel()))
        sizes = torch.tensor([table[name].numel() for name in names]).cumsum(0)
        picked = []  # (layer, index within the layer's table, value)
        for i in index.tolist():
            which = int(torch.searchsorted(sizes, i, right=True))
            picked.append((names[which], i - (int(sizes[which - 1]) if which else 0), float(flat[i])))
        if kind == "nodes":
            return [(Node(name, local), value) for name, local, value in picked]
        edges = []
        for name, local, value in picked:
            in_pg = table[name].shape[1]
            out, inp = divmod(local, in_pg)
            out_pg = table[name].shape[0] // self.groups.get(name, 1)
            edges.append((Edge(name, out, (out // out_pg) * in_pg + inp), value))
        return edges

    # --- files ----------------------------------------------------------------------------------------
    def header(self) -> dict:
        return {"criterion": self.criterion, "target": self.target, "images": self.images, "n_images": self.n_images,
                "model": self.model, "seconds": self.seconds, "groups": self.groups}

    def to_json(self, *, edges: bool = False) -> dict:
        """Header and node scores (and edge scores when asked: millions of numbers for big models)."""
        data = {**self.header(), "nodes": {k: v.tolist() for k, v in self.nodes.items()}}
        if edges:
            data["edges"] = {k: v.tolist() for k, v in self.edges.items()}
        return data

    def save(self, path: str | Path) -> None:
        """Write a .safetensors file (tensors plus the header as metadata)."""
        from safetensors.torch import save_file

        tensors = {f"nodes/{k}": v.contiguous() for k, v in self.nodes.items()}
        tensors.update({f"edges/{k}": v.contiguous() for k, v in self.edges.items()})
        save_file(tensors, str(path), metadata={"viscnn.scores": json.dumps(self.header())})

    @classmethod
    def load(cls, path: str | Path) -> Scores:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            header = json.loads((handle.metadata() or {}).get("viscnn.scores", "null") or "null")
            if header is None:
                raise ViscnnError(f"{path} holds no viscnn scores")
            nodes = {k.split("/", 1)[1]: handle.get_tensor(k) for k in handle.keys() if k.startswith("nodes/")}  # noqa: SIM118 - safe_open is not iterable
            edges = {k.split("/", 1)[1]: handle.get_tensor(k) for k in handle.keys() if k.startswith("edges/")}  # noqa: SIM118 - safe_open is not iterable
        return cls(header["criterion"], header["target"], header["images"], header["n_images"], nodes, edges,
                   header.get("groups", {}), header.get("model", ""), header.get("seconds", 0.0))
