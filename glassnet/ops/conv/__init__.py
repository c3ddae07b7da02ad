"""2-D convolution (cross-correlation, as in every deep-learning library) on NHWC tensors, alone or
fused with the max pooling after it.

    y[n, oh, ow, f] = sum_{i, j, c} xp[n, oh*sh + i*dh, ow*sw + j*dw, c] * kernel[i, j, c, f] + bias[f]

with ``xp`` the padded input, strides (sh, sw) and dilation (dh, dw). The im2col matrix of a whole
batch is KH*KW times the input, so it is never built: every strategy walks the output in blocks
whose matrices stay in cache and within ``glassnet.ops.MEMORY_BUDGET_BYTES``.

Layout of this package:

- :mod:`~glassnet.ops.conv.plan` decides everything: the strategy (by plan type), the blocks, the
  threads, and every threshold with its measured reason;
- :mod:`~glassnet.ops.conv.blocks` is the block code the strategies share;
- one module per strategy: :mod:`~glassnet.ops.conv.im2col`, :mod:`~glassnet.ops.conv.wide_rows`,
  :mod:`~glassnet.ops.conv.dilated`, :mod:`~glassnet.ops.conv.row_windows` (convolutions) and
  :mod:`~glassnet.ops.conv.pool_windows`, :mod:`~glassnet.ops.conv.pooled_blocks` (fused with a max
  pooling), with the signatures of :mod:`~glassnet.ops.conv.strategies`;
- this module: the public functions and what their forward passes save (NamedTuples).
"""
from typing import NamedTuple

import numpy as np

from glassnet.errors import message
from glassnet.ops.conv import plan as planning
from glassnet.ops.conv import pool_windows, pooled_blocks
from glassnet.ops.conv.blocks import kept_for_backward, kept_matrices, kept_reference, unpadded
from glassnet.ops.conv.strategies import conv_strategy
from glassnet.ops.padding import pad2d, padded_shape
from glassnet.ops.workspace import clear_workspace, recycled_array  # noqa: F401  (clear_workspace re-exported)

#: The fused convolution + max pooling strategy of each plan type.
CONV_POOL = {planning.PoolWindowsPlan: pool_windows, planning.PooledBlocksPlan: pooled_blocks}


class ConvCache(NamedTuple):
    """What :func:`conv2d_backward` needs from :func:`conv2d_forward`: the padded input (``x``
    itself when there is no padding), the padding, the plan, and the kept matrices (or None)."""
    xp: np.ndarray
    pads: tuple
    plan: tuple
    kept: tuple


class ConvPoolCache(NamedTuple):
    """What :func:`conv2d_maxpool_backward` needs from :func:`conv2d_maxpool_forward`: the padded
    input, the padding, the plan, the pooled output ``y``, each window's first winning offset,
    whether a ReLU ran, and the kept matrices (or None)."""
    xp: np.ndarray
    pads: tuple
    plan: tuple
    y: np.ndarray
    winner: np.ndarray
    relu: bool
    kept: tuple


def conv2d_forward(x, kernel, bias, stride, pads, relu=False, keep=None, dilation=(1, 1)):
    """Convolve an NHWC batch with an HWIO kernel (and optionally apply a ReLU).

    Parameters
    ----------
    x : ndarray, shape (N, H, W, C)
    kernel : ndarray, shape (KH, KW, C, F)
    bias : ndarray, shape (F,) or None
    stride : (int, int)
    pads : ((top, bottom), (left, right))
    relu : bool
        Return ``max(y, 0)``, applied block by block while each block is in cache (one pass
        over the output saved); the backward pass then takes ``relu_output``.
    keep : dict, optional
        Storage (kept by the caller between training steps) in which to keep the block matrices
        for the backward pass, when they fit (:data:`glassnet.ops.conv.plan.KEEP_MATRIX_BYTES`).
    dilation : (int, int)
        Distance between kernel taps in the input (Keras's ``dilation_rate``).

    Returns
    -------
    y : ndarray, shape (N, OH, OW, F), OH = (H + top + bottom - (KH - 1) * dh - 1) // sh + 1
    cache : ConvCache
        What :func:`conv2d_backward` needs; it refers to ``x`` itself when there is no padding,
        so ``x`` must not be modified before the backward pass.
    """
    xp = pad2d(x, pads)
    dtype = np.result_type(x, kernel)
    plan = planning.conv_plan(xp.shape, xp.dtype, kernel.shape, stride, dtype, dilation)
    kept = kept_matrices(keep, plan, xp.shape, kernel.shape, dtype)
    y = recycled_array("conv_output", (x.shape[0],) + plan.out_hw + (kernel.shape[3],), dtype)
    conv_strategy(plan).forward(plan, xp, kernel, bias, relu, target=lambda images, rows: y[images, rows], kept=kept)
    return y, ConvCache(xp, pads, plan, kept_reference(kept))


def conv2d_backward(dy, cache, kernel, need_dx=True, need_bias=True, relu_output=None, gate_input=False,
                    need_kernel=True):
    """Gradients of :func:`conv2d_forward`.

    Parameters
    ----------
    dy : ndarray, shape (N, OH, OW, F)
    cache : ConvCache from :func:`conv2d_forward`
    kernel : ndarray, shape (KH, KW, C, F)
    need_dx : bool
        Skip the input gradient (e.g. for the first layer while training).
    need_bias : bool
        Skip the bias gradient (a layer without bias).
    relu_output : ndarray, shape (N, OH, OW, F), optional
        The output of a ``relu=True`` forward pass: ``dy`` is then the gradient after the ReLU and
        is gated by ``relu_output > 0`` block by block (``dy`` itself is not modified).
    gate_input : bool or {"vanilla", "guided", "rectified"}
        Multiply the input gradient by ``x > 0``, block by block while it is in cache: the backward
        pass of a ReLU whose output ``x`` is (the layer below then takes ``dx`` as already gated).
        A rule name applies that ReLU backward rule instead (True is "vanilla"; see
        :func:`glassnet.ops.conv.blocks.gate_by_input`).
    need_kernel : bool
        Skip the kernel gradient (an explanation needs the input gradient only): a third of the
        FLOPs, and the block matrices of the input are then never built.

    Returns
    -------
    dx : ndarray, shape (N, H, W, C), or None when ``need_dx`` is False
    dkernel : ndarray, shape (KH, KW, C, F), or None when ``need_kernel`` is False
    dbias : ndarray, shape (F,), or None when ``need_bias`` is False
    """
    xp, plan = cache.xp, planning.for_backward(cache.plan)

    def gradient(images, rows, scratch):
        if relu_output is None:
            return dy[images, rows]
        return np.multiply(dy[images, rows], relu_output[images, rows] > 0, out=scratch)

    kept = kept_for_backward(cache.kept, plan, xp.shape, kernel.shape, np.result_type(xp, kernel))
    dxp, dkernel, dbias = conv_strategy(plan).backward(plan, xp, kernel, gradient, np.result_type(dy, kernel),
                                                       need_dx, need_bias, gate_input, kept, need_kernel)
    return (unpadded(dxp, pads=cache.pads) if need_dx else None), dkernel, dbias


def _conv_pool_plan(x_shape, x_dtype, kernel, stride, pads, pool_size, windows=True):
    return planning.conv_pool_plan(padded_shape(x_shape, pads), x_dtype, kernel.shape, stride, pool_size,
                                   np.result_type(x_dtype, kernel), windows)


def conv2d_maxpool_fusable(x, kernel, stride, pads, pool_size, windows=True):
    """Whether :func:`conv2d_maxpool_forward` applies to ``x``: blocks of whole images (an image
    small enough for a block) and at least one pooling window along each side."""
    return _conv_pool_plan(x.shape, x.dtype, kernel, stride, pads, pool_size, windows) is not None


def conv2d_maxpool_forward(x, kernel, bias, stride, pads, pool_size, relu=True, record_winners=True, keep=None,
                           windows=True):
    """``max_pool(relu(conv(x)))`` (or ``max_pool(conv(x))``) with stride == pool size, without the
    convolution's full output.

    Parameters
    ----------
    x : ndarray, shape (N, H, W, C)
    kernel : ndarray, shape (KH, KW, C, F)
    bias : ndarray, shape (F,) or None
    stride, pads : the convolution's (see :func:`conv2d_forward`)
    pool_size : (PH, PW)
    relu : bool
        Apply a ReLU between the convolution and the pooling.
    record_winners : bool
        Note each window's winner for the backward pass (inference leaves it out).
    keep : dict, optional
        Storage for the block matrices (see :func:`conv2d_forward`); only with ``record_winners``.
    windows : bool
        Allow the one-row-per-pooling-window strategy (explanations pass False: see
        :func:`glassnet.ops.conv.plan.conv_pool_plan`).

    Returns
    -------
    y : ndarray, shape (N, OH // PH, OW // PW, F)
    cache : ConvPoolCache for :func:`conv2d_maxpool_backward` (refers to ``x`` and ``y``), or None
        without ``record_winners``

    Raises
    ------
    ValueError
        Where the pair cannot run fused (see :func:`conv2d_maxpool_fusable`).
    """
    plan = _conv_pool_plan(x.shape, x.dtype, kernel, stride, pads, pool_size, windows)
    if plan is None:
        raise ValueError(message("conv2d_maxpool_forward", "a convolution and pooling that can run fused",
                                 f"input {x.shape}, kernel {kernel.shape}, pool_size {tuple(pool_size)}",
                                 "Check conv2d_maxpool_fusable first, or run conv2d_forward and max_pool2d_forward."))
    xp = pad2d(x, pads)
    dtype = np.result_type(x, kernel)
    kept = kept_matrices(keep, plan, xp.shape, kernel.shape, dtype) if record_winners else None
    y, winner = CONV_POOL[type(plan)].forward(plan, xp, kernel, bias, relu, record_winners, kept)
    if not record_winners:
        return y, None
    return y, ConvPoolCache(xp, pads, plan, y, winner, relu, kept_reference(kept))


def conv2d_maxpool_backward(dy, cache, kernel, need_dx=True, need_bias=True, gate_input=False, need_kernel=True):
    """Gradients of :func:`conv2d_maxpool_forward`.

    Parameters
    ----------
    dy : ndarray, shape (N, OH // PH, OW // PW, F)
    cache : ConvPoolCache
    kernel : ndarray, shape (KH, KW, C, F)
    need_dx, need_bias, gate_input, need_kernel : bool
        As for :func:`conv2d_backward`.

    Returns
    -------
    dx, dkernel, dbias : as :func:`conv2d_backward` returns them
    """
    xp, plan = cache.xp, planning.for_backward(cache.plan)
    kept = kept_for_backward(cache.kept, plan, xp.shape, kernel.shape, np.result_type(xp, kernel))
    dxp, dkernel, dbias = CONV_POOL[type(plan)].backward(plan, cache, dy, kernel, need_dx, need_bias, gate_input,
                                                         kept, need_kernel)
    return (unpadded(dxp, cache.pads) if need_dx else None), dkernel, dbias


#: The name layers call as ``glassnet.ops.conv_pool.fusable`` (``conv_pool`` is this module's old name).
fusable = conv2d_maxpool_fusable
