"""Circuits: the subgraphs a target cannot do without, found by a method, runnable, saved, evaluated."""
from viscnn.circuits.build import extract_circuit, select
from viscnn.circuits.circuit import Circuit, make_circuit, upstream_layers
from viscnn.circuits.masking import CircuitModel, KernelMasks
from viscnn.circuits.methods import all_methods, get_method
from viscnn.circuits.run import pearson, target_output

__all__ = ["Circuit", "CircuitModel", "KernelMasks", "all_methods", "extract_circuit", "get_method", "make_circuit",
           "pearson", "select", "target_output", "upstream_layers"]
