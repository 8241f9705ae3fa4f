"""Where viscnn keeps what it builds: $VISCNN_HOME, else the user's cache directory."""
from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def home() -> Path:
    """viscnn's own folder (demo images, trained models); `VISCNN_HOME` overrides it."""
    return Path(os.environ.get("VISCNN_HOME") or platformdirs.user_cache_dir("viscnn"))
