"""Pure, vectorized NHWC functions: padding, im2col/col2im, convolution and pooling.

Nothing here keeps state; layers call these and cache what their backward pass needs.
Loops run over kernel offsets (KH * KW iterations), never over pixels.

The settings ``MEMORY_BUDGET_BYTES`` and ``NUM_THREADS`` live in :mod:`glassnet.ops.config`;
reading or setting them here (``glassnet.ops.NUM_THREADS = 1``) reads or sets them there.
"""
import sys
import types

from glassnet.ops import config
from glassnet.ops.padding import conv_output_size, pad2d, resolve_padding, unpad2d
from glassnet.ops.im2col import col2im, im2col
from glassnet.ops.conv import (conv2d_backward, conv2d_forward, conv2d_maxpool_backward, conv2d_maxpool_forward,
                               conv2d_maxpool_fusable)
from glassnet.ops import conv as conv_pool  # noqa: F401  (the fused functions' old module name, used by layers)
from glassnet.ops.parallel import matmul
from glassnet.ops.pooling import (avg_pool2d_backward, avg_pool2d_forward, max_pool2d_backward,
                                  max_pool2d_forward)

__all__ = [
    "MEMORY_BUDGET_BYTES", "NUM_THREADS",
    "conv_output_size", "pad2d", "resolve_padding", "unpad2d", "im2col", "col2im",
    "conv2d_forward", "conv2d_backward", "max_pool2d_forward", "max_pool2d_backward",
    "avg_pool2d_forward", "avg_pool2d_backward", "matmul",
    "conv2d_maxpool_forward", "conv2d_maxpool_backward", "conv2d_maxpool_fusable",
]


def _setting(name):
    """The setting ``name`` of :mod:`glassnet.ops.config` as a property of this package (a data
    descriptor, so that reads, writes and pytest's monkeypatch all reach the one value there)."""
    return property(lambda module: getattr(config, name), lambda module, value: setattr(config, name, value),
                    doc=f"glassnet.ops.config.{name}")


_OpsModule = type("_OpsModule", (types.ModuleType,), {name: _setting(name) for name in config.SETTINGS})
sys.modules[__name__].__class__ = _OpsModule
