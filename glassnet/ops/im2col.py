"""im2col / col2im for NHWC tensors.

``im2col`` lays every receptive field out as one row, ordered (KH, KW, C) so that a
kernel of shape (KH, KW, C, F) reshaped to (KH * KW * C, F) multiplies it directly:
the convolution becomes a single GEMM. ``col2im`` is its adjoint (overlapping windows add).
Both loop over the KH * KW kernel offsets; each step moves one strided slab of the batch.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def window_slices(i, j, stride, OH, OW):
    """Rows and columns of the padded input that kernel offset (i, j) sees at every output position."""
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
    sh, sw = stride
    OH = (Hp - KH) // sh + 1
    OW = (Wp - KW) // sw + 1
    if out is None:
        out = np.empty((N, OH, OW, KH, KW, C), dtype=xp.dtype)
    # NumPy copies fastest when the innermost contiguous run is long. With C > 1 copy one kernel
    # row at a time: a window view of xp along W makes each window row (KW * C values) one run.
    # With C == 1 that run would be only KW values, so copy per offset: each run is an output row.
    if C > 1:
        windows = sliding_window_view(xp, KW, axis=2)[:, :, ::sw].transpose(0, 1, 2, 4, 3)  # (N, Hp, OW, KW, C)
        for i in range(KH):
            out[:, :, :, i] = windows[:, i:i + sh * (OH - 1) + 1:sh]
        return out
    for i in range(KH):
        for j in range(KW):
            rows, cols = window_slices(i, j, stride, OH, OW)
            out[:, :, :, i, j, :] = xp[:, rows, cols, :]
    return out


def col2im(dcols, padded_shape, stride, out=None):
    """Scatter-add window gradients back to the (padded) input: the adjoint of :func:`im2col`.

    Parameters
    ----------
    dcols : ndarray, shape (N, OH, OW, KH, KW, C)
    padded_shape : tuple (N, Hp, Wp, C)
    stride : (int, int)
    out : ndarray, shape padded_shape, optional
        Array to add into (its current values are kept). A new zero array when omitted.

    Returns
    -------
    dxp : ndarray, shape padded_shape
    """
    N, OH, OW, KH, KW, C = dcols.shape
    dxp = np.zeros(padded_shape, dtype=dcols.dtype) if out is None else out
    for i in range(KH):
        for j in range(KW):
            rows, cols = window_slices(i, j, stride, OH, OW)
            dxp[:, rows, cols, :] += dcols[:, :, :, i, j, :]
    return dxp
