"""InputLayer: the one layer that declares a model's input, for ``Sequential`` and ``gn.Model`` alike.

As in Keras 3, ``gn.Input(shape)`` creates an ``InputLayer`` and returns its symbolic output tensor
(the graph's start), and ``Sequential([layers.InputLayer(shape=...), ...])`` takes only its shape.
"""
from glassnet.errors import describe, message
from glassnet.layers.base import Layer, register
from glassnet.validation import check_int


@register
class InputLayer(Layer):
    """Declares the per-example input shape; computes nothing (the identity) and has no weights.

    In a graph model it appears in ``model.layers`` and the summary; a ``Sequential`` keeps only its
    shape (its ``layers`` and ``summary()`` list the layers after it), as Keras 3 does.

    Parameters
    ----------
    shape : tuple of int, optional
        Per-example shape, e.g. ``(28, 28, 1)`` (Keras 3's name).
    batch_size : int, optional
        Kept in ``batch_shape`` for Keras scripts (glassnet takes any batch size).
    dtype : {"float32", "float64"}, optional
        Default float32.
    batch_shape : tuple, optional
        The shape with its batch entry first, e.g. ``(None, 28, 28, 1)``; what ``get_config`` saves.
    name : str, optional
    input_shape : tuple of int, optional
        Keras 2's name for ``shape``.

    Exactly one of ``shape``, ``input_shape`` and ``batch_shape`` is given.
    """

    def __init__(self, shape=None, batch_size=None, dtype=None, batch_shape=None, name=None, input_shape=None,
                 **kwargs):
        given = [value for value in (shape, input_shape, batch_shape) if value is not None]
        if len(given) != 1:
            raise ValueError(message("InputLayer", "one of shape=, input_shape= or batch_shape=",
                                     f"{len(given)} of them", "E.g. layers.InputLayer(shape=(28, 28, 1))."))
        if batch_shape is not None:
            if not isinstance(batch_shape, (tuple, list)):
                raise TypeError(message("InputLayer", "batch_shape as a tuple (batch, ...), e.g. (None, 28, 28, 1)",
                                        describe(batch_shape)))
            if len(batch_shape) < 2:
                raise ValueError(message("InputLayer", "batch_shape as (batch, ...) with at least one axis after "
                                         "the batch, e.g. (None, 28, 28, 1)", repr(batch_shape)))
            batch_size = batch_shape[0] if batch_size is None else batch_size
            given = [tuple(batch_shape)[1:]]
        if batch_size is not None:
            batch_size = check_int(batch_size, "batch_size", "InputLayer", minimum=1,
                                   fix="Leave batch_size=None: glassnet takes any batch size.")
        super().__init__(name=name, dtype=dtype or "float32", input_shape=given[0], **kwargs)
        self.shape = self.input_shape_arg
        self.batch_size = batch_size
        self.build((None,) + self.shape)
        # the Input tensor is this layer's call 0: the graph's other calls count from 1
        self.calls = 1

    @property
    def batch_shape(self):
        """``(batch_size, *shape)``; the batch entry is None unless ``batch_size`` was given."""
        return (self.batch_size,) + self.shape

    def apply(self, x, training=False):
        return x, None

    def vjp(self, cache, dy, rule="vanilla", need_dx=True, need_grads=True):
        return (dy if need_dx else None), {}

    def get_config(self):
        """Keras 3's form: ``batch_shape`` (batch entry first) instead of ``input_shape``."""
        config = super().get_config()
        del config["input_shape"]
        config["batch_shape"] = list(self.batch_shape)
        return config
