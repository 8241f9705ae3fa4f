"""viscnn: a CNN microscope.

The data flows one way: model -> graph -> scores -> circuits -> views.
"""
from typing import Any

from viscnn.errors import ViscnnError

__version__ = "0.1.0"
__all__ = ["ViscnnError", "__version__", "show"]


def __getattr__(name: str) -> Any:
    if name == "show":
        from viscnn.server.notebook import show

        return show
    raise AttributeError(f"module 'viscnn' has no attribute {name!r}")
