"""The ids of the graph as text: read once, checked against the graph, carried inward as objects.

    Node   LAYER:C           filter C of conv LAYER
    Edge   LAYER:OUT<-IN     the kernel from input channel IN (absolute index) to output channel OUT
    Unit   LAYER:C:Y,X       the unit at row Y, column X of node C's map;  LAYER:C leaves the position open

`str()` of a `Node`, `Edge` or `Unit` is its one canonical text and `parse_*(str(x), graph) == x`.
Layer names may contain ':' (a model's own names): the layer is the shortest prefix after which the
rest reads as the id's fields. Spaces around `<-` are allowed on reading. Every fault is one
ViscnnError naming it: what was read (`what`, e.g. "node", "target", "--unit"), the text, and why.
"""
from __future__ import annotations

import re

from viscnn.errors import ViscnnError
from viscnn.graph.graph import Graph
from viscnn.graph.types import Edge, Layer, Node, Unit

_NODE = re.compile(r"(?P<layer>.+?):(?P<channel>\d+)")
_EDGE = re.compile(r"(?P<layer>.+?):(?P<out>\d+)\s*<-\s*(?P<inp>\d+)")
_UNIT = re.compile(r"(?P<layer>.+?):(?P<channel>\d+)(?::(?P<y>\d+),(?P<x>\d+))?")
_RANGE = re.compile(r"(?P<layer>.+?):(?P<first>\d+)\s*-\s*(?P<last>\d+)")
_POSITION = re.compile(r"(?P<layer>.+?):(?P<y>\d+),(?P<x>\d+)")


def match_node(text: str) -> Node | None:
    """The Node `text` spells (syntax only, not checked against a graph), or None."""
    match = _NODE.fullmatch(text.strip())
    return Node(match["layer"], int(match["channel"])) if match else None


def match_edge(text: str) -> Edge | None:
    """The Edge `text` spells (syntax only, not checked against a graph), or None."""
    match = _EDGE.fullmatch(text.strip())
    return Edge(match["layer"], int(match["out"]), int(match["inp"])) if match else None


def is_node_range(text: str) -> bool:
    """True when `text` has the form LAYER:A-B (see `parse_node_range`)."""
    return _RANGE.fullmatch(text.strip()) is not None


def conv_layer(graph: Graph, name: str, *, what: str, text: str) -> Layer:
    """The conv layer `name` of `graph`; a ViscnnError naming the id and some conv layers otherwise."""
    layer = graph.layers.get(name)
    if layer is None or layer.kind != "conv":
        convs = [spec.name for spec in graph.conv_layers]
        raise ViscnnError(f"unknown conv layer {name!r} in {what} {text!r}: choose from "
                          f"{', '.join(convs[:8])}{' ...' if len(convs) > 8 else ''}")
    return layer


def check_node(node: Node, graph: Graph, *, what: str = "node", text: str | None = None) -> Node:
    """`node` itself when it is a filter of a conv layer of `graph`; a ViscnnError naming the fault otherwise."""
    text = str(node) if text is None else text
    layer = conv_layer(graph, node.layer, what=what, text=text)
    if not 0 <= node.channel < layer.out_channels:
        raise ViscnnError(f"channel {node.channel} of {what} {text!r} is out of range: layer {layer.name} has "
                          f"{layer.out_channels} channels")
    return node


def check_edge(edge: Edge, graph: Graph, *, what: str = "edge", text: str | None = None) -> Edge:
    """`edge` itself when its kernel exists in `graph` (grouped and depthwise convs have only some)."""
    text = str(edge) if text is None else text
    layer = conv_layer(graph, edge.layer, what=what, text=text)
    name, out, inp = layer.name, edge.out, edge.inp
    if not 0 <= out < layer.out_channels:
        raise ViscnnError(f"output channel {out} of {what} {text!r} is out of range: layer {name} has "
                          f"{layer.out_channels} output channels")
    if not 0 <= inp < layer.in_channels:
        raise ViscnnError(f"input channel {inp} of {what} {text!r} is out of range: layer {name} has "
                          f"{layer.in_channels} input channels")
    group = out // layer.out_per_group
    first, last = group * layer.in_per_group, (group + 1) * layer.in_per_group
    if not first <= inp < last:
        kind = "depthwise" if layer.in_per_group == 1 else f"grouped ({layer.groups} groups)"
        reads = f"input channel {first}" if last - first == 1 else f"input channels {first}-{last - 1}"
        raise ViscnnError(f"{what} {text!r} does not exist: layer {name} is {kind}, so output channel {out} reads "
                          f"only {reads} (try {name}:{out}<-{first})")
    return edge


def _check_position(layer: Layer, y: int, x: int) -> None:
    if len(layer.output_shape) >= 2:
        height, width = layer.output_shape[-2:]
        if not (0 <= y < height and 0 <= x < width):
            raise ViscnnError(f"position {y},{x} is outside the {height}x{width} map of layer {layer.name}")


def check_unit(unit: Unit, graph: Graph, *, what: str = "unit", text: str | None = None) -> Unit:
    """`unit` itself when its node exists and its position (if any) lies inside the node's map."""
    text = str(unit) if text is None else text
    check_node(unit.node, graph, what=what, text=text)
    if unit.position is not None:
        _check_position(graph[unit.layer], *unit.position)
    return unit


def parse_node(text: str, graph: Graph, *, what: str = "node") -> Node:
    """'LAYER:C' -> Node, checked against `graph` (a conv layer, the channel in range)."""
    node = match_node(text)
    if node is None:
        raise ViscnnError(f"cannot read {what} {text!r}: use LAYER:CHANNEL, e.g. features.8:5")
    return check_node(node, graph, what=what, text=text)


def parse_edge(text: str, graph: Graph, *, what: str = "edge") -> Edge:
    """'LAYER:OUT<-IN' -> Edge, checked against `graph` (the kernel exists)."""
    edge = match_edge(text)
    if edge is None:
        raise ViscnnError(f"cannot read {what} {text!r}: use LAYER:OUT<-IN, e.g. features.3:5<-2")
    return check_edge(edge, graph, what=what, text=text)


def parse_unit(text: str, graph: Graph, *, what: str = "unit") -> Unit:
    """'LAYER:C:Y,X' or 'LAYER:C' (position left open) -> Unit, checked against `graph` (its maps' sizes too)."""
    match = _UNIT.fullmatch(text.strip())
    if match is None:
        raise ViscnnError(f"cannot read {what} {text!r}: use LAYER:CHANNEL or LAYER:CHANNEL:Y,X, e.g. features.8:5:3,3")
    y, x = (None, None) if match["y"] is None else (int(match["y"]), int(match["x"]))
    return check_unit(Unit(match["layer"], int(match["channel"]), y, x), graph, what=what, text=text)


def parse_node_range(text: str, graph: Graph, *, what: str = "node range") -> list[Node]:
    """'LAYER:A-B' -> the nodes A..B (both included) of LAYER, checked against `graph`."""
    match = _RANGE.fullmatch(text.strip())
    if match is None:
        raise ViscnnError(f"cannot read {what} {text!r}: use LAYER:FIRST-LAST, e.g. features.8:0-15")
    first, last = int(match["first"]), int(match["last"])
    if last < first:
        raise ViscnnError(f"empty channel range in {what} {text!r}")
    for channel in (first, last):
        check_node(Node(match["layer"], channel), graph, what=what, text=text)
    return [Node(match["layer"], c) for c in range(first, last + 1)]


def parse_position(text: str, graph: Graph, *, what: str = "position") -> tuple[str, int, int]:
    """'LAYER:Y,X' (a position in every map of a conv layer) -> (layer, y, x), inside the layer's maps."""
    match = _POSITION.fullmatch(text.strip())
    if match is None:
        raise ViscnnError(f"cannot read {what} {text!r}: use LAYER:Y,X, e.g. _blocks.6._expand_conv:5,3")
    layer = conv_layer(graph, match["layer"], what=what, text=text)
    y, x = int(match["y"]), int(match["x"])
    _check_position(layer, y, x)
    return layer.name, y, x
