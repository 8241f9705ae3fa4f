"""The microscope's server: a FastAPI JSON API (docs/api.md) and the built page, for one model and image spec.

`viscnn serve` starts it; `viscnn.show(model, images)` embeds it in a notebook.
"""
from viscnn.server.app import create_app
from viscnn.server.launch import build_state, serve_background
from viscnn.server.notebook import show
from viscnn.server.state import ServerState

__all__ = ["ServerState", "build_state", "create_app", "serve_background", "show"]
