"""Dilated convolution (Keras's ``dilation_rate``, PyTorch's ``dilation``) by im2col over spread windows.

With taps ``(dh, dw)`` apart the kernel covers a ((KH - 1) * dh + 1, (KW - 1) * dw + 1) span of
the input but still reads only KH * KW pixels of it:

    y[n, oh, ow, f] = sum_{i, j, c} xp[n, oh*sh + i*dh, ow*sw + j*dw, c] * kernel[i, j, c, f] + bias[f]

so one im2col row per output pixel holds those KH * KW * C values, in the same (i, j, c) order as
plain im2col, and the kernel is the same (KH * KW * C, F) matrix. The block loops are
:mod:`glassnet.ops.conv.im2col`'s, with the input gradient added at the dilated tap offsets.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from glassnet.ops.conv.im2col import MatrixLayout, matrix_strategy
from glassnet.ops.workspace import view


def dilated_cols(xp, kernel_size, stride, dilation, out_hw, flat):
    """The im2col matrix of a block ``xp`` (n, Hp, Wp, C) over dilated windows, (n * OH * OW, KH * KW * C),
    in the flat array ``flat``: ``cols[(n, oh, ow), (i, j, c)] = xp[n, oh*sh + i*dh, ow*sw + j*dw, c]``."""
    (KH, KW), (dh, dw), (OH, OW) = kernel_size, dilation, out_hw
    n, C = xp.shape[0], xp.shape[3]
    span = ((KH - 1) * dh + 1, (KW - 1) * dw + 1)
    windows = sliding_window_view(xp, span, axis=(1, 2))[:, ::stride[0], ::stride[1]][:, :OH, :OW, :, ::dh, ::dw]
    cols = view(flat, (n, OH, OW, KH, KW, C))
    np.copyto(cols, windows.transpose(0, 1, 2, 4, 5, 3))             # (n, OH, OW, C, KH, KW) -> taps first
    return cols.reshape(n * OH * OW, KH * KW * C)


def _layout(plan, kernel):
    KH, KW, C, F = kernel.shape

    def build(block_input, out_hw, flat):
        return dilated_cols(block_input, (KH, KW), plan.stride, plan.dilation, out_hw, flat)
    return MatrixLayout(build, kernel.reshape(KH * KW * C, F), lambda dkernel: dkernel, plan.dilation)


#: the dilated convolution (:func:`glassnet.ops.conv.im2col.matrix_strategy` on this layout)
forward, backward = matrix_strategy(_layout)
