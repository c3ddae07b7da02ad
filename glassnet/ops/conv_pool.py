"""Convolution + ReLU + max pooling in one pass over each block of images (used while training).

``Conv2D(activation="relu")`` followed by ``MaxPooling2D`` whose windows tile its input is the
commonest pair in a CNN, and its largest array is the convolution's output. Run as two layers,
that output is written to memory, read back by the pooling, and in the backward pass the pooling
writes a gradient of the same size which the convolution reads back with its ReLU mask. Here each
block of images is pooled as soon as it is computed, while it is still in cache, and only the
pooled output and the winners are kept; the backward pass routes the pooled gradient straight
into the frame the convolution's GEMMs read (:mod:`glassnet.ops.conv_rows`).

The ReLU's gate needs no array of its own: only a window's winner receives a gradient, and the
winner's ReLU output is the pooled value, so the gate is ``pooled > 0``. The results equal the
two layers' to rounding (bit for bit in practice: the same GEMMs run in the same order).
"""
import numpy as np

from glassnet.ops import conv_rows
from glassnet.ops.conv import row_window_blocks, unpadded
from glassnet.ops.padding import pad2d
from glassnet.ops.parallel import num_threads
from glassnet.ops.pooling import route_to_winners, tiled_max_pool
from glassnet.ops.workspace import scratch_array, view


def _plan(xp, kernel, stride, dtype):
    """(threads, blocks of whole images, (OH, OW)) for the row-window convolution, or None."""
    KH, KW, C, F = kernel.shape
    N, Hp, Wp, _ = xp.shape
    OH, OW = Hp - KH + 1, (Wp - KW) // stride[1] + 1
    threads = num_threads(N * OH * OW * KH * KW * C * dtype.itemsize)
    blocks = row_window_blocks(xp, kernel.shape, stride, OW, dtype, threads)
    return None if blocks is None else (threads, blocks, (OH, OW))


def fusable(x, kernel, stride, pads, pool_size):
    """Whether :func:`conv2d_relu_maxpool_forward` applies: the row-window convolution, and at
    least one pooling window along each side of its output."""
    if stride[0] != 1:
        return False
    plan = _plan(pad2d(x[:1], pads), kernel, stride, np.result_type(x, kernel))
    return plan is not None and plan[2][0] >= pool_size[0] and plan[2][1] >= pool_size[1]


def conv2d_relu_maxpool_forward(x, kernel, bias, stride, pads, pool_size, record_winners=True):
    """``max_pool(relu(conv(x)))`` with stride == pool size, without the convolution's full output.

    Parameters
    ----------
    x : ndarray, shape (N, H, W, C)
    kernel : ndarray, shape (KH, KW, C, F)
    bias : ndarray, shape (F,) or None
    stride, pads : the convolution's (see :func:`glassnet.ops.conv2d_forward`); stride[0] must be 1
    pool_size : (PH, PW)
    record_winners : bool
        Note each window's winner for the backward pass (inference leaves it out).

    Returns
    -------
    y : ndarray, shape (N, OH // PH, OW // PW, F)
    cache : tuple for :func:`conv2d_relu_maxpool_backward` (refers to ``x`` and ``y``), or None
        without ``record_winners``
    """
    dtype = np.result_type(x, kernel)
    xp = pad2d(x, pads)
    threads, blocks, (OH, OW) = _plan(xp, kernel, stride, dtype)
    F, (PH, PW) = kernel.shape[3], pool_size
    y = np.empty((x.shape[0], OH // PH, OW // PW, F), dtype=dtype)
    winner = np.empty(y.shape, dtype=np.uint8 if PH * PW < 256 else np.int32) if record_winners else None
    block_images = max(images.stop - images.start for images, _ in blocks)

    def target(images):
        n = images.stop - images.start
        return view(scratch_array("pooled_conv", block_images * OH * OW * F, dtype), (n, OH, OW * F))

    def finish(images, out):
        tiled_max_pool(out.reshape(-1, OH, OW, F), pool_size, y[images], None if winner is None else winner[images])

    conv_rows.forward(xp, kernel, bias, stride, True, (OH, OW), blocks, threads, target, finish)
    return y, ((xp, stride, pads, y, winner, pool_size) if record_winners else None)


def conv2d_relu_maxpool_backward(dy, cache, kernel, need_dx=True, need_bias=True):
    """Gradients of :func:`conv2d_relu_maxpool_forward`.

    Parameters
    ----------
    dy : ndarray, shape (N, OH // PH, OW // PW, F)

    Returns
    -------
    dx : ndarray, shape (N, H, W, C), or None when ``need_dx`` is False
    dkernel : ndarray, shape (KH, KW, C, F)
    dbias : ndarray, shape (F,), or None when ``need_bias`` is False
    """
    xp, stride, pads, y, winner, pool_size = cache
    dtype = np.result_type(dy, kernel)
    threads, blocks, out_hw = _plan(xp, kernel, stride, dtype)
    covered = (y.shape[1] * pool_size[0], y.shape[2] * pool_size[1])

    def fill(images, target):
        target[:, covered[0]:] = 0                   # rows and columns no window covers
        target[:, :, covered[1]:] = 0
        gated = dy[images] * (y[images] > 0)         # the ReLU's gate at each window's winner
        route_to_winners(gated, winner[images], target, pool_size, pool_size)

    dxp = np.empty(xp.shape, dtype=dtype) if need_dx else None
    dkernel, dbias = conv_rows.backward(fill, xp, kernel, stride, out_hw, dxp, need_bias, blocks, threads)
    return (unpadded(dxp, pads) if need_dx else None), dkernel, dbias
