"""The one place that decides how a convolution runs: which strategy, in which blocks, on how many threads.

A plan is a NamedTuple whose *type* names the strategy (see :mod:`glassnet.ops.conv.strategies`);
its fields are what that strategy needs: the stride, the output size, the blocks of the output
``(images, output rows)`` each worker call handles, the thread count, and the strategy's own
geometry. Plans depend on shapes and dtypes only, so a caller can plan before padding anything.

Rules, in order (:func:`conv_plan`):

1. a dilation other than (1, 1): :class:`DilatedPlan` (im2col over the dilated windows);
2. a kernel at least as tall as the row stride, several channels, the input in the computation's
   dtype, BLAS accumulation available, blocks of whole images and a frame of at most
   :data:`ROW_WINDOWS_MAX_FRAME_RATIO` times the output rows: :class:`RowWindowPlan` (im2col along
   the width only, one accumulating GEMM per group of kernel rows);
3. one channel, fewer than :data:`WIDE_MAX_FILTERS` filters, a kernel at least
   :data:`WIDE_MIN_KERNEL_WIDTH` wide, stride 1 and an output width that :data:`WIDE_GROUP`
   divides: :class:`WideRowsPlan` (im2col rows holding G neighbouring output pixels);
4. otherwise :class:`Im2colPlan`.

A convolution followed by a max pooling whose windows tile its output (:func:`conv_pool_plan`):
:class:`PoolWindowsPlan` (one matrix row per pooling window) for a stride-1 convolution with few
filters and channels, else :class:`PooledBlocksPlan` (the convolution's own plan in blocks of
whole images, each block pooled while it is in cache), else None (not fusable).

Every threshold is measured; the reason is its comment, the history is in benchmarks/NOTES.md.
"""
from typing import NamedTuple

import numpy as np

from glassnet.ops import blas, config
from glassnet.ops.parallel import num_threads

# -- blocks -------------------------------------------------------------------------------------
#: Preferred bytes of one block's matrix: it stays in cache between the copy that builds it and
#: the GEMM that reads it. 1 MiB: as fast as 2-8 MiB on a quiet host, and 5-15% faster per resnet_fashion
#: training step than 4 MiB when the shared VM's caches are contended (benchmarks/NOTES.md, fifth stop).
BLOCK_BYTES = 2 ** 20

#: An image whose matrix exceeds :data:`BLOCK_BYTES` still gets a block of its own (whole images, which a fused
#: pooling needs) up to this size; above it, blocks of rows.
WHOLE_IMAGE_BYTES = 4 * 2 ** 20

#: Least FLOPs of a block of whole images: each block costs some Python, which contends for the
#: GIL across threads (10% of a 2-thread step on 28x28 layers with 4 MiB blocks alone).
MIN_BLOCK_FLOPS = 16_000_000

#: Least FLOPs per thread before a convolution is split between threads: below it the hand-off
#: cost more than it saved (a 2-thread step of small 28x28 layers at batch 32: 45% faster unsplit).
MIN_THREAD_FLOPS = 16_000_000

#: ... or least bytes of matrix and output per thread: a convolution with few FLOPs but large
#: arrays is bound by its copies and pooling, which two threads do faster (a 3x3, 1 -> 8 channel
#: layer at batch 128: 16% faster split; 1 MiB beat 2 MiB by 6%).
MIN_THREAD_BYTES = 2 ** 20

#: A training forward pass keeps its blocks' matrices for the backward pass when all of them fit
#: here (else the backward pass rebuilds them): 10-11% faster steps with 3-10 MB kept, 5% slower
#: with 31 MB (written to memory instead of a cache-sized scratch array).
KEEP_MATRIX_BYTES = 16 * 2 ** 20

# -- strategies ---------------------------------------------------------------------------------
#: Row windows only where the frame of Hp rows per image adds at most this share of GEMM rows over the
#: OH output rows (a 3x3 kernel on 7x7 images: 9 / 7 = 1.29, where im2col ran the forward pass 1.25x as
#: fast; 14x14: 1.14, 28x28: 1.07 kept row windows ahead).
ROW_WINDOWS_MAX_FRAME_RATIO = 1.2

#: A training pass takes the shifted-GEMM input gradient for at most this many input channels: its
#: GEMMs have K = F, but the column scatter it saves moves C values at a time (28x28, 16 -> 16
#: channels: 2.2 against 2.8 ms per 26-image block; 7x7, 64 -> 64: 4.9 against 4.3).
SHIFTED_DX_MAX_CHANNELS = 16

#: Row windows run per-image GEMMs (straight into the output) from this many FLOPs per image;
#: smaller images share one frame per block: a call costs a few microseconds, a 10x10 image less.
PER_IMAGE_FLOPS = 4_000_000

#: Output pixels per wide im2col row: the GEMM 4x wider (a 5x5, 1 -> 6 channel layer: forward
#: GEMM 0.68 ms against 1.28); G = 2 made the row copies slower than the GEMMs gained.
WIDE_GROUP = 4

#: Wide rows only below this many filters: a GEMM with a narrow output runs slowly in BLAS, a wide one does not.
WIDE_MAX_FILTERS = 16

#: ... and for kernels at least this wide: a 3x3 kernel with 8 filters gained nothing.
WIDE_MIN_KERNEL_WIDTH = 4

#: Pooling windows for at most this many filters: wider GEMMs already run fast (64 filters),
#: where the extra FLOPs of the patch would not pay.
POOL_WINDOWS_MAX_FILTERS = 16

#: ... and at most this many input channels (3x3, 16 filters, batch 64: 1.15x as fast with 8
#: channels, 1.03x with 16, 0.98x with 32).
POOL_WINDOWS_MAX_CHANNELS = 16

#: ... and a patch at most this many times the kernel's area (the extra FLOPs: 1.44 for a 5x5
#: kernel under 2x2 windows, 1.78 for 3x3): large windows would multiply FLOPs and kernel matrix.
POOL_WINDOWS_MAX_PATCH_RATIO = 2.0


# -- plans --------------------------------------------------------------------------------------
class Im2colPlan(NamedTuple):
    """im2col, one row of KH * KW * C values per output pixel: :mod:`glassnet.ops.conv.im2col`."""
    stride: tuple
    out_hw: tuple
    blocks: list
    threads: int

    def row_elements(self, kernel_shape):
        """Elements of one output row's matrix."""
        KH, KW, C, _ = kernel_shape
        return self.out_hw[1] * KH * KW * C

    def image_elements(self, padded_shape, kernel_shape):
        """Elements of one image's matrix."""
        return self.out_hw[0] * self.row_elements(kernel_shape)

    def matrix_layout(self):
        """What decides the block matrices besides the shapes and dtype (not the thread count)."""
        return self.stride, self.blocks


class WideRowsPlan(NamedTuple):
    """im2col rows of ``group`` neighbouring output pixels (a (KH, KW + G - 1) patch each):
    :mod:`glassnet.ops.conv.wide_rows`."""
    stride: tuple
    out_hw: tuple
    blocks: list
    threads: int
    group: int

    def row_elements(self, kernel_shape):
        """Elements of one output row's matrix: OW / G rows of KH * (KW + G - 1) values."""
        KH, KW = kernel_shape[:2]
        return (self.out_hw[1] // self.group) * KH * (KW + self.group - 1)

    image_elements = Im2colPlan.image_elements

    def matrix_layout(self):
        return self.group, self.blocks


class DilatedPlan(NamedTuple):
    """im2col over windows whose taps are ``dilation`` apart: :mod:`glassnet.ops.conv.dilated`."""
    stride: tuple
    out_hw: tuple
    blocks: list
    threads: int
    dilation: tuple

    row_elements = Im2colPlan.row_elements             # the same (KH, KW, C) rows, from spread taps
    image_elements = Im2colPlan.image_elements

    def matrix_layout(self):
        return self.stride, self.dilation, self.blocks


class RowWindowPlan(NamedTuple):
    """Row windows (row strides by phases of rows), whole images per block: :mod:`glassnet.ops.conv.row_windows`.
    ``per_image``: the forward GEMMs run per image, straight into the output. ``shifted_dx``: a training
    backward pass computes the input gradient by KH * KW shifted GEMMs (as an explanation's does) instead
    of KH wide GEMMs and a column scatter."""
    stride: tuple
    out_hw: tuple
    blocks: list
    threads: int
    per_image: bool
    shifted_dx: bool = False

    def image_elements(self, padded_shape, kernel_shape):
        """Elements of one image's matrix: the row windows of all Hp rows (of sh phases of Hq rows)."""
        sh = self.stride[0]
        return -(-padded_shape[1] // sh) * sh * self.out_hw[1] * kernel_shape[1] * kernel_shape[2]

    def matrix_layout(self):
        return self.stride, self.blocks


class PoolWindowsPlan(NamedTuple):
    """A fused convolution and max pooling with one matrix row per pooling window:
    :mod:`glassnet.ops.conv.pool_windows`. ``pooled_hw`` is the pooled output's size, ``window``
    the pooling window, ``patch`` the (U, V) input patch one matrix row holds."""
    blocks: list
    threads: int
    pooled_hw: tuple
    window: tuple
    patch: tuple

    def image_elements(self, padded_shape, kernel_shape):
        (OHp, OWp), (U, V) = self.pooled_hw, self.patch
        return OHp * OWp * U * V * kernel_shape[2]

    def matrix_layout(self):
        return self.window, self.blocks


class PooledBlocksPlan(NamedTuple):
    """A fused convolution and max pooling that runs the convolution's own plan ``conv`` (blocks of
    whole images) and pools each block while it is in cache: :mod:`glassnet.ops.conv.pooled_blocks`."""
    conv: tuple
    pool_size: tuple

    @property
    def blocks(self):
        """The convolution's blocks (of whole images)."""
        return self.conv.blocks

    def image_elements(self, padded_shape, kernel_shape):
        return self.conv.image_elements(padded_shape, kernel_shape)

    def matrix_layout(self):
        return type(self.conv).__name__, self.conv.matrix_layout()


# -- the chooser --------------------------------------------------------------------------------
def split_blocks(N, OH, row_bytes, threads=1, image_flops=0, image_out_bytes=0, held_row_bytes=None):
    """Split the output ``(N, OH)`` into blocks whose matrices fit the cache and the memory budget.

    Parameters
    ----------
    N, OH : int
        Batch size and output height.
    row_bytes : int
        Bytes of one output row's matrix.
    threads : int
        Blocks processed at once: each gets ``1 / threads`` of ``config.MEMORY_BUDGET_BYTES``,
        and whole-image blocks come in a multiple of ``threads`` when each thread gets enough work
        (:data:`MIN_THREAD_FLOPS` or :data:`MIN_THREAD_BYTES`).
    image_flops, image_out_bytes : int
        Work and output bytes of one image. A block of whole images holds :data:`BLOCK_BYTES` of
        matrix, or :data:`MIN_BLOCK_FLOPS` of work if that is more (within the budget), and at least one
        image when its matrix is at most :data:`WHOLE_IMAGE_BYTES`.
    held_row_bytes : int, optional
        Bytes per output row of all the block-sized arrays a block holds at once, when more than
        its matrix (default ``row_bytes``): all of them must fit the budget.

    Returns
    -------
    list of (slice, slice)
        (images, output rows). Whole images when one fits, in blocks of equal size (to within
        one image), else rows of one image; at least one output row per block, whatever the budget.
    """
    budget = max(1, config.MEMORY_BUDGET_BYTES // threads)
    limit = max(1, min(BLOCK_BYTES, budget))
    held_row_bytes = max(row_bytes, held_row_bytes or 0)
    image_bytes, image_held = OH * row_bytes, OH * held_row_bytes
    if image_bytes <= max(limit, min(WHOLE_IMAGE_BYTES, budget)) and image_held <= budget:
        per_block = max(limit // image_bytes, -(-MIN_BLOCK_FLOPS // max(1, image_flops)), 1)
        per_block = min(per_block, budget // image_held)
        count = -(-N // max(1, per_block))                         # fewest blocks that fit
        enough = N * image_flops >= threads * MIN_THREAD_FLOPS
        if enough or N * (image_bytes + image_out_bytes) >= threads * MIN_THREAD_BYTES:
            count = min(N, -(-count // threads) * threads)         # ... in a multiple of threads
        step = -(-N // count)
        return [(slice(s, min(s + step, N)), slice(0, OH)) for s in range(0, N, step)]
    step = max(1, min(limit // row_bytes, budget // held_row_bytes))
    return [(slice(n, n + 1), slice(r, min(r + step, OH))) for n in range(N) for r in range(0, OH, step)]


def whole_images(blocks, OH):
    """Whether every block holds whole images (OH output rows each)."""
    return all(rows.stop - rows.start == OH for _, rows in blocks)


def _wide_group(kernel_shape, stride, OW):
    """G of the wide-row strategy for this convolution, or 1 where it does not apply (rule 3)."""
    KH, KW, C, F = kernel_shape
    fits = (C == 1 and F < WIDE_MAX_FILTERS and KW >= WIDE_MIN_KERNEL_WIDTH and tuple(stride) == (1, 1)
            and OW % WIDE_GROUP == 0)
    return WIDE_GROUP if fits else 1


def _row_window_plan(padded_shape, input_dtype, kernel_shape, stride, OW, dtype, threads):
    """The :class:`RowWindowPlan` (rule 2), or None where it does not apply."""
    N, Hp, _, C = padded_shape
    KH, KW, _, F = kernel_shape
    sh = stride[0]
    OH, Hq = (Hp - KH) // sh + 1, -(-Hp // sh)                # output rows; rows per row phase
    image_flops = 2 * OH * OW * KH * KW * C * F
    blocks = split_blocks(N, Hq * sh, OW * KW * C * dtype.itemsize, threads, image_flops=image_flops,
                          image_out_bytes=OH * OW * F * dtype.itemsize)
    if not (KH >= sh and C > 1 and input_dtype == dtype and whole_images(blocks, Hq * sh) and blas.available(dtype)
            and Hq <= ROW_WINDOWS_MAX_FRAME_RATIO * OH):
        return None
    per_image = 2 * OH * OW * KW * C * F >= PER_IMAGE_FLOPS          # one kernel row's GEMM per image
    shifted_dx = tuple(stride) == (1, 1) and C <= SHIFTED_DX_MAX_CHANNELS
    return RowWindowPlan(tuple(stride), (OH, OW), blocks, threads, per_image, shifted_dx)


def conv_plan(padded_shape, input_dtype, kernel_shape, stride, dtype, dilation=(1, 1), whole_images_only=False):
    """How to run a convolution of a padded input of ``padded_shape`` and ``input_dtype`` (rules 1-4).

    Parameters
    ----------
    padded_shape : (N, Hp, Wp, C)
    input_dtype : dtype of the padded input
    kernel_shape : (KH, KW, C, F)
    stride, dilation : (int, int)
    dtype : the computation's dtype (``np.result_type(x, kernel)``)
    whole_images_only : bool
        Return None when the blocks would have to split an image (an image whose matrix
        exceeds the memory budget): a fused pooling needs whole images.

    Returns
    -------
    Im2colPlan, WideRowsPlan, RowWindowPlan, DilatedPlan or None
    """
    KH, KW, C, F = kernel_shape
    N, Hp, Wp, _ = padded_shape
    dtype = np.dtype(dtype)
    span_h, span_w = (KH - 1) * dilation[0] + 1, (KW - 1) * dilation[1] + 1
    OH, OW = (Hp - span_h) // stride[0] + 1, (Wp - span_w) // stride[1] + 1
    threads = num_threads(N * OH * OW * KH * KW * C * dtype.itemsize)
    image = {"image_flops": 2 * OH * OW * KH * KW * C * F, "image_out_bytes": OH * OW * F * dtype.itemsize}
    if tuple(dilation) != (1, 1):
        plan = DilatedPlan(tuple(stride), (OH, OW), [], threads, tuple(dilation))
    else:
        rows = _row_window_plan(padded_shape, input_dtype, kernel_shape, stride, OW, dtype, threads)
        if rows is not None:
            return rows
        G = _wide_group(kernel_shape, stride, OW)
        plan = (WideRowsPlan(tuple(stride), (OH, OW), [], threads, G) if G > 1
                else Im2colPlan(tuple(stride), (OH, OW), [], threads))
    blocks = split_blocks(N, OH, plan.row_elements(kernel_shape) * dtype.itemsize, threads, **image)
    if whole_images_only and not whole_images(blocks, OH):
        return None
    return plan._replace(blocks=blocks)


def pool_windows_plan(padded_shape, kernel_shape, stride, pool_size, dtype):
    """The :class:`PoolWindowsPlan`, or None where it does not apply: a stride other than 1, more
    than :data:`POOL_WINDOWS_MAX_FILTERS` filters or :data:`POOL_WINDOWS_MAX_CHANNELS` channels, a
    patch over :data:`POOL_WINDOWS_MAX_PATCH_RATIO` times the kernel, no whole window, or an image
    too large for a block of whole images."""
    KH, KW, C, F = kernel_shape
    N, Hp, Wp, _ = padded_shape
    (PH, PW), itemsize = pool_size, np.dtype(dtype).itemsize
    OHp, OWp = (Hp - KH + 1) // PH, (Wp - KW + 1) // PW
    U, V = KH + PH - 1, KW + PW - 1
    if (tuple(stride) != (1, 1) or F > POOL_WINDOWS_MAX_FILTERS or C > POOL_WINDOWS_MAX_CHANNELS
            or U * V > POOL_WINDOWS_MAX_PATCH_RATIO * KH * KW or min(OHp, OWp) < 1):
        return None
    A, B = cell_counts((PH, PW), (U, V))
    # per window: the matrix row, the product, and the backward pass's patch gradients in whole cells
    matrix, product, cells = U * V * C, PH * PW * F, A * B * PH * PW * C
    # blocks sized for the cache by the larger of the matrix and the product, all three within the budget
    row_bytes = OWp * max(matrix, product) * itemsize
    threads = num_threads(N * OHp * row_bytes)
    blocks = split_blocks(N, OHp, row_bytes, threads, image_flops=2 * OHp * OWp * matrix * product,
                          image_out_bytes=OHp * OWp * product * itemsize,
                          held_row_bytes=OWp * (matrix + product + cells) * itemsize)
    if not whole_images(blocks, OHp):
        return None
    return PoolWindowsPlan(blocks, threads, (OHp, OWp), (PH, PW), (U, V))


def conv_pool_plan(padded_shape, input_dtype, kernel_shape, stride, pool_size, dtype, windows=True):
    """How to run ``max_pool(conv(x))`` in one pass, pooling windows of ``pool_size`` with stride
    ``pool_size`` (``dtype``: the computation's, ``np.result_type(x, kernel)``). ``windows=False``
    leaves out :class:`PoolWindowsPlan`, whose products over all of a block's windows give an image
    bits that depend on the batch around it (explanations keep an image's map independent of it).

    Returns
    -------
    PoolWindowsPlan, PooledBlocksPlan, or None where the pair cannot be fused: an image too large
    for a block of whole images, or no whole pooling window along a side.
    """
    windows = pool_windows_plan(padded_shape, kernel_shape, stride, pool_size, dtype) if windows else None
    if windows is not None:
        return windows
    conv = conv_plan(padded_shape, input_dtype, kernel_shape, stride, dtype, whole_images_only=True)
    if conv is None or conv.out_hw[0] < pool_size[0] or conv.out_hw[1] < pool_size[1]:
        return None
    return PooledBlocksPlan(conv, tuple(pool_size))


def for_backward(plan):
    """``plan`` for the backward pass of the forward pass it planned: the same blocks (the kept
    matrices and the winners are per block), on no more threads than are allowed now."""
    now = num_threads()
    if isinstance(plan, PooledBlocksPlan):
        return plan._replace(conv=for_backward(plan.conv))
    return plan._replace(threads=min(plan.threads, now)) if plan.threads > now else plan


def cell_counts(window, patch):
    """(A, B): the (PH, PW) cells a (U, V) patch spans down and across (its last ones may be partial)."""
    (PH, PW), (U, V) = window, patch
    return -(-U // PH), -(-V // PW)


def keeps_matrices(plan, padded_shape, kernel_shape, dtype):
    """Whether a training forward pass keeps its block matrices for the backward pass: all of them
    within :data:`KEEP_MATRIX_BYTES` and the memory budget."""
    total = padded_shape[0] * plan.image_elements(padded_shape, kernel_shape) * np.dtype(dtype).itemsize
    return total <= min(KEEP_MATRIX_BYTES, config.MEMORY_BUDGET_BYTES)
