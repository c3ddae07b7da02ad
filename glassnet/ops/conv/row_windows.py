"""Convolution by row windows: im2col along the width only, one accumulating GEMM per kernel row
(stride 1 down the rows) or per group of kernel rows (a row stride > 1), several channels.

For a stride of 1 along the height, write ``xw[n, h, ow] = xp[n, h, ow*sw : ow*sw + KW, :]``
(the KW * C values a kernel row sees; ``xw`` is KW times the input, where full im2col is
KH * KW times). With ``K3[i] = kernel[i].reshape(KW * C, F)``:

    y[n, oh, ow]  = sum_i xw[n, oh + i, ow] @ K3[i]
    dK3[i]        = sum_{n, oh, ow} xw[n, oh + i, ow]^T dy[n, oh, ow]
    dxw[n, h, ow] = sum_i dy[n, h - i, ow] @ K3[i]^T,   dxp[n, h, ow*sw + j] += dxw[n, h, ow, j]

Flattened to rows ``r = (n * Hp + h) * OW + ow``, "``oh + i``" is the row ``r + i * OW``: every
term is one GEMM over a shifted slice of the same matrix, summed in place by BLAS (``beta = 1``,
:func:`glassnet.ops.blas.gemm`). The GEMMs run over a block of images at once, on the full
``(Hp, OW)`` frame of each image: the last KH - 1 rows of each image's frame are dropped (forward)
or hold zeros in ``dy`` (backward), so a shifted slice never mixes two images' valid rows; the cost
of the frame is Hp / OH more GEMM rows. Large images (the plan's ``per_image``) run the forward
GEMMs per image instead, straight into ``y``.

A row stride ``sh`` > 1 (e.g. a 3x3 kernel with stride 2) takes the rows of each image in phases:
``xw2[n, q, ow, p] = xw[n, q * sh + p, ow]`` (``Hq = ceil(Hp / sh)`` rows per phase, a missing last row
zero), one matrix row of ``sh * KW * C`` values per (n, q, ow). Output row ``oh`` reads input rows
``sh * oh + i = sh * (oh + a) + p`` for kernel row ``i = a * sh + p``, so the kernel rows with the same
``a`` form one group: one GEMM of the group's leading ``P_a * KW * C`` columns of ``xw2``, shifted by
``a * OW`` rows, against the group's ``(P_a * KW * C, F)`` stack of kernel rows. Stride 1 is the case
``sh = 1`` (one kernel row per group). The frame then has ``Hq`` rows per image for ``OH`` outputs.

The input gradient alone (an explanation: no kernel gradient, stride 1), and a training pass on few
channels (the plan's ``shifted_dx``), skip ``dxw`` and its col2im: with ``dy`` on the full (Hp, Wp)
frame of each image (zeros beyond (OH, OW)), the padded input's row ``r = (n * Hp + h) * Wp + w`` reads
output row ``r - i * Wp - j`` for tap (i, j), so

    dxp = sum_{i, j} shift_{i * Wp + j}(dy) @ kernel[i, j]^T

is KH * KW accumulating GEMMs straight into ``dxp`` (a shift that leaves the image, or the valid
columns, lands on the frame's zeros). Wp / OW more GEMM rows, no scatter: 1.8x faster for
keras_mnist's 32 -> 64 channel layer (16-image blocks, one thread).
"""
import numpy as np

from glassnet.ops import blas
from glassnet.ops.conv.blocks import gate_by_input
from glassnet.ops.parallel import add_parts, run_blocks
from glassnet.ops.workspace import block_matrix, column_sums, recycled_empty, scratch_array, view


def phase_rows(Hp, sh):
    """``Hq``, the rows of each of the ``sh`` row phases of an image of ``Hp`` padded rows."""
    return -(-Hp // sh)


def _row_windows(xp, KW, stride, OW, flat=None):
    """``xw2`` of a block as a 2-D (n * Hq * OW, sh * KW * C) matrix (see the module notes), in the flat
    array ``flat`` (or a scratch array)."""
    n, Hp, _, C = xp.shape
    (sh, sw), Hq = stride, phase_rows(Hp, stride[0])
    windows = np.lib.stride_tricks.sliding_window_view(xp, KW, axis=2)[:, :, ::sw][:, :, :OW]
    flat = scratch_array("rows_x", n * Hq * OW * sh * KW * C, xp.dtype) if flat is None else flat
    xw = view(flat, (n, Hq, OW, sh, KW, C))
    for p in range(sh):
        rows = windows[:, p::sh].transpose(0, 1, 2, 4, 3)           # (n, rows of phase p, OW, KW, C)
        xw[:, :rows.shape[1], :, p] = rows
        xw[:, rows.shape[1]:, :, p] = 0                              # finite: the kernel gradient reads it
    return xw.reshape(-1, sh * KW * C)


def _block_windows(xp, block, KW, stride, OW, kept, forward):
    """The row windows of one block (see :func:`glassnet.ops.workspace.block_matrix`)."""
    block_input = xp[block[0]]
    n, Hp, _, C = block_input.shape
    size = n * phase_rows(Hp, stride[0]) * stride[0] * OW * KW * C
    return block_matrix(kept, block, size, xp.dtype, lambda flat: _row_windows(block_input, KW, stride, OW, flat),
                        forward)


def _row_groups(kernel, sh, dtype):
    """The kernel rows grouped by the phase shift ``a = i // sh`` they read at: a list of contiguous
    ``(P_a * KW * C, F)`` stacks of kernel rows ``a * sh .. a * sh + P_a - 1`` (see the module notes)."""
    KH, KW, C, F = kernel.shape
    return [np.ascontiguousarray(kernel[a:a + sh].reshape(-1, F), dtype=dtype) for a in range(0, KH, sh)]


def _scatter_columns(dxw, target, sw):
    """``target[:, :, w] = sum of dxw[:, :, ow, j] over ow * sw + j == w``: col2im along the width
    (overwrites ``target``, (n, Hp, Wp, C)).

    With stride 1, every kernel column reaches the columns KW - 1 .. OW - 1: there the first two
    shares are added straight into ``target`` and the rest added on (one pass fewer over the
    block than a copy followed by KW - 1 adds, summed in the same order). The KW - 1 columns at
    either edge get the shares that reach them one column at a time.
    """
    OW, KW = dxw.shape[2:4]
    if sw != 1 or KW < 2 or OW < KW:
        target[...] = 0
        for j in range(KW):
            target[:, :, j:j + sw * (OW - 1) + 1:sw] += dxw[:, :, :, j]
        return
    share = [dxw[:, :, :, j] for j in range(KW)]             # share[j][:, :, ow] goes to column ow + j
    inner = target[:, :, KW - 1:OW]
    np.add(share[0][:, :, KW - 1:], share[1][:, :, KW - 2:OW - 1], out=inner)
    for j in range(2, KW):
        inner += share[j][:, :, KW - 1 - j:OW - j]
    for w in [*range(KW - 1), *range(OW, OW + KW - 1)]:
        reaching = [j for j in range(KW) if 0 <= w - j < OW]
        target[:, :, w] = share[reaching[0]][:, :, w - reaching[0]]
        for j in reaching[1:]:
            target[:, :, w] += share[j][:, :, w - j]


def _shifted_input_gradient(frame, taps_t, out, Wp):
    """``out = sum_{i, j} frame[r - i * Wp - j] @ taps_t[i, j]`` over the rows r of ``out`` (a block's
    padded input gradient, (n * Hp * Wp, C)) from ``dy`` on the (Hp, Wp) frame (n * Hp * Wp, F).
    Tap (0, 0) comes first and writes every row; the others add onto the rows their shift reaches."""
    KH, KW = taps_t.shape[:2]
    rows = len(out)
    for i in range(KH):
        for j in range(KW):
            shift = i * Wp + j
            blas.gemm(frame[:rows - shift], taps_t[i, j], out[shift:], accumulate=shift > 0)


def _scattered_input_gradient(frame, groups_t, target, OW, stride, KW):
    """``target`` (a block's padded input gradient, (n, Hp, Wp, C), overwritten) from ``dy`` on the
    (Hq, OW) ``frame`` (rows, F): ``dxw2 = sum_a shift_{a * OW}(frame) @ groups_t[a]``, the gradient of
    the row windows (one wide GEMM per group of kernel rows), then each row phase's windows added into
    its input rows (col2im along the width)."""
    n, Hp, _, C = target.shape
    sh, sw = stride
    rows, width = len(frame), sh * KW * C
    # the row-window scratch array: when xw was built there (not kept), it is used up
    dxw = view(scratch_array("rows_x", rows * width, frame.dtype), (rows, width))
    if groups_t[0].shape[1] < width:           # a kernel shorter than the stride: some phases get nothing
        dxw[...] = 0
    for a, stack_t in enumerate(groups_t):
        blas.gemm(frame[:rows - a * OW], stack_t, dxw[a * OW:, :stack_t.shape[1]], accumulate=a > 0 or
                  groups_t[0].shape[1] < width)
    phases = dxw.reshape(n, -1, OW, sh, KW, C)
    for p in range(sh):
        target_rows = target[:, p::sh]
        _scatter_columns(phases[:, :target_rows.shape[1], :, p], target_rows, sw)


def _wide_frame(frame, Wp, dtype):
    """The output gradient on the (Hp, OW) ``frame`` (n, Hp, OW, F) copied onto an (Hp, Wp) frame whose
    extra columns hold zeros (a scratch array): the shifted input gradient's operand."""
    n, Hp, OW, F = frame.shape
    wide = view(scratch_array("rows_dy_wide", n * Hp * Wp * F, dtype), (n, Hp, Wp, F))
    wide[:, :, OW:] = 0
    wide[:, :, :OW] = frame
    return wide


def _accumulate_rows(xw, groups, out, OW):
    """``out = sum_a xw[a*OW : a*OW + len(out), :K_a] @ groups[a]``: one accumulating GEMM per group of
    kernel rows (K_a the group's rows)."""
    for a, stack in enumerate(groups):
        blas.gemm(xw[a * OW:a * OW + len(out), :len(stack)], stack, out, accumulate=a > 0)


def forward(plan, xp, kernel, bias, relu, target, finish=None, kept=None):
    """The convolution (+ bias, + ReLU) of ``xp`` (N, Hp, Wp, C), block by block.

    ``target(images, rows)`` gives the contiguous (n, OH, OW, F) array a block's output goes to (a
    view of the layer's output, or a scratch array); ``finish(images, out)``, when given, is called
    with the finished block, shape (n, OH, OW * F), while it is still in cache (a fused max pooling
    reads it there). ``kept``: see :func:`glassnet.ops.conv.blocks.kept_matrices`.
    """
    KH, KW, C, F = kernel.shape
    (OH, OW), stride = plan.out_hw, plan.stride
    Hq = phase_rows(xp.shape[1], stride[0])
    groups = _row_groups(kernel, stride[0], xp.dtype)
    bias_row = None if bias is None else np.tile(bias.astype(xp.dtype, copy=False), OW)

    def forward_block(block):
        images = block[0]
        xw = _block_windows(xp, block, KW, stride, OW, kept, forward=True)
        out = target(images, slice(0, OH)).reshape(-1, OH, OW * F)
        if plan.per_image:
            if bias_row is not None:
                out[...] = bias_row                  # the GEMMs add onto the bias: no pass of its own
            images_rows, out_rows = xw.reshape(-1, Hq * OW, xw.shape[1]), out.reshape(-1, OH * OW, F)
            for a, stack in enumerate(groups):       # each group of kernel rows: one batched call over the images
                blas.gemm_batch(images_rows[:, a * OW:a * OW + OH * OW, :len(stack)], stack, out_rows,
                                accumulate=bias_row is not None or a > 0)
        else:
            # the whole block in one frame of Hq rows per image; its last rows per image, which mix
            # two images, are never read
            frame = view(scratch_array("rows_y", len(xw) * F, xp.dtype), (len(xw), F))
            _accumulate_rows(xw, groups, frame[:len(xw) - (len(groups) - 1) * OW], OW)
            valid = frame.reshape(-1, Hq, OW * F)[:, :OH]
            if bias_row is None:
                out[...] = valid
            else:
                np.add(valid, bias_row, out=out)
        if relu:
            np.maximum(out, 0, out=out)
        if finish is not None:
            finish(images, out)

    run_blocks(forward_block, plan.blocks, plan.threads)


def backward(plan, xp, kernel, gradient, dtype, need_dx=True, need_bias=True, gate_input=False, kept=None,
             need_kernel=True):
    """Gradients of the row-window convolution, the input gradient multiplied by ``xp > 0`` with
    ``gate_input`` (see :func:`glassnet.ops.conv.im2col.run_backward`). Without ``need_kernel`` the
    row windows of the input are never built (only the kernel gradient reads them).

    ``gradient(images, rows, scratch)`` returns the gradient w.r.t. the output of those images
    (after any ReLU gating), shape (n, OH, OW, F): ``scratch`` filled in (a view of the frame the
    GEMMs read, so no copy is needed), or an array that is then copied into the frame.

    Returns
    -------
    dxp : ndarray, shape of ``xp`` (every element written), or None when ``need_dx`` is False
    dkernel : ndarray, shape (KH, KW, C, F), or None when ``need_kernel`` is False
    dbias : ndarray, shape (F,), or None when ``need_bias`` is False
    """
    KH, KW, C, F = kernel.shape
    OH, OW = plan.out_hw
    Hp, Wp, (sh, sw) = xp.shape[1], xp.shape[2], plan.stride
    Hq = phase_rows(Hp, sh)
    dxp = recycled_empty("row_windows_dx", xp.shape, dtype) if need_dx else None
    # the input gradient by shifted GEMMs straight into dxp (see the module notes): always for the input
    # gradient alone, in training where the plan says so; stride 1 only
    shifted = (need_dx and (not need_kernel or plan.shifted_dx) and sh == sw == 1 and dxp.dtype == xp.dtype)
    width = Wp if shifted and not need_kernel else OW    # the shifted GEMMs' frame, or the row windows'
    dtype = xp.dtype                     # the GEMMs run in the input's dtype (the plan's condition)
    groups = _row_groups(kernel, sh, dtype)
    groups_t = [np.ascontiguousarray(stack.T) for stack in groups]              # (F, P_a * KW * C)
    taps_t = np.ascontiguousarray(kernel.transpose(0, 1, 3, 2), dtype=dtype) if shifted else None   # (KH, KW, F, C)

    def backward_block(block):
        images = block[0]
        n = images.stop - images.start
        rows = n * Hq * width
        # dy on the (Hq, width) frame: the extra rows of each image (and any extra columns) stay zero
        frame = view(scratch_array("rows_dy", rows * F, dtype), (n, Hq, width, F))
        frame[:, OH:] = 0
        frame[:, :OH, OW:] = 0
        valid = frame[:, :OH, :OW]
        block_gradient = gradient(images, slice(0, OH), valid)
        if block_gradient is not valid:
            valid[...] = block_gradient
        wide = _wide_frame(frame, Wp, dtype) if shifted and width != Wp else frame
        frame = frame.reshape(rows, F)
        dk3 = None
        if need_kernel:
            xw = _block_windows(xp, block, KW, plan.stride, OW, kept, forward=False)
            dk3 = np.empty((KH * KW * C, F), dtype=dtype)
            for a, stack in enumerate(groups):
                first = a * sh * KW * C
                blas.gemm_tall(xw[a * OW:, :len(stack)], frame[:rows - a * OW], dk3[first:first + len(stack)])
        if shifted:
            _shifted_input_gradient(wide.reshape(-1, F), taps_t, dxp[images].reshape(-1, C), Wp)
        elif dxp is not None:
            _scattered_input_gradient(frame, groups_t, dxp[images], OW, plan.stride, KW)
        if dxp is not None:
            if gate_input:                  # blocks of whole images: any rule may gate here
                gate_by_input(dxp[images], xp[images], gate_input)
        dbias = column_sums(frame, dtype) if need_bias else None       # last: it holds the GIL
        return dk3, dbias

    dk3, dbias = run_blocks(backward_block, plan.blocks, plan.threads, fold=add_parts)
    return dxp, (dk3.reshape(kernel.shape) if need_kernel else None), dbias
