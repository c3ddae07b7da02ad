"""Depthwise-separable convolution layers: DepthwiseConv2D and SeparableConv2D (Keras's names and weights).

Both follow the per-call protocol: :meth:`apply` returns ``(y, cache)`` and :meth:`vjp` returns
``(dx, grads)``, keeping nothing in the layer.
"""
from glassnet import activations
from glassnet.layers.base import Geometry, Layer, check_initializer, check_kernel_fits, initializer_config, register
from glassnet.validation import check_int, check_pair, check_padding
from glassnet.ops import matmul, resolve_padding
from glassnet.ops.depthwise import (depthwise_conv2d_backward, depthwise_conv2d_forward, depthwise_output_hw,
                                    dilated_kernel_size)


def activate(name, z, logits):
    """``(y, y_for_backward)``: the activation of ``z`` (in place for relu), or ``z`` itself with ``logits=True``.
    ``y_for_backward`` is None when the backward pass is the identity."""
    if logits or name == "linear":
        return z, None
    y = z.clip(0, None, out=z) if name == "relu" else activations.forward(name, z)
    return y, y


def deactivate(name, dy, y, rule):
    """dL/dz from dL/dy given the activation's output ``y`` (relu's gate ``y > 0`` equals ``z > 0``)."""
    return dy if y is None else activations.backward(name, dy, y, y, rule)


class _DepthwiseFamily(Layer):
    """Arguments, geometry and the depthwise stage shared by DepthwiseConv2D and SeparableConv2D.

    Subclasses call :meth:`_depthwise` / :meth:`_depthwise_vjp` and add what follows it.
    """

    input_rank = 3

    def __init__(self, kernel_size, strides=1, padding="valid", depth_multiplier=1, dilation_rate=1,
                 activation=None, use_bias=True, depthwise_initializer="glorot_uniform", bias_initializer="zeros",
                 **kwargs):
        super().__init__(**kwargs)
        where = type(self).__name__
        self.kernel_size = check_pair(kernel_size, "kernel_size", where)
        self.strides = check_pair(strides, "strides", where)
        self.padding = check_padding(padding, where)
        self.depth_multiplier = check_int(depth_multiplier, "depth_multiplier", where, minimum=1,
                                          fix="For example depth_multiplier=2.")
        self.dilation_rate = check_pair(dilation_rate, "dilation_rate", where)
        self.activation = activations.check_name(activation, where)
        self.use_bias = bool(use_bias)
        self.depthwise_initializer = check_initializer(depthwise_initializer, "depthwise_initializer", where)
        self.bias_initializer = check_initializer(bias_initializer, "bias_initializer", where)

    # -- geometry --------------------------------------------------------------------------
    def geometry(self, input_hw):
        return Geometry(dilated_kernel_size(self.kernel_size, self.dilation_rate), self.strides,
                        self._pads(input_hw))

    def _pads(self, input_hw):
        extent = dilated_kernel_size(self.kernel_size, self.dilation_rate)
        return resolve_padding(self.padding, extent, self.strides, input_hw)

    def check_input_shape(self, shape):
        super().check_input_shape(shape)
        check_kernel_fits(self, shape, dilated_kernel_size(self.kernel_size, self.dilation_rate),
                          self._pads(shape[:2]))

    def _depthwise_hw(self, input_hw):
        return depthwise_output_hw(input_hw, self.kernel_size, self.strides, self._pads(input_hw),
                                   self.dilation_rate)

    # -- the depthwise stage -----------------------------------------------------------------
    def _create_depthwise(self, channels):
        self.add_weight(self.depthwise_key, self.kernel_size + (channels, self.depth_multiplier),
                        self.depthwise_initializer)

    def _depthwise(self, x, bias):
        return depthwise_conv2d_forward(x, self.params[self.depthwise_key], bias, self.strides,
                                        self._pads(x.shape[1:3]), self.dilation_rate)

    def _depthwise_vjp(self, conv_cache, dz, need_dx, need_grads, with_bias):
        dx, dkernel, dbias = depthwise_conv2d_backward(dz, conv_cache, self.params[self.depthwise_key],
                                                       need_dx=need_dx, need_bias=with_bias and need_grads,
                                                       need_kernel=need_grads)
        grads = {self.depthwise_key: dkernel} if need_grads else {}
        if with_bias and need_grads:
            grads["bias"] = dbias
        return dx, grads

    def get_config(self):
        return {**super().get_config(), "kernel_size": list(self.kernel_size), "strides": list(self.strides),
                "padding": self.padding,
                "depth_multiplier": self.depth_multiplier, "dilation_rate": list(self.dilation_rate),
                "activation": self.activation, "use_bias": self.use_bias,
                "depthwise_initializer": initializer_config(self.depthwise_initializer),
                "bias_initializer": initializer_config(self.bias_initializer)}


@register
class DepthwiseConv2D(_DepthwiseFamily):
    """Depthwise 2-D convolution: each input channel convolved with its own ``depth_multiplier`` filters.

    Parameters
    ----------
    kernel_size : int or (KH, KW)
    strides : int or (SH, SW)
    padding : "valid", "same", int, (ph, pw) or ((top, bottom), (left, right))
        "same" pads like Keras (the extra pixel of an odd total at the bottom/right), for the dilated kernel.
    depth_multiplier : int
        Filters per input channel M.
    dilation_rate : int or (DH, DW)
        Spacing of the kernel taps (1: adjacent). May be combined with strides (Keras refuses that; PyTorch
        allows it, and the result is the same convolution).
    activation : {"relu", "sigmoid", "tanh", "linear", "softmax"} or None
    use_bias : bool
    depthwise_initializer, bias_initializer : str or Initializer

    Shapes: input (N, H, W, C) -> output (N, OH, OW, C * M), channel ``c * M + m`` from filter ``m`` of
    channel ``c``; ``kernel`` (KH, KW, C, M) (Keras 3's weight name), ``bias`` (C * M,).
    """

    depthwise_key = "kernel"

    def compute_output_shape(self, input_shape):
        return self._depthwise_hw(input_shape[:2]) + (input_shape[2] * self.depth_multiplier,)

    def create_weights(self, input_shape):
        self._create_depthwise(input_shape[-1])
        if self.use_bias:
            self.add_weight("bias", (input_shape[-1] * self.depth_multiplier,), self.bias_initializer)

    def apply(self, x, training=False, logits=False):
        self.ensure_built(x)
        z, conv_cache = self._depthwise(x, self.params.get("bias"))
        y, y_kept = activate(self.activation, z, logits)
        return y, (conv_cache, y_kept)

    def vjp(self, cache, dy, rule="vanilla", need_dx=True, need_grads=True):
        conv_cache, y_kept = cache
        dz = deactivate(self.activation, dy, y_kept, rule)
        return self._depthwise_vjp(conv_cache, dz, need_dx, need_grads, self.use_bias)


@register
class SeparableConv2D(_DepthwiseFamily):
    """Depthwise-separable convolution: a depthwise convolution (no bias) followed by a 1x1 convolution
    mixing the ``C * M`` channels into ``filters``, then the bias and the activation (Keras's order).

    Parameters
    ----------
    filters : int
        Output channels F.
    kernel_size, strides, padding, depth_multiplier, dilation_rate, activation, use_bias
        As :class:`DepthwiseConv2D`.
    depthwise_initializer, pointwise_initializer, bias_initializer : str or Initializer

    Shapes: input (N, H, W, C) -> output (N, OH, OW, F); ``depthwise_kernel`` (KH, KW, C, M),
    ``pointwise_kernel`` (1, 1, C * M, F), ``bias`` (F,) -- Keras's weights, in its order.
    """

    depthwise_key = "depthwise_kernel"

    def __init__(self, filters, kernel_size, strides=1, padding="valid", depth_multiplier=1, dilation_rate=1,
                 activation=None, use_bias=True, depthwise_initializer="glorot_uniform",
                 pointwise_initializer="glorot_uniform", bias_initializer="zeros", **kwargs):
        super().__init__(kernel_size, strides=strides, padding=padding, depth_multiplier=depth_multiplier,
                         dilation_rate=dilation_rate, activation=activation, use_bias=use_bias,
                         depthwise_initializer=depthwise_initializer, bias_initializer=bias_initializer, **kwargs)
        self.filters = check_int(filters, "filters", "SeparableConv2D", minimum=1,
                                 fix="For example SeparableConv2D(32, 3).")
        self.pointwise_initializer = check_initializer(pointwise_initializer, "pointwise_initializer",
                                                       "SeparableConv2D")

    def compute_output_shape(self, input_shape):
        return self._depthwise_hw(input_shape[:2]) + (self.filters,)

    def create_weights(self, input_shape):
        self._create_depthwise(input_shape[-1])
        self.add_weight("pointwise_kernel", (1, 1, input_shape[-1] * self.depth_multiplier, self.filters),
                        self.pointwise_initializer)
        if self.use_bias:
            self.add_weight("bias", (self.filters,), self.bias_initializer)

    def apply(self, x, training=False, logits=False):
        self.ensure_built(x)
        depthwise, conv_cache = self._depthwise(x, None)
        pointwise = self.params["pointwise_kernel"][0, 0]                      # (C * M, F)
        z = matmul(depthwise.reshape(-1, pointwise.shape[0]), pointwise)       # ops.matmul: on glassnet's threads
        if self.use_bias:
            z += self.params["bias"]
        y, y_kept = activate(self.activation, z.reshape(depthwise.shape[:3] + (self.filters,)), logits)
        return y, (conv_cache, depthwise, y_kept)

    def vjp(self, cache, dy, rule="vanilla", need_dx=True, need_grads=True):
        conv_cache, depthwise, y_kept = cache
        dz = deactivate(self.activation, dy, y_kept, rule).reshape(-1, self.filters)
        pointwise = self.params["pointwise_kernel"]
        # z = d @ P + b: dL/dd = dz @ P^T, dL/dP = d^T @ dz, dL/db = column sums of dz
        ddepthwise = matmul(dz, pointwise[0, 0].T).reshape(depthwise.shape)
        dx, grads = self._depthwise_vjp(conv_cache, ddepthwise, need_dx, need_grads, False)
        if need_grads:
            flat = depthwise.reshape(-1, depthwise.shape[-1])
            grads["pointwise_kernel"] = matmul(flat.T, dz).reshape(pointwise.shape)
            if self.use_bias:
                grads["bias"] = dz.sum(axis=0)
        return dx, grads

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "pointwise_initializer": initializer_config(self.pointwise_initializer)}
