"""InputLayer: Keras's way to give a Sequential its input shape as a first "layer"."""
import numpy as np

from glassnet.errors import describe, message
from glassnet.layers.base import Layer


# Not registered for deserialization: a Sequential keeps only its shape, and graph models save their
# own InputLayer (glassnet.functional), which owns that name in the registry.
class InputLayer(Layer):
    """Declares the per-example input shape; computes nothing.

    ``Sequential([layers.InputLayer(shape=(28, 28, 1)), layers.Conv2D(32, 3), ...])`` builds the model
    at construction, as ``input_shape=`` on the first layer does. As in Keras 3 the model keeps only
    the shape: ``model.layers`` and ``summary()`` list the layers after it.

    Parameters
    ----------
    shape : tuple of int, optional
        Per-example shape, e.g. ``(28, 28, 1)`` (Keras 3's name).
    batch_size : int, optional
        Accepted for Keras scripts (glassnet takes any batch size).
    input_shape : tuple of int, optional
        Keras 2's name for ``shape``.
    batch_shape : tuple, optional
        The shape with its batch entry first, e.g. ``(None, 28, 28, 1)``.
    """

    def __init__(self, shape=None, batch_size=None, dtype="float32", batch_shape=None, name=None,
                 input_shape=None, **kwargs):
        given = [value for value in (shape, input_shape, batch_shape) if value is not None]
        if len(given) != 1:
            raise ValueError(message("InputLayer", "one of shape=, input_shape= or batch_shape=",
                                     f"{len(given)} of them", "E.g. layers.InputLayer(shape=(28, 28, 1))."))
        if batch_shape is not None:
            if not isinstance(batch_shape, (tuple, list)) or len(batch_shape) < 2:
                raise ValueError(message("InputLayer", "batch_shape as (batch, ...) e.g. (None, 28, 28, 1)",
                                         describe(batch_shape)))
            given = [tuple(batch_shape)[1:]]
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer))
                                       or batch_size < 1):
            raise ValueError(message("InputLayer", "batch_size as a positive int or None", repr(batch_size)))
        super().__init__(name=name, dtype=dtype or "float32", input_shape=given[0], **kwargs)
        self.shape = self.input_shape_arg
        self.batch_size = batch_size

    def forward(self, x, training=False):
        self.ensure_built(x)
        return x

    def backward(self, dy):
        return dy

    def get_config(self):
        config = {**super().get_config(), "shape": list(self.shape), "batch_size": self.batch_size}
        del config["input_shape"]
        return config
