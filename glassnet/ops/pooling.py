"""Max and average pooling on NHWC tensors.

Both loop over the KH * KW window offsets; each step touches one strided view of the whole
batch (a view, not a copy: for 2x2 windows, whole-array ``np.maximum``/``+`` calls run at memory
speed, several times faster than a reduction over the window axes of a reshaped array).
Max pooling routes each gradient to the first maximum of its window (so a tie sends it to a
single element); overlapping windows accumulate gradients.
"""
from typing import NamedTuple

import numpy as np

from glassnet.ops.padding import conv_output_size, pad2d, unpad2d
from glassnet.ops.parallel import batch_shares, num_threads, run_blocks


class MaxPoolCache(NamedTuple):
    """What :func:`max_pool2d_backward` needs: each window's first winning offset (or None), else
    ``inputs`` = (padded input, output) to find them from; the padded shape and the geometry."""
    winner: np.ndarray
    inputs: tuple
    padded_shape: tuple
    pool_size: tuple
    stride: tuple
    pads: tuple


class AvgPoolCache(NamedTuple):
    """What :func:`avg_pool2d_backward` needs: the input shape, the geometry, and each window's
    count of real (unpadded) cells, or None without padding."""
    x_shape: tuple
    pool_size: tuple
    stride: tuple
    pads: tuple
    counts: np.ndarray


def _offset_view(xp, i, j, stride, OH, OW):
    sh, sw = stride
    return xp[:, i:i + sh * (OH - 1) + 1:sh, j:j + sw * (OW - 1) + 1:sw, :]


def _out_hw(shape, pool_size, stride, pads):
    return (conv_output_size(shape[1], pool_size[0], stride[0], *pads[0]),
            conv_output_size(shape[2], pool_size[1], stride[1], *pads[1]))


def winner_dtype(window_size):
    return np.uint8 if window_size < 256 else np.int32


def _record_win(winner, better, k):
    """``winner[better] = k`` for an offset k larger than every earlier one, as a fast maximum."""
    np.maximum(winner, better.astype(winner.dtype, copy=False) * winner.dtype.type(k), out=winner)


def _tiled_max(xp, KH, KW, out):
    """``out`` = the maximum of each window when the windows tile the input (stride == pool size).

    Rows first: the KH rows of a window row are whole contiguous image rows, so their maximum runs
    over long runs of memory; only the last step, across the KW columns, reads C values at a time.
    """
    OH, OW = out.shape[1:3]
    rows = [xp[:, i:OH * KH:KH, :OW * KW] for i in range(KH)]        # (n, OH, OW * KW, C) each
    row_max = rows[0] if KH == 1 else np.maximum(rows[0], rows[1])
    for more in rows[2:]:
        np.maximum(row_max, more, out=row_max)
    out[...] = row_max[:, :, 0::KW]
    for j in range(1, KW):
        np.maximum(out, row_max[:, :, j::KW], out=out)


def tiled_max_pool(xp, pool_size, out, winner=None):
    """Max pooling with stride == pool size, into ``out`` (n, OH, OW, C), and the first winning
    offset of every window into ``winner`` when given (see :func:`max_pool2d_forward`)."""
    KH, KW = pool_size
    OH, OW = out.shape[1:3]
    _tiled_max(xp, KH, KW, out)
    if winner is not None:
        first_winners([_offset_view(xp, k // KW, k % KW, pool_size, OH, OW) for k in range(KH * KW)], out, winner)


def first_winners(windows, y, winner):
    """``winner`` = the first offset k (row-major) whose window value equals the maximum ``y``.

    With ``ne_k = windows[k] != y``, the first equal offset is
    ``ne_0 * (1 + ne_1 * (1 + ... * (1 + ne_{K-2})))``: a product that stops at the first equal one.
    """
    if len(windows) == 1:
        winner[...] = 0
        return
    # into a bool view of the uint8 array: a bool result written as uint8 would go through a cast
    np.not_equal(windows[-2], y, out=winner.view(np.bool_) if winner.itemsize == 1 else winner)
    for window in reversed(windows[:-2]):
        winner += 1
        winner *= np.not_equal(window, y)


def max_pool2d_forward(x, pool_size, stride, pads, record_winners=True):
    """Max pooling.

    A running maximum over the KH * KW window offsets, one strided view of the batch per offset
    (windows that tile the input: row maxima over whole rows first, see :func:`tiled_max_pool`;
    the batch split between worker threads, see :mod:`glassnet.ops.parallel`). With
    ``record_winners`` it also notes which offset won each window (the first one on
    ties) while the input is still in cache, so the backward pass never reads the input again;
    inference can leave that out (the backward pass then finds the winners itself).

    Parameters
    ----------
    x : ndarray, shape (N, H, W, C)
    pool_size, stride : (int, int)
    pads : ((top, bottom), (left, right)); padded cells hold -inf and never win.
    record_winners : bool

    Returns
    -------
    y : ndarray, shape (N, OH, OW, C)
    cache : MaxPoolCache for :func:`max_pool2d_backward`. Without recorded winners it refers to the
        (padded) input and to ``y``, so neither may be modified before the backward pass.
    """
    KH, KW = pool_size
    OH, OW = _out_hw(x.shape, pool_size, stride, pads)
    xp = pad2d(x, pads, value=-np.inf)
    y = np.empty((x.shape[0], OH, OW, x.shape[3]), dtype=x.dtype)
    tiled = tuple(stride) == (KH, KW)
    winner = (np.empty if tiled else np.zeros)(y.shape, dtype=winner_dtype(KH * KW)) if record_winners else None

    def pool_images(images):
        out = y[images]
        if tiled:
            tiled_max_pool(xp[images], (KH, KW), out, winner[images] if record_winners else None)
            return
        windows = [_offset_view(xp[images], k // KW, k % KW, stride, OH, OW) for k in range(KH * KW)]
        out[...] = windows[0]
        for k, window in enumerate(windows[1:], start=1):
            if record_winners:
                _record_win(winner[images], window > out, k)   # strictly greater: a tie keeps the earlier offset
            np.maximum(out, window, out=out)

    threads = num_threads(x.nbytes)
    run_blocks(pool_images, batch_shares(x.shape[0], threads), threads, blas=False)
    inputs = None if record_winners else (xp, y)
    return y, MaxPoolCache(winner, inputs, xp.shape, pool_size, stride, pads)


def _find_winners(xp, y, pool_size, stride):
    """The first offset of every window whose value equals the window's maximum ``y``."""
    KH, KW = pool_size
    OH, OW = y.shape[1:3]
    winner = np.zeros(y.shape, dtype=winner_dtype(KH * KW))
    found = _offset_view(xp, 0, 0, stride, OH, OW) == y
    for k in range(1, KH * KW):
        won = np.greater(_offset_view(xp, k // KW, k % KW, stride, OH, OW) == y, found)   # equal and not found
        _record_win(winner, won, k)
        found |= won
    return winner


def clear_uncovered(target, covered_hw):
    """Zero the rows and columns of ``target`` (n, H, W, C) beyond the top-left ``covered_hw``
    cells that tiled windows cover (the floor-mode leftovers no window reaches)."""
    target[:, covered_hw[0]:] = 0
    target[:, :, covered_hw[1]:] = 0


def _gradient_buffer(padded_shape, dtype, covered_hw, tiled):
    """The (padded) input gradient to route into: zeros, except that where the windows tile the
    input (stride == pool size) the ``covered_hw`` cells they overwrite anyway are left unset."""
    if not tiled:
        return np.zeros(padded_shape, dtype=dtype)
    dxp = np.empty(padded_shape, dtype=dtype)
    clear_uncovered(dxp, covered_hw)
    return dxp


def route_to_winners(dy, winner, target, pool_size, stride):
    """Send each gradient ``dy[n, oh, ow, c]`` to its window's winning cell of ``target`` (n, H, W, C).

    Disjoint windows write their cells (cells of no window are left as they are); overlapping
    windows add into them, so ``target`` must then start at zero.
    """
    KH, KW = pool_size
    OH, OW = dy.shape[1:3]
    overlapping = stride[0] < KH or stride[1] < KW
    for k in range(KH * KW):
        cells = _offset_view(target, k // KW, k % KW, stride, OH, OW)
        if overlapping:
            cells += dy * (winner == k)
        else:
            np.multiply(dy, winner == k, out=cells)


def max_pool2d_backward(dy, cache):
    """Route each output gradient to the input element that won its window.

    The winner of a window is its first element (in row-major window order) equal to the
    window's maximum, so a tie (common after a ReLU: a window of zeros) routes the gradient
    to a single element, as PyTorch and TensorFlow do.

    Parameters
    ----------
    dy : ndarray, shape (N, OH, OW, C)

    Returns
    -------
    dx : ndarray, shape (N, H, W, C)
    """
    winner, inputs, padded_shape, (KH, KW), stride, pads = cache
    if winner is None:
        winner = _find_winners(*inputs, (KH, KW), stride)
    OH, OW = dy.shape[1:3]
    dxp = _gradient_buffer(padded_shape, dy.dtype, (OH * KH, OW * KW), tuple(stride) == (KH, KW))

    def route_images(images):
        route_to_winners(dy[images], winner[images], dxp[images], (KH, KW), stride)

    threads = num_threads(dxp.nbytes)
    run_blocks(route_images, batch_shares(dy.shape[0], threads), threads, blas=False)
    return np.ascontiguousarray(unpad2d(dxp, pads))


def _window_counts(x_shape, pool_size, stride, pads, dtype):
    """How many real (unpadded) cells each window covers: Keras's "same" average excludes padding."""
    if pads == ((0, 0), (0, 0)):
        return None
    ones = pad2d(np.ones((1,) + tuple(x_shape[1:3]) + (1,), dtype=dtype), pads)
    OH, OW = _out_hw((1,) + tuple(x_shape[1:3]), pool_size, stride, pads)
    counts = np.zeros((1, OH, OW, 1), dtype=dtype)
    for i in range(pool_size[0]):
        for j in range(pool_size[1]):
            counts += _offset_view(ones, i, j, stride, OH, OW)
    return counts


def avg_pool2d_forward(x, pool_size, stride, pads):
    """Average pooling (padding, if any, is excluded from each window's count).

    Parameters
    ----------
    x : ndarray, shape (N, H, W, C)

    Returns
    -------
    y : ndarray, shape (N, OH, OW, C)
    cache : AvgPoolCache for :func:`avg_pool2d_backward`
    """
    KH, KW = pool_size
    N, C = x.shape[0], x.shape[3]
    counts = _window_counts(x.shape, pool_size, stride, pads, x.dtype)
    cache = AvgPoolCache(x.shape, pool_size, stride, pads, counts)
    OH, OW = _out_hw(x.shape, pool_size, stride, pads)
    xp = pad2d(x, pads)
    y = np.zeros((N, OH, OW, C), dtype=x.dtype)
    for i in range(KH):
        for j in range(KW):
            y += _offset_view(xp, i, j, stride, OH, OW)
    y /= counts if counts is not None else KH * KW
    return y, cache


def avg_pool2d_backward(dy, cache):
    """Spread each output gradient evenly over the cells of its window.

    Returns
    -------
    dx : ndarray, shape (N, H, W, C)
    """
    x_shape, (KH, KW), stride, pads, counts = cache
    N, OH, OW, C = dy.shape
    share = dy / (counts if counts is not None else KH * KW)
    if (KH, KW) == tuple(stride) and pads == ((0, 0), (0, 0)) and x_shape[1] == OH * KH and x_shape[2] == OW * KW:
        dx = np.broadcast_to(share[:, :, None, :, None, :], (N, OH, KH, OW, KW, C)).reshape(x_shape)
        # reshape copies, except when a window spans a whole axis or is 1 wide (OH == 1 or KH == 1, and
        # likewise for W): then it returns the read-only, self-aliasing broadcast view itself
        return dx if dx.flags.writeable else dx.copy()
    padded_shape = (N, x_shape[1] + sum(pads[0]), x_shape[2] + sum(pads[1]), C)
    dxp = np.zeros(padded_shape, dtype=dy.dtype)
    for i in range(KH):
        for j in range(KW):
            _offset_view(dxp, i, j, stride, OH, OW)[...] += share
    return np.ascontiguousarray(unpad2d(dxp, pads))
