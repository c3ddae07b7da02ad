"""Keras names glassnet does not have yet, each failing with what to use instead.

Delete an entry (and its line in ``glassnet.__init__``) when the feature lands: ``gn.Input`` and
``gn.Model`` belong to the Functional API.
"""
from glassnet.errors import message

_FUNCTIONAL = ("glassnet has no Functional API yet (graph models with several inputs or branches). For a "
               "chain of layers use gn.Sequential([...]) and give its first layer input_shape=(28, 28, 1), or "
               "start it with gn.layers.InputLayer(shape=(28, 28, 1)).")


def Input(shape=None, *args, **kwargs):
    """Keras's ``keras.Input``: not available yet (raises NotImplementedError saying what to use)."""
    raise NotImplementedError(message("gn.Input", "the Functional API", f"gn.Input(shape={shape!r})", _FUNCTIONAL))


def Model(*args, **kwargs):
    """Keras's ``keras.Model(inputs, outputs)``: not available yet (raises NotImplementedError)."""
    raise NotImplementedError(message("gn.Model", "the Functional API", "gn.Model(...)", _FUNCTIONAL))
