"""Activation layers: Activation(name), ReLU, LeakyReLU, PReLU, Softmax.

The ReLU family reads the ``rule`` argument of ``vjp`` ("vanilla" | "guided" | "rectified", see
:mod:`glassnet.activations`), which explanation methods pass; nothing is written into the layers.
"""
import numpy as np

from glassnet import activations
from glassnet.errors import message
from glassnet.layers.base import Layer, check_initializer, initializer_config, register
from glassnet.validation import check_int, check_list, check_number


@register
class Activation(Layer):
    """Apply a named activation: ``relu``, ``sigmoid``, ``tanh``, ``linear`` or ``softmax``."""

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.check_name(activation, "Activation")

    @property
    def is_relu(self):
        return self.activation == "relu"

    def apply(self, x, training=False):
        self.ensure_built(x)
        y = activations.forward(self.activation, x)
        return y, (x, y)

    def vjp(self, cache, dy, rule="vanilla", need_dx=True, need_grads=True):
        return (activations.backward(self.activation, dy, *cache, rule) if need_dx else None), {}

    def get_config(self):
        return {**super().get_config(), "activation": self.activation}


@register
class ReLU(Layer):
    """Rectified linear unit ``max(x, 0)`` (``negative_slope`` below zero, optional ``max_value`` cap)."""

    def __init__(self, max_value=None, negative_slope=0.0, **kwargs):
        super().__init__(**kwargs)
        where = type(self).__name__
        if max_value is not None:
            max_value = check_number(max_value, "max_value", where, lambda v: v > 0, "> 0 or None",
                                     "For example ReLU(max_value=6.0) for ReLU6.")
        self.max_value = max_value
        self.negative_slope = check_number(negative_slope, "negative_slope", where, lambda v: v >= 0, ">= 0",
                                           "For example ReLU(negative_slope=0.1).")

    is_relu = True

    def apply(self, x, training=False):
        self.ensure_built(x)
        y = np.maximum(x, x * self.negative_slope) if self.negative_slope else np.maximum(x, 0)
        if self.max_value is not None:
            y = np.minimum(y, self.max_value)
        return y, x

    def vjp(self, cache, dy, rule="vanilla", need_dx=True, need_grads=True):
        if not need_dx:
            return None, {}
        x = cache
        dx = activations.relu_gate(dy, x, rule, self.negative_slope)
        if self.max_value is not None and rule == "vanilla":
            dx = np.where(x < self.max_value, dx, 0).astype(dy.dtype, copy=False)
        return dx, {}

    def get_config(self):
        return {**super().get_config(), "max_value": self.max_value, "negative_slope": self.negative_slope}


@register
class LeakyReLU(ReLU):
    """``x`` for x > 0, ``alpha * x`` otherwise (Keras default alpha = 0.3)."""

    def __init__(self, alpha=0.3, **kwargs):
        alpha = check_number(alpha, "alpha", "LeakyReLU", lambda v: 0 <= v < 1, "in [0, 1)",
                             "For example LeakyReLU(alpha=0.1).")
        super().__init__(negative_slope=alpha, **kwargs)
        self.alpha = alpha

    def get_config(self):
        config = super().get_config()
        del config["max_value"], config["negative_slope"]
        return {**config, "alpha": self.alpha}


@register
class PReLU(Layer):
    """Parametric ReLU: ``x`` for x > 0, ``alpha * x`` otherwise, with a learned ``alpha``.

    ``alpha`` has the per-example input shape, with size 1 along ``shared_axes``
    (1-based like Keras: for images ``shared_axes=[1, 2]`` shares one alpha per channel).
    """

    is_relu = True

    def __init__(self, alpha_initializer="zeros", shared_axes=None, **kwargs):
        super().__init__(**kwargs)
        self.alpha_initializer = check_initializer(alpha_initializer, "alpha_initializer", "PReLU")
        fix = "Give 1-based axes of the per-example shape; for images use shared_axes=[1, 2]: one alpha per channel."
        axes = [shared_axes] if isinstance(shared_axes, (int, np.integer)) and not isinstance(shared_axes, bool) \
            else shared_axes
        if axes is not None:
            axes = [check_int(a, "shared_axes entries", "PReLU", minimum=1, fix=fix)
                    for a in check_list(axes, "shared_axes (None, an int or a list of ints)", "PReLU", fix)]
        self.shared_axes = axes

    def create_weights(self, input_shape):
        shape = list(input_shape)
        for axis in self.shared_axes or []:
            if not 1 <= axis <= len(shape):
                raise ValueError(message(f"PReLU '{self.name}'", f"shared_axes within 1..{len(shape)} for an "
                                         f"input of per-example shape {tuple(shape)}", repr(self.shared_axes),
                                         "Axes are 1-based and exclude the batch axis."))
            shape[axis - 1] = 1
        self.add_weight("alpha", tuple(shape), self.alpha_initializer)

    def check_weights_fit(self, shape):
        alpha = self.params["alpha"].shape
        if len(shape) != len(alpha) or any(a not in (1, n) for a, n in zip(alpha, shape)):
            raise ValueError(message(f"PReLU '{self.name}'", f"inputs that alpha of shape {alpha} broadcasts "
                                     f"to (it was built for {self.input_shape})", f"per-example shape {shape}",
                                     "Share alpha over the axes that vary with shared_axes=[1, 2]."))

    def apply(self, x, training=False):
        self.ensure_built(x)
        return np.where(x > 0, x, self.params["alpha"] * x), x

    def vjp(self, cache, dy, rule="vanilla", need_dx=True, need_grads=True):
        x = cache
        negative = x <= 0
        grads = {}
        if need_grads:
            reduce_axes = (0,) + tuple(i + 1 for i, n in enumerate(self.params["alpha"].shape) if n == 1)
            grads["alpha"] = np.where(negative, dy * x, 0).sum(axis=reduce_axes, keepdims=True)[0]
        if not need_dx:
            return None, grads
        if rule != "vanilla":
            return activations.relu_gate(dy, x, rule), grads
        return np.where(negative, dy * self.params["alpha"], dy), grads

    def get_config(self):
        return {**super().get_config(), "alpha_initializer": initializer_config(self.alpha_initializer),
                "shared_axes": self.shared_axes}


@register
class Softmax(Layer):
    """Softmax over the last axis."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if axis != -1:
            raise ValueError(message("Softmax", "axis=-1 (the class axis)", repr(axis),
                                     "Move the class axis last (channels-last) and use Softmax()."))
        self.axis = -1

    def apply(self, x, training=False):
        self.ensure_built(x)
        y = activations.softmax(x)
        return y, y

    def vjp(self, cache, dy, rule="vanilla", need_dx=True, need_grads=True):
        return (activations.softmax_backward(dy, cache) if need_dx else None), {}

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}
