"""Convolution (+ ReLU) + max pooling with one im2col row per pooling window.

For a convolution with few filters (6 or 16) every GEMM of the plain methods is only
F columns wide, which BLAS runs slowly, and the pooling that follows works on runs of F values,
which NumPy runs slowly. Here one row of the matrix holds the input patch under a whole
(PH, PW) pooling window of outputs, (PH + KH - 1) x (PW + KW - 1) pixels of C channels, and the
kernel becomes the block matrix of :func:`glassnet.ops.conv.blocks.window_kernel`, PH * PW * F
columns wide. With the product computed transposed, ``T = K_w^T @ cols^T`` of shape
(PH * PW * F, R) for R windows, the window's PH * PW outputs of one filter lie in PH * PW
contiguous slabs ``T[k * F:(k + 1) * F]``: the pooling is a maximum over whole slabs, and so
are the winners, the routing of the gradient and the bias, all on contiguous memory. The
product does (PH + KH - 1)(PW + KW - 1) / (KH * KW) times the FLOPs of plain im2col (1.44 for a
5x5 kernel and 2x2 windows), at the speed of a wider GEMM, and only for the outputs some window
covers.

Backward, with ``dT`` the routed gradient in the same slabs:
    dK_w = cols^T @ dT^T,  dkernel = fold(dK_w)  (:func:`glassnet.ops.conv.blocks.fold_window_gradient`)
    dcols = dT^T @ K_w^T,  then col2im: the patches overlap, but split into (PH, PW) cells they
    add into the input in whole cells, one slab add per cell offset (ceil(U / PH) * ceil(V / PW)).

The pooled planar blocks are transposed to NHWC only at the end (1 / (PH * PW) of the output),
and the backward pass runs on the forward pass's own blocks (its winners are stored per block).
As in :mod:`glassnet.ops.conv.wide_rows`, the zeros of the block kernel turn an infinite input into
NaN (0 * inf) in the outputs that see it (the models' input checks reject non-finite data).
"""
import numpy as np

from glassnet.ops.conv.blocks import cols2d, fold_window_gradient, gate_by_input, window_kernel
from glassnet.ops.conv.plan import cell_counts
from glassnet.ops.parallel import add_parts, run_blocks
from glassnet.ops.pooling import first_winners, winner_dtype
from glassnet.ops.workspace import block_matrix, column_sums, scratch_array, view


def _block_matrix(xp, block, plan, kernel_shape, kept, forward):
    """A block's matrix, one row per pooling window: im2col with the patch (U, V) as the kernel
    and the window (PH, PW) as the stride (:func:`glassnet.ops.conv.blocks.cols2d`; see
    :func:`glassnet.ops.workspace.block_matrix` for ``kept``)."""
    block_input = xp[block[0]]
    size = len(block_input) * plan.image_elements(xp.shape, kernel_shape)

    def build(flat):
        flat = scratch_array("window_cols", size, xp.dtype) if flat is None else flat
        return cols2d(block_input, plan.patch, plan.window, plan.pooled_hw, flat)
    return block_matrix(kept, block, size, xp.dtype, build, forward)


def _winner_segment(winner, images, F, R):
    """A block's winners, planar (F, R), in the flat array of all blocks' winners."""
    per_image = R // (images.stop - images.start)
    return winner[images.start * per_image * F:images.stop * per_image * F].reshape(F, R)


def forward(plan, xp, kernel, bias, relu, record_winners=True, kept=None):
    """``max_pool(relu(conv(xp)))`` of a padded input ``xp`` (N, Hp, Wp, C) by pooling windows.

    Returns
    -------
    y : ndarray, shape (N, OHp, OWp, F)
    winner : flat ndarray (each block's (F, R) winners in turn), or None without
        ``record_winners``
    """
    F, dtype = kernel.shape[3], np.result_type(xp, kernel)
    G = plan.window[0] * plan.window[1]
    kernel_t = np.ascontiguousarray(window_kernel(kernel.astype(dtype, copy=False), plan.window).T)
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
    """The rows of :func:`glassnet.ops.conv.blocks.window_kernel`'s matrix in patch-cell order
    (a, b, s, t, c) for the patch pixel (a * PH + s, b * PW + t), with zero rows for a partial
    cell's missing pixels: ``dcols = routed @ _cell_kernel(...).T`` then holds whole cells."""
    (PH, PW), (U, V) = plan.window, plan.patch
    A, B = cell_counts(plan.window, plan.patch)
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
    A, B = cell_counts(plan.window, plan.patch)
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


def backward(plan, cache, dy, kernel, need_dx=True, need_bias=True, gate_input=False, kept=None, need_kernel=True):
    """Gradients of :func:`forward` from ``dy`` (N, OHp, OWp, F), on the forward pass's blocks
    (``plan``: see :func:`glassnet.ops.conv.plan.for_backward`). ``cache`` holds the forward pass's padded
    input ``xp``, its results ``y`` and ``winner``, and whether it applied a ReLU (``relu``).

    ``gate_input`` multiplies the input gradient by ``xp > 0`` block by block (see
    :func:`glassnet.ops.conv2d_backward`); ``kept``: the forward pass's matrices, or None. Without
    ``need_kernel`` no block matrix is built (only the kernel gradient reads it).

    Returns
    -------
    dxp : ndarray, shape of ``xp``, or None when ``need_dx`` is False
    dkernel : ndarray, shape (KH, KW, C, F), or None when ``need_kernel`` is False
    dbias : ndarray, shape (F,), or None when ``need_bias`` is False
    """
    xp, y, winner, relu = cache.xp, cache.y, cache.winner, cache.relu
    C, F = kernel.shape[2:]
    (OHp, OWp), (PH, PW) = plan.pooled_hw, plan.window
    N, Hp, Wp = xp.shape[:3]
    G, dtype = PH * PW, np.result_type(dy, kernel)
    if need_dx:
        kernel_cells = _cell_kernel(window_kernel(kernel.astype(dtype, copy=False), plan.window), plan, C)
        # the input gradient in whole (PH, PW) cells: every cell a patch reaches, and all of xp
        A, B = cell_counts(plan.window, plan.patch)
        HB, WB = max(-(-Hp // PH), OHp + A - 1), max(-(-Wp // PW), OWp + B - 1)
        dx_cells = np.empty((N, HB * PH, WB * PW, C), dtype=dtype)     # every element is written

    def backward_block(block):
        images = block[0]
        R = (images.stop - images.start) * OHp * OWp
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
        dkernel_w = None
        if need_kernel:
            cols = _block_matrix(xp, block, plan, kernel.shape, kept, forward=False)
            dkernel_w = np.matmul(cols.T, routed)
        if need_dx:
            dcols = view(scratch_array("window_dcols", R * len(kernel_cells), dtype), (R, len(kernel_cells)))
            np.matmul(routed, kernel_cells.T, out=dcols)
            _add_cells(dcols, dx_cells[images], plan)
            if gate_input:                  # blocks of whole images: any rule may gate here
                gate_by_input(dx_cells[images, :Hp, :Wp], xp[images], gate_input)
        dbias = column_sums(pooled_dy.T) if need_bias else None        # last: it holds the GIL
        return dkernel_w, dbias

    dkernel_w, dbias = run_blocks(backward_block, plan.blocks, plan.threads, fold=add_parts)
    dkernel = fold_window_gradient(dkernel_w, kernel.shape, plan.window) if need_kernel else None
    dxp = None
    if need_dx:
        dxp = dx_cells if dx_cells.shape[1:3] == (Hp, Wp) else np.ascontiguousarray(dx_cells[:, :Hp, :Wp])
    return dxp, dkernel, dbias
