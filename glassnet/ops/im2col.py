"""im2col / col2im for NHWC tensors.

``im2col`` lays every receptive field out as one row, ordered (KH, KW, C) so that a
kernel of shape (KH, KW, C, F) reshaped to (KH * KW * C, F) multiplies it directly:
the convolution becomes a single GEMM. ``col2im`` is its adjoint (overlapping windows add).
"""
import numpy as np


def _window_slices(i, j, stride, OH, OW):
    sh, sw = stride
    return slice(i, i + sh * (OH - 1) + 1, sh), slice(j, j + sw * (OW - 1) + 1, sw)


def im2col(xp, kernel_size, stride, out=None):
    """Gather sliding windows of a (padded) NHWC array.

    Parameters
    ----------
    xp : ndarray, shape (N, Hp, Wp, C)
    kernel_size, stride : (int, int)
    out : ndarray, shape (N, OH, OW, KH, KW, C), optional
        Buffer to fill (reused between calls to avoid allocation).

    Returns
    -------
    cols : ndarray, shape (N, OH, OW, KH, KW, C)
    """
    N, Hp, Wp, C = xp.shape
    KH, KW = kernel_size
    OH = (Hp - KH) // stride[0] + 1
    OW = (Wp - KW) // stride[1] + 1
    if out is None:
        out = np.empty((N, OH, OW, KH, KW, C), dtype=xp.dtype)
    for i in range(KH):
        for j in range(KW):
            rows, cols = _window_slices(i, j, stride, OH, OW)
            out[:, :, :, i, j, :] = xp[:, rows, cols, :]
    return out


def col2im(dcols, padded_shape, stride):
    """Scatter-add window gradients back to the (padded) input: the adjoint of :func:`im2col`.

    Parameters
    ----------
    dcols : ndarray, shape (N, OH, OW, KH, KW, C)
    padded_shape : tuple (N, Hp, Wp, C)
    stride : (int, int)

    Returns
    -------
    dxp : ndarray, shape padded_shape
    """
    N, OH, OW, KH, KW, C = dcols.shape
    dxp = np.zeros(padded_shape, dtype=dcols.dtype)
    for i in range(KH):
        for j in range(KW):
            rows, cols = _window_slices(i, j, stride, OH, OW)
            dxp[:, rows, cols, :] += dcols[:, :, :, i, j, :]
    return dxp
