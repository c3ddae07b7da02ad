"""glassnet.ops.depthwise and glassnet.ops.resize: the pure functions under DepthwiseConv2D, SeparableConv2D
and UpSampling2D (their layers are checked against loops and PyTorch in tests/layers)."""
import numpy as np
import pytest

from glassnet.ops.depthwise import (depthwise_conv2d_backward, depthwise_conv2d_forward, depthwise_output_hw,
                                    dilated_kernel_size)
from glassnet.ops.resize import bilinear_matrix, bilinear_resize, nearest_upsample, nearest_upsample_backward


def test_dilated_kernel_size_and_output_size():
    assert dilated_kernel_size((3, 2), (2, 3)) == (5, 4)
    assert depthwise_output_hw((9, 8), (3, 2), (2, 1), ((0, 0), (1, 1)), (2, 3)) == (3, 7)


def test_depthwise_dtype_and_flags():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 5, 3)).astype("float32")
    kernel = rng.standard_normal((3, 3, 3, 2)).astype("float32")
    y, cache = depthwise_conv2d_forward(x, kernel, None, (1, 1), ((1, 1), (1, 1)))
    assert y.shape == (2, 6, 5, 6) and y.dtype == np.float32
    dy = rng.standard_normal(y.shape).astype("float32")
    dx, dkernel, dbias = depthwise_conv2d_backward(dy, cache, kernel, need_dx=True, need_bias=True)
    assert dx.dtype == dkernel.dtype == dbias.dtype == np.float32 and dx.shape == x.shape
    none_dx, same_dkernel, no_bias = depthwise_conv2d_backward(dy, cache, kernel, need_dx=False, need_bias=False)
    assert none_dx is None and no_bias is None
    np.testing.assert_array_equal(same_dkernel, dkernel)


def test_depthwise_with_one_channel_and_multiplier_is_a_plain_correlation():
    """C = M = 1: the ordinary 2-D cross-correlation, checked against sliding windows."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 7, 6, 1))
    kernel = rng.standard_normal((3, 2, 1, 1))
    y, _ = depthwise_conv2d_forward(x, kernel, np.array([0.5]), (1, 1), ((0, 0), (0, 0)))
    windows = np.lib.stride_tricks.sliding_window_view(x[0, :, :, 0], (3, 2))
    np.testing.assert_allclose(y[0, :, :, 0], np.einsum("ijab,ab->ij", windows, kernel[:, :, 0, 0]) + 0.5)


@pytest.mark.parametrize("in_size, out_size", [(4, 8), (3, 9), (1, 5), (8, 3), (5, 5)])
def test_bilinear_matrix_rows_are_convex_weights(in_size, out_size):
    matrix = bilinear_matrix(in_size, out_size)
    assert matrix.shape == (out_size, in_size)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0)
    assert matrix.min() >= 0 and np.count_nonzero(matrix, axis=1).max() <= 2


def test_bilinear_resize_matches_torch_for_any_size():
    torch = pytest.importorskip("torch", reason="PyTorch (the dev-only oracle) is not importable")
    x = np.random.default_rng(2).standard_normal((2, 5, 7, 3))
    for out_hw in [(10, 14), (3, 4), (5, 9)]:
        y, _ = bilinear_resize(x, out_hw)
        expected = torch.nn.functional.interpolate(torch.tensor(x).permute(0, 3, 1, 2), size=out_hw,
                                                   mode="bilinear", align_corners=False).permute(0, 2, 3, 1)
        np.testing.assert_allclose(y, expected.numpy(), rtol=1e-12, atol=1e-12)


def test_nearest_upsample_and_its_transpose():
    x = np.arange(12.0).reshape(1, 2, 3, 2)
    y = nearest_upsample(x, (2, 3))
    np.testing.assert_array_equal(y, x.repeat(2, axis=1).repeat(3, axis=2))
    dy = np.random.default_rng(3).standard_normal(y.shape)
    np.testing.assert_allclose(np.vdot(dy, y), np.vdot(nearest_upsample_backward(dy, (2, 3)), x))
