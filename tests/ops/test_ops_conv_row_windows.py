"""The row-window convolution (glassnet.ops.conv.row_windows) against the im2col path, and when it is used."""
import numpy as np
import pytest

from glassnet import ops
from glassnet.ops import blas
from glassnet.ops.conv import plan as planning, row_windows


@pytest.fixture(autouse=True)
def _row_windows_on_small_images(row_windows_on_small_images):
    """These tests run the row-window strategy on small images."""


needs_blas = pytest.mark.skipif(not blas.available(np.float32), reason="no BLAS GEMM bound: the row path is off")

# (N, H, W, C, F), kernel, stride, pads: every one has C > 1 and a kernel at least as tall as the row stride
CONFIGS = [
    ((2, 5, 5, 2, 3), (3, 3), (1, 1), ((0, 0), (0, 0))),
    ((3, 8, 8, 4, 5), (3, 3), (2, 2), ((0, 1), (0, 1))),      # "same" with stride 2: an odd padded height
    ((2, 9, 7, 3, 4), (3, 3), (2, 1), ((1, 1), (1, 1))),
    ((2, 10, 10, 2, 3), (5, 3), (3, 2), ((1, 1), (1, 0))),    # groups of 3 and 2 kernel rows
    ((2, 7, 7, 3, 2), (2, 2), (2, 2), ((0, 0), (0, 0))),      # one group, as tall as the stride
    ((3, 7, 6, 3, 2), (3, 2), (1, 2), ((1, 1), (0, 1))),
    ((1, 6, 9, 4, 5), (1, 4), (1, 3), ((0, 0), (2, 1))),
    ((5, 10, 10, 6, 16), (5, 5), (1, 1), ((2, 2), (2, 2))),
    ((2, 3, 3, 2, 2), (3, 3), (1, 1), ((0, 0), (0, 0))),
]


def _both_paths(monkeypatch, x, kernel, bias, stride, pads, dy, relu):
    """(forward, backward) results of the row-window path and of the im2col path."""
    results = []
    for use_rows in (True, False):
        if not use_rows:
            monkeypatch.setattr(planning, "_row_window_plan", lambda *args: None)
        y, cache = ops.conv2d_forward(x, kernel, bias, stride, pads, relu=relu)
        assert (type(cache.plan) is planning.RowWindowPlan) == use_rows
        grads = ops.conv2d_backward(dy, cache, kernel, need_bias=bias is not None,
                                    relu_output=y if relu else None)
        results.append((y, grads))
    return results


@needs_blas
@pytest.mark.parametrize("per_image", [False, True], ids=["frame", "per-image"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("shape, kernel_hw, stride, pads", CONFIGS)
def test_row_windows_match_im2col(monkeypatch, per_image, dtype, relu, shape, kernel_hw, stride, pads):
    monkeypatch.setattr(planning, "PER_IMAGE_FLOPS", 0 if per_image else float("inf"))
    N, H, W, C, F = shape
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal((N, H, W, C)).astype(dtype)
    kernel = rng.standard_normal(kernel_hw + (C, F)).astype(dtype)
    bias = rng.standard_normal(F).astype(dtype) if F % 2 else None
    y_shape = ops.conv2d_forward(x, kernel, bias, stride, pads)[0].shape
    dy = rng.standard_normal(y_shape).astype(dtype)
    (y_rows, grads_rows), (y_cols, grads_cols) = _both_paths(monkeypatch, x, kernel, bias, stride, pads, dy, relu)
    tolerance = 1e-12 if dtype == "float64" else 2e-5
    np.testing.assert_allclose(y_rows, y_cols, rtol=tolerance, atol=tolerance)
    for got, expected in zip(grads_rows, grads_cols):
        if expected is None:
            assert got is None
        else:
            assert got.dtype == expected.dtype and got.shape == expected.shape
            np.testing.assert_allclose(got, expected, rtol=tolerance, atol=tolerance * 10)


@needs_blas
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_row_windows_over_many_blocks_and_threads(monkeypatch, blocks_of_one_image, threads):
    """Small blocks (one image each) spread over threads sum the kernel gradient exactly once."""
    blocks_of_one_image(threads, 11 * 8 * 3 * 3 * 8)
    blocks_seen = []
    real_backward = row_windows.backward
    monkeypatch.setattr(row_windows, "backward",
                        lambda *args: blocks_seen.append(len(args[0].blocks)) or real_backward(*args))
    rng = np.random.default_rng(7)
    x, kernel = rng.standard_normal((7, 9, 8, 3)), rng.standard_normal((3, 3, 3, 4))
    bias, dy = rng.standard_normal(4), rng.standard_normal((7, 9, 8, 4))
    pads = ((1, 1), (1, 1))
    (y_rows, grads_rows), (y_cols, grads_cols) = _both_paths(monkeypatch, x, kernel, bias, (1, 1), pads, dy, True)
    assert blocks_seen == [7]                   # the row path ran, one image per block
    np.testing.assert_allclose(y_rows, y_cols, rtol=1e-12, atol=1e-12)
    for got, expected in zip(grads_rows, grads_cols):
        np.testing.assert_allclose(got, expected, rtol=1e-11, atol=1e-11)


@needs_blas
def test_row_path_is_taken_where_it_applies_and_only_there(monkeypatch):
    calls = []
    real_forward = row_windows.forward
    monkeypatch.setattr(row_windows, "forward",
                        lambda *args, **kwargs: calls.append(args[2].shape) or real_forward(*args, **kwargs))
    x = np.zeros((2, 12, 12, 32), dtype="float32")
    ops.conv2d_forward(x, np.zeros((3, 3, 32, 64), dtype="float32"), None, (1, 1), ((0, 0), (0, 0)))
    ops.conv2d_forward(x, np.zeros((3, 3, 32, 8), dtype="float32"), None, (2, 1), ((0, 0), (0, 0)))  # row stride 2
    ops.conv2d_forward(x, np.zeros((1, 1, 32, 8), dtype="float32"), None, (2, 2), ((0, 0), (0, 0)))  # KH < stride
    ops.conv2d_forward(x[..., :1], np.zeros((3, 3, 1, 8), dtype="float32"), None, (1, 1), ((0, 0), (0, 0)))  # C = 1
    assert calls == [(3, 3, 32, 64), (3, 3, 32, 8)]


def test_im2col_path_when_blas_is_not_bound(monkeypatch):
    monkeypatch.setattr(blas, "available", lambda dtype=None: False)
    monkeypatch.setattr(row_windows, "forward",
                        lambda *args, **kwargs: pytest.fail("the row path needs BLAS accumulation"))
    rng = np.random.default_rng(3)
    x, kernel = rng.standard_normal((2, 6, 6, 3)), rng.standard_normal((3, 3, 3, 2))
    y, _ = ops.conv2d_forward(x, kernel, None, (1, 1), ((0, 0), (0, 0)))
    assert y.shape == (2, 4, 4, 2)


@pytest.mark.parametrize("OW, KW, sw", [(5, 3, 1), (3, 3, 1), (2, 3, 1), (1, 3, 1), (4, 2, 1), (6, 1, 1), (7, 5, 1),
                                        (4, 3, 2), (3, 2, 3)])
def test_scatter_columns_is_col2im_along_the_width(OW, KW, sw):
    rng = np.random.default_rng(OW * 10 + KW)
    n, Hp, C = 2, 3, 4
    dxw = rng.standard_normal((n, Hp, OW, KW, C))
    Wp = sw * (OW - 1) + KW
    expected = np.zeros((n, Hp, Wp, C))
    for ow in range(OW):
        for j in range(KW):
            expected[:, :, ow * sw + j] += dxw[:, :, ow, j]
    target = np.full((n, Hp, Wp, C), np.nan)                # every element must be written
    row_windows._scatter_columns(dxw, target, sw)
    np.testing.assert_allclose(target, expected, rtol=1e-12, atol=1e-12)


@needs_blas
@pytest.mark.parametrize("channels", [3, 20])
def test_the_shifted_and_the_scattered_input_gradient_agree_in_training(channels):
    """A training backward pass gives the same gradients with the plan's ``shifted_dx`` on (KH * KW shifted
    GEMMs) and off (KH wide GEMMs and a column scatter), whichever the planner picks for these channels."""
    rng = np.random.default_rng(channels)
    x, kernel = rng.standard_normal((3, 12, 11, channels)), rng.standard_normal((3, 3, channels, 5))
    y, cache = ops.conv2d_forward(x, kernel, None, (1, 1), ((1, 1), (1, 1)))
    assert type(cache.plan) is planning.RowWindowPlan
    assert cache.plan.shifted_dx == (channels <= planning.SHIFTED_DX_MAX_CHANNELS)
    dy = rng.standard_normal(y.shape)
    results = [ops.conv2d_backward(dy, cache._replace(plan=cache.plan._replace(shifted_dx=shifted)), kernel)
               for shifted in (True, False)]
    for got, expected in zip(*results):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
