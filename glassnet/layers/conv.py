"""Convolution layers: Conv2D and ZeroPadding2D."""
from typing import NamedTuple

import numpy as np

from glassnet.errors import message
from glassnet.layers.activated import Activated
from glassnet.layers.base import Geometry, Layer, check_initializer, check_kernel_fits, initializer_config, register
from glassnet.validation import check_int, check_pair, check_padding
from glassnet.ops import conv2d_backward, conv2d_forward, conv_output_size, pad2d, resolve_padding, unpad2d


class ConvCache(NamedTuple):
    """What Conv2D's backward pass needs from a call: the convolution's cache and the activation's
    output (None when no activation ran)."""
    conv: tuple
    output: object


@register
class Conv2D(Activated, Layer):
    """2-D convolution over NHWC images with an HWIO kernel, as Keras's Conv2D.

    Parameters
    ----------
    filters : int
        Number of output channels F.
    kernel_size : int or (KH, KW)
    strides : int or (SH, SW)
    padding : "valid", "same", int, (ph, pw) or ((top, bottom), (left, right))
        "same" pads like Keras: the extra pixel of an odd total goes to the bottom/right.
    activation : {"relu", "sigmoid", "tanh", "linear", "softmax"} or None
    use_bias : bool
    kernel_initializer, bias_initializer : str or Initializer
    dilation_rate : int or (DH, DW)
        Distance between kernel taps in the input: the kernel covers ((KH - 1) * DH + 1,
        (KW - 1) * DW + 1) pixels. As in Keras, a dilation above 1 needs strides of 1.

    Shapes: input (N, H, W, C) -> output (N, OH, OW, F); kernel (KH, KW, C, F); bias (F,).
    """

    input_rank = 3

    def __init__(self, filters, kernel_size, strides=1, padding="valid", activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", dilation_rate=(1, 1), **kwargs):
        super().__init__(**kwargs)
        self.filters = check_int(filters, "filters", "Conv2D", minimum=1, fix="For example Conv2D(32, 3).")
        self.kernel_size = check_pair(kernel_size, "kernel_size", "Conv2D")
        self.strides = check_pair(strides, "strides", "Conv2D")
        self.padding = check_padding(padding, "Conv2D")
        self.dilation_rate = check_pair(dilation_rate, "dilation_rate", "Conv2D")
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(message("Conv2D", "strides of 1 with a dilation_rate above 1 (as in Keras)",
                                     f"strides={self.strides} and dilation_rate={self.dilation_rate}",
                                     "Use strides=1 with the dilation, or a pooling layer after it."))
        self._init_activation(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = check_initializer(kernel_initializer, "kernel_initializer", "Conv2D")
        self.bias_initializer = check_initializer(bias_initializer, "bias_initializer", "Conv2D")
        self._kept_matrices = {}           # im2col matrices from training forward passes to backward passes

    def _span(self):
        """The input pixels the kernel covers: (KH - 1) * DH + 1 by (KW - 1) * DW + 1."""
        return tuple((k - 1) * d + 1 for k, d in zip(self.kernel_size, self.dilation_rate))

    def _pads(self, input_hw):
        return resolve_padding(self.padding, self._span(), self.strides, input_hw)

    def geometry(self, input_hw):
        return Geometry(self._span(), self.strides, self._pads(input_hw))

    def check_input_shape(self, shape):
        super().check_input_shape(shape)
        check_kernel_fits(self, shape, self._span(), self._pads(shape[:2]))

    def compute_output_shape(self, input_shape):
        H, W, _ = input_shape
        (top, bottom), (left, right) = self._pads((H, W))
        span = self._span()
        return (conv_output_size(H, span[0], self.strides[0], top, bottom),
                conv_output_size(W, span[1], self.strides[1], left, right), self.filters)

    def create_weights(self, input_shape):
        self.add_weight("kernel", self.kernel_size + (input_shape[-1], self.filters), self.kernel_initializer)
        if self.use_bias:
            self.add_weight("bias", (self.filters,), self.bias_initializer)

    def apply(self, x, training=False, logits=False):
        """``(y, cache)``: (N, H, W, C) -> (N, OH, OW, F); ``logits=True`` leaves the activation out."""
        self.ensure_built(x)
        # A ReLU is applied inside the convolution, block by block while each block is in cache.
        relu = self.activation == "relu" and not logits
        z, conv_cache = conv2d_forward(x, self.params["kernel"], self.params.get("bias"), self.strides,
                                       self._pads(x.shape[1:3]), relu=relu,
                                       keep=self._kept_matrices if training else None, dilation=self.dilation_rate)
        y, activated = (z, z) if relu else self._activate(z, logits)
        return y, ConvCache(conv_cache, activated)

    def folded_apply(self, x, scale, shift, relu=False):
        """``(y, (conv_cache, kernel))`` of the convolution with a per-filter affine map folded in (a
        BatchNormalization at inference): ``conv(x, K) * scale + shift = conv(x, K * scale) + (b * scale +
        shift)``, then ``max(y, 0)`` with ``relu``; ``kernel`` is the folded one (for the input gradient).
        This layer's own activation is not applied (the engine folds only a linear one)."""
        self.ensure_built(x)
        kernel = self.params["kernel"] * scale
        bias = shift if self.params.get("bias") is None else self.params["bias"] * scale + shift
        y, conv_cache = conv2d_forward(x, kernel, bias, self.strides, self._pads(x.shape[1:3]), relu=relu,
                                       dilation=self.dilation_rate)
        return y, (conv_cache, kernel)

    def vjp(self, cache, dy, rule="vanilla", need_dx=True, need_grads=True):
        """dL/dx (N, H, W, C) and ``{"kernel", "bias"}`` from dL/dy (N, OH, OW, F)."""
        # Under the vanilla rule a ReLU's gate is applied inside the convolution's blocks;
        # explanations' guided/rectified rules go through the activation's own backward pass.
        fused = self.activation == "relu" and cache.output is not None and rule == "vanilla"
        dz = dy if fused else self._deactivate(cache.output, dy, rule)
        return self.conv_vjp(cache.conv, dz, cache.output if fused else None, False, need_dx, need_grads)

    def conv_vjp(self, conv_cache, dz, relu_output, gate_input, need_dx, need_grads):
        """The convolution's own backward pass (:func:`glassnet.ops.conv2d_backward`): ``relu_output``
        gates ``dz`` by ``relu_output > 0`` block by block, ``gate_input`` (False, or the call's ReLU
        rule) runs the backward pass of the ReLU of the layer below on dx (applied here while dx is in
        cache: an execution step of :mod:`glassnet.engine` chooses it). Returns ``(dx, grads)``."""
        dx, dkernel, dbias = conv2d_backward(dz, conv_cache, self.params["kernel"], need_dx=need_dx,
                                             need_bias=self.use_bias and need_grads, relu_output=relu_output,
                                             gate_input=gate_input, need_kernel=need_grads)
        return dx, (self.grads_dict(dkernel, dbias) if need_grads else {})

    def grads_dict(self, dkernel, dbias):
        """``grads`` keyed like ``params`` from the kernel and bias gradients."""
        return {"kernel": dkernel, "bias": dbias} if self.use_bias else {"kernel": dkernel}

    def pools_with(self, pool):
        """Whether this layer and ``pool``, the MaxPooling2D after it, may run as one fused step
        (:func:`glassnet.ops.conv2d_maxpool_forward`): no activation or a ReLU, no dilation, and
        pooling windows that tile the input without padding. (Whether the batch's images are small
        enough is decided per call: :func:`glassnet.ops.conv2d_maxpool_fusable`.)"""
        from glassnet.layers.pooling import MaxPooling2D
        return (self.activation in ("relu", "linear") and type(pool) is MaxPooling2D
                and pool.strides == pool.pool_size and pool.padding == "valid" and self.dilation_rate == (1, 1))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": list(self.kernel_size),
                "strides": list(self.strides), "padding": self.padding, "dilation_rate": list(self.dilation_rate),
                "activation": self.activation,
                "use_bias": self.use_bias, "kernel_initializer": initializer_config(self.kernel_initializer),
                "bias_initializer": initializer_config(self.bias_initializer)}


@register
class ZeroPadding2D(Layer):
    """Pad images with zeros: ``padding`` is an int, (ph, pw) or ((top, bottom), (left, right))."""

    input_rank = 3

    def __init__(self, padding=1, **kwargs):
        super().__init__(**kwargs)
        self.padding = check_padding(padding, "ZeroPadding2D", modes=(),
                                     fix="For example ZeroPadding2D(1), padding=(1, 2) or padding=((0, 1), (0, 1)).")
        self.pads = resolve_padding(self.padding, (1, 1), (1, 1), (1, 1))

    def geometry(self, input_hw):
        return Geometry((1, 1), (1, 1), self.pads)

    def compute_output_shape(self, input_shape):
        (top, bottom), (left, right) = self.pads
        H, W, C = input_shape
        return (H + top + bottom, W + left + right, C)

    def apply(self, x, training=False):
        self.ensure_built(x)
        return pad2d(x, self.pads), None

    def vjp(self, cache, dy, rule="vanilla", need_dx=True, need_grads=True):
        return (np.ascontiguousarray(unpad2d(dy, self.pads)) if need_dx else None), {}

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}
