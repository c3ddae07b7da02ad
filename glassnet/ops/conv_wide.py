"""Wide im2col rows for single-channel convolutions with few filters (LeNet-5's first layer when it
runs on its own; trained or predicting fused with its pooling it takes :mod:`glassnet.ops.conv_pool_windows`).

Plain im2col gives such a layer (C = 1, e.g. 5x5 -> 6 filters) a GEMM whose output is only F
columns wide, which BLAS runs slowly: LeNet-5's first layer reached 26 GFLOP/s. Here one im2col
row holds the window of G neighbouring output pixels along the width: a (KH, KW + G - 1) patch,
so the rows cover the input G times fewer and the product is G * F columns wide. The kernel
becomes a (KH * (KW + G - 1), G * F) block matrix with ``K_wide[(i, u), (p, f)] = kernel[i, u - p, f]``
where ``0 <= u - p < KW`` (zeros elsewhere), and the GEMM's output rows, G pixels of F values
each, are the NHWC output itself. The weight gradient is the same product transposed, folded
back: ``dkernel[i, j, f] = sum_p dK_wide[(i, j + p), (p, f)]``.

Measured at 1 thread, batch 128 (2026-11-30): LeNet-5's first layer with G = 4, the forward GEMM
0.68 ms against 1.28 and the weight gradient's 0.86 ms against 1.47, building the rows taking
the same time. G = 2 made the rows' copies slower than the GEMMs gained (windows 4-6 values
long), and the tiny model's 3x3 layer with 8 filters gained nothing.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

#: Output pixels per wide row.
GROUP = 4


def group(kernel_shape, stride, OW):
    """G for a convolution: :data:`GROUP` for a single-channel input with fewer than 16 filters,
    a kernel at least 4 wide, stride 1 and an output width that G divides; else 1 (plain im2col)."""
    KH, KW, C, F = kernel_shape
    fits = C == 1 and F < 16 and KW >= 4 and tuple(stride) == (1, 1) and OW % GROUP == 0
    return GROUP if fits else 1


def row_elements(kernel_shape, OW, G):
    """Elements of one output row's matrix: OW / G rows of KH * (KW + G - 1) values."""
    KH, KW = kernel_shape[:2]
    return (OW // G) * KH * (KW + G - 1)


def wide_cols(xp, kernel_size, G, out_hw, flat):
    """The wide rows of a block ``xp`` (n, Hp, Wp, 1), stride 1, as an (n * OH * OW / G, KH * (KW + G - 1))
    matrix in the flat array ``flat``. Windows G apart and KW + G - 1 wide end exactly at Wp."""
    (KH, KW), (OH, OW) = kernel_size, out_hw
    n, width = len(xp), KW + G - 1
    windows = sliding_window_view(xp[..., 0], (KH, width), axis=(1, 2))[:, :OH, ::G][:, :, :OW // G]
    cols = flat[:n * OH * (OW // G) * KH * width].reshape(n, OH, OW // G, KH, width)
    np.copyto(cols, windows)
    return cols.reshape(-1, KH * width)


def window_kernel(kernel, window):
    """The block matrix of a (KH, KW, C, F) kernel for rows that each hold a (GH, GW) window of
    output pixels: ``K_w[(u, v, c), (a, b, f)] = kernel[u - a, v - b, c, f]`` where the offset is
    inside the kernel (zeros elsewhere), shape ((KH + GH - 1) * (KW + GW - 1) * C, GH * GW * F).
    Wide rows use the window (1, G); :mod:`glassnet.ops.conv_pool_windows` a pooling window."""
    KH, KW, C, F = kernel.shape
    GH, GW = window
    wide = np.zeros((KH + GH - 1, KW + GW - 1, C, GH, GW, F), dtype=kernel.dtype)
    for a in range(GH):
        for b in range(GW):
            wide[a:a + KH, b:b + KW, :, a, b, :] = kernel
    return wide.reshape(-1, GH * GW * F)


def fold_window_gradient(dwide, kernel_shape, window):
    """The (KH, KW, C, F) weight gradient from the gradient of :func:`window_kernel`'s matrix: the
    sum over the window's pixel positions (the transpose of the block expansion)."""
    KH, KW, C, F = kernel_shape
    GH, GW = window
    dwide = dwide.reshape(KH + GH - 1, KW + GW - 1, C, GH, GW, F)
    dkernel = dwide[0:KH, 0:KW, :, 0, 0, :].copy()
    for k in range(1, GH * GW):
        a, b = divmod(k, GW)
        dkernel += dwide[a:a + KH, b:b + KW, :, a, b, :]
    return dkernel
