"""viscnn's cache of computed results: files under a root folder, indexed in SQLite, written atomically.

    store = Store()                                   # $VISCNN_STORE, else <viscnn home>/store
    key = Store.key("scores", model="lite0", layer="features.3", images=64)
    path = store.get_path("scores", key) or store.put_bytes("scores", key, data, meta={"layer": "features.3"})
"""
from viscnn.store.keys import check_key, check_kind
from viscnn.store.store import Entry, Store, Vacuumed, default_root

__all__ = ["Entry", "Store", "Vacuumed", "check_key", "check_kind", "default_root"]
