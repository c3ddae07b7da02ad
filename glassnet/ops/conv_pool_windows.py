"""Convolution (+ ReLU) + max pooling with one im2col row per pooling window.

For a convolution with few filters (LeNet-5's 6 and 16) every GEMM of the plain methods is only
F columns wide, which BLAS runs slowly, and the pooling that follows works on runs of F values,
which NumPy runs slowly. Here one row of the matrix holds the input patch under a whole
(PH, PW) pooling window of outputs, (PH + KH - 1) x (PW + KW - 1) pixels of C channels, and the
kernel becomes the block matrix of :func:`glassnet.ops.conv_wide.window_kernel`, PH * PW * F
columns wide. With the product computed transposed, ``T = K_w^T @ cols^T`` of shape
(PH * PW * F, R) for R windows, the window's PH * PW outputs of one filter lie in PH * PW
contiguous slabs ``T[k * F:(k + 1) * F]``: the pooling is a maximum over whole slabs, and so
are the winners, the routing of the gradient and the bias, all on contiguous memory. The
product does (PH + KH - 1)(PW + KW - 1) / (KH * KW) times the FLOPs of plain im2col (1.44 for a
5x5 kernel and 2x2 windows), at the speed of a wider GEMM, and only for the outputs some window
covers.

Backward, with ``dT`` the routed gradient in the same slabs:
    dK_w = cols^T @ dT^T,  dkernel = fold(dK_w)  (:func:`glassnet.ops.conv_wide.fold_window_gradient`)
    dcols = dT^T @ K_w^T,  then col2im: the patches overlap, but split into (PH, PW) cells they
    add into the input in whole cells, one slab add per cell offset (ceil(U / PH) * ceil(V / PW)).

The pooled planar blocks are transposed to NHWC only at the end (1 / (PH * PW) of the output),
and the backward pass runs on the forward pass's own blocks (its winners are stored per block).
As in :mod:`glassnet.ops.conv_wide`, the zeros of the block kernel turn an infinite input into
NaN (0 * inf) in the outputs that see it (the models' input checks reject non-finite data).
Measured at 1 thread, batch 128 (2026-11-30), forward + backward against the fused row-window /
wide-row methods: LeNet-5's first layer 3.5 ms against 5.5, its second 4.8 against 7.8; the tiny
model's 3x3 layer 2.9 against 4.3. LeNet-5's training step got 29% faster at 1 thread and 21% at 2.
"""
from typing import NamedTuple

import numpy as np

from glassnet.ops import conv, conv_wide
from glassnet.ops.conv_rows import add_shares, gate_by_input
from glassnet.ops.parallel import num_threads, run_blocks
from glassnet.ops.pooling import first_winners, winner_dtype
from glassnet.ops.workspace import block_matrix, column_sums, scratch_array, view

#: The method applies to convolutions with at most this many filters: wider ones already run
#: their GEMMs fast (keras_mnist's 64), where the extra FLOPs would not pay.
MAX_FILTERS = 16

#: ... with at most this many input channels: measured (batch 64, 28x28, 3x3 kernel, 16 filters,
#: 1 thread, forward + backward against the other fused methods) 1.15x as fast with 8 channels,
#: 1.03x with 16, 0.98x with 32.
MAX_CHANNELS = 16

#: ... and with a patch at most this many times the kernel's area ((KH + PH - 1)(KW + PW - 1) /
#: (KH * KW), the extra FLOPs): 1.44 for LeNet-5's 5x5 kernels and 2x2 windows, 1.78 for a 3x3
#: kernel. Large windows (a global pooling written as a 14x14 MaxPooling2D) would multiply the
#: FLOPs and the block kernel many times over.
MAX_PATCH_RATIO = 2.0


class WindowPlan(NamedTuple):
    """Blocks of whole images, threads, the pooled output's (OHp, OWp), the pooling window, and
    the patch (U, V) one matrix row holds."""
    blocks: list
    threads: int
    pooled_hw: tuple
    window: tuple
    patch: tuple

    def matrix_layout(self):
        """What decides the block matrices besides the shapes and dtype
        (see :func:`glassnet.ops.conv.kept_matrices`)."""
        return (self.window, self.blocks)

    def image_elements(self, padded_shape, kernel_shape):
        """Elements of one image's matrix."""
        (OHp, OWp), (U, V) = self.pooled_hw, self.patch
        return OHp * OWp * U * V * kernel_shape[2]


def _cell_counts(window, patch):
    """(A, B): the (PH, PW) cells a (U, V) patch spans down and across (its last ones may be partial)."""
    (PH, PW), (U, V) = window, patch
    return -(-U // PH), -(-V // PW)


def plan(padded_shape, kernel_shape, stride, pool_size, dtype):
    """The :class:`WindowPlan` of a fused convolution and pooling, or None where the method does
    not apply: a stride other than 1, more than :data:`MAX_FILTERS` filters or
    :data:`MAX_CHANNELS` channels, a patch over :data:`MAX_PATCH_RATIO` times the kernel, no whole
    window, or an image too large for a block of whole images (see :func:`glassnet.ops.conv.conv_blocks`)."""
    KH, KW, C, F = kernel_shape
    N, Hp, Wp, _ = padded_shape
    (PH, PW), itemsize = pool_size, np.dtype(dtype).itemsize
    OHp, OWp = (Hp - KH + 1) // PH, (Wp - KW + 1) // PW
    U, V = KH + PH - 1, KW + PW - 1
    if (tuple(stride) != (1, 1) or F > MAX_FILTERS or C > MAX_CHANNELS or U * V > MAX_PATCH_RATIO * KH * KW
            or min(OHp, OWp) < 1):
        return None
    A, B = _cell_counts((PH, PW), (U, V))
    # per window: the matrix row, the product, and the backward pass's patch gradients in whole cells
    matrix, product, cells = U * V * C, PH * PW * F, A * B * PH * PW * C
    # blocks sized for the cache by the larger of the matrix and the product (the product is 4x the
    # matrix for a 3x3 kernel, one channel and 16 filters), and all three within the memory budget
    row_bytes = OWp * max(matrix, product) * itemsize
    threads = num_threads(N * OHp * row_bytes)
    blocks = conv.conv_blocks(N, OHp, row_bytes, threads,
                              image_flops=2 * OHp * OWp * matrix * product,
                              image_out_bytes=OHp * OWp * product * itemsize,
                              held_row_bytes=OWp * (matrix + product + cells) * itemsize)
    if any(rows.stop - rows.start < OHp for _, rows in blocks):
        return None
    return WindowPlan(blocks, threads, (OHp, OWp), (PH, PW), (U, V))


def _block_matrix(xp, block, plan, kernel_shape, kept, forward):
    """A block's matrix, one row per pooling window: im2col with the patch (U, V) as the kernel
    and the window (PH, PW) as the stride (:func:`glassnet.ops.conv.cols2d`; see
    :func:`glassnet.ops.workspace.block_matrix` for ``kept``)."""
    block_input = xp[block[0]]
    size = len(block_input) * plan.image_elements(xp.shape, kernel_shape)

    def build(flat):
        flat = scratch_array("window_cols", size, xp.dtype) if flat is None else flat
        return conv.cols2d(block_input, plan.patch, plan.window, plan.pooled_hw, flat)
    return block_matrix(kept, block, size, xp.dtype, build, forward)


def _winner_segment(winner, images, F, R):
    """A block's winners, planar (F, R), in the flat array of all blocks' winners."""
    per_image = R // (images.stop - images.start)
    return winner[images.start * per_image * F:images.stop * per_image * F].reshape(F, R)


def forward(xp, kernel, bias, relu, plan, record_winners=True, kept=None):
    """``max_pool(relu(conv(xp)))`` of a padded input ``xp`` (N, Hp, Wp, C) by pooling windows.

    Returns
    -------
    y : ndarray, shape (N, OHp, OWp, F)
    winner : flat ndarray (each block's (F, R) winners in turn), or None without
        ``record_winners``
    """
    F, dtype = kernel.shape[3], np.result_type(xp, kernel)
    G = plan.window[0] * plan.window[1]
    kernel_t = np.ascontiguousarray(conv_wide.window_kernel(kernel.astype(dtype, copy=False), plan.window).T)
    y = np.empty((xp.shape[0],) + plan.pooled_hw + (F,), dtype=dtype)
    winner = np.empty(y.size, dtype=winner_dtype(G)) if record_winners else None
    column_bias = None if bias is None else bias.astype(dtype, copy=False)[:, None]

    def forward_block(block):
        images = block[0]
        cols = _block_matrix(xp, block, plan, kernel.shape, kept, forward=True)
        R = len(cols)
        slabs = view(scratch_array("window_out", G * F * R, dtype), (G, F, R))
        np.matmul(kernel_t, cols.T, out=slabs.reshape(G * F, R))
        pooled = np.maximum.reduce(slabs, axis=0, out=view(scratch_array("window_pooled", F * R, dtype), (F, R)))
        if winner is not None:
            first_winners(list(slabs), pooled, _winner_segment(winner, images, F, R))
        if column_bias is not None:           # max(z + b) = max(z) + b: the bias on the pooled values
            pooled += column_bias
        if relu:
            np.maximum(pooled, 0, out=pooled)
        y[images].reshape(R, F)[...] = pooled.T

    run_blocks(forward_block, plan.blocks, plan.threads)
    return y, winner


def _cell_kernel(kernel_w, plan, C):
    """The rows of :func:`glassnet.ops.conv_wide.window_kernel`'s matrix in patch-cell order
    (a, b, s, t, c) for the patch pixel (a * PH + s, b * PW + t), with zero rows for a partial
    cell's missing pixels: ``dcols = routed @ _cell_kernel(...).T`` then holds whole cells."""
    (PH, PW), (U, V) = plan.window, plan.patch
    A, B = _cell_counts(plan.window, plan.patch)
    padded = np.zeros((A * PH, B * PW, C, kernel_w.shape[1]), dtype=kernel_w.dtype)
    padded[:U, :V] = kernel_w.reshape(U, V, C, -1)
    return padded.reshape(A, PH, B, PW, C, -1).transpose(0, 2, 1, 3, 4, 5).reshape(A * B * PH * PW * C, -1)


def _add_cells(dcols, dxp, plan):
    """col2im of a block's patch gradients ``dcols`` (n * OHp * OWp, A * B * PH * PW * C), in
    patch-cell order (:func:`_cell_kernel`), into ``dxp`` (n, HB * PH, WB * PW, C): cell (a, b) of
    window (ph, pw) is input cell (ph + a, pw + b), so each cell offset is one add of whole cells
    (PH * PW * C contiguous values on both sides) into a cell-major scratch array, which is then
    laid out as NHWC in one copy."""
    (OHp, OWp), (PH, PW) = plan.pooled_hw, plan.window
    A, B = _cell_counts(plan.window, plan.patch)
    n, C = dxp.shape[0], dxp.shape[3]
    HB, WB = dxp.shape[1] // PH, dxp.shape[2] // PW
    cell = PH * PW * C
    cells = view(scratch_array("window_dcells", n * HB * WB * cell, dxp.dtype), (n, HB, WB, cell))
    cells[...] = 0
    patches = dcols.reshape(n, OHp, OWp, A, B, cell)
    for a in range(A):
        for b in range(B):
            cells[:, a:a + OHp, b:b + OWp] += patches[:, :, :, a, b]
    dxp.reshape(n, HB, PH, WB, PW, C)[...] = cells.reshape(n, HB, WB, PH, PW, C).transpose(0, 1, 3, 2, 4, 5)


def backward(dy, xp, y, winner, kernel, relu, plan, need_dx=True, need_bias=True, gate_input=False, kept=None):
    """Gradients of :func:`forward` (``y`` and ``winner`` its results) from ``dy`` (N, OHp, OWp, F),
    on the forward pass's blocks (``plan``), with as many threads as are allowed now.

    ``gate_input`` multiplies the input gradient by ``xp > 0`` block by block (see
    :func:`glassnet.ops.conv2d_backward`); ``kept``: the forward pass's matrices, or None.

    Returns
    -------
    dxp : ndarray, shape of ``xp``, or None when ``need_dx`` is False
    dkernel : ndarray, shape (KH, KW, C, F)
    dbias : ndarray, shape (F,), or None when ``need_bias`` is False
    """
    C, F = kernel.shape[2:]
    (OHp, OWp), (PH, PW) = plan.pooled_hw, plan.window
    N, Hp, Wp = xp.shape[:3]
    G, dtype = PH * PW, np.result_type(dy, kernel)
    if need_dx:
        kernel_cells = _cell_kernel(conv_wide.window_kernel(kernel.astype(dtype, copy=False), plan.window), plan, C)
        # the input gradient in whole (PH, PW) cells: every cell a patch reaches, and all of xp
        A, B = _cell_counts(plan.window, plan.patch)
        HB, WB = max(-(-Hp // PH), OHp + A - 1), max(-(-Wp // PW), OWp + B - 1)
        dx_cells = np.empty((N, HB * PH, WB * PW, C), dtype=dtype)     # every element is written

    def backward_block(block):
        images = block[0]
        cols = _block_matrix(xp, block, plan, kernel.shape, kept, forward=False)
        R = len(cols)
        gradient = dy[images].reshape(R, F)
        if relu:                    # a ReLU's gate at each winner: its pooled value > 0
            gradient = gradient * (y[images].reshape(R, F) > 0)
        # gated, then transposed: 5x faster than one multiply on transposed views
        pooled_dy = view(scratch_array("window_dy", F * R, dtype), (F, R))
        pooled_dy[...] = gradient.T
        routed_slabs = view(scratch_array("window_dout", G * F * R, dtype), (G, F, R))
        segment = _winner_segment(winner, images, F, R)
        np.multiply(pooled_dy, segment == np.arange(G, dtype=segment.dtype)[:, None, None], out=routed_slabs)
        routed = routed_slabs.reshape(G * F, R).T            # (R, G * F), a transposed view
        dkernel_w = np.matmul(cols.T, routed)
        if need_dx:
            dcols = view(scratch_array("window_dcols", R * len(kernel_cells), dtype), (R, len(kernel_cells)))
            np.matmul(routed, kernel_cells.T, out=dcols)
            _add_cells(dcols, dx_cells[images], plan)
            if gate_input:
                gate_by_input(dx_cells[images, :Hp, :Wp], xp[images])
        dbias = column_sums(pooled_dy.T) if need_bias else None        # last: it holds the GIL
        return dkernel_w, dbias

    threads = min(plan.threads, num_threads())
    dkernel_w, dbias = run_blocks(backward_block, plan.blocks, threads, fold=add_shares)
    dkernel = conv_wide.fold_window_gradient(dkernel_w, kernel.shape, plan.window)
    dxp = None
    if need_dx:
        dxp = dx_cells if dx_cells.shape[1:3] == (Hp, Wp) else np.ascontiguousarray(dx_cells[:, :Hp, :Wp])
    return dxp, dkernel, dbias
