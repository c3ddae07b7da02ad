"""Image resizing over NHWC arrays: nearest-neighbour upsampling by integer factors and bilinear resizing.

Bilinear resizing is separable: ``y = A_h x A_w^T`` per image and channel, where ``A`` (out x in) is the
interpolation matrix of one axis. Its entries follow PyTorch's ``align_corners=False`` (TensorFlow's
``half_pixel_centers=True``, Keras 3's ``UpSampling2D(interpolation="bilinear")``): output pixel ``o``
samples the input at ``s = max((o + 0.5) * in / out - 0.5, 0)``, weighting pixel ``floor(s)`` by
``1 - frac(s)`` and the next one (clamped to the last pixel) by ``frac(s)``. The backward pass is the same
product with the transposed matrices, so both directions are two batched matrix products.
"""
import numpy as np

from glassnet.ops.parallel import held_blas


def bilinear_matrix(in_size, out_size, dtype=np.float64):
    """The ``(out_size, in_size)`` matrix of 1-D linear interpolation (half-pixel centres, no antialiasing)."""
    source = np.maximum((np.arange(out_size) + 0.5) * (in_size / out_size) - 0.5, 0.0)
    low = np.minimum(np.floor(source).astype(np.intp), in_size - 1)
    high = np.minimum(low + 1, in_size - 1)
    frac = source - low
    matrix = np.zeros((out_size, in_size), dtype=np.float64)
    rows = np.arange(out_size)
    np.add.at(matrix, (rows, low), 1.0 - frac)
    np.add.at(matrix, (rows, high), frac)        # high == low at the last pixel: the weights add up to 1
    return matrix.astype(dtype)


def apply_axis_matrices(x, rows, cols):
    """``rows @ x[n, :, :, c] @ cols.T`` for every image and channel: (N, H, W, C) -> (N, R, K, C)
    with ``rows`` (R, H) and ``cols`` (K, W)."""
    N, H, W, C = x.shape
    R = rows.shape[0]
    with held_blas():           # one BLAS thread, as in every glassnet product: the same bits on any thread
        tall = np.matmul(rows, x.reshape(N, H, W * C))              # (N, R, W * C)
        wide = np.matmul(cols, tall.reshape(N * R, W, C))           # (N * R, K, C)
    return wide.reshape(N, R, cols.shape[0], C)


def bilinear_resize(x, out_hw):
    """Bilinear resize of NHWC ``x`` to ``out_hw``; returns ``(y, matrices)`` for :func:`bilinear_resize_backward`."""
    rows = bilinear_matrix(x.shape[1], out_hw[0], x.dtype)
    cols = bilinear_matrix(x.shape[2], out_hw[1], x.dtype)
    return apply_axis_matrices(x, rows, cols), (rows, cols)


def bilinear_resize_backward(dy, matrices):
    """dL/dx of :func:`bilinear_resize`: the transposed interpolation applied to ``dy``."""
    rows, cols = matrices
    return apply_axis_matrices(dy, rows.T, cols.T)


def nearest_upsample(x, size):
    """Repeat every pixel ``size = (sh, sw)`` times along H and W: (N, H, W, C) -> (N, H*sh, W*sw, C)."""
    N, H, W, C = x.shape
    sh, sw = size
    y = np.broadcast_to(x[:, :, None, :, None, :], (N, H, sh, W, sw, C))
    return y.reshape(N, H * sh, W * sw, C)


def nearest_upsample_backward(dy, size):
    """dL/dx of :func:`nearest_upsample`: each input pixel sums the gradients of its ``sh x sw`` copies."""
    N, OH, OW, C = dy.shape
    sh, sw = size
    return dy.reshape(N, OH // sh, sh, OW // sw, sw, C).sum(axis=(2, 4))
