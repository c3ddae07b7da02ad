"""Convolution by im2col, block by block; the block loops here also serve the wide-row and the
dilated strategies, which differ only in how a block's matrix and the kernel's matrix are laid out.

Forward:   y[n, oh, ow, f] = sum_{i, j, c} xp[n, oh*sh + i*dh, ow*sw + j*dw, c] * kernel[i, j, c, f] + bias[f]
           = (cols @ K)[(n, oh, ow), f]  with one matrix row of ``cols`` per output pixel.
Backward:  dK = cols^T @ dy,  dbias = sum of dy over all pixels,
           dxp[n, oh*sh + i*dh, ow*sw + j*dw, :] += dy[n, oh, ow, :] @ kernel[i, j]^T  for every tap (i, j).

The input gradient is KH*KW small GEMMs whose (n, r, OW, C) results are added at shifted
positions as whole slabs: col2im would add KH*KW strided slices of one large matrix, C values
at a time. A :class:`MatrixLayout` says how a strategy lays out ``cols`` and ``K``; :func:`run_forward`
and :func:`run_backward` are the loops over the plan's blocks.
"""
from typing import Callable, NamedTuple

import numpy as np

from glassnet.ops import blas
from glassnet.ops.conv.blocks import (cols2d, gate_by_input, gates_in_blocks, input_rows, largest_block_rows,
                                      matmul_into)
from glassnet.ops.im2col import window_slices
from glassnet.ops.parallel import add_parts, run_blocks
from glassnet.ops.workspace import block_matrix, column_sums, recycled_array, scratch_array, view


class MatrixLayout(NamedTuple):
    """How a strategy of the im2col family lays out its GEMMs.

    build(block_input, out_hw, flat) : the block's matrix, built in the flat array ``flat``
    kernel_matrix : ndarray (rows of the matrix, pixels per row * F), the kernel as the GEMM's right operand
    fold(dK) : the (KH, KW, C, F) weight gradient from the gradient of ``kernel_matrix``
    taps : (dh, dw), the input distance between neighbouring kernel taps (the dilation)
    """
    build: Callable
    kernel_matrix: np.ndarray
    fold: Callable
    taps: tuple


def _block_matrix(plan, layout, xp, block, kernel_shape, dtype, kept, forward):
    """One block's matrix, built in scratch space or kept (see :func:`glassnet.ops.workspace.block_matrix`)."""
    images, rows = block
    span = (kernel_shape[0] - 1) * layout.taps[0] + 1
    block_input = xp[images, input_rows(rows, span, plan.stride[0])]
    out_hw = (rows.stop - rows.start, plan.out_hw[1])
    size = (images.stop - images.start) * out_hw[0] * plan.row_elements(kernel_shape)

    def build(flat):
        return layout.build(block_input, out_hw, scratch_array("cols", size, dtype) if flat is None else flat)
    return block_matrix(kept, block, size, dtype, build, forward)


def run_forward(plan, layout, xp, kernel, bias, relu, target, finish=None, kept=None):
    """The convolution (+ bias, + ReLU) of the padded input ``xp``, block by block.

    ``target(images, rows)`` gives the contiguous (n, r, OW, F) array a block's output goes to;
    ``finish(images, out)``, when given, is called with each finished block while it is in cache.
    ``kept`` (from :func:`glassnet.ops.conv.blocks.kept_matrices`, or None) receives the matrices.
    """
    F, OW = kernel.shape[3], plan.out_hw[1]
    dtype = np.result_type(xp, kernel)
    # the bias repeated along a whole output row: one add over OW*F values per row, not F at a time
    bias_row = None if bias is None else np.tile(bias.astype(dtype, copy=False), OW)

    def forward_block(block):
        images, rows = block
        cols = _block_matrix(plan, layout, xp, block, kernel.shape, dtype, kept, forward=True)
        out = target(images, rows)
        matmul_into(cols, layout.kernel_matrix, out)
        if bias_row is not None:
            out_rows = out.reshape(-1, OW * F)                 # a view
            out_rows += bias_row                               # while the block is still in cache
        if relu:
            np.maximum(out, 0, out=out)
        if finish is not None:
            finish(images, out)

    run_blocks(forward_block, plan.blocks, plan.threads)


def run_backward(plan, layout, xp, kernel, gradient, dtype, need_dx=True, need_bias=True, gate_input=False,
                 kept=None, need_kernel=True):
    """dkernel, dbias and the padded input gradient, block by block.

    ``gradient(images, rows, scratch)`` returns the gradient w.r.t. a block's output (after any
    ReLU gating), (n, r, OW, F): a view of a full array, or ``scratch`` filled in. With
    ``gate_input`` (True, or the ReLU rule: :func:`glassnet.ops.conv.blocks.gate_by_input`) the
    input gradient goes through the ReLU of ``xp`` as each block finishes (at the end where row
    blocks overlap and the rule is not the vanilla one). Without
    ``need_kernel`` (an explanation: forward and backward to the input only) no block matrix is
    built: the input gradient reads only the output gradient and the kernel.

    Returns
    -------
    dxp : ndarray, shape of ``xp``, or None when ``need_dx`` is False
    dkernel : ndarray, shape (KH, KW, C, F), or None when ``need_kernel`` is False
    dbias : ndarray, shape (F,), or None when ``need_bias`` is False
    """
    KH, KW, C, F = kernel.shape
    (OH, OW), stride, (dh, dw), threads = plan.out_hw, plan.stride, layout.taps, plan.threads
    span = (KH - 1) * dh + 1
    part_size = largest_block_rows(plan.blocks) * OW * C
    dxp = recycled_array("im2col_dx", xp.shape, dtype) if need_dx else None
    if need_dx:
        dxp.fill(0)
        kernel_t = np.ascontiguousarray(kernel.transpose(0, 1, 3, 2))      # (KH, KW, F, C)
        if plan.blocks[0][1].stop - plan.blocks[0][1].start < OH:
            threads = 1          # row blocks of one image add into overlapping input rows
    gate_now = gate_input and gates_in_blocks(gate_input, plan.blocks, OH)

    def backward_block(block):
        """This block's shares of dK and dbias; adds its input gradient into dxp."""
        images, rows = block
        n, r = images.stop - images.start, rows.stop - rows.start
        in_rows = input_rows(rows, span, stride[0])
        dy2d = gradient(images, rows, view(scratch_array("dy_block", n * r * OW * F, dtype), (n, r, OW, F)))
        dy2d = dy2d.reshape(n * r * OW, F)
        if need_dx:
            part = view(scratch_array("dx_part", part_size, dtype), (n, r, OW, C))
            target = dxp[images, in_rows]
            for i in range(KH):
                for j in range(KW):
                    np.matmul(dy2d, kernel_t[i, j], out=part.reshape(-1, C))
                    seen_rows, seen_cols = window_slices(i * dh, j * dw, stride, r, OW)
                    target[:, seen_rows, seen_cols] += part
            if gate_now:
                gate_by_input(target, xp[images, in_rows], gate_input)
        dkernel_matrix = None
        if need_kernel:
            cols = _block_matrix(plan, layout, xp, block, kernel.shape, dtype, kept, forward=False)
            dy_rows = dy2d.reshape(len(cols), -1)              # as many output pixels per row as the matrix
            dkernel_matrix = blas.gemm_tall(cols, dy_rows, np.empty((cols.shape[1], dy_rows.shape[1]), dtype=dtype))
        dbias = column_sums(dy2d, dtype) if need_bias else None        # last: it holds the GIL
        return dkernel_matrix, dbias

    dkernel_matrix, dbias = run_blocks(backward_block, plan.blocks, threads, fold=add_parts)
    if need_dx and gate_input and not gate_now:
        gate_by_input(dxp, xp, gate_input)
    return dxp, (layout.fold(dkernel_matrix).reshape(kernel.shape) if need_kernel else None), dbias


def _layout(plan, kernel):
    """Plain im2col: one row of (KH, KW, C) values per output pixel, the kernel as a (KH*KW*C, F) matrix."""
    KH, KW, C, F = kernel.shape

    def build(block_input, out_hw, flat):
        return cols2d(block_input, (KH, KW), plan.stride, out_hw, flat)
    return MatrixLayout(build, kernel.reshape(KH * KW * C, F), lambda dkernel: dkernel, (1, 1))


def matrix_strategy(layout):
    """``forward`` and ``backward`` of a convolution strategy given by its ``layout(plan, kernel)``
    (a :class:`MatrixLayout`): :func:`run_forward` and :func:`run_backward` on that layout."""
    def forward(plan, xp, kernel, bias, relu, target, finish=None, kept=None):
        run_forward(plan, layout(plan, kernel), xp, kernel, bias, relu, target, finish, kept)

    def backward(plan, xp, kernel, gradient, dtype, need_dx=True, need_bias=True, gate_input=False, kept=None,
                 need_kernel=True):
        return run_backward(plan, layout(plan, kernel), xp, kernel, gradient, dtype, need_dx, need_bias,
                            gate_input, kept, need_kernel)
    return forward, backward


#: the convolution by plain im2col
forward, backward = matrix_strategy(_layout)
