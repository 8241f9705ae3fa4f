"""The kernel graph of any CNN: trace, layers, nodes, edges, receptive fields, replay check."""
from viscnn.graph.graph import Graph, build_graph
from viscnn.graph.trace import UnsupportedOp, trace
from viscnn.graph.types import ALL_CHANNELS, INPUT, NO_SOURCE, Edge, Layer, Node, ReceptiveField

__all__ = ["ALL_CHANNELS", "INPUT", "NO_SOURCE", "Edge", "Graph", "Layer", "Node", "ReceptiveField",
           "UnsupportedOp", "build_graph", "trace"]
