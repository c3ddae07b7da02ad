"""The Layer protocol every glassnet layer follows.

- ``build(input_shape)`` creates the weights for a per-example shape (a leading ``None``
  batch dimension, as Keras writes shapes, is accepted and dropped).
- ``forward(x, training=False)`` computes the output and caches what ``backward`` needs.
- ``backward(dy) -> dx`` fills ``grads`` (same keys as ``params``) and never mutates ``dy``.
- ``get_weights()`` / ``set_weights()`` use Keras's order: trainable weights in creation
  order, then non-trainable ones (e.g. BatchNormalization's moving statistics).
"""
import itertools
import re
from collections import defaultdict

import numpy as np

from glassnet import initializers
from glassnet.errors import describe, message

_NAME_COUNTERS = defaultdict(lambda: itertools.count(1))
_REGISTRY = {}
_FLOAT_DTYPES = ("float32", "float64")


def _snake_case(name):
    name = re.sub(r"(.)([A-Z][a-z0-9]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def unique_name(base):
    """Automatic names numbered from 1 as Keras 2 (and seed 000's summary) does: ``conv2d_1``, ``conv2d_2``."""
    return f"{base}_{next(_NAME_COUNTERS[base])}"


def positive_pair(value, what, where):
    """Normalize an int or pair of positive ints (kernel size, strides, pool size)."""
    pair = (value, value) if isinstance(value, (int, np.integer)) else value
    ok = (isinstance(pair, (tuple, list)) and len(pair) == 2
          and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in pair))
    if not ok:
        raise ValueError(message(where, f"{what} as a positive int or a pair of positive ints", repr(value),
                                 f"For example {what}=3 or {what}=(3, 3)."))
    return (int(pair[0]), int(pair[1]))


def check_padding(padding, where):
    """Accept 'valid', 'same', a non-negative int, (ph, pw) or ((top, bottom), (left, right))."""
    if isinstance(padding, str):
        if padding.lower() in ("valid", "same"):
            return padding.lower()
    elif isinstance(padding, (int, np.integer)) and not isinstance(padding, bool) and padding >= 0:
        return int(padding)
    elif isinstance(padding, (tuple, list)) and len(padding) == 2:
        flat = [p for part in padding for p in (part if isinstance(part, (tuple, list)) else (part,))]
        if (len(flat) in (2, 4) and all(isinstance(p, (int, np.integer)) and p >= 0 for p in flat)
                and all(isinstance(part, (tuple, list)) == isinstance(padding[0], (tuple, list))
                        for part in padding)):
            return tuple(tuple(int(q) for q in p) if isinstance(p, (tuple, list)) else int(p) for p in padding)
    raise ValueError(message(where, "padding 'valid', 'same', a non-negative int, (ph, pw) or "
                             "((top, bottom), (left, right))", repr(padding)))


def register(cls):
    """Class decorator: make a layer class rebuildable from its config by name."""
    _REGISTRY[cls.__name__] = cls
    return cls


def deserialize(config):
    """Rebuild a layer from ``{"class_name": ..., "config": {...}}``."""
    name = config.get("class_name")
    if name not in _REGISTRY:
        raise ValueError(message("layers.deserialize", f"a layer class among {sorted(_REGISTRY)}", repr(name)))
    return _REGISTRY[name](**config.get("config", {}))


def serialize(layer):
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


class Layer:
    """Base class of all layers.

    Parameters
    ----------
    name : str, optional
        Unique name; defaults to the snake-case class name with a counter.
    dtype : {"float32", "float64"}
        Dtype of weights and computations.
    input_shape : tuple, optional
        Per-example input shape, e.g. ``(28, 28, 1)``; makes a Sequential build at construction.
    trainable : bool
        Whether the optimizer updates this layer's weights.
    """

    #: rank of the per-example input this layer expects (None: any rank >= 1)
    input_rank = None

    def __init__(self, name=None, dtype="float32", input_shape=None, trainable=True, seed=None):
        where = type(self).__name__
        if name is not None and (not isinstance(name, str) or not name):
            raise TypeError(message(where, "name as a non-empty str", describe(name)))
        if str(np.dtype(dtype)) not in _FLOAT_DTYPES:
            raise ValueError(message(where, "dtype 'float32' or 'float64'", repr(dtype)))
        if input_shape is not None:
            input_shape = self._check_shape_arg(input_shape)
        self.name = name or unique_name(_snake_case(type(self).__name__))
        self.dtype = np.dtype(dtype)
        self.input_shape_arg = input_shape
        self.trainable = bool(trainable)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.params = {}
        self.grads = {}
        self.non_trainable = {}
        self.built = False
        self.input_shape = None
        self.output_shape = None

    # -- shapes --------------------------------------------------------------------------
    def _check_shape_arg(self, shape):
        if isinstance(shape, (int, np.integer)):
            shape = (int(shape),)
        if not isinstance(shape, (tuple, list)) or not all(
                isinstance(d, (int, np.integer)) and d > 0 for d in shape):
            raise ValueError(message(type(self).__name__, "input_shape as a tuple of positive ints without "
                                     "the batch dimension, e.g. (28, 28, 1)", repr(shape)))
        return tuple(int(d) for d in shape)

    def _per_example(self, input_shape):
        """Drop a leading batch entry (``None`` or, when the rank says so, an int)."""
        shape = tuple(input_shape)
        if shape and shape[0] is None:
            shape = shape[1:]
        elif self.input_rank is not None and len(shape) == self.input_rank + 1:
            shape = shape[1:]
        return tuple(int(d) for d in shape)

    def compute_output_shape(self, input_shape):
        """Per-example output shape for a per-example input shape (default: unchanged)."""
        return tuple(input_shape)

    def build(self, input_shape):
        """Create weights for ``input_shape`` (per example; a leading None is dropped)."""
        shape = self._per_example(input_shape)
        self.check_input_shape(shape)
        self.create_weights(shape)
        self.input_shape = (None,) + shape
        self.output_shape = (None,) + tuple(self.compute_output_shape(shape))
        self.built = True
        return self

    def check_input_shape(self, shape):
        """Raise a clear error when this layer cannot take a per-example ``shape``."""
        if self.input_rank is not None and len(shape) != self.input_rank:
            raise ValueError(self._rank_error(shape))

    def _rank_error(self, shape):
        expected = {3: "(N, H, W, C)", 1: "(N, features)"}.get(self.input_rank, f"rank {self.input_rank + 1}")
        return message(type(self).__name__ + f" '{self.name}'", f"input of shape {expected}",
                       f"(None, {', '.join(map(str, shape))})",
                       "Add a Flatten() before Dense, or reshape images to (N, H, W, C).")

    def create_weights(self, input_shape):
        """Create ``params`` (and ``non_trainable``) for a per-example input shape. Default: none."""

    def add_weight(self, key, shape, initializer, trainable=True):
        value = initializers.get(initializer)(shape, self.dtype, self.rng)
        if trainable:
            self.params[key] = value
            self.grads[key] = np.zeros_like(value)
        else:
            self.non_trainable[key] = value
        return value

    # -- computation ---------------------------------------------------------------------
    def __call__(self, x, training=False):
        return self.forward(x, training=training)

    def forward(self, x, training=False):
        raise NotImplementedError

    def backward(self, dy):
        raise NotImplementedError

    # -- weights -------------------------------------------------------------------------
    @property
    def weights(self):
        return list(self.params.values()) + list(self.non_trainable.values())

    @property
    def weight_names(self):
        return list(self.params) + list(self.non_trainable)

    def get_weights(self):
        """Copies of the weights in Keras's order (``[kernel, bias]``, then non-trainable)."""
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        """Load weights in Keras's order; shapes must match exactly."""
        where = f"{type(self).__name__} '{self.name}'.set_weights"
        if not self.built:
            raise RuntimeError(message(where, "a built layer", "an unbuilt one",
                                       "Give the layer input_shape=..., call build(input_shape), or add it to "
                                       "a Sequential whose first layer has input_shape."))
        weights = list(weights)
        if len(weights) != len(self.weights):
            raise ValueError(message(where, f"{len(self.weights)} arrays {self.weight_names}",
                                     f"{len(weights)} arrays"))
        for key, new in zip(self.weight_names, weights):
            store = self.params if key in self.params else self.non_trainable
            new = np.asarray(new)
            if new.shape != store[key].shape:
                raise ValueError(message(where, f"'{key}' of shape {store[key].shape}", f"shape {new.shape}"))
            if not np.issubdtype(new.dtype, np.number) or not np.all(np.isfinite(new)):
                raise ValueError(message(where, f"finite numbers for '{key}'", describe(new)))
            store[key][...] = new

    def count_params(self):
        return int(sum(w.size for w in self.weights))

    def count_trainable_params(self):
        return int(sum(w.size for w in self.params.values())) if self.trainable else 0

    # -- config --------------------------------------------------------------------------
    def get_config(self):
        config = {"name": self.name, "dtype": str(self.dtype), "trainable": self.trainable}
        if self.input_shape_arg is not None:
            config["input_shape"] = list(self.input_shape_arg)
        return config

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r} output_shape={self.output_shape}>"
