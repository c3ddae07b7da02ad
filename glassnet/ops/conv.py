"""2-D convolution (cross-correlation, as in every deep-learning library) on NHWC tensors.

Forward:   y[n, oh, ow, f] = sum_{i, j, c} xp[n, oh*sh + i, ow*sw + j, c] * kernel[i, j, c, f] + bias[f]
With cols = im2col(xp) reshaped to (N*OH*OW, KH*KW*C) this is ``cols @ kernel2d + bias``.
Backward:  dkernel2d = cols.T @ dy2d,  dbias = sum(dy2d, axis=0),  dcols = dy2d @ kernel2d.T,
           dx = unpad(col2im(dcols)).
"""
import numpy as np

from glassnet.ops.im2col import col2im, im2col
from glassnet.ops.padding import pad2d, unpad2d


def conv2d_forward(x, kernel, bias, stride, pads):
    """Convolve an NHWC batch with an HWIO kernel.

    Parameters
    ----------
    x : ndarray, shape (N, H, W, C)
    kernel : ndarray, shape (KH, KW, C, F)
    bias : ndarray, shape (F,) or None
    stride : (int, int)
    pads : ((top, bottom), (left, right))

    Returns
    -------
    y : ndarray, shape (N, OH, OW, F)
    cache : tuple
        What :func:`conv2d_backward` needs: the im2col matrix and the padded input shape.
    """
    KH, KW, C, F = kernel.shape
    xp = pad2d(x, pads)
    cols = im2col(xp, (KH, KW), stride)
    N, OH, OW = cols.shape[:3]
    y = cols.reshape(N * OH * OW, KH * KW * C) @ kernel.reshape(KH * KW * C, F)
    if bias is not None:
        y += bias
    return y.reshape(N, OH, OW, F), (cols, xp.shape, stride, pads)


def conv2d_backward(dy, cache, kernel, need_dx=True, need_bias=True):
    """Gradients of :func:`conv2d_forward`.

    Parameters
    ----------
    dy : ndarray, shape (N, OH, OW, F)
    cache : tuple from :func:`conv2d_forward`
    kernel : ndarray, shape (KH, KW, C, F)
    need_dx : bool
        Skip the input gradient (e.g. for the first layer while training).

    Returns
    -------
    dx : ndarray, shape (N, H, W, C), or None when ``need_dx`` is False
    dkernel : ndarray, shape (KH, KW, C, F)
    dbias : ndarray, shape (F,), or None when ``need_bias`` is False
    """
    cols, padded_shape, stride, pads = cache
    KH, KW, C, F = kernel.shape
    K = KH * KW * C
    dy2d = dy.reshape(-1, F)
    dkernel = (cols.reshape(-1, K).T @ dy2d).reshape(kernel.shape)
    dbias = dy2d.sum(axis=0) if need_bias else None
    dx = None
    if need_dx:
        dcols = (dy2d @ kernel.reshape(K, F).T).reshape(cols.shape)
        dx = unpad2d(col2im(dcols, padded_shape, stride), pads)
        if dx.base is not None:
            dx = np.ascontiguousarray(dx)
    return dx, dkernel, dbias
