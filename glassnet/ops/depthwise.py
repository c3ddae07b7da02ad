"""Depthwise 2-D convolution over NHWC images, vectorized with loops over kernel offsets only.

Each input channel ``c`` is convolved with its own ``depth_multiplier`` filters ``kernel[:, :, c, :]``
(shape ``(KH, KW, C, M)``, Keras's layout); output channel ``c * M + m`` is filter ``m`` of channel
``c`` (Keras's and PyTorch's ``groups=C`` order):

    y[n, i, j, c*M + m] = sum_{a, b} xp[n, i*sh + a*dh, j*sw + b*dw, c] * kernel[a, b, c, m] (+ bias[c*M + m])

with ``xp`` the padded input, ``(sh, sw)`` the strides and ``(dh, dw)`` the dilation. For one kernel
offset ``(a, b)`` the input pixels read by all outputs form a strided slab of ``xp`` of the output's
shape, so the forward pass is KH * KW broadcast multiply-adds, and the backward pass scatters into the
same slabs (the slabs of one offset never overlap, so ``+=`` on a strided view is exact).
"""
import numpy as np

from glassnet.ops.padding import conv_output_size, pad2d, unpad2d


def dilated_kernel_size(kernel_size, dilation_rate):
    """Extent ``(k - 1) * d + 1`` of a dilated kernel, per axis (what "same" padding and the output size use)."""
    return tuple((k - 1) * d + 1 for k, d in zip(kernel_size, dilation_rate))


def depthwise_output_hw(input_hw, kernel_size, strides, pads, dilation_rate):
    """Output ``(OH, OW)`` of a depthwise convolution of an ``input_hw`` image with explicit ``pads``."""
    extent = dilated_kernel_size(kernel_size, dilation_rate)
    return tuple(conv_output_size(size, k, s, *pad) for size, k, s, pad in zip(input_hw, extent, strides, pads))


def _slab(padded, offset, out_hw, strides, dilation_rate):
    """The strided view of ``padded`` that kernel offset ``(a, b)`` reads: shape (N, OH, OW, C)."""
    (a, b), (OH, OW), (sh, sw), (dh, dw) = offset, out_hw, strides, dilation_rate
    return padded[:, a * dh:a * dh + (OH - 1) * sh + 1:sh, b * dw:b * dw + (OW - 1) * sw + 1:sw, :]


def depthwise_conv2d_forward(x, kernel, bias, strides, pads, dilation_rate=(1, 1)):
    """Depthwise convolution.

    Parameters
    ----------
    x : ndarray, shape (N, H, W, C)
    kernel : ndarray, shape (KH, KW, C, M)
    bias : ndarray, shape (C * M,), or None
    strides, dilation_rate : (int, int)
    pads : ((top, bottom), (left, right))

    Returns
    -------
    y : ndarray, shape (N, OH, OW, C * M), x's dtype
    cache : tuple
        What :func:`depthwise_conv2d_backward` needs (the padded input and the geometry).
    """
    KH, KW, C, M = kernel.shape
    N, H, W, _ = x.shape
    padded = pad2d(x, pads)
    out_hw = depthwise_output_hw((H, W), (KH, KW), strides, pads, dilation_rate)
    y = np.zeros((N,) + out_hw + (C, M), dtype=x.dtype)
    product = np.empty_like(y)
    for a in range(KH):
        for b in range(KW):
            slab = _slab(padded, (a, b), out_hw, strides, dilation_rate)
            y += np.multiply(slab[..., None], kernel[a, b], out=product)
    y = y.reshape((N,) + out_hw + (C * M,))
    if bias is not None:
        y += bias
    return y, (padded, x.shape, pads, strides, dilation_rate)


def depthwise_conv2d_backward(dy, cache, kernel, need_dx=True, need_bias=True):
    """Gradients of :func:`depthwise_conv2d_forward` from ``dy`` (N, OH, OW, C * M).

    Returns
    -------
    dx : ndarray (N, H, W, C) or None when ``need_dx`` is False
    dkernel : ndarray (KH, KW, C, M)
    dbias : ndarray (C * M,) or None when ``need_bias`` is False
    """
    padded, x_shape, pads, strides, dilation_rate = cache
    KH, KW, C, M = kernel.shape
    out_hw = dy.shape[1:3]
    dy5 = dy.reshape(dy.shape[:3] + (C, M))
    dkernel = np.empty(kernel.shape, dtype=kernel.dtype)
    dpadded = np.zeros(padded.shape, dtype=dy.dtype) if need_dx else None
    for a in range(KH):
        for b in range(KW):
            slab = _slab(padded, (a, b), out_hw, strides, dilation_rate)
            # dL/dkernel[a, b, c, m] = sum over n, i, j of slab[n, i, j, c] * dy[n, i, j, c, m]
            dkernel[a, b] = np.einsum("nijc,nijcm->cm", slab, dy5)
            if need_dx:
                # each output pixel sends dy * kernel[a, b] back to the pixel it read at this offset
                _slab(dpadded, (a, b), out_hw, strides, dilation_rate)[...] += np.einsum("nijcm,cm->nijc", dy5,
                                                                                       kernel[a, b])
    dx = np.ascontiguousarray(unpad2d(dpadded, pads)) if need_dx else None
    dbias = dy.sum(axis=(0, 1, 2)) if need_bias else None
    return dx, dkernel, dbias
