"""viscnn: a CNN microscope.

The data flows one way: model -> graph -> scores -> circuits -> views.
"""
from viscnn.errors import ViscnnError

__version__ = "0.1.0"
__all__ = ["ViscnnError", "__version__"]
