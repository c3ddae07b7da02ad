"""Pure, vectorized NHWC functions: padding, im2col/col2im, convolution and pooling.

Nothing here keeps state; layers call these and cache what their backward pass needs.
Loops run over kernel offsets (KH * KW iterations), never over pixels.
"""
#: Most bytes of im2col-sized temporaries one convolution call holds at once. Larger batches
#: (or images) are processed in blocks of images, or of output rows, that fit; set it lower to
#: trade a little speed for memory, e.g. ``glassnet.ops.MEMORY_BUDGET_BYTES = 64 * 2**20``.
MEMORY_BUDGET_BYTES = 256 * 2 ** 20

#: Threads for glassnet's own blocks of work (convolution, pooling). None follows NumPy's BLAS
#: (e.g. ``threadpoolctl.threadpool_limits(2)``; read from NumPy's OpenBLAS itself, 1 with another
#: BLAS); an int fixes it; 1 keeps everything on the calling thread. See :mod:`glassnet.ops.parallel`.
NUM_THREADS = None

from glassnet.ops.padding import conv_output_size, pad2d, resolve_padding, unpad2d
from glassnet.ops.im2col import col2im, im2col
from glassnet.ops.conv import conv2d_backward, conv2d_forward
from glassnet.ops.parallel import matmul
from glassnet.ops.pooling import (avg_pool2d_backward, avg_pool2d_forward, max_pool2d_backward,
                                  max_pool2d_forward)
from glassnet.ops.conv_pool import conv2d_maxpool_backward, conv2d_maxpool_forward

__all__ = [
    "MEMORY_BUDGET_BYTES", "NUM_THREADS",
    "conv_output_size", "pad2d", "resolve_padding", "unpad2d", "im2col", "col2im",
    "conv2d_forward", "conv2d_backward", "max_pool2d_forward", "max_pool2d_backward",
    "avg_pool2d_forward", "avg_pool2d_backward", "matmul",
    "conv2d_maxpool_forward", "conv2d_maxpool_backward",
]
