"""2-D convolution (cross-correlation, as in every deep-learning library) on NHWC tensors.

Forward:   y[n, oh, ow, f] = sum_{i, j, c} xp[n, oh*sh + i, ow*sw + j, c] * kernel[i, j, c, f] + bias[f]
With cols = im2col(xp) reshaped to (N*OH*OW, KH*KW*C) this is ``cols @ kernel2d + bias``.
Backward:  dkernel2d = cols.T @ dy2d,  dbias = sum(dy2d, axis=0),
           dxp[n, oh*sh + i, ow*sw + j, :] += dy[n, oh, ow, :] @ kernel[i, j].T  for every offset (i, j),
           dx = unpad(dxp)  (the same sum as col2im(dy2d @ kernel2d.T), grouped by offset).

The im2col matrix is KH*KW times larger than the input, so it is never built for the whole batch:
both passes walk the batch in *blocks* of a few images (or, for a huge image, a few output rows),
whose im2col matrix fits in the CPU cache (:data:`BLOCK_BYTES`) and never exceeds
``glassnet.ops.MEMORY_BUDGET_BYTES``. A training forward pass keeps its blocks' matrices for the
backward pass when all of them are small (:data:`KEEP_MATRIX_BYTES`); otherwise the backward
pass rebuilds each block's matrix from the cached input: a cheap copy that stays in cache,
against a large buffer written to memory and read back.

Where the stride down the rows is 1 and there are several input channels, the row-window method
of :mod:`glassnet.ops.conv_rows` (im2col along the width only, one accumulating GEMM per kernel
row) replaces im2col. :func:`conv_plan` picks the method; :func:`forward_blocks` and
:func:`backward_blocks` run either one, with hooks for where each block's output goes and where
its output gradient comes from, which :mod:`glassnet.ops.conv_pool` uses to fuse a max pooling.
"""
from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

import glassnet.ops as _ops
from glassnet.ops import blas, conv_rows, conv_wide
from glassnet.ops.conv_rows import add_shares, gate_by_input
from glassnet.ops.im2col import im2col, window_slices
from glassnet.ops.padding import pad2d, unpad2d
from glassnet.ops.parallel import num_threads, run_blocks
from glassnet.ops.workspace import clear_workspace  # noqa: F401  (re-exported)
from glassnet.ops.workspace import block_matrix, column_sums, recycled_empty, scratch_array as _scratch, view as _view

#: Preferred size of one block's im2col matrix: a few MiB keeps it in cache between the copy
#: that builds it and the GEMM that reads it (measured fastest between 2 and 8 MiB).
BLOCK_BYTES = 4 * 2 ** 20

#: Least work (FLOPs) of a block of whole images, when the memory budget allows: measured on
#: LeNet-5's 28x28 layers, where 4 MiB blocks are ~30 images and the blocks' Python, contending
#: for the GIL across threads, cost 10% of a 2-thread training step.
MIN_BLOCK_FLOPS = 16_000_000

#: Least work (FLOPs) for each thread before a convolution is split between threads (blocks of
#: whole images): below it, handing blocks to a second thread cost more than it saved. LeNet-5 at
#: batch 32 and 2 threads: 5,350 img/s splitting every layer, 5,770 with 4 MFLOP here, 7,770 with
#: 16 MFLOP; the tiny model at batch 128 lost 4% (6 MFLOP per thread, no longer split).
MIN_THREAD_FLOPS = 16_000_000

#: ... or least bytes of im2col matrix and output per thread: a convolution with few FLOPs but
#: large arrays (the tiny model's 3x3, 1 -> 8 channels at batch 128: 6 MFLOP but 2.9 MB per
#: thread) is bound by its copies and pooling, which two threads do in less time (its 2-thread
#: training step: 16% faster split). With the pooling-window method
#: (:mod:`glassnet.ops.conv_pool_windows`) the tiny model has 2.1 MB per thread, and 1 MiB here
#: made its step 6% faster; LeNet-5 at batch 32 and 128 did not change (2 MiB had been 14% faster
#: than 1 for LeNet-5 at batch 32 before that method).
MIN_THREAD_BYTES = 2 ** 20

#: A training forward pass keeps its blocks' im2col (or row-window) matrices for the backward pass,
#: which would otherwise build them again, when all of them together take at most this many bytes
#: (per layer, held by the layer between steps), and within ``MEMORY_BUDGET_BYTES``. Measured
#: (2-thread training steps): LeNet-5 11% and the tiny model 10% faster (their first layers' 10 and
#: 3 MB); keras_mnist's second layer (31 MB) made its step 5% slower kept: writing that much to
#: memory, rather than to a block-sized scratch array that stays in cache, cost more than the rebuild.
KEEP_MATRIX_BYTES = 16 * 2 ** 20


def conv_blocks(N, OH, row_bytes, threads=1, image_flops=0, image_out_bytes=0, held_row_bytes=None):
    """Split the output ``(N, OH)`` into blocks whose im2col matrices fit the memory budget.

    Parameters
    ----------
    N, OH : int
        Batch size and output height.
    row_bytes : int
        Bytes of one output row's im2col matrix (OW * KH * KW * C * itemsize).
    threads : int
        Blocks processed at once: each gets ``1 / threads`` of the budget, and whole-image
        blocks come in a multiple of ``threads`` when the batch allows, to keep every thread busy.
    image_flops : int
        Work of one image. Blocks of whole images hold :data:`BLOCK_BYTES` of im2col matrix, or
        :data:`MIN_BLOCK_FLOPS` of work if that is more (within the memory budget): each block
        costs some Python, which small images would not pay back.
    image_out_bytes : int
        Bytes of one image's output (with ``image_flops``, what decides whether the threads share
        the work: :data:`MIN_THREAD_FLOPS`, :data:`MIN_THREAD_BYTES`).
    held_row_bytes : int, optional
        Bytes per output row of all the block-sized arrays a block holds at once, when more than
        its matrix (default ``row_bytes``): they, not just the matrix, must fit the memory budget.

    Returns
    -------
    list of (slice, slice)
        (images, output rows). Whole images when one fits, in blocks of equal size (to within
        one image), else rows of one image; at least one output row per block, whatever the budget.
    """
    budget = max(1, _ops.MEMORY_BUDGET_BYTES // threads)
    limit = max(1, min(BLOCK_BYTES, budget))
    held_row_bytes = max(row_bytes, held_row_bytes or 0)
    image_bytes, image_held = OH * row_bytes, OH * held_row_bytes
    if image_bytes <= limit and image_held <= budget:
        per_block = max(limit // image_bytes, -(-MIN_BLOCK_FLOPS // max(1, image_flops)))
        per_block = min(per_block, budget // image_held)
        count = -(-N // max(1, per_block))                         # fewest blocks that fit
        enough = N * image_flops >= threads * MIN_THREAD_FLOPS
        if enough or N * (image_bytes + image_out_bytes) >= threads * MIN_THREAD_BYTES:
            count = min(N, -(-count // threads) * threads)         # ... in a multiple of threads, when
                                                                   # each thread gets enough work
        step = -(-N // count)
        return [(slice(s, min(s + step, N)), slice(0, OH)) for s in range(0, N, step)]
    step = max(1, min(limit // row_bytes, budget // held_row_bytes))
    return [(slice(n, n + 1), slice(r, min(r + step, OH))) for n in range(N) for r in range(0, OH, step)]


def _input_rows(rows, KH, sh):
    """Rows of the padded input that output rows ``rows`` read."""
    return slice(rows.start * sh, (rows.stop - 1) * sh + KH)


def _block_rows(blocks):
    """Output rows (images x rows) of the largest block."""
    return max((images.stop - images.start) * (rows.stop - rows.start) for images, rows in blocks)


def _block_cols(xp, block, kernel_shape, stride, OW, G, dtype, kept, forward):
    """The im2col matrix of one block of ``xp`` (see :func:`cols2d`, :func:`conv_wide.wide_cols`
    for ``G`` > 1, :func:`block_matrix`)."""
    images, rows = block
    kernel_size = kernel_shape[:2]
    block_input = xp[images, _input_rows(rows, kernel_size[0], stride[0])]
    out_hw = (rows.stop - rows.start, OW)
    size = (images.stop - images.start) * out_hw[0] * _row_elements(kernel_shape, OW, G)

    def build(flat):
        flat = _scratch("cols", size, dtype) if flat is None else flat
        if G > 1:
            return conv_wide.wide_cols(block_input, kernel_size, G, out_hw, flat)
        return cols2d(block_input, kernel_size, stride, out_hw, flat)
    return block_matrix(kept, block, size, dtype, build, forward)


def cols2d(xp, kernel_size, stride, out_hw, scratch):
    """The im2col matrix of one block as a 2-D (N*OH*OW, KH*KW*C) array, ready for the GEMMs.

    A single-channel input (a grayscale first layer) would give im2col rows of KH*KW scattered
    single values, a slow copy; there the matrix is built transposed instead, a contiguous
    (N, OH, OW) slab per kernel offset, and handed to the GEMMs as a transposed view. All slabs
    come from one copy of a window view: KH*KW copies of small slabs ran 2.5x slower on two
    threads than on one, each call handing the GIL to the other thread.
    """
    N, C = xp.shape[0], xp.shape[3]
    (KH, KW), (OH, OW) = kernel_size, out_hw
    if C > 1:
        cols = im2col(xp, kernel_size, stride, out=_view(scratch, (N, OH, OW, KH, KW, C)))
        return cols.reshape(N * OH * OW, KH * KW * C)
    cols_t = _view(scratch, (KH, KW, N, OH, OW))
    windows = sliding_window_view(xp[..., 0], (KH, KW), axis=(1, 2))[:, ::stride[0], ::stride[1]][:, :OH, :OW]
    np.copyto(cols_t, windows.transpose(3, 4, 0, 1, 2))
    return cols_t.reshape(KH * KW, N * OH * OW).T


def _matmul_into(a, b, out):
    """``out[...] = a @ b`` with ``out`` of shape (..., b.shape[1]); no temporary when ``out`` is contiguous."""
    if out.flags.c_contiguous:
        np.matmul(a, b, out=out.reshape(-1, b.shape[1]))
    else:
        out[...] = (a @ b).reshape(out.shape)


class ConvPlan(NamedTuple):
    """How a convolution runs: ``method`` "rows" (:mod:`glassnet.ops.conv_rows`) or "im2col",
    the blocks of :func:`conv_blocks`, the number of threads, the output's (OH, OW), and for
    im2col the output pixels per matrix row (``group`` > 1: :mod:`glassnet.ops.conv_wide`)."""
    method: str
    blocks: list
    threads: int
    out_hw: tuple
    group: int = 1

    def matrix_layout(self):
        """What decides the block matrices besides the shapes and dtype (not the thread count)."""
        return (self.method, self.group, self.blocks)

    def image_elements(self, padded_shape, kernel_shape):
        """Elements of one image's block matrix: the row windows of all Hp rows, or the im2col rows."""
        if self.method == "rows":
            return padded_shape[1] * self.out_hw[1] * kernel_shape[1] * kernel_shape[2]
        return self.out_hw[0] * _row_elements(kernel_shape, self.out_hw[1], self.group)


def conv_plan(padded_shape, input_dtype, kernel_shape, stride, dtype, whole_images=False):
    """The :class:`ConvPlan` for a padded input of ``padded_shape`` and ``input_dtype``.

    The row-window method where it applies, else im2col. With ``whole_images``, None when the
    blocks would have to split an image (an image whose im2col matrix exceeds the memory budget).
    Only shapes are needed, so a caller can plan before padding anything.
    """
    KH, KW, C, F = kernel_shape
    N, Hp, Wp, _ = padded_shape
    OH, OW = (Hp - KH) // stride[0] + 1, (Wp - KW) // stride[1] + 1
    threads = num_threads(N * OH * OW * KH * KW * C * dtype.itemsize)
    rows = _row_window_blocks(padded_shape, kernel_shape, stride, OW, dtype, threads)
    if rows is not None and input_dtype == dtype:
        return ConvPlan("rows", rows, threads, (OH, OW))
    G = conv_wide.group(kernel_shape, stride, OW)
    blocks = conv_blocks(N, OH, _row_elements(kernel_shape, OW, G) * dtype.itemsize, threads,
                         image_flops=2 * OH * OW * KH * KW * C * F, image_out_bytes=OH * OW * F * dtype.itemsize)
    if whole_images and _block_rows(blocks) < OH:
        return None
    return ConvPlan("im2col", blocks, threads, (OH, OW), G)


def _row_elements(kernel_shape, OW, group):
    """Elements of one output row's im2col matrix (plain, or wide: :mod:`glassnet.ops.conv_wide`)."""
    KH, KW, C, _ = kernel_shape
    return conv_wide.row_elements(kernel_shape, OW, group) if group > 1 else OW * KH * KW * C


def _layout(plan, padded_shape, kernel_shape, dtype):
    """What decides the block matrices of a convolution: the plan's layout, shapes and dtype."""
    return (type(plan).__name__, plan.matrix_layout(), tuple(padded_shape), tuple(kernel_shape), np.dtype(dtype))


def kept_matrices(storage, plan, padded_shape, kernel_shape, dtype):
    """``storage`` (a dict kept between training steps, or None) ready to keep this forward pass's
    block matrices (see :data:`KEEP_MATRIX_BYTES`, :func:`glassnet.ops.workspace.block_matrix`),
    or None when they would take more (``storage`` is then emptied). The pass is marked with a
    fresh token: see :func:`kept_reference`."""
    if storage is None:
        return None
    total = padded_shape[0] * plan.image_elements(padded_shape, kernel_shape) * np.dtype(dtype).itemsize
    if total > min(KEEP_MATRIX_BYTES, _ops.MEMORY_BUDGET_BYTES):
        storage.clear()
        return None
    layout = _layout(plan, padded_shape, kernel_shape, dtype)
    if storage.get("layout") != layout:          # other blocks or shapes: nothing held fits
        storage.clear()
        storage["layout"] = layout
    storage["pass"] = object()
    return storage


def kept_reference(kept):
    """What a forward pass's cache holds of its kept matrices: (storage, the pass's token), or None."""
    return None if kept is None else (kept, kept["pass"])


def kept_for_backward(reference, plan, padded_shape, kernel_shape, dtype):
    """The kept matrices a backward pass may use: those of its own forward pass (the storage still
    holds that pass: no later forward pass has rewritten it) laid out as its own plan lays them
    out (the same blocks and dtype); else None, and the backward pass builds its matrices."""
    if reference is None:
        return None
    storage, token = reference
    same = storage.get("pass") is token and storage.get("layout") == _layout(plan, padded_shape, kernel_shape, dtype)
    return storage if same else None


def forward_blocks(xp, kernel, bias, stride, relu, dtype, plan, target, finish=None, kept=None):
    """Run the convolution (+ bias, + ReLU) of the padded input ``xp`` block by block.

    ``target(images, rows)`` gives the contiguous (n, r, OW, F) array a block's output is written
    to; ``finish(images, out)``, when given, is called with each finished block while it is in cache.
    ``kept`` (a dict from :func:`kept_matrices`, or None) receives the blocks' matrices for
    :func:`backward_blocks`.
    """
    method, blocks, threads, out_hw, G = plan
    KH, KW, C, F = kernel.shape
    OW = out_hw[1]
    if method == "rows":
        conv_rows.forward(xp, kernel, bias, stride, relu, out_hw, blocks, threads, target, finish, kept)
        return
    kernel2d = conv_wide.window_kernel(kernel, (1, G)) if G > 1 else kernel.reshape(KH * KW * C, F)
    # The bias repeated along a whole output row: adding it row by row runs over OW*F values at a
    # time instead of F (NumPy's inner loop is the broadcast axis; F may be as small as 6).
    bias_row = None if bias is None else np.tile(bias.astype(dtype, copy=False), OW)

    def forward_block(block):
        images, rows = block
        cols = _block_cols(xp, block, kernel.shape, stride, OW, G, dtype, kept, forward=True)
        out = target(images, rows)
        _matmul_into(cols, kernel2d, out)
        if bias_row is not None:
            out_rows = out.reshape(-1, OW * F)                 # a view
            out_rows += bias_row                               # while the block is still in cache
        if relu:
            np.maximum(out, 0, out=out)
        if finish is not None:
            finish(images, out)

    run_blocks(forward_block, blocks, threads)


def conv2d_forward(x, kernel, bias, stride, pads, relu=False, keep=None):
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
        Storage (kept by the caller between training steps) in which to keep the im2col matrices
        for the backward pass, when they fit :data:`KEEP_MATRIX_BYTES`; the cache refers to it.

    Returns
    -------
    y : ndarray, shape (N, OH, OW, F)
    cache : tuple
        What :func:`conv2d_backward` needs: the padded input (a reference to ``x`` itself when
        there is no padding, so ``x`` must not be modified before the backward pass), stride, pads,
        the kept matrices (or None).
    """
    xp = pad2d(x, pads)
    dtype = np.result_type(x, kernel)
    plan = conv_plan(xp.shape, xp.dtype, kernel.shape, stride, dtype)
    kept = kept_matrices(keep, plan, xp.shape, kernel.shape, dtype)
    y = np.empty((x.shape[0],) + plan.out_hw + (kernel.shape[3],), dtype=dtype)
    forward_blocks(xp, kernel, bias, stride, relu, dtype, plan, target=lambda images, rows: y[images, rows], kept=kept)
    return y, (xp, stride, pads, kept_reference(kept))


def backward_blocks(gradient, xp, kernel, stride, need_dx, need_bias, dtype, plan, gate_input=False, kept=None):
    """dkernel, dbias and the padded input gradient of a convolution, block by block.

    ``gradient(images, rows, scratch)`` returns the gradient w.r.t. the output of a block (after
    any ReLU gating), shape (n, r, OW, F): a view of a full array, or ``scratch`` filled in.
    With ``gate_input`` the input gradient is multiplied by ``xp > 0`` as each block finishes: the
    gate of a ReLU that produced ``xp`` (the gate is 0/1, so gating a row twice, where row blocks
    of one image overlap, changes nothing). ``kept``: the matrices :func:`forward_blocks` kept, or None.

    Returns
    -------
    dxp : ndarray, shape of ``xp``, or None when ``need_dx`` is False
    dkernel : ndarray, shape (KH, KW, C, F)
    dbias : ndarray, shape (F,), or None when ``need_bias`` is False
    """
    method, blocks, threads, out_hw, G = plan
    KH, KW, C, F = kernel.shape
    OH, OW = out_hw
    if method == "rows":
        dxp = recycled_empty("conv_rows_dx", xp.shape, dtype) if need_dx else None   # every element is written
        dkernel, dbias = conv_rows.backward(gradient, xp, kernel, stride, out_hw, dxp, need_bias, blocks, threads,
                                            gate_input, kept)
        return dxp, dkernel, dbias
    part_size = _block_rows(blocks) * OW * C
    dxp = np.zeros(xp.shape, dtype=dtype) if need_dx else None
    if need_dx:
        kernel_t = np.ascontiguousarray(kernel.transpose(0, 1, 3, 2))      # (KH, KW, F, C)
        if blocks[0][1].stop - blocks[0][1].start < OH:
            threads = 1          # row blocks of one image add into overlapping input rows

    def backward_block(block):
        """This block's shares of dkernel and dbias; adds its input gradient into dxp."""
        images, rows = block
        n, r = images.stop - images.start, rows.stop - rows.start
        in_rows = _input_rows(rows, KH, stride[0])
        cols = _block_cols(xp, block, kernel.shape, stride, OW, G, dtype, kept, forward=False)
        dy2d = gradient(images, rows, _view(_scratch("dy_block", n * r * OW * F, dtype), (n, r, OW, F)))
        dy2d = dy2d.reshape(n * r * OW, F)
        if need_dx:
            part = _view(_scratch("dx_part", part_size, dtype), (n, r, OW, C))
            target = dxp[images, in_rows]
            for i in range(KH):
                for j in range(KW):
                    np.matmul(dy2d, kernel_t[i, j], out=part.reshape(-1, C))
                    seen_rows, seen_cols = window_slices(i, j, stride, r, OW)
                    target[:, seen_rows, seen_cols] += part
            if gate_input:
                gate_by_input(target, xp[images, in_rows])
        dy_rows = dy2d.reshape(len(cols), G * F)                # G pixels per row of a wide matrix
        dkernel2d = blas.gemm_tall(cols, dy_rows, np.empty((cols.shape[1], G * F), dtype=dtype))
        dbias = column_sums(dy2d, dtype) if need_bias else None        # last: it holds the GIL
        return dkernel2d, dbias

    dkernel2d, dbias = run_blocks(backward_block, blocks, threads, fold=add_shares)   # sums of the blocks' shares
    if G > 1:
        dkernel2d = conv_wide.fold_window_gradient(dkernel2d, kernel.shape, (1, G))
    return dxp, dkernel2d.reshape(kernel.shape), dbias


def conv2d_backward(dy, cache, kernel, need_dx=True, need_bias=True, relu_output=None, gate_input=False):
    """Gradients of :func:`conv2d_forward`.

    The input gradient is computed without col2im: every kernel offset (i, j) contributed
    ``xp[n, oh*sh + i, ow*sw + j, :] @ kernel[i, j]`` to ``y[n, oh, ow]``, so its share of the input
    gradient is ``dy @ kernel[i, j].T``, added back at the same shifted positions. That is KH*KW small
    GEMMs whose (n, OH, OW, C) results are added as whole slabs (long contiguous runs), where
    col2im would add KH*KW strided slices of one big matrix, C values at a time. (The row-window
    method, :mod:`glassnet.ops.conv_rows`, does it with KH GEMMs where it applies.)

    Parameters
    ----------
    dy : ndarray, shape (N, OH, OW, F)
    cache : tuple from :func:`conv2d_forward`
    kernel : ndarray, shape (KH, KW, C, F)
    need_dx : bool
        Skip the input gradient (e.g. for the first layer while training).
    need_bias : bool
        Skip the bias gradient (a layer without bias).
    relu_output : ndarray, shape (N, OH, OW, F), optional
        The output of a ``relu=True`` forward pass: ``dy`` is then the gradient after the ReLU and
        is gated by ``relu_output > 0`` block by block (``dy`` itself is not modified).
    gate_input : bool
        Multiply the input gradient by ``x > 0``, block by block while it is in cache: the backward
        pass of a ReLU whose output ``x`` is (the layer below then takes ``dx`` as already gated).

    Returns
    -------
    dx : ndarray, shape (N, H, W, C), or None when ``need_dx`` is False
    dkernel : ndarray, shape (KH, KW, C, F)
    dbias : ndarray, shape (F,), or None when ``need_bias`` is False
    """
    xp, stride, pads, kept = cache
    dtype = np.result_type(dy, kernel)
    plan = conv_plan(xp.shape, xp.dtype, kernel.shape, stride, dtype)

    def gradient(images, rows, scratch):
        if relu_output is None:
            return dy[images, rows]
        return np.multiply(dy[images, rows], relu_output[images, rows] > 0, out=scratch)

    dxp, dkernel, dbias = backward_blocks(gradient, xp, kernel, stride, need_dx, need_bias, dtype, plan, gate_input,
                                          kept_for_backward(kept, plan, xp.shape, kernel.shape, dtype))
    return (unpadded(dxp, pads) if need_dx else None), dkernel, dbias


def unpadded(dxp, pads):
    """The input gradient from the padded one (``dxp`` itself when there is no padding)."""
    return np.ascontiguousarray(unpad2d(dxp, pads)) if any(p for pair in pads for p in pair) else dxp


def _row_window_blocks(padded_shape, kernel_shape, stride, OW, dtype, threads):
    """Blocks of whole images for :mod:`glassnet.ops.conv_rows`, or None where it does not apply."""
    N, Hp, _, C = padded_shape
    KH, KW = kernel_shape[:2]
    OH, F = Hp - KH + 1, kernel_shape[3]
    blocks = conv_blocks(N, Hp, OW * KW * C * dtype.itemsize, threads, image_flops=2 * OH * OW * KH * KW * C * F,
                         image_out_bytes=OH * OW * F * dtype.itemsize)
    return blocks if conv_rows.applicable(C, stride, dtype, blocks, Hp) else None
