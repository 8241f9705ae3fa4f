"""viscnn: a CNN microscope.

The data flows one way: model -> graph -> scores -> circuits -> views. `viscnn.load(model, images)` gives
the whole microscope from Python (see `viscnn.microscope`); `viscnn.show(model, images)` the page in Jupyter.
"""
from typing import Any

from viscnn.errors import ViscnnError

__version__ = "0.1.0"
__all__ = ["Microscope", "ViscnnError", "__version__", "load", "show"]


def __getattr__(name: str) -> Any:  # PEP 562: `import viscnn` stays light (no torch, no FastAPI) until used
    if name == "show":
        from viscnn.server.notebook import show

        return show
    if name in ("load", "Microscope"):
        from viscnn import microscope

        return getattr(microscope, name)
    raise AttributeError(f"module 'viscnn' has no attribute {name!r}")
