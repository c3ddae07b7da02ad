"""The Layer protocol every glassnet layer follows.

- ``build(input_shape)`` creates the weights for a per-example shape (a leading ``None``
  batch dimension, as Keras writes shapes, is accepted and dropped).
- ``apply(x, training=False) -> (y, cache)`` and ``vjp(cache, dy, rule, need_dx, need_grads) -> (dx, grads)``
  are the pure pair every layer implements: the state of a call lives in its ``cache``, never in the
  layer, so one model serves many threads (only training writes into a layer: BatchNormalization's
  moving statistics, the layer's ``rng``). ``rule`` is the ReLU backward rule of explanations
  ("vanilla", "guided", "rectified"); only the ReLU family and fused ReLUs read it.
- ``forward(x, training=False)`` / ``backward(dy) -> dx`` are the stateful convenience on top of them,
  written once here: ``forward`` keeps the cache of its call in the layer, ``backward`` fills ``grads``
  (same keys as ``params``); neither mutates its input.
- ``get_weights()`` / ``set_weights()`` use Keras's order: trainable weights in creation
  order, then non-trainable ones (e.g. BatchNormalization's moving statistics).
- A custom layer computes matrix products with :func:`glassnet.ops.matmul`, which spreads them
  over glassnet's worker threads: during a training step BLAS itself is held at one thread.
"""
import contextlib
import itertools
import re
from collections import defaultdict
from typing import NamedTuple

import numpy as np

from glassnet import initializers
from glassnet.errors import describe, message
from glassnet.validation import _is_int, check_seed, check_shape

_NAME_COUNTERS = defaultdict(lambda: itertools.count(1))
_REGISTRY = {}
_FLOAT_DTYPES = ("float32", "float64")


def _snake_case(name):
    name = re.sub(r"(.)([A-Z][a-z0-9]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def unique_name(base):
    """Automatic names numbered from 1 as Keras 2 (and seed 000's summary) does: ``conv2d_1``, ``conv2d_2``."""
    return f"{base}_{next(_NAME_COUNTERS[base])}"


def check_kernel_fits(layer, shape, extent, pads):
    """Raise when a per-example ``shape`` (H, W, C) padded by ``pads`` ((top, bottom), (left, right)) is
    smaller than the kernel's ``extent`` (its dilated size: (KH - 1) * DH + 1 by (KW - 1) * DW + 1)."""
    (top, bottom), (left, right) = pads
    padded = (shape[0] + top + bottom, shape[1] + left + right)
    if padded[0] < extent[0] or padded[1] < extent[1]:
        raise ValueError(message(f"{type(layer).__name__} '{layer.name}'", f"an input at least as large as its "
                                 f"kernel {tuple(extent)} after padding", f"{padded[0]}x{padded[1]} (input {shape})",
                                 "Use padding='same', a smaller kernel or dilation_rate, or fewer pooling layers "
                                 "before this one."))


def initializer_config(identifier):
    """The JSON-friendly form of an initializer argument: names stay names, instances become config dicts
    (which ``initializers.get`` accepts back), so a model built with ``Constant(0.1)`` can be saved."""
    if isinstance(identifier, initializers.Initializer):
        return initializers.serialize(identifier)
    return identifier


def check_initializer(identifier, what, where):
    """Fail at construction (not at build) on an unknown initializer; returns ``identifier`` unchanged.

    TypeError for something that is no initializer at all (a number, None), ValueError for an unknown
    name or a bad config dict.
    """
    if not isinstance(identifier, (str, dict, initializers.Initializer)):
        raise TypeError(message(where, f"{what} as an initializer name or Initializer", describe(identifier),
                                "Use e.g. 'glorot_uniform', 'he_normal', 'zeros' or 'ones'."))
    try:
        initializers.get(identifier)
    except (ValueError, TypeError, KeyError):
        raise ValueError(message(where, f"{what} as an initializer name or Initializer", repr(identifier),
                                 "Use e.g. 'glorot_uniform', 'he_normal', 'zeros' or 'ones'.")) from None
    return identifier


def register(cls):
    """Class decorator: make a layer class rebuildable from its config by name."""
    _REGISTRY[cls.__name__] = cls
    return cls


def deserialize(config):
    """Rebuild a layer from ``{"class_name": ..., "config": {...}}``."""
    name = config.get("class_name")
    if name not in _REGISTRY:
        raise ValueError(message("layers.deserialize", f"a layer class among {sorted(_REGISTRY)}", repr(name),
                                 "Pass what layers.serialize(layer) returns; custom layers need @register."))
    return _REGISTRY[name](**config.get("config", {}))


def serialize(layer):
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def planned_weight_shapes(layer_configs, input_shape=None):
    """The weight shapes a Sequential configuration would create, worked out without allocating them.

    Used before rebuilding a model from a file: a tampered configuration (``units=10**9``) must be
    refused by comparing these shapes with the arrays the file actually holds, not discovered by
    allocating gigabytes. Each layer is constructed (constructors allocate nothing) and its
    ``create_weights`` runs with ``add_weight`` recording shapes instead of creating arrays.

    Parameters
    ----------
    layer_configs : list of dict
        ``{"class_name": ..., "config": {...}}`` per layer, as in ``Sequential.get_config()["layers"]``.
    input_shape : tuple, optional
        Per-example input shape; default the first layer's ``input_shape``.

    Returns
    -------
    list of tuple or None
        Shapes in Keras's weight order, or None when the model would not be built (no input shape).
        Errors of the layer constructors and shape checks propagate unchanged.
    """
    built = [deserialize(config) for config in layer_configs]
    shape = built[0].input_shape_arg if built and built[0].input_shape_arg is not None else input_shape
    if shape is None:
        return None
    shape = tuple(int(d) for d in shape)
    shapes = []
    for layer in built:
        recorded = []
        layer.add_weight = lambda key, weight_shape, *args, _out=recorded, **kwargs: _out.append(
            tuple(int(d) for d in weight_shape))
        layer.check_input_shape(shape)
        layer.create_weights(shape)
        shapes += recorded
        shape = tuple(layer.compute_output_shape(shape))
    return shapes


class Geometry(NamedTuple):
    """How a windowed layer maps its input grid to its output grid (height, width): output cell j reads
    the window of ``kernel`` input cells starting at ``strides * j - pads[axis][0]`` (padding resolved
    for the input size, "same" included). Explanations read it (e.g. where a Grad-CAM cell is centred)."""
    kernel: tuple
    strides: tuple
    pads: tuple


class Layer:
    """Base class of all layers.

    Parameters
    ----------
    name : str, optional
        Unique name; defaults to the snake-case class name with a counter.
    dtype : {"float32", "float64"}
        Dtype of weights and computations (None: float32, as Keras's default policy).
    input_shape : tuple, optional
        Per-example input shape, e.g. ``(28, 28, 1)``; makes a Sequential build at construction.
    trainable : bool
        Whether the optimizer updates this layer's weights.
    seed : int or numpy.random.Generator, optional
        Seeds the layer's own draws (initial weights, dropout masks); a Generator gives the int
        seed, drawn once, which ``get_config`` keeps.
    """

    #: rank of the per-example input this layer expects (None: any rank >= 1)
    input_rank = None

    def __init__(self, name=None, dtype="float32", input_shape=None, trainable=True, seed=None):
        where = type(self).__name__
        if name is not None and (not isinstance(name, str) or not name):
            raise TypeError(message(where, "name as a non-empty str", describe(name),
                                    "Leave name=None for an automatic one."))
        dtype = "float32" if dtype is None else dtype      # Keras: None is the default policy, float32
        if not isinstance(dtype, (str, np.dtype, type)):
            raise TypeError(message(where, "dtype 'float32' or 'float64'", describe(dtype),
                                    "Use the default float32, or dtype='float64' for exact checks."))
        try:
            known = str(np.dtype(dtype)) in _FLOAT_DTYPES
        except TypeError:
            known = False
        if not known:
            raise ValueError(message(where, "dtype 'float32' or 'float64'", repr(dtype),
                                     "Use the default float32, or dtype='float64' for exact checks."))
        if input_shape is not None:
            input_shape = self._check_shape_arg(input_shape)
        self.name = name or unique_name(_snake_case(type(self).__name__))
        self.dtype = np.dtype(dtype)
        self.input_shape_arg = input_shape
        self.trainable = bool(trainable)
        self.seed = check_seed(seed, where)
        self.rng = np.random.default_rng(self.seed)
        self.params = {}
        self.grads = {}
        self.non_trainable = {}
        self.built = False
        self.input_shape = None
        self.output_shape = None

    # -- shapes --------------------------------------------------------------------------
    def _check_shape_arg(self, shape):
        if _is_int(shape):
            shape = (int(shape),)
        shape = check_shape(shape, type(self).__name__, "input_shape (without the batch dimension)", batch=False,
                            fix="Leave the batch size out: input_shape=(28, 28, 1), not (None, 28, 28, 1).")
        return tuple(int(d) for d in shape)

    def _per_example(self, input_shape):
        """The per-example part of a Keras ``input_shape``, whose first entry is the batch axis.

        ``Flatten().build((32, 26, 26, 8))`` builds for ``(26, 26, 8)`` and ``Dense(3).build((None, 4))``
        for 4 features, as in Keras. Where it is unambiguous a shape without the batch axis is still
        taken (older glassnet code): a fixed-rank layer given exactly its rank (``Conv2D.build((28, 28,
        1))``), or a single axis (``Dense(3).build((4,))``).
        """
        shape = tuple(input_shape)
        if self.input_rank is not None:
            has_batch = len(shape) == self.input_rank + 1 or (shape and shape[0] is None)
        else:
            has_batch = len(shape) > 1 or (shape and shape[0] is None)
        if has_batch:
            shape = shape[1:]
        return tuple(int(d) for d in shape)

    def compute_output_shape(self, input_shape):
        """Per-example output shape for a per-example input shape (default: unchanged)."""
        return tuple(input_shape)

    def build(self, input_shape):
        """Create weights for a Keras ``input_shape`` ``(batch, ...)`` (the batch size may be None)."""
        shape = self._per_example(input_shape)
        self.check_input_shape(shape)
        with self._all_or_nothing():
            self.create_weights(shape)
            output_shape = (None,) + tuple(self.compute_output_shape(shape))
        self.input_shape = (None,) + shape
        self.output_shape = output_shape
        self.built = True
        return self

    @contextlib.contextmanager
    def _all_or_nothing(self):
        """Undo what a failed build wrote: the weight dicts and the ``rng`` draws of their initial
        values, so that a layer whose build failed (e.g. inside a failed graph construction) is
        exactly as it was, and a later build draws the weights a fresh layer would."""
        stores = (self.params, self.grads, self.non_trainable)
        saved, rng_state = [dict(store) for store in stores], self.rng.bit_generator.state
        try:
            yield
        except BaseException:
            for store, before in zip(stores, saved):
                store.clear()
                store.update(before)
            self.rng.bit_generator.state = rng_state
            raise

    def check_input_shape(self, shape):
        """Raise a clear error when this layer cannot take a per-example ``shape``."""
        if self.input_rank is not None and len(shape) != self.input_rank:
            raise ValueError(self._rank_error(shape))
        if not shape:
            raise ValueError(message(f"{type(self).__name__} '{self.name}'", "input of shape (N, ...) with at "
                                     "least one axis besides the batch axis", "a 1-D input",
                                     "Give a batch of feature vectors: x[:, None] or x[None, :]."))

    def _rank_error(self, shape):
        expected = {3: "(N, H, W, C)", 1: "(N, features)"}.get(self.input_rank, f"rank {self.input_rank + 1}")
        fix = ("Give images as (N, H, W, C): add the channel axis of grayscale images with x[..., None], "
               "and put no Flatten or Dense before this layer." if self.input_rank == 3 else
               "Add layers.Flatten() before this layer.")
        return message(type(self).__name__ + f" '{self.name}'", f"input of shape {expected}",
                       f"(None, {', '.join(map(str, shape))})", fix)

    def ensure_built(self, x):
        """Build from the first batch ``x``; afterwards check that a batch of a new shape still fits.

        Cheap (a dtype check and a tuple comparison) when the shape is the one the layer was built for. Otherwise
        it checks the rank, the window sizes and that the weights fit (``check_weights_fit``), so
        a wrong input gives glassnet's error rather than a NumPy one from deep inside.
        """
        if not isinstance(x, np.ndarray) or x.dtype.kind != "f":
            # integer images would silently compute in integers (or fail inside NumPy, e.g. -inf padding)
            raise TypeError(message(f"{type(self).__name__} '{self.name}'", "x as a float NumPy array",
                                    describe(x), "Convert it first, e.g. x.astype('float32') / 255 for uint8 "
                                    "images, or call model.predict, which converts."))
        shape = x.shape
        if self.built and shape[1:] == self.input_shape[1:]:
            return
        where = f"{type(self).__name__} '{self.name}'"
        if self.input_rank is not None and x.ndim != self.input_rank + 1:
            fix = {2: "For one grayscale image use x[None, ..., None].", 3: "For one image add the batch axis: "
                   "x[None]; for a batch of grayscale images add the channel axis: x[..., None]."}
            layout = {3: "(N, H, W, C)", 1: "(N, features)"}.get(self.input_rank, f"rank {self.input_rank + 1}")
            raise ValueError(message(where, f"input of shape {layout}", f"an array of shape {shape}",
                                     fix.get(x.ndim) if self.input_rank == 3 else None))
        if not self.built:
            self.build((None,) + shape[1:])
            return
        self.check_input_shape(shape[1:])
        self.check_weights_fit(shape[1:])

    def check_weights_fit(self, shape):
        """Raise when a built layer's weights cannot take a per-example ``shape`` (default: same
        last axis, i.e. channels or features, when the layer has weights)."""
        if self.weights and shape[-1] != self.input_shape[-1]:
            raise ValueError(message(f"{type(self).__name__} '{self.name}'",
                                     f"inputs with {self.input_shape[-1]} channels/features on the last axis "
                                     f"(it was built for {self.input_shape})", f"per-example shape {shape}",
                                     "Check the data, or create a new layer for this input."))

    def geometry(self, input_hw):
        """The :class:`Geometry` of a windowed layer for an input of height and width ``input_hw``; None
        for a layer without one (the default: elementwise layers keep the grid, others have none)."""
        return None

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
        """On symbolic tensors (``gn.Input`` or a layer's output): a call in a graph, returning the output
        tensor (:mod:`glassnet.functional`); on a NumPy array: ``forward(x, training)``."""
        from glassnet.functional import call_symbolic, is_symbolic
        if is_symbolic(x):
            return call_symbolic(self, x)
        return self.forward(x, training=training)

    def apply(self, x, training=False):
        """Forward pass, pure: returns ``(y, cache)``; ``cache`` holds what :meth:`vjp` needs (None when
        nothing). Writes nothing into the layer except, while training, its own ``rng`` draws."""
        raise NotImplementedError

    def vjp(self, cache, dy, rule="vanilla", need_dx=True, need_grads=True):
        """Backward pass, pure: ``(dx, grads)`` from the ``cache`` of :meth:`apply` and ``dy``.

        ``dx`` has the input's shape (None when ``need_dx`` is False); ``grads`` has the keys of
        ``params`` ({} when ``need_grads`` is False or the layer has no weights). ``rule`` is the
        ReLU backward rule ("vanilla", "guided", "rectified"). Never mutates ``dy`` or the layer.
        """
        raise NotImplementedError

    def forward(self, x, training=False, **options):
        """Stateful form of :meth:`apply` (``options`` such as ``logits=True`` go to it): keeps the cache
        for :meth:`backward`."""
        y, self._cache = self.apply(x, training=training, **options)
        self._forwarded = True
        return y

    def backward(self, dy):
        """Stateful form of :meth:`vjp` on the last :meth:`forward`'s cache: fills ``grads``, returns dL/dx."""
        if not getattr(self, "_forwarded", False):
            raise RuntimeError(message(f"{type(self).__name__} '{self.name}'.backward", "a forward pass first",
                                       "no forward pass", "Call forward(x, training=True) before backward."))
        dx, grads = self.vjp(self._cache, dy)
        self.grads.update(grads)
        return dx

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
        if not isinstance(weights, (list, tuple)):
            raise TypeError(message(where, f"a list of {len(self.weights)} arrays {self.weight_names}",
                                    describe(weights), "Pass what get_weights() returns, e.g. [kernel, bias]."))
        weights = list(weights)
        if len(weights) != len(self.weights):
            raise ValueError(message(where, f"{len(self.weights)} arrays {self.weight_names}",
                                     f"{len(weights)} arrays", "Pass them in get_weights() order."))
        checked = []
        for key, new in zip(self.weight_names, weights):
            store = self.params if key in self.params else self.non_trainable
            try:
                new = np.asarray(new)
            except (ValueError, TypeError):
                raise ValueError(message(where, f"'{key}' as a numeric array", describe(new))) from None
            if new.shape != store[key].shape:
                raise ValueError(message(where, f"'{key}' of shape {store[key].shape}", f"shape {new.shape}",
                                         "Check the order ([kernel, bias], Keras's HWIO conv kernels)."))
            if not (np.issubdtype(new.dtype, np.number) and np.all(np.isfinite(new))):
                raise ValueError(message(where, f"finite numbers for '{key}'", describe(new),
                                         "Check the file or array the weights came from."))
            checked.append((store[key], new))
        # assign only once every array passed, so a failed call leaves the layer unchanged
        for target, new in checked:
            target[...] = new

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

    @classmethod
    def from_config(cls, config):
        """Keras's ``Layer.from_config``: a new, unbuilt layer from :meth:`get_config`'s dict."""
        if not isinstance(config, dict):
            raise TypeError(message(f"{cls.__name__}.from_config", "the dict that get_config() returns",
                                    describe(config)))
        return cls(**config)

    @property
    def output(self):
        # Keras keeps the symbolic tensor a layer was last called on; glassnet's layers keep no such tensor.
        raise AttributeError(message(
            f"{type(self).__name__} '{self.name}'.output", "Keras's symbolic layer output",
            "a glassnet layer, which keeps no symbolic tensor (gn.Model takes the tensors its calls return)",
            "For its activations use glassnet.explain.feature_maps(model, x, layer) (or "
            "model.forward(x, stop=model.layer_index(layer) + 1)); for its shape use layer.output_shape."))

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r} output_shape={self.output_shape}>"
