"""Wide im2col rows: one matrix row per G neighbouring output pixels, for single-channel
convolutions with few filters (stride 1).

Plain im2col gives such a layer (C = 1, e.g. 5x5 -> 6 filters) a GEMM only F columns wide, which
BLAS runs slowly. Here a row holds the (KH, KW + G - 1) input patch under G output pixels along
the width, so the rows cover the input G times fewer and the product is G * F columns wide:

    y[(n, oh, ow/G), (p, f)] = (wide_cols @ K_w)  with  K_w[(i, u), (p, f)] = kernel[i, u - p, f]
                                                  where 0 <= u - p < KW, zero elsewhere
                                                  (:func:`glassnet.ops.conv.blocks.window_kernel`, window (1, G)).

The product's rows, G pixels of F values each, are the NHWC output itself. The weight gradient
is the same product transposed, folded back: ``dkernel[i, j, f] = sum_p dK_w[(i, j + p), (p, f)]``.
The block loops are :mod:`glassnet.ops.conv.im2col`'s. The zeros of ``K_w`` turn an infinite
input into NaN (0 * inf) in the outputs that see it (the models' input checks reject non-finite data).
"""
from functools import partial

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from glassnet.ops.conv.blocks import fold_window_gradient, window_kernel
from glassnet.ops.conv.im2col import MatrixLayout, matrix_strategy


def wide_cols(xp, kernel_size, G, out_hw, flat):
    """The wide rows of a block ``xp`` (n, Hp, Wp, 1), stride 1, as an (n * OH * OW / G, KH * (KW + G - 1))
    matrix in the flat array ``flat``. Windows G apart and KW + G - 1 wide end exactly at Wp."""
    (KH, KW), (OH, OW) = kernel_size, out_hw
    n, width = len(xp), KW + G - 1
    windows = sliding_window_view(xp[..., 0], (KH, width), axis=(1, 2))[:, :OH, ::G][:, :, :OW // G]
    cols = flat[:n * OH * (OW // G) * KH * width].reshape(n, OH, OW // G, KH, width)
    np.copyto(cols, windows)
    return cols.reshape(-1, KH * width)


def _layout(plan, kernel):
    window = (1, plan.group)

    def build(block_input, out_hw, flat):
        return wide_cols(block_input, kernel.shape[:2], plan.group, out_hw, flat)
    return MatrixLayout(build, window_kernel(kernel, window),
                        partial(fold_window_gradient, kernel_shape=kernel.shape, window=window), (1, 1))


#: the convolution by wide rows (:func:`glassnet.ops.conv.im2col.matrix_strategy` on this layout)
forward, backward = matrix_strategy(_layout)
