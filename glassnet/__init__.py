"""glassnet: a convolutional-network library on NumPy that trains fast and explains itself.

Submodules load on first use, so ``import glassnet`` stays cheap and optional
extras (matplotlib, scipy, ...) are imported only by the parts that need them.
"""
import importlib

__version__ = "0.1.0"

_SUBMODULES = {
    "activations", "callbacks", "cli", "data", "datasets", "explain", "initializers",
    "interop", "layers", "losses", "metrics", "model", "models", "ops", "optimizers",
    "preprocessing", "reference", "saving", "utils", "validation", "viz", "engine", "functional",
}
_ATTRIBUTES = {
    "Sequential": "glassnet.model",
    "Model": "glassnet.model",
    "Input": "glassnet.functional",
    "load_model": "glassnet.saving",
    "export_onnx": "glassnet.interop",
}


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"glassnet.{name}")
    if name in _ATTRIBUTES:
        return getattr(importlib.import_module(_ATTRIBUTES[name]), name)
    raise AttributeError(f"module 'glassnet' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _SUBMODULES | set(_ATTRIBUTES))
