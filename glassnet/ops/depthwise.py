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
from glassnet.ops.parallel import num_threads, run_blocks

#: Bytes of output per block of images: a block stays in cache while its KH * KW offsets are added up.
BLOCK_BYTES = 1 << 19


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


def _image_blocks(N, bytes_per_image):
    """Slices of about :data:`BLOCK_BYTES` of output each over the N images."""
    size = max(1, BLOCK_BYTES // max(bytes_per_image, 1))
    return [slice(start, min(start + size, N)) for start in range(0, N, size)]


def _offsets(kernel):
    return [(a, b) for a in range(kernel.shape[0]) for b in range(kernel.shape[1])]


def _kernel_rows(kernel, width):
    """``rows[m, a, b]``: ``kernel[a, b, :, m]`` repeated over an output row, shape (M, KH, KW, width, C).

    Multiplying a slab (n, OH, OW, C) by a contiguous (OW, C) row lets NumPy run its inner loop over
    whole rows of OW * C values; broadcasting the (C,) filter instead runs it over C values at a time
    (4x slower for C = 32, measured).
    """
    KH, KW, C, M = kernel.shape
    rows = np.broadcast_to(kernel.transpose(3, 0, 1, 2)[:, :, :, None, :], (M, KH, KW, width, C))
    return np.ascontiguousarray(rows)


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
    y = np.empty((N,) + out_hw + (C, M), dtype=x.dtype)

    rows = _kernel_rows(kernel, out_hw[1])

    def forward_block(images):
        # one block of images stays in cache while all KH * KW offsets are added into it
        out, source = y[images], padded[images]
        product = np.empty(out.shape[:-1], dtype=out.dtype)
        for m in range(M):
            for index, offset in enumerate(_offsets(kernel)):
                slab = _slab(source, offset, out_hw, strides, dilation_rate)
                if index == 0:
                    np.multiply(slab, rows[(m,) + offset], out=out[..., m])
                else:
                    out[..., m] += np.multiply(slab, rows[(m,) + offset], out=product)

    run_blocks(forward_block, _image_blocks(N, y[0].nbytes), num_threads(y.nbytes + padded.nbytes), blas=False)
    y = y.reshape((N,) + out_hw + (C * M,))
    if bias is not None:
        y += bias
    return y, (padded, x.shape, pads, strides, dilation_rate)


def depthwise_conv2d_backward(dy, cache, kernel, need_dx=True, need_bias=True, need_kernel=True):
    """Gradients of :func:`depthwise_conv2d_forward` from ``dy`` (N, OH, OW, C * M); ``need_kernel=False``
    (an explanation) skips the kernel gradient's products and sums.

    Returns
    -------
    dx : ndarray (N, H, W, C) or None when ``need_dx`` is False
    dkernel : ndarray (KH, KW, C, M) or None when ``need_kernel`` is False
    dbias : ndarray (C * M,) or None when ``need_bias`` is False
    """
    padded, x_shape, pads, strides, dilation_rate = cache
    KH, KW, C, M = kernel.shape
    out_hw = dy.shape[1:3]
    dy5 = dy.reshape(dy.shape[:3] + (C, M))
    dpadded = np.zeros(padded.shape, dtype=dy.dtype) if need_dx else None

    rows = _kernel_rows(kernel, out_hw[1])

    def backward_block(images):
        """This block's share of dL/dkernel (summed over the blocks); writes its rows of dL/dx."""
        grad, source = dy5[images], padded[images]
        product = np.empty(grad.shape[:-1], dtype=dy.dtype)
        dkernel = np.empty(kernel.shape, dtype=kernel.dtype) if need_kernel else None
        for offset in _offsets(kernel):
            slab = _slab(source, offset, out_hw, strides, dilation_rate)
            target = _slab(dpadded[images], offset, out_hw, strides, dilation_rate) if need_dx else None
            for m in range(M):
                if need_kernel:
                    # dL/dkernel[a, b, c, m] = sum over n, i, j of slab[n, i, j, c] * dy[n, i, j, c, m]
                    np.multiply(slab, grad[..., m], out=product)
                    dkernel[offset][:, m] = product.sum(axis=(0, 1)).sum(axis=0)
                if need_dx:
                    # each output pixel sends dy * kernel[a, b] back to the pixel it read at this offset
                    target += np.multiply(grad[..., m], rows[(m,) + offset], out=product)
        return dkernel

    blocks = _image_blocks(len(dy), dy[0].nbytes)
    dkernel = run_blocks(backward_block, blocks, num_threads(dy.nbytes + padded.nbytes), fold=_add_into, blas=False)
    dx = np.ascontiguousarray(unpad2d(dpadded, pads)) if need_dx else None
    dbias = dy.sum(axis=(0, 1, 2)) if need_bias else None
    return dx, dkernel, dbias


def _add_into(total, part):
    if part is not None:            # None: no kernel gradient asked for
        total += part
    return total
