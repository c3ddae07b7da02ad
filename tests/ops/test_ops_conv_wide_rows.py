"""glassnet.ops.conv.wide_rows: single-channel convolutions with few filters, G output pixels per im2col row."""
import numpy as np
import pytest

from glassnet import ops, reference
from glassnet.ops.conv import blocks, plan as planning


def _plain(monkeypatch):
    monkeypatch.setattr(planning, "WIDE_MAX_FILTERS", 0)


@pytest.mark.parametrize("kernel_shape, stride, OW, expected", [
    ((5, 5, 1, 6), (1, 1), 28, 4),          # 5x5, one channel, 6 filters
    ((5, 5, 1, 6), (1, 1), 26, 1),          # a width G does not divide
    ((5, 5, 2, 6), (1, 1), 28, 1),          # two channels
    ((5, 5, 1, 16), (1, 1), 28, 1),         # enough filters for a plain GEMM
    ((3, 3, 1, 8), (1, 1), 28, 1),          # a narrow kernel
    ((5, 5, 1, 6), (2, 2), 12, 1),          # stride 2
])
def test_which_convolutions_go_wide(kernel_shape, stride, OW, expected):
    KH, KW = kernel_shape[:2]
    padded = (2, (OW - 1) * stride[0] + KH, (OW - 1) * stride[1] + KW, kernel_shape[2])
    plan = planning.conv_plan(padded, np.float32, kernel_shape, stride, np.float32)
    assert plan.out_hw[1] == OW
    assert (plan.group if isinstance(plan, planning.WideRowsPlan) else 1) == expected


def _case(dtype="float64", n=3, size=12, filters=6, pads=((2, 2), (2, 2))):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, size, size, 1)).astype(dtype)
    kernel = rng.standard_normal((5, 5, 1, filters)).astype(dtype)
    bias = rng.standard_normal(filters).astype(dtype)
    return x, kernel, bias, (1, 1), pads


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_wide_rows_give_the_plain_im2col_results(monkeypatch, relu, dtype):
    x, kernel, bias, stride, pads = _case(dtype)
    assert ops.conv2d_forward(x, kernel, bias, stride, pads)[0].shape[2] % planning.WIDE_GROUP == 0
    plan = planning.conv_plan((3, 16, 16, 1), x.dtype, kernel.shape, stride, x.dtype)
    assert isinstance(plan, planning.WideRowsPlan) and plan.group == planning.WIDE_GROUP
    y, cache = ops.conv2d_forward(x, kernel, bias, stride, pads, relu=relu)
    dy = np.random.default_rng(1).standard_normal(y.shape).astype(dtype)
    got = ops.conv2d_backward(dy, cache, kernel, relu_output=y if relu else None)
    _plain(monkeypatch)
    y_plain, cache_plain = ops.conv2d_forward(x, kernel, bias, stride, pads, relu=relu)
    expected = ops.conv2d_backward(dy, cache_plain, kernel, relu_output=y_plain if relu else None)
    tolerance = 1e-12 if dtype == "float64" else 1e-4
    np.testing.assert_allclose(y, y_plain, rtol=tolerance, atol=tolerance)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=tolerance, atol=tolerance)


def test_wide_rows_match_the_loop_reference():
    x, kernel, bias, stride, pads = _case()
    y, cache = ops.conv2d_forward(x, kernel, bias, stride, pads)
    expected, ref_cache = reference.conv_forward(x, kernel, bias, {"stride": 1, "pad": 2})
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
    dy = np.random.default_rng(4).standard_normal(y.shape)
    dx, dkernel, dbias = ops.conv2d_backward(dy, cache, kernel)
    for got, want in zip((dx, dkernel, dbias), reference.conv_backward(dy, ref_cache)):
        np.testing.assert_allclose(got, np.reshape(want, got.shape), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("setting", ["MEMORY_BUDGET_BYTES", "BLOCK_BYTES"])
def test_row_blocks_of_one_image_and_kept_matrices(monkeypatch, setting):
    """Small blocks split images into row blocks; under a small memory budget nothing is kept,
    with small cache-sized blocks the kept wide matrices serve the backward pass."""
    x, kernel, bias, stride, pads = _case(n=2, size=28)
    y, cache = ops.conv2d_forward(x, kernel, bias, stride, pads)
    dy = np.random.default_rng(2).standard_normal(y.shape)
    expected = ops.conv2d_backward(dy, cache, kernel)
    monkeypatch.setattr(ops if setting == "MEMORY_BUDGET_BYTES" else planning, setting, 8 * 2 ** 10)
    monkeypatch.setattr(planning, "WHOLE_IMAGE_BYTES", 8 * 2 ** 10)
    plan = planning.conv_plan((2, 32, 32, 1), x.dtype, kernel.shape, stride, x.dtype)
    assert plan.group == planning.WIDE_GROUP and plan.blocks[0][1].stop - plan.blocks[0][1].start < 28
    storage = {}
    y_blocks, cache_blocks = ops.conv2d_forward(x, kernel, bias, stride, pads, keep=storage)
    assert (cache_blocks.kept is None) == (setting == "MEMORY_BUDGET_BYTES")
    np.testing.assert_allclose(y_blocks, y, rtol=1e-12, atol=1e-12)
    for g, e in zip(ops.conv2d_backward(dy, cache_blocks, kernel), expected):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kernel_shape, window", [((5, 5, 1, 6), (1, planning.WIDE_GROUP)), ((3, 2, 3, 4), (2, 2)),
                                                   ((2, 3, 2, 5), (3, 2))])
def test_the_window_kernel_and_its_gradient_fold_are_adjoint(kernel_shape, window):
    """<window_kernel(K), D> == <K, fold(D)> for any D: the fold is the transpose of the block expansion."""
    rng = np.random.default_rng(3)
    kernel = rng.standard_normal(kernel_shape)
    KH, KW, C, F = kernel_shape
    wide = blocks.window_kernel(kernel, window)
    assert wide.shape == ((KH + window[0] - 1) * (KW + window[1] - 1) * C, window[0] * window[1] * F)
    D = rng.standard_normal(wide.shape)
    folded = blocks.fold_window_gradient(D, kernel.shape, window)
    assert folded.shape == kernel_shape
    assert np.isclose(np.sum(wide * D), np.sum(kernel * folded), rtol=1e-12)


def test_the_window_kernel_places_each_pixel_s_kernel_at_its_offset():
    """Column (a, b, f) of the block matrix holds kernel[:, :, :, f] at rows (a + i, b + j, c)."""
    kernel = np.arange(2 * 3 * 2 * 2, dtype=float).reshape(2, 3, 2, 2) + 1
    wide = blocks.window_kernel(kernel, (2, 2)).reshape(3, 4, 2, 2, 2, 2)
    for a in range(2):
        for b in range(2):
            expected = np.zeros((3, 4, 2, 2))
            expected[a:a + 2, b:b + 3] = kernel
            np.testing.assert_array_equal(wide[:, :, :, a, b, :], expected)


def test_kept_wide_matrices_never_serve_a_plain_plan(monkeypatch):
    x, kernel, bias, stride, pads = _case()
    storage = {}
    ops.conv2d_forward(x, kernel, bias, stride, pads, keep=storage)
    _plain(monkeypatch)                        # same blocks and shapes, another matrix layout
    y, cache = ops.conv2d_forward(x, kernel, bias, stride, pads, keep=storage)
    dy = np.ones_like(y)
    got = ops.conv2d_backward(dy, cache, kernel)
    expected = ops.conv2d_backward(dy, ops.conv2d_forward(x, kernel, bias, stride, pads)[1], kernel)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12)
