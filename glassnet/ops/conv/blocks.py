"""Block code shared by the convolution strategies: block matrices, block-kernel matrices, the
kept matrices of a training step, and the small steps every strategy's block loop takes.

A strategy walks the output in blocks ``(images, output rows)`` (:func:`glassnet.ops.conv.plan.split_blocks`)
so that each block's matrix stays in cache; these helpers know nothing of which strategy calls them.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from glassnet.ops.conv import plan as planning
from glassnet.ops.im2col import im2col
from glassnet.ops.padding import unpad2d
from glassnet.ops.parallel import over_rows
from glassnet.ops.workspace import recycled_array, view


def input_rows(rows, span, stride):
    """Rows of the padded input that output rows ``rows`` read, for a kernel ``span`` rows tall
    (``(KH - 1) * dilation + 1``) moving ``stride`` rows per output row."""
    return slice(rows.start * stride, (rows.stop - 1) * stride + span)


def largest_block_rows(blocks):
    """Output rows (images x rows) of the largest block."""
    return max((images.stop - images.start) * (rows.stop - rows.start) for images, rows in blocks)


def cols2d(xp, kernel_size, stride, out_hw, scratch):
    """The im2col matrix of one block as a 2-D (N*OH*OW, KH*KW*C) array, in the flat array ``scratch``.

    ``cols[(n, oh, ow), (i, j, c)] = xp[n, oh*sh + i, ow*sw + j, c]``. With one channel each row
    would be KH*KW scattered values, a slow copy: the matrix is then built transposed, one
    contiguous (N, OH, OW) slab per kernel offset, from a single copy of a window view (one call
    instead of KH*KW, each of which would hand the GIL to the other thread), and returned as a
    transposed view.
    """
    N, C = xp.shape[0], xp.shape[3]
    (KH, KW), (OH, OW) = kernel_size, out_hw
    if C > 1:
        cols = im2col(xp, kernel_size, stride, out=view(scratch, (N, OH, OW, KH, KW, C)))
        return cols.reshape(N * OH * OW, KH * KW * C)
    cols_t = view(scratch, (KH, KW, N, OH, OW))
    windows = sliding_window_view(xp[..., 0], (KH, KW), axis=(1, 2))[:, ::stride[0], ::stride[1]][:, :OH, :OW]
    np.copyto(cols_t, windows.transpose(3, 4, 0, 1, 2))
    return cols_t.reshape(KH * KW, N * OH * OW).T


def window_kernel(kernel, window):
    """The block matrix of a (KH, KW, C, F) kernel for matrix rows that each hold the input under
    a (GH, GW) window of output pixels: ``K_w[(u, v, c), (a, b, f)] = kernel[u - a, v - b, c, f]``
    where the offset is inside the kernel, zero elsewhere; shape ((KH + GH - 1) * (KW + GW - 1) * C,
    GH * GW * F). One GEMM with it gives all GH * GW outputs of a row at once."""
    KH, KW, C, F = kernel.shape
    GH, GW = window
    wide = np.zeros((KH + GH - 1, KW + GW - 1, C, GH, GW, F), dtype=kernel.dtype)
    for a in range(GH):
        for b in range(GW):
            wide[a:a + KH, b:b + KW, :, a, b, :] = kernel
    return wide.reshape(-1, GH * GW * F)


def fold_window_gradient(dwide, kernel_shape, window):
    """The (KH, KW, C, F) weight gradient from the gradient of :func:`window_kernel`'s matrix:
    ``dkernel[i, j] = sum_{a, b} dK_w[(i + a, j + b), (a, b)]``, the adjoint of the expansion."""
    KH, KW, C, F = kernel_shape
    GH, GW = window
    dwide = dwide.reshape(KH + GH - 1, KW + GW - 1, C, GH, GW, F)
    dkernel = dwide[0:KH, 0:KW, :, 0, 0, :].copy()
    for k in range(1, GH * GW):
        a, b = divmod(k, GW)
        dkernel += dwide[a:a + KH, b:b + KW, :, a, b, :]
    return dkernel


def matmul_into(a, b, out):
    """``out[...] = a @ b`` with ``out`` of shape (..., b.shape[1]); no temporary when ``out`` is contiguous."""
    if out.flags.c_contiguous:
        np.matmul(a, b, out=out.reshape(-1, b.shape[1]))
    else:
        out[...] = (a @ b).reshape(out.shape)


def gate_by_input(dxp, xp, rule=True):
    """Where ``xp`` is a ReLU's output, that ReLU's backward pass on ``dxp`` in place, done by the
    layer above while its input gradient is still in cache, under the backward ``rule`` (True is
    "vanilla"): ``dxp *= (xp > 0)``; "guided" ``max(dxp, 0) * (xp > 0)``; "rectified" ``max(dxp, 0)``.

    The vanilla gate is 0/1, so gating a row twice (where row blocks of one image overlap) changes
    nothing; the other rules look at the sign of the complete gradient, so they need blocks whose
    input rows no other block adds to (:func:`gates_in_blocks`)."""
    if rule in ("guided", "rectified"):
        np.maximum(dxp, 0, out=dxp)
    if rule != "rectified":
        np.multiply(dxp, xp > 0, out=dxp)


def gates_in_blocks(rule, blocks, OH):
    """Whether a gate under ``rule`` may run as each block finishes: always for the vanilla rule, for the
    others only when every block holds whole images (``OH`` output rows), whose input gradients are
    complete at the block's end."""
    return rule in (True, "vanilla") or all(rows.stop - rows.start == OH for _, rows in blocks)


def unpadded(dxp, pads):
    """The input gradient from the padded one (``dxp`` itself when there is no padding), in a
    recycled array (:func:`glassnet.ops.workspace.recycled_array`)."""
    if not any(p for pair in pads for p in pair):
        return dxp
    interior = unpad2d(dxp, pads)
    out = recycled_array("unpadded_gradient", interior.shape, interior.dtype)
    over_rows(lambda images: np.copyto(out[images], interior[images]), len(out), 2 * out.nbytes)
    return out


# -- matrices kept from a training forward pass to its backward pass --------------------------------
def _layout(plan, padded_shape, kernel_shape, dtype):
    """What decides the block matrices of a convolution: the plan's type and layout, shapes and dtype."""
    return (type(plan).__name__, plan.matrix_layout(), tuple(padded_shape), tuple(kernel_shape), np.dtype(dtype))


def kept_matrices(storage, plan, padded_shape, kernel_shape, dtype):
    """``storage`` (a dict kept between training steps, or None) ready to keep this forward pass's
    block matrices (:func:`glassnet.ops.conv.plan.keeps_matrices`; see
    :func:`glassnet.ops.workspace.block_matrix`), or None when they would not be kept (``storage``
    is then emptied). The pass is marked with a fresh token: see :func:`kept_reference`."""
    if storage is None:
        return None
    if not planning.keeps_matrices(plan, padded_shape, kernel_shape, dtype):
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
    """The kept matrices a backward pass may use: those of its own forward pass (no later forward
    pass has rewritten the storage) laid out as ``plan`` lays them out; else None, and the
    backward pass builds its matrices."""
    if reference is None:
        return None
    storage, token = reference
    same = storage.get("pass") is token and storage.get("layout") == _layout(plan, padded_shape, kernel_shape, dtype)
    return storage if same else None
