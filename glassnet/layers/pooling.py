"""Pooling layers: MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D."""
import numpy as np

from glassnet.errors import message
from glassnet.layers.base import Geometry, Layer, register
from glassnet.validation import check_pair, check_padding
from glassnet.ops import (avg_pool2d_backward, avg_pool2d_forward, conv_output_size, max_pool2d_backward,
                          max_pool2d_forward, resolve_padding)


class _Pooling2D(Layer):
    """Shared arguments and shape logic of the windowed pooling layers."""

    input_rank = 3

    def __init__(self, pool_size=2, strides=None, padding="valid", **kwargs):
        super().__init__(**kwargs)
        where = type(self).__name__
        self.pool_size = check_pair(pool_size, "pool_size", where)
        self.strides = self.pool_size if strides is None else check_pair(strides, "strides", where)
        self.padding = check_padding(padding, where, explicit=False, fix="Pooling takes no explicit padding "
                                     "amounts; add a ZeroPadding2D layer before it if you need them.")

    def _pads(self, input_hw):
        return resolve_padding(self.padding, self.pool_size, self.strides, input_hw)

    def geometry(self, input_hw):
        return Geometry(self.pool_size, self.strides, self._pads(input_hw))

    def check_input_shape(self, shape):
        super().check_input_shape(shape)
        if self.padding == "valid" and (shape[0] < self.pool_size[0] or shape[1] < self.pool_size[1]):
            raise ValueError(message(f"{type(self).__name__} '{self.name}'",
                                     f"an input at least as large as pool_size {self.pool_size}",
                                     f"per-example shape {shape}", "Use padding='same' or a smaller pool_size."))

    def compute_output_shape(self, input_shape):
        H, W, C = input_shape
        (top, bottom), (left, right) = self._pads((H, W))
        return (conv_output_size(H, self.pool_size[0], self.strides[0], top, bottom),
                conv_output_size(W, self.pool_size[1], self.strides[1], left, right), C)

    def get_config(self):
        return {**super().get_config(), "pool_size": list(self.pool_size), "strides": list(self.strides),
                "padding": self.padding}


@register
class MaxPooling2D(_Pooling2D):
    """Max over ``pool_size`` windows; the gradient goes to the (first) maximum of each window."""

    def apply(self, x, training=False):
        self.ensure_built(x)
        # while training, note each window's winner now (the backward pass follows); inference skips it
        return max_pool2d_forward(x, self.pool_size, self.strides, self._pads(x.shape[1:3]), record_winners=training)

    def vjp(self, cache, dy, rule="vanilla", need_dx=True, need_grads=True):
        return (max_pool2d_backward(dy, cache) if need_dx else None), {}


@register
class AveragePooling2D(_Pooling2D):
    """Mean over ``pool_size`` windows (with "same" padding, padded cells are not counted)."""

    def apply(self, x, training=False):
        self.ensure_built(x)
        return avg_pool2d_forward(x, self.pool_size, self.strides, self._pads(x.shape[1:3]))

    def vjp(self, cache, dy, rule="vanilla", need_dx=True, need_grads=True):
        return (avg_pool2d_backward(dy, cache) if need_dx else None), {}


@register
class GlobalAveragePooling2D(Layer):
    """Mean over H and W: (N, H, W, C) -> (N, C)."""

    input_rank = 3

    def compute_output_shape(self, input_shape):
        return (input_shape[-1],)

    def apply(self, x, training=False):
        self.ensure_built(x)
        return x.mean(axis=(1, 2), dtype=x.dtype), x.shape[1:3]

    def vjp(self, cache, dy, rule="vanilla", need_dx=True, need_grads=True):
        if not need_dx:
            return None, {}
        H, W = cache
        share = dy / (H * W)
        return np.ascontiguousarray(np.broadcast_to(share[:, None, None, :], (dy.shape[0], H, W, dy.shape[1]))), {}


@register
class GlobalMaxPooling2D(Layer):
    """Max over H and W: (N, H, W, C) -> (N, C); the gradient goes to the first maximum."""

    input_rank = 3

    def compute_output_shape(self, input_shape):
        return (input_shape[-1],)

    def apply(self, x, training=False):
        self.ensure_built(x)
        N, H, W, C = x.shape
        flat = x.reshape(N, H * W, C)
        argmax = flat.argmax(axis=1)
        return np.take_along_axis(flat, argmax[:, None, :], axis=1)[:, 0, :], (argmax, x.shape)

    def vjp(self, cache, dy, rule="vanilla", need_dx=True, need_grads=True):
        if not need_dx:
            return None, {}
        argmax, shape = cache
        N, H, W, C = shape
        dx = np.zeros((N, H * W, C), dtype=dy.dtype)
        np.put_along_axis(dx, argmax[:, None, :], dy[:, None, :], axis=1)
        return dx.reshape(shape), {}
