"""Model zoo (`load_model`) and per-model preprocessing."""
from viscnn.models.classes import class_names
from viscnn.models.preprocess import Preprocess
from viscnn.models.zoo import DEFAULT_MODEL, ZOO, LoadedModel, ModelSpec, load_model, read_weights

__all__ = ["DEFAULT_MODEL", "ZOO", "LoadedModel", "ModelSpec", "Preprocess", "class_names", "load_model",
           "read_weights"]
