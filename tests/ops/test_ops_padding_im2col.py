"""glassnet.ops padding arithmetic and im2col/col2im, against independent formulas and loops."""
import itertools
import math

import numpy as np
import pytest

from glassnet import ops


@pytest.mark.parametrize("stride", [1, 2, 3, 4])
@pytest.mark.parametrize("kernel", [1, 2, 3, 4, 5])
def test_same_padding_is_tensorflows_for_every_size(kernel, stride):
    """TensorFlow: out = ceil(n / s); total = max((out - 1) * s + k - n, 0); top = total // 2 (extra at the end)."""
    for n in range(1, 13):
        (top, bottom), (left, right) = ops.resolve_padding("same", (kernel, 1), (stride, 1), (n, 5))
        out = math.ceil(n / stride)
        total = max((out - 1) * stride + kernel - n, 0)
        assert (top, bottom) == (total // 2, total - total // 2)
        assert ops.conv_output_size(n, kernel, stride, top, bottom) == out
        assert (left, right) == (0, 0)                              # kernel 1, stride 1: nothing to pad


@pytest.mark.parametrize("padding, expected", [
    ("valid", ((0, 0), (0, 0))),
    (0, ((0, 0), (0, 0))),
    (2, ((2, 2), (2, 2))),
    ((1, 3), ((1, 1), (3, 3))),
    (((0, 2), (1, 0)), ((0, 2), (1, 0))),
    (np.int64(1), ((1, 1), (1, 1))),
])
def test_explicit_padding_forms(padding, expected):
    assert ops.resolve_padding(padding, (3, 3), (2, 2), (7, 7)) == expected


def test_conv_output_size_formula():
    for size, k, s, b, a in itertools.product(range(1, 9), range(1, 5), range(1, 4), range(3), range(3)):
        if size + b + a >= k:
            assert ops.conv_output_size(size, k, s, b, a) == len(range(0, size + b + a - k + 1, s))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_pad_and_unpad(dtype):
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 2)).astype(dtype)
    pads = ((1, 2), (0, 3))
    xp = ops.pad2d(x, pads)
    assert xp.shape == (2, 6, 7, 2) and xp.dtype == dtype
    np.testing.assert_array_equal(xp, np.pad(x, ((0, 0), (1, 2), (0, 3), (0, 0))))
    np.testing.assert_array_equal(ops.unpad2d(xp, pads), x)
    filled = ops.pad2d(x, pads, value=-np.inf)
    assert np.isneginf(filled).sum() == filled.size - x.size
    assert ops.pad2d(x, ((0, 0), (0, 0))) is x                     # no copy when nothing to pad


def _loop_im2col(xp, kernel, stride):
    KH, KW = kernel
    N, Hp, Wp, C = xp.shape
    OH, OW = (Hp - KH) // stride[0] + 1, (Wp - KW) // stride[1] + 1
    cols = np.empty((N, OH, OW, KH, KW, C), dtype=xp.dtype)
    for i in range(OH):
        for j in range(OW):
            cols[:, i, j] = xp[:, i * stride[0]:i * stride[0] + KH, j * stride[1]:j * stride[1] + KW]
    return cols


CONFIGS = [((2, 5, 6, 3), (3, 3), (1, 1)), ((1, 7, 5, 2), (2, 3), (2, 1)), ((2, 4, 9, 1), (4, 2), (3, 4)),
           ((3, 3, 3, 2), (3, 3), (1, 1)), ((1, 6, 6, 2), (1, 1), (2, 2)), ((2, 8, 7, 2), (2, 2), (2, 2))]


@pytest.mark.parametrize("shape, kernel, stride", CONFIGS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_im2col_matches_loop_and_col2im_is_its_adjoint(shape, kernel, stride, dtype):
    rng = np.random.default_rng(1)
    xp = rng.standard_normal(shape).astype(dtype)
    cols = ops.im2col(xp, kernel, stride)
    assert cols.dtype == dtype
    np.testing.assert_array_equal(cols, _loop_im2col(xp, kernel, stride))
    # <im2col(x), c> == <x, col2im(c)>: col2im is the exact transpose (overlaps add up)
    c = rng.standard_normal(cols.shape).astype(dtype)
    back = ops.col2im(c, xp.shape, stride)
    assert back.shape == xp.shape and back.dtype == dtype
    rtol = 1e-4 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(np.vdot(cols.astype(float), c.astype(float)),
                               np.vdot(xp.astype(float), back.astype(float)), rtol=rtol)


def test_im2col_fills_a_given_buffer():
    xp = np.random.default_rng(2).standard_normal((2, 5, 5, 2))
    out = np.full((2, 3, 3, 3, 3, 2), np.nan)
    cols = ops.im2col(xp, (3, 3), (1, 1), out=out)
    assert np.shares_memory(cols, out)
    np.testing.assert_array_equal(out, _loop_im2col(xp, (3, 3), (1, 1)))
