"""Batch normalization over the last (channel) axis in a few whole-array passes, optionally with a fused ReLU.

With ``centered = x - mean`` and ``inv_std = 1 / sqrt(var + epsilon)`` (statistics over every axis but
the last, ``var`` the biased variance), the forward pass is ``y = centered * (gamma * inv_std) + beta``
(then ``max(y, 0)`` with the fused ReLU). With ``g = dL/dy`` (gated by ``y > 0`` under a fused ReLU) and
``m`` the number of values per channel, the backward pass of a training call (batch statistics) is

    dbeta  = sum(g)
    dgamma = inv_std * sum(g * centered)
    dx     = gamma * inv_std * (g - sum(g) / m - centered * inv_std**2 * sum(g * centered) / m)

and, with fixed (moving) statistics, ``dx = gamma * inv_std * g``.

Every pass runs on a *wide* 2-D view, ``(N * H, W * C)`` for an ``(N, H, W, C)`` array, with the
per-channel vectors tiled W times: NumPy then loops over rows of W * C values instead of C (C = 16:
2.4x faster elementwise products). The sums over rows are GEMVs with a vector of ones
(:func:`glassnet.ops.workspace.column_sums`) or an ``einsum`` for the sums of products, both in the
array's dtype (no float64 temporaries in float32), and the W partial sums are folded at the end.
"""
from typing import NamedTuple

import numpy as np

from glassnet.ops.parallel import add_parts, num_threads, run_blocks
from glassnet.ops.workspace import column_sums, recycled_array


class BatchNormCache(NamedTuple):
    """What the backward pass of one call needs.

    Attributes
    ----------
    centered : ndarray or None
        ``x - mean`` as the wide 2-D view (training calls), or None (fixed statistics).
    inputs : ndarray or None
        ``x`` itself, wide (calls with fixed statistics: the gamma gradient needs ``x - mean``).
    mean, inv_std : ndarray, shape (C,)
        The statistics the call normalized with.
    output : ndarray or None
        ``y`` (wide) under a fused ReLU, whose ``y > 0`` gates the gradient; else None.
    batch_statistics : bool
        Whether the call used batch statistics (their gradient then flows through the mean and variance).
    """
    centered: np.ndarray
    inputs: np.ndarray
    mean: np.ndarray
    inv_std: np.ndarray
    output: np.ndarray
    batch_statistics: bool


#: Most bytes of one chunk of rows: a chunk's passes (e.g. center, then square and sum) run while it is in
#: cache, and the chunks are shared out between the worker threads (at least one per thread). 2 MiB
#: against 256 KiB, forward + backward of a small ResNet's six normalization configurations: 1.3x as fast
#: at 1 thread, 1.6x at 2 (fewer NumPy calls per pass; benchmarks/NOTES.md).
CHUNK_BYTES = 2 * 2 ** 20


def wide_view(x):
    """``(x2, repeats)``: ``x`` as a C-contiguous 2-D array whose rows hold ``repeats`` whole groups of the
    last axis (``(N * H, W * C)`` for an (N, H, W, C) array, ``(N, C)`` for an (N, C) one)."""
    x = np.ascontiguousarray(x)
    repeats = x.shape[-2] if x.ndim >= 3 else 1
    return x.reshape(-1, repeats * x.shape[-1]), repeats


def _fold(row, repeats):
    """Per-channel totals of a wide row of ``repeats`` groups: (repeats * C,) -> (C,)."""
    return row.reshape(repeats, -1).sum(axis=0) if repeats > 1 else row


def _tiled(vector, repeats):
    return np.tile(vector, repeats) if repeats > 1 else vector


def _over_chunks(fn, wide, arrays=1):
    """``fn(rows)`` for chunks of rows of ``wide`` (2-D), on the worker threads when the ``arrays`` arrays
    of its size that the passes touch are worth splitting; the tuples ``fn`` returns are summed."""
    threads = num_threads(arrays * wide.nbytes)
    count = max(-(-wide.nbytes // CHUNK_BYTES), threads)         # at least one chunk per thread
    step = max(1, -(-len(wide) // count))
    chunks = [slice(r, r + step) for r in range(0, len(wide), step)]
    return run_blocks(fn, chunks, threads, fold=add_parts)


def _dots(a, b):
    """Column sums of ``a * b`` (2-D, one shape) without an ``a * b`` temporary."""
    return np.einsum("ij,ij->j", a, b)


def batch_norm_forward(x, gamma, beta, epsilon, mean=None, var=None, relu=False):
    """Normalize ``x`` (..., C) per channel: with batch statistics when ``mean`` and ``var`` are None,
    else with the given (moving) ones.

    Parameters
    ----------
    x : ndarray, shape (..., C)
    gamma, beta : ndarray, shape (C,)
        Scale and shift (pass ones / zeros for a layer without them).
    epsilon : float
    mean, var : ndarray, shape (C,), optional
    relu : bool
        Apply ``max(y, 0)`` in the same pass (a BatchNormalization followed by a ReLU).

    Returns
    -------
    y : ndarray, shape of ``x``, dtype of ``x``
    cache : BatchNormCache
    batch_mean, batch_var : ndarray, shape (C,), or None with given statistics
        The batch's mean and biased variance (for the moving statistics).
    """
    dtype = x.dtype.type
    wide, repeats = wide_view(x)
    y = recycled_array("batch_norm_output", wide.shape, wide.dtype)
    if mean is None:
        # two passes: the mean first, so that the variance (of x - mean) does not cancel
        count = dtype(wide.shape[0] * repeats)
        batch_mean = _fold(*_over_chunks(lambda rows: (column_sums(wide[rows]),), wide), repeats) / count
        centered = recycled_array("batch_norm_centered", wide.shape, wide.dtype)
        mean_row = _tiled(batch_mean, repeats)

        def center(rows):
            part = np.subtract(wide[rows], mean_row, out=centered[rows])
            return (_dots(part, part),)
        batch_var = _fold(*_over_chunks(center, wide, 2), repeats) / count
        inv_std = dtype(1) / np.sqrt(batch_var + dtype(epsilon))
        _affine(centered, y, gamma * inv_std, beta, repeats, relu)
        cache = BatchNormCache(centered, None, batch_mean, inv_std, y if relu else None, True)
        return y.reshape(x.shape), cache, batch_mean, batch_var
    scale, shift, inv_std = inference_affine(gamma, beta, epsilon, mean, var, x.dtype)
    # x * scale + shift: one multiply and one add, no centered copy at inference
    _affine(wide, y, scale, shift, repeats, relu)
    mean = mean.astype(x.dtype, copy=False)
    return y.reshape(x.shape), BatchNormCache(None, wide, mean, inv_std, y if relu else None, False), None, None


def inference_affine(gamma, beta, epsilon, mean, var, dtype):
    """``(scale, shift, inv_std)`` per channel of a normalization with fixed statistics, in ``dtype``:
    ``y = x * scale + shift`` with ``inv_std = 1 / sqrt(var + epsilon)``, ``scale = gamma * inv_std`` and
    ``shift = beta - mean * scale``. A convolution before it may take them into its kernel and bias
    (:class:`glassnet.engine.plan.ConvBatchNormStep`)."""
    dtype = np.dtype(dtype).type
    inv_std = (dtype(1) / np.sqrt(var + dtype(epsilon))).astype(dtype, copy=False)
    scale = gamma * inv_std
    return scale, beta - mean.astype(dtype, copy=False) * scale, inv_std


def _affine(source, y, scale, shift, repeats, relu):
    """``y = source * scale + shift`` per channel (then ``max(y, 0)`` when ``relu``), chunk by chunk."""
    scale_row, shift_row = _tiled(scale, repeats), _tiled(shift, repeats)

    def rows_of(rows):
        out = np.multiply(source[rows], scale_row, out=y[rows])
        out += shift_row
        if relu:
            np.maximum(out, 0, out=out)
        return ()
    _over_chunks(rows_of, source, 2)


def batch_norm_backward(dy, cache, gamma, need_dx=True, need_grads=True, rule="vanilla"):
    """Gradients of :func:`batch_norm_forward` (see the module notes for the math).

    Parameters
    ----------
    dy : ndarray, shape of the forward pass's output
    cache : BatchNormCache
    gamma : ndarray, shape (C,)
    need_dx, need_grads : bool
    rule : {"vanilla", "guided", "rectified"}
        The ReLU backward rule of a fused ReLU (ignored without one).

    Returns
    -------
    dx : ndarray, shape of ``dy``, or None
    dgamma, dbeta : ndarray, shape (C,), or None when ``need_grads`` is False
    """
    shape = dy.shape
    wide_dy, repeats = wide_view(dy)
    scale_row = _tiled(gamma * cache.inv_std, repeats)
    gated = _gated(wide_dy, cache.output, rule)
    if not cache.batch_statistics and not need_grads:
        return _scaled(gated, scale_row).reshape(shape), None, None
    mean_row = None if cache.centered is not None else _tiled(cache.mean, repeats)

    def sums(rows):
        centered = cache.centered[rows] if mean_row is None else cache.inputs[rows] - mean_row
        return column_sums(gated[rows]), _dots(gated[rows], centered)
    sum_dy, sum_dy_centered = (_fold(total, repeats) for total in _over_chunks(sums, wide_dy, 2))
    grads = (sum_dy_centered * cache.inv_std, sum_dy) if need_grads else (None, None)
    if not need_dx:
        return None, *grads
    if not cache.batch_statistics:
        return _scaled(gated, scale_row).reshape(shape), *grads
    count = wide_dy.dtype.type(cache.centered.shape[0] * repeats)
    # dx = scale * (g - (centered * a + b)), a = inv_std**2 * sum(g * centered) / m, b = sum(g) / m
    a_row = _tiled(cache.inv_std ** 2 * sum_dy_centered / count, repeats)
    b_row = _tiled(sum_dy / count, repeats)
    dx = recycled_array("batch_norm_dx", wide_dy.shape, wide_dy.dtype)

    def dx_rows(rows):
        out = np.multiply(cache.centered[rows], a_row, out=dx[rows])
        out += b_row
        np.subtract(gated[rows], out, out=out)
        out *= scale_row
        return ()
    _over_chunks(dx_rows, wide_dy, 3)
    return dx.reshape(shape), *grads


def _gated(wide_dy, output, rule):
    """``dy`` through a fused ReLU's gate (``output > 0`` exactly where the ReLU's input was), chunk by
    chunk into a new array; ``dy`` itself without a fused ReLU."""
    if output is None:
        return wide_dy
    from glassnet.activations import relu_gate
    gated = recycled_array("batch_norm_gated", wide_dy.shape, wide_dy.dtype)

    def rows_of(rows):
        if rule == "vanilla":
            np.multiply(wide_dy[rows], output[rows] > 0, out=gated[rows])
        else:
            gated[rows] = relu_gate(wide_dy[rows], output[rows], rule)
        return ()
    _over_chunks(rows_of, wide_dy, 3)
    return gated


def _scaled(wide, scale_row):
    """``wide * scale_row`` as a new array, chunk by chunk."""
    out = np.empty_like(wide)

    def rows_of(rows):
        np.multiply(wide[rows], scale_row, out=out[rows])
        return ()
    _over_chunks(rows_of, wide, 2)
    return out
