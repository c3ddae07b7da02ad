"""Core layers: Dense, Flatten, Reshape, Dropout."""
import sys

import numpy as np

from glassnet.errors import message
from glassnet.layers.activated import Activated
from glassnet.layers.base import Layer, check_initializer, initializer_config, register
from glassnet.validation import check_fraction, check_int, check_list
from glassnet.ops import matmul
from glassnet.ops.parallel import over_rows


@register
class Dense(Activated, Layer):
    """Fully connected layer ``y = activation(x @ kernel + bias)`` on the last axis.

    Shapes: input (N, ..., D) -> output (N, ..., units); kernel (D, units); bias (units,).
    """

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.units = check_int(units, "units", "Dense", minimum=1, fix="For example Dense(10).")
        self._init_activation(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = check_initializer(kernel_initializer, "kernel_initializer", "Dense")
        self.bias_initializer = check_initializer(bias_initializer, "bias_initializer", "Dense")

    def check_input_shape(self, shape):
        if len(shape) < 1:
            raise ValueError(message(f"Dense '{self.name}'", "input of shape (N, features)", "a 1-D input",
                                     "Give a batch: x[None, :]."))
        if len(shape) > 1:
            raise ValueError(message(f"Dense '{self.name}'", "input of shape (N, features)",
                                     f"(None, {', '.join(map(str, shape))})",
                                     "Add layers.Flatten() before Dense to turn feature maps into vectors."))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def create_weights(self, input_shape):
        self.add_weight("kernel", (input_shape[-1], self.units), self.kernel_initializer)
        if self.use_bias:
            self.add_weight("bias", (self.units,), self.bias_initializer)

    def apply(self, x, training=False, logits=False):
        """``(y, cache)``: (N, D) -> (N, units); ``logits=True`` leaves the activation out."""
        self.ensure_built(x)
        z = matmul(x, self.params["kernel"])        # ops.matmul: a @ b on glassnet's worker threads
        if self.use_bias:
            z += self.params["bias"]
        y, activated = self._activate(z, logits)
        return y, (x, activated)

    def vjp(self, cache, dy, rule="vanilla", need_dx=True, need_grads=True):
        x, activated = cache
        dz = self._deactivate(activated, dy, rule)
        grads = {}
        if need_grads:
            grads["kernel"] = matmul(x.T, dz)
            if self.use_bias:
                grads["bias"] = dz.sum(axis=0)
        return (matmul(dz, self.params["kernel"].T) if need_dx else None), grads

    def get_config(self):
        return {**super().get_config(), "units": self.units, "activation": self.activation,
                "use_bias": self.use_bias, "kernel_initializer": initializer_config(self.kernel_initializer),
                "bias_initializer": initializer_config(self.bias_initializer)}


@register
class Flatten(Layer):
    """(N, d1, d2, ...) -> (N, d1 * d2 * ...), in C (row-major, channels-last) order like Keras."""

    def compute_output_shape(self, input_shape):
        return (int(np.prod(input_shape)),)

    def apply(self, x, training=False):
        self.ensure_built(x)
        return x.reshape(x.shape[0], -1), x.shape

    def vjp(self, cache, dy, rule="vanilla", need_dx=True, need_grads=True):
        return (dy.reshape(cache) if need_dx else None), {}


@register
class Reshape(Layer):
    """Reshape each example to ``target_shape`` (one entry may be -1)."""

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        expected, fix = "target_shape as a tuple of positive ints, at most one of them -1, without the batch axis", \
            "For example Reshape((7, 7, 2))."
        shape = [target_shape] if isinstance(target_shape, (int, np.integer)) and not isinstance(target_shape, bool) \
            else check_list(target_shape, "target_shape", "Reshape", fix)
        shape = [check_int(d, "target_shape entries", "Reshape", fix=fix) for d in shape]
        if not shape or any(d == 0 or d < -1 for d in shape) or shape.count(-1) > 1:
            raise ValueError(message("Reshape", expected, repr(target_shape), fix))
        self.target_shape = tuple(shape)

    def compute_output_shape(self, input_shape):
        size = int(np.prod(input_shape))
        known = int(np.prod([d for d in self.target_shape if d != -1]))
        shape = tuple(size // known if d == -1 else d for d in self.target_shape)
        if int(np.prod(shape)) != size:
            raise ValueError(message(f"Reshape '{self.name}'", f"a target shape with {size} elements",
                                     repr(self.target_shape), f"Its input has per-example shape "
                                     f"{tuple(input_shape)}; use -1 for the one size to infer."))
        return shape

    def apply(self, x, training=False):
        self.ensure_built(x)
        shape = self.output_shape[1:] if x.shape[1:] == self.input_shape[1:] else self.compute_output_shape(x.shape[1:])
        return x.reshape((x.shape[0],) + tuple(shape)), x.shape

    def vjp(self, cache, dy, rule="vanilla", need_dx=True, need_grads=True):
        return (dy.reshape(cache) if need_dx else None), {}

    def get_config(self):
        return {**super().get_config(), "target_shape": list(self.target_shape)}


@register
class Dropout(Layer):
    """Inverted dropout: while training, zero each unit with probability ``rate`` and scale the
    survivors by 1 / (1 - rate), so inference is the identity. Draws come from ``self.rng``
    (seeded by ``seed`` or by ``Sequential.fit(seed=...)``)."""

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.rate = check_fraction(rate, "rate", "Dropout",
                                   fix="rate is the fraction of units dropped, e.g. Dropout(0.5).")
        self._kept_mask = None

    def apply(self, x, training=False):
        """``(y, mask)``: the identity (mask None) unless ``training``."""
        self.ensure_built(x)
        if not training or self.rate == 0:
            return x, None
        # 16-bit uniform draws, four from each raw 64-bit output of the generator (1.18M of them:
        # 0.51 ms, against 0.92 with Generator.integers and 1.87 as float32 draws);
        # P(drop) = round(rate * 2**16) / 2**16, exact for rates such as 0.25 or 0.5 and within 8e-6
        # of ``rate`` otherwise
        raw = self.rng.bit_generator.random_raw(-(-x.size // 4))
        draws = raw.view(np.uint16)[:x.size].reshape(x.shape)
        threshold = np.uint16(min(round(self.rate * 2 ** 16), 2 ** 16 - 1))
        scale = x.dtype.type(1.0 / (1.0 - self.rate))
        # the last training step's mask array is reused once no call's cache holds it any more (a
        # fresh multi-MiB array would be page-faulted in again); the references of a free one: the
        # attribute, ``mask`` here and getrefcount's argument
        mask = self._kept_mask
        if mask is None or mask.shape != x.shape or mask.dtype != x.dtype or sys.getrefcount(mask) > 3:
            mask = np.empty(x.shape, dtype=x.dtype)
        y = np.empty_like(x)

        def drop(rows):
            np.multiply(draws[rows] >= threshold, scale, out=mask[rows])
            np.multiply(x[rows], mask[rows], out=y[rows])

        over_rows(drop, len(x), 3 * x.nbytes)
        self._kept_mask = mask
        return y, mask

    def vjp(self, cache, dy, rule="vanilla", need_dx=True, need_grads=True):
        mask = cache
        if not need_dx:
            return None, {}
        if mask is None:
            return dy, {}
        dx = np.empty(np.broadcast_shapes(dy.shape, mask.shape), dtype=np.result_type(dy, mask))
        over_rows(lambda rows: np.multiply(dy[rows], mask[rows], out=dx[rows]), len(dx), 3 * dx.nbytes)
        return dx, {}

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}
