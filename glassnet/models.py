"""Keras's ``keras.models`` names: ``Sequential``, ``load_model``, ``save_model``, ``model_from_json``,
``clone_model``.

The named presets (``keras_mnist``, ``lenet5``, ... and their training recipes) live in
:mod:`glassnet.presets`; their old names here (``glassnet.models.get``, ``glassnet.models.lenet5``, ...)
still resolve to them so that older scripts keep running.
"""
import json

from glassnet.errors import describe, message
from glassnet.model import Sequential
from glassnet.saving import load_model, save_model

#: Model classes that ``model_from_json`` can rebuild, by the class name ``to_json`` writes.
_MODEL_CLASSES = {"Sequential": Sequential}


def model_from_json(json_string, custom_objects=None):
    """Rebuild an (unbuilt or built, untrained) model from :meth:`Sequential.to_json`'s string.

    ``custom_objects`` is accepted for Keras scripts; glassnet's JSON names only its own layers
    (a custom layer class registers itself with ``glassnet.layers.base.register``).
    """
    where = "models.model_from_json"
    if not isinstance(json_string, (str, bytes)):
        raise TypeError(message(where, "a JSON string from model.to_json()", describe(json_string)))
    try:
        description = json.loads(json_string)
    except ValueError as error:
        raise ValueError(message(where, "a JSON string from model.to_json()", f"invalid JSON ({error})")) from None
    if not isinstance(description, dict) or description.get("class_name") not in _MODEL_CLASSES:
        name = description.get("class_name") if isinstance(description, dict) else describe(description)
        raise ValueError(message(where, f"a model of class {sorted(_MODEL_CLASSES)}", repr(name)))
    if "keras_version" in description or str(description.get("module", "")).startswith("keras"):
        # Keras 2 writes keras_version at the top, Keras 3 a "module": "keras" entry.
        version = description.get("keras_version", "3")
        raise ValueError(message(where, "glassnet's own JSON (model.to_json())",
                                 f"a description written by Keras {version}",
                                 "Load the Keras model file itself with gn.load_model('model.keras'), or "
                                 "rebuild it with glassnet layers."))
    return _MODEL_CLASSES[description["class_name"]].from_config(description.get("config") or {})


def clone_model(model):
    """A new model with ``model``'s architecture and freshly initialized weights (as Keras's)."""
    if not hasattr(model, "get_config"):
        raise TypeError(message("models.clone_model", "a glassnet model", describe(model)))
    config = dict(model.get_config())
    config.pop("seed", None)            # fresh weights, as Keras draws new ones
    return type(model).from_config(config)


def __getattr__(name):
    from glassnet import presets
    if name in presets.__all__:
        return getattr(presets, name)
    raise AttributeError(f"module 'glassnet.models' has no attribute {name!r}")


__all__ = ["Sequential", "load_model", "save_model", "model_from_json", "clone_model"]
