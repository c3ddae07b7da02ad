"""Convolution (+ ReLU) + max pooling by the convolution's own plan, each block pooled while in cache.

``Conv2D`` followed by a ``MaxPooling2D`` whose windows tile its output is the commonest pair in
a CNN, and its largest array is the convolution's output. Run as two layers, that output is
written to memory and read back by the pooling, and in the backward pass the pooling writes a
gradient of the same size which the convolution reads back. Here the convolution's strategy
(``plan.conv``, in blocks of whole images) hands each finished block to the pooling while it is
in cache, and only the pooled output and the winners are kept; the backward pass routes the
pooled gradient straight into the block the convolution's GEMMs read.

The ReLU's gate needs no array of its own: only a window's winner receives a gradient, and the
winner's ReLU output is the pooled value, so the gate is ``pooled > 0``. The bias and the ReLU run
after the pooling, on 1 / (PH * PW) of the values: ``max(relu(z + b)) == relu(max(z) + b)``, since
rounding ``z + b`` is monotonic in ``z``. The winners are then those of ``z``: they differ from
those of ``relu(z + b)`` only where two values of a window round to the same sum (either is a
correct subgradient) or where the maximum is <= 0, where the gate is 0 anyway.
"""
import numpy as np

from glassnet.ops.conv.strategies import conv_strategy
from glassnet.ops.pooling import clear_uncovered, route_to_winners, tiled_max_pool, winner_dtype
from glassnet.ops.workspace import column_sums, scratch_array, view


def _block_array(name, blocks, shape, dtype):
    """``block_array(images)``: a scratch array (n, *shape) for one block of images."""
    most = max(images.stop - images.start for images, _ in blocks)

    def block_array(images):
        n = images.stop - images.start
        return view(scratch_array(name, most * int(np.prod(shape)), dtype), (n,) + tuple(shape))
    return block_array


def forward(plan, xp, kernel, bias, relu, record_winners=True, kept=None):
    """``max_pool(relu(conv(xp) + bias))`` of a padded input ``xp`` (N, Hp, Wp, C).

    Returns
    -------
    y : ndarray, shape (N, OH // PH, OW // PW, F)
    winner : ndarray, shape of ``y`` (each window's first winning offset), or None without ``record_winners``
    """
    dtype = np.result_type(xp, kernel)
    (OH, OW), F, (PH, PW) = plan.conv.out_hw, kernel.shape[3], plan.pool_size
    y = np.empty((xp.shape[0], OH // PH, OW // PW, F), dtype=dtype)
    winner = np.empty(y.shape, dtype=winner_dtype(PH * PW)) if record_winners else None
    block_output = _block_array("pooled_conv", plan.conv.blocks, (OH, OW, F), dtype)
    bias_row = None if bias is None else np.tile(bias.astype(dtype, copy=False), OW // PW)

    def finish(images, out):
        pooled = y[images]
        tiled_max_pool(out.reshape(-1, OH, OW, F), plan.pool_size, pooled,
                       None if winner is None else winner[images])
        if bias_row is not None:                   # max(z) + b: on the pooled block
            pooled_rows = pooled.reshape(-1, bias_row.size)
            pooled_rows += bias_row
        if relu:
            np.maximum(pooled, 0, out=pooled)

    conv_strategy(plan.conv).forward(plan.conv, xp, kernel, None, False,
                                     target=lambda images, rows: block_output(images), finish=finish, kept=kept)
    return y, winner


def backward(plan, cache, dy, kernel, need_dx=True, need_bias=True, gate_input=False, kept=None, need_kernel=True):
    """Gradients of :func:`forward` from ``dy`` (N, OH // PH, OW // PW, F); ``cache`` holds the
    forward pass's padded input ``xp``, its results ``y`` and ``winner`` and its ``relu``.

    Returns
    -------
    dxp : ndarray, shape of ``xp``, or None when ``need_dx`` is False
    dkernel : ndarray, shape (KH, KW, C, F), or None when ``need_kernel`` is False
    dbias : ndarray, shape (F,), or None when ``need_bias`` is False
    """
    y, winner, pool_size = cache.y, cache.winner, plan.pool_size
    dtype = np.result_type(dy, kernel)
    covered = (y.shape[1] * pool_size[0], y.shape[2] * pool_size[1])
    bias_shares = {}

    def gradient(images, rows, scratch):
        clear_uncovered(scratch, covered)
        gated = dy[images] * (y[images] > 0) if cache.relu else dy[images]    # a ReLU's gate at each winner
        if need_bias:          # the routed gradient sums to the pooled one: a pass over 1/(PH*PW) the values
            block = gated.reshape(-1, gated.shape[-1])
            bias_shares[images.start] = column_sums(block, dtype)
        route_to_winners(gated, winner[images], scratch, pool_size, pool_size)
        return scratch

    dxp, dkernel, _ = conv_strategy(plan.conv).backward(plan.conv, cache.xp, kernel, gradient, dtype, need_dx,
                                                        False, gate_input, kept, need_kernel)
    dbias = sum(bias_shares[start] for start in sorted(bias_shares)) if need_bias else None
    return dxp, dkernel, dbias
