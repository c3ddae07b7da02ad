"""glassnet.ops conv2d_forward / conv2d_backward against a direct sum and central differences."""
import numpy as np
import pytest

from glassnet import ops
from glassnet.testing import numerical_gradient, relative_error

# (N, H, W, C, F), kernel, stride, pads
CONFIGS = [
    ((2, 5, 5, 2, 3), (3, 3), (1, 1), ((0, 0), (0, 0))),
    ((2, 7, 6, 3, 2), (3, 3), (2, 2), ((1, 1), (0, 1))),
    ((1, 6, 7, 2, 4), (2, 3), (2, 1), ((0, 1), (1, 1))),
    ((2, 4, 9, 1, 2), (4, 2), (3, 4), ((2, 0), (0, 3))),
    ((3, 3, 3, 2, 1), (3, 3), (1, 1), ((0, 0), (0, 0))),
    ((2, 6, 6, 2, 3), (1, 1), (2, 2), ((0, 0), (0, 0))),
    ((1, 1, 1, 3, 2), (3, 3), (1, 1), ((1, 1), (1, 1))),
    ((2, 8, 8, 1, 2), (5, 5), (1, 1), ((2, 2), (2, 2))),
]
IDS = [f"{shape}-k{k}-s{s}-p{p}" for shape, k, s, p in CONFIGS]


def _direct_conv(x, kernel, bias, stride, pads):
    (top, bottom), (left, right) = pads
    xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    KH, KW = kernel.shape[:2]
    OH = (xp.shape[1] - KH) // stride[0] + 1
    OW = (xp.shape[2] - KW) // stride[1] + 1
    y = np.zeros((x.shape[0], OH, OW, kernel.shape[3]))
    for i in range(OH):
        for j in range(OW):
            window = xp[:, i * stride[0]:i * stride[0] + KH, j * stride[1]:j * stride[1] + KW]
            y[:, i, j] = np.einsum("nabc,abcf->nf", window, kernel)
    return y if bias is None else y + bias


def _inputs(shape, kernel_hw, seed, dtype="float64"):
    N, H, W, C, F = shape
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((N, H, W, C)).astype(dtype),
            rng.standard_normal(kernel_hw + (C, F)).astype(dtype),
            rng.standard_normal(F).astype(dtype), rng)


@pytest.mark.parametrize("shape, kernel_hw, stride, pads", CONFIGS, ids=IDS)
def test_conv_forward_matches_direct_sum(shape, kernel_hw, stride, pads):
    x, kernel, bias, _ = _inputs(shape, kernel_hw, 0)
    x_before = x.copy()
    for b in (bias, None):
        y, _ = ops.conv2d_forward(x, kernel, b, stride, pads)
        np.testing.assert_allclose(y, _direct_conv(x, kernel, b, stride, pads), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(x, x_before)


@pytest.mark.parametrize("shape, kernel_hw, stride, pads", CONFIGS, ids=IDS)
def test_conv_backward_matches_central_differences(shape, kernel_hw, stride, pads):
    x, kernel, bias, rng = _inputs(shape, kernel_hw, 1)
    y, cache = ops.conv2d_forward(x, kernel, bias, stride, pads)
    r = rng.standard_normal(y.shape)
    dy = r.copy()
    dy.setflags(write=False)
    dx, dkernel, dbias = ops.conv2d_backward(dy, cache, kernel)
    np.testing.assert_array_equal(dy, r)

    def loss():
        return float(np.sum(ops.conv2d_forward(x, kernel, bias, stride, pads)[0] * r))

    for analytic, array in ((dx, x), (dkernel, kernel), (dbias, bias)):
        assert analytic.shape == array.shape
        assert relative_error(analytic, numerical_gradient(loss, array)) < 1e-8


def test_conv_backward_options_skip_work_but_not_correctness():
    x, kernel, bias, rng = _inputs((2, 5, 5, 2, 3), (3, 3), 2)
    y, cache = ops.conv2d_forward(x, kernel, bias, (2, 1), ((1, 1), (0, 1)))
    dy = rng.standard_normal(y.shape)
    full = ops.conv2d_backward(dy, cache, kernel)
    dx, dkernel, dbias = ops.conv2d_backward(dy, cache, kernel, need_dx=False, need_bias=False)
    assert dx is None and dbias is None
    np.testing.assert_allclose(dkernel, full[1], rtol=1e-12)
    y, cache = ops.conv2d_forward(x, kernel, None, (2, 1), ((1, 1), (0, 1)))
    dx, dkernel, dbias = ops.conv2d_backward(dy, cache, kernel, need_bias=False)
    np.testing.assert_allclose(dx, full[0], rtol=1e-12)
    assert dx.flags.writeable and dx.flags.c_contiguous


@pytest.mark.parametrize("shape, kernel_hw, stride, pads", CONFIGS[:4], ids=IDS[:4])
def test_conv_float32_stays_float32_and_close_to_float64(shape, kernel_hw, stride, pads):
    x, kernel, bias, rng = _inputs(shape, kernel_hw, 3)
    y64, cache64 = ops.conv2d_forward(x, kernel, bias, stride, pads)
    y32, cache32 = ops.conv2d_forward(x.astype("float32"), kernel.astype("float32"), bias.astype("float32"),
                                      stride, pads)
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, y64, rtol=1e-4, atol=1e-4)
    dy = rng.standard_normal(y64.shape)
    grads64 = ops.conv2d_backward(dy, cache64, kernel)
    grads32 = ops.conv2d_backward(dy.astype("float32"), cache32, kernel.astype("float32"))
    for g32, g64 in zip(grads32, grads64):
        assert g32.dtype == np.float32
        np.testing.assert_allclose(g32, g64, rtol=1e-4, atol=1e-4)


def test_conv_batch_is_independent_per_example():
    """The batched result equals convolving each example alone (no mixing across the batch)."""
    x, kernel, bias, _ = _inputs((4, 6, 5, 2, 3), (3, 2), 4)
    y, _ = ops.conv2d_forward(x, kernel, bias, (2, 1), ((1, 1), (0, 1)))
    for n in range(4):
        alone, _ = ops.conv2d_forward(x[n:n + 1], kernel, bias, (2, 1), ((1, 1), (0, 1)))
        np.testing.assert_allclose(y[n:n + 1], alone, rtol=1e-12)
