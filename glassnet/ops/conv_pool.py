"""Convolution (+ ReLU) + max pooling in one pass over each block of images.

``Conv2D(activation="relu")`` followed by ``MaxPooling2D`` whose windows tile its input is the
commonest pair in a CNN (seed 003's network has it without the ReLU), and its largest array is
the convolution's output. Run as two layers, that output is written to memory, read back by the
pooling, and in the backward pass the pooling writes a gradient of the same size which the
convolution reads back with its ReLU mask. Here each
block of images is pooled as soon as it is computed, while it is still in cache, and only the
pooled output and the winners are kept; the backward pass routes the pooled gradient straight
into the block the convolution's GEMMs read (the frame of :mod:`glassnet.ops.conv_rows`, or a
block buffer of the im2col method).

A ReLU's gate needs no array of its own: only a window's winner receives a gradient, and the
winner's ReLU output is the pooled value, so the gate is ``pooled > 0``. The bias and the ReLU
run after the pooling (``max(relu(z + b)) == relu(max(z) + b)``: rounding ``z + b`` is monotonic
in ``z``), on a quarter of the values for 2x2 windows, instead of a pass over the whole block
(keras_mnist's training step: within the noise, 0.3% and 1.5% faster at 2 and 1 threads, in one
process with the two versions in either order). The winners are then those of the GEMMs' ``z``: they differ from those
of ``relu(z + b)`` only where two values of a window round to the same sum (either one is a
correct subgradient) or where the maximum is <= 0, and there the gate is 0 anyway. The results
equal the two layers' to rounding.

A stride-1 convolution with few filters (LeNet-5's, seed 003's) runs by pooling windows instead
(:mod:`glassnet.ops.conv_pool_windows`): one matrix row per window, so its GEMMs are PH * PW
times wider and the pooling works on contiguous slabs.
"""
from typing import NamedTuple

import numpy as np

from glassnet.ops import conv_pool_windows
from glassnet.ops.conv import (backward_blocks, conv_plan, forward_blocks, kept_for_backward, kept_matrices,
                               kept_reference, unpadded)
from glassnet.ops.padding import pad2d, padded_shape
from glassnet.ops.pooling import clear_uncovered, route_to_winners, tiled_max_pool, winner_dtype
from glassnet.ops.workspace import column_sums, scratch_array, view


def _plan(padded, input_dtype, kernel, stride):
    """The convolution's plan in blocks of whole images, or None (see :func:`glassnet.ops.conv.conv_plan`)."""
    return conv_plan(padded, input_dtype, kernel.shape, stride, np.result_type(input_dtype, kernel),
                     whole_images=True)


def fusable(x, kernel, stride, pads, pool_size):
    """Whether :func:`conv2d_maxpool_forward` applies to ``x``: blocks of whole images (an image
    small enough for a block, see :func:`glassnet.ops.conv.conv_blocks`) and at least one pooling
    window along each side."""
    padded = padded_shape(x.shape, pads)
    if conv_pool_windows.plan(padded, kernel.shape, stride, pool_size, np.result_type(x, kernel)) is not None:
        return True
    plan = _plan(padded, x.dtype, kernel, stride)
    return plan is not None and plan.out_hw[0] >= pool_size[0] and plan.out_hw[1] >= pool_size[1]


class _WindowsCache(NamedTuple):
    """What the backward pass of the pooling-window method needs."""
    xp: np.ndarray
    pads: tuple
    y: np.ndarray
    winner: np.ndarray
    relu: bool
    plan: conv_pool_windows.WindowPlan
    kept: tuple


def _block_array(name, blocks, shape, dtype):
    """A scratch array for one block of images, (n, *shape)."""
    most = max(images.stop - images.start for images, _ in blocks)

    def block_array(images):
        n = images.stop - images.start
        return view(scratch_array(name, most * int(np.prod(shape)), dtype), (n,) + tuple(shape))
    return block_array


def conv2d_maxpool_forward(x, kernel, bias, stride, pads, pool_size, relu=True, record_winners=True, keep=None):
    """``max_pool(relu(conv(x)))`` (or ``max_pool(conv(x))``) with stride == pool size, without the
    convolution's full output.

    Parameters
    ----------
    x : ndarray, shape (N, H, W, C)
    kernel : ndarray, shape (KH, KW, C, F)
    bias : ndarray, shape (F,) or None
    stride, pads : the convolution's (see :func:`glassnet.ops.conv2d_forward`)
    pool_size : (PH, PW)
    relu : bool
        Apply a ReLU between the convolution and the pooling.
    record_winners : bool
        Note each window's winner for the backward pass (inference leaves it out).
    keep : dict, optional
        Storage for the im2col matrices (see :func:`glassnet.ops.conv2d_forward`); only with
        ``record_winners``.

    Returns
    -------
    y : ndarray, shape (N, OH // PH, OW // PW, F)
    cache : tuple for :func:`conv2d_maxpool_backward` (refers to ``x`` and ``y``), or None
        without ``record_winners``
    """
    dtype = np.result_type(x, kernel)
    xp = pad2d(x, pads)
    windows = conv_pool_windows.plan(xp.shape, kernel.shape, stride, pool_size, dtype)
    if windows is not None:
        kept = kept_matrices(keep, windows, xp.shape, kernel.shape, xp.dtype) if record_winners else None
        y, winner = conv_pool_windows.forward(xp, kernel, bias, relu, windows, record_winners, kept)
        return y, (_WindowsCache(xp, pads, y, winner, relu, windows, kept_reference(kept)) if record_winners else None)
    plan = _plan(xp.shape, xp.dtype, kernel, stride)
    (OH, OW), F, (PH, PW) = plan.out_hw, kernel.shape[3], pool_size
    y = np.empty((x.shape[0], OH // PH, OW // PW, F), dtype=dtype)
    winner = np.empty(y.shape, dtype=winner_dtype(PH * PW)) if record_winners else None
    block_output = _block_array("pooled_conv", plan[1], (OH, OW, F), dtype)

    bias_row = None if bias is None else np.tile(bias.astype(dtype, copy=False), OW // PW)

    def finish(images, out):
        pooled = y[images]
        tiled_max_pool(out.reshape(-1, OH, OW, F), pool_size, pooled, None if winner is None else winner[images])
        # the bias and the ReLU commute with the maximum: both run on the pooled block, 1/(PH*PW) the size
        if bias_row is not None:
            pooled_rows = pooled.reshape(-1, bias_row.size)
            pooled_rows += bias_row
        if relu:
            np.maximum(pooled, 0, out=pooled)

    kept = kept_matrices(keep, plan, xp.shape, kernel.shape, dtype) if record_winners else None
    forward_blocks(xp, kernel, None, stride, False, dtype, plan,
                   target=lambda images, rows: block_output(images), finish=finish, kept=kept)
    return y, ((xp, stride, pads, y, winner, pool_size, relu, kept_reference(kept)) if record_winners else None)


def conv2d_maxpool_backward(dy, cache, kernel, need_dx=True, need_bias=True, gate_input=False):
    """Gradients of :func:`conv2d_maxpool_forward`.

    Parameters
    ----------
    dy : ndarray, shape (N, OH // PH, OW // PW, F)
    gate_input : bool
        Multiply the input gradient by ``x > 0`` block by block (see
        :func:`glassnet.ops.conv2d_backward`).

    Returns
    -------
    dx : ndarray, shape (N, H, W, C), or None when ``need_dx`` is False
    dkernel : ndarray, shape (KH, KW, C, F)
    dbias : ndarray, shape (F,), or None when ``need_bias`` is False
    """
    if isinstance(cache, _WindowsCache):
        xp, pads, plan = cache.xp, cache.pads, cache.plan
        kept = kept_for_backward(cache.kept, plan, xp.shape, kernel.shape, xp.dtype)
        dxp, dkernel, dbias = conv_pool_windows.backward(dy, xp, cache.y, cache.winner, kernel, cache.relu, plan,
                                                         need_dx, need_bias, gate_input, kept)
        return (unpadded(dxp, pads) if need_dx else None), dkernel, dbias
    xp, stride, pads, y, winner, pool_size, relu, kept = cache
    dtype = np.result_type(dy, kernel)
    plan = _plan(xp.shape, xp.dtype, kernel, stride)
    covered = (y.shape[1] * pool_size[0], y.shape[2] * pool_size[1])

    bias_shares = {}

    def gradient(images, rows, scratch):
        clear_uncovered(scratch, covered)
        gated = dy[images] * (y[images] > 0) if relu else dy[images]    # a ReLU's gate at each winner
        if need_bias:          # the routed gradient sums to the pooled one: a pass over 1/(PH*PW) the values
            block = gated.reshape(-1, gated.shape[-1])
            bias_shares[images.start] = column_sums(block, dtype)
        route_to_winners(gated, winner[images], scratch, pool_size, pool_size)
        return scratch

    dxp, dkernel, _ = backward_blocks(gradient, xp, kernel, stride, need_dx, False, dtype, plan, gate_input,
                                      kept_for_backward(kept, plan, xp.shape, kernel.shape, dtype))
    dbias = sum(bias_shares[start] for start in sorted(bias_shares)) if need_bias else None
    return (unpadded(dxp, pads) if need_dx else None), dkernel, dbias
