"""The kernel graph of any CNN: trace, layers, nodes, edges, units (and their ids), receptive fields, replay check."""
from viscnn.graph.graph import Graph, build_graph
from viscnn.graph.ids import parse_edge, parse_node, parse_unit
from viscnn.graph.trace import UnsupportedOp, trace
from viscnn.graph.types import ALL_CHANNELS, INPUT, NO_SOURCE, Edge, Layer, Node, ReceptiveField, Unit

__all__ = ["ALL_CHANNELS", "INPUT", "NO_SOURCE", "Edge", "Graph", "Layer", "Node", "ReceptiveField",
           "Unit", "UnsupportedOp", "build_graph", "parse_edge", "parse_node", "parse_unit", "trace"]
