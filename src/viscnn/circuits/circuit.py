"""`Circuit`: the kernels (edges) and filters (nodes) a target cannot do without; runnable and saveable.

File format (JSON, documented in docs/circuit-format.md):
    {"format": "viscnn.circuit/1", "model": NAME, "fingerprint": HASH, "target": {"text", "layer", "channel"},
     "method": NAME, "keep": FRACTION, "kept_fraction": FRACTION,
     "nodes": [{"layer", "channel", "score"}], "edges": [{"layer", "out", "in", "score", "sign"}]}
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from viscnn.circuits.connect import connected
from viscnn.circuits.masking import CircuitModel, Masks
from viscnn.errors import ViscnnError
from viscnn.graph import Edge, Graph, Node
from viscnn.graph.kernels import folded_kernels, kernel_signs
from viscnn.scoring.targets import Target, check_scorable, parse_target

if TYPE_CHECKING:
    from viscnn.circuits.extract import Extracted

FORMAT = "viscnn.circuit/1"


def upstream_layers(graph: Graph, target: Target) -> list[str]:
    """The conv layers whose kernels can matter to the target, in call order."""
    if not target.inside:
        return [layer.name for layer in graph.conv_layers]
    layer = target.map_layer
    return [n for n in graph.upstream(layer) if graph[n].kind == "conv"] + [layer]


def candidate_kernels(graph: Graph, target: Target) -> dict[str, torch.Tensor]:
    """The kernels on some path from the input to the target in the whole network."""
    layers = upstream_layers(graph, target)
    everything = {n: torch.ones(graph[n].out_channels, graph[n].in_per_group, dtype=torch.bool) for n in layers}
    return connected(graph, everything, target)


@dataclass
class Circuit:
    """Kept kernels per layer (bool [C_out, C_in/g]) and the scores they were chosen by."""

    model: str
    fingerprint: str
    target: Target
    method: str
    keep: float
    masks: Masks
    edge_scores: dict[str, torch.Tensor] = field(default_factory=dict)
    node_scores: dict[str, torch.Tensor] = field(default_factory=dict)
    upstream_edges: int = 0

    @property
    def num_edges(self) -> int:
        return int(sum(int(m.sum()) for m in self.masks.values()))

    @property
    def kept_fraction(self) -> float:
        return self.num_edges / max(1, self.upstream_edges)

    def node_masks(self) -> dict[str, torch.Tensor]:
        """A node is in the circuit when one of its kernels is."""
        return {name: mask.any(dim=1) for name, mask in self.masks.items()}

    def edges(self, graph: Graph) -> list[tuple[Edge, float]]:
        result = []
        for name, mask in self.masks.items():
            scores = self.edge_scores.get(name)
            for out, local in mask.nonzero().tolist():
                score = float(scores[out, local]) if scores is not None else 0.0
                result.append((graph.edge_at(name, out, local), score))
        return result

    def nodes(self) -> list[tuple[Node, float]]:
        result: list[tuple[Node, float]] = []
        for name, kept in self.node_masks().items():
            scores = self.node_scores.get(name)
            result.extend((Node(name, c), float(scores[c]) if scores is not None else 0.0) for c in kept.nonzero().flatten().tolist())
        return result

    def module(self, model: nn.Module, graph: Graph) -> CircuitModel:
        """A module running `model` with every removed kernel zeroed (the model itself is untouched)."""
        return CircuitModel(model, graph, {name: mask.float() for name, mask in self.masks.items()})

    def extract(self, model: nn.Module, graph: Graph, *, seconds: float | None = None) -> Extracted:
        """A physically smaller copy of `model`: the filters this circuit does not need are gone (see
        `viscnn.circuits.extract`); its target gives exactly what `module()` gives. `seconds` bounds
        torch-pruning's search (default `extract.EXTRACT_SECONDS`)."""
        from viscnn.circuits.extract import EXTRACT_SECONDS, extract

        return extract(self, model, graph, seconds=EXTRACT_SECONDS if seconds is None else seconds)

    # --- files ----------------------------------------------------------------------------------------
    def signs(self, model: nn.Module, graph: Graph) -> list[int]:
        """Each kept kernel's sign (1 excitatory, -1 inhibitory, 0 mixed), in the order of `edges`."""
        result: list[int] = []
        for name, mask in self.masks.items():
            if mask.any():
                result.extend(kernel_signs(folded_kernels(model, graph, name))[mask].tolist())
        return result

    def to_json(self, graph: Graph, model: nn.Module | None = None) -> dict:
        """The circuit file's object (docs/circuit-format.md); with `model`, each edge carries its kernel's sign."""
        target: dict = {"text": str(self.target)}
        if self.target.kind in ("node", "neuron"):
            target.update(layer=self.target.layer, channel=self.target.channel)
        edges = [{"layer": e.layer, "out": e.out, "in": e.inp, "score": s} for e, s in self.edges(graph)]
        if model is not None:
            for edge, sign in zip(edges, self.signs(model, graph), strict=True):
                edge["sign"] = sign
        return {"format": FORMAT, "model": self.model, "fingerprint": self.fingerprint, "target": target,
                "method": self.method, "keep": self.keep, "kept_fraction": self.kept_fraction,
                "upstream_edges": self.upstream_edges,
                "nodes": [{"layer": n.layer, "channel": n.channel, "score": s} for n, s in self.nodes()],
                "edges": edges}

    def save(self, path: str | Path, graph: Graph, model: nn.Module | None = None) -> None:
        Path(path).write_text(json.dumps(self.to_json(graph, model)))

    @classmethod
    def from_json(cls, data: dict, graph: Graph, fingerprint: str | None = None, *,
                  class_names: Sequence[str] | None = None) -> Circuit:
        """Rebuild a circuit on `graph`; a file from another model (fingerprint or layers) is an error.

        The target's text is parsed here, once (`class_names` reads a `class:NAME` written by hand).
        """
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ViscnnError(f"not a viscnn circuit file (format {data.get('format') if isinstance(data, dict) else None!r})")
        if fingerprint is not None and data.get("fingerprint") not in (None, fingerprint):
            raise ViscnnError(f"the circuit was extracted from another model ({data.get('model')}, "
                              f"weights {data.get('fingerprint')}), not this one ({fingerprint})")
        masks = {layer.name: torch.zeros(layer.out_channels, layer.in_per_group, dtype=torch.bool) for layer in graph.conv_layers}
        scores = {name: torch.zeros(mask.shape) for name, mask in masks.items()}
        for item in data.get("edges", []):
            edge = Edge(str(item["layer"]), int(item["out"]), int(item["in"]))
            if not graph.has_edge(edge):
                raise ViscnnError(f"circuit edge {edge} is not in this model's graph: the file is from another model")
            out, local = graph.kernel_index(edge)
            masks[edge.layer][out, local] = True
            scores[edge.layer][out, local] = float(item.get("score", 0.0))
        target = check_scorable(parse_target(data["target"]["text"], graph, class_names))
        used = set(upstream_layers(graph, target))
        node_scores = {name: torch.zeros(graph[name].out_channels) for name in used}
        for item in data.get("nodes", []):
            if item["layer"] in node_scores:
                node_scores[item["layer"]][int(item["channel"])] = float(item.get("score", 0.0))
        return cls(data.get("model", ""), data.get("fingerprint", ""), target, data.get("method", ""),
                   float(data.get("keep", 0.0)), {n: m for n, m in masks.items() if n in used},
                   {n: s for n, s in scores.items() if n in used}, node_scores,
                   int(data.get("upstream_edges", sum(graph[n].num_edges for n in used))))

    @classmethod
    def load(cls, path: str | Path, graph: Graph, fingerprint: str | None = None, *,
             class_names: Sequence[str] | None = None) -> Circuit:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ViscnnError(f"cannot read circuit file {path}: {exc}") from exc
        return cls.from_json(data, graph, fingerprint, class_names=class_names)


def make_circuit(graph: Graph, target: Target, masks: Masks, *, method: str, keep: float, model_name: str = "",
                 fingerprint: str = "", edge_scores: dict | None = None, node_scores: dict | None = None) -> Circuit:
    """Drop what is disconnected from `masks` and wrap the rest; an empty result is an error."""
    layers = upstream_layers(graph, target)
    kept = connected(graph, {n: masks[n] for n in layers if n in masks}, target)
    upstream = int(sum(int(m.sum()) for m in candidate_kernels(graph, target).values()))
    circuit = Circuit(model_name, fingerprint, target, method, keep, kept, edge_scores or {}, node_scores or {}, upstream)
    if circuit.num_edges == 0:
        raise ViscnnError(f"empty circuit: at keep={keep:g} with method {method}, no kept kernels connect the "
                          f"input to target {target}; keep more")
    return circuit
