"""need_kernel=False (an explanation's backward pass): the same input gradient as the full backward
pass, and no kernel gradient computed, in every convolution strategy and both fused ones."""
import numpy as np
import pytest

from glassnet import ops
from glassnet.ops.conv import plan as planning
from glassnet.ops.depthwise import depthwise_conv2d_backward, depthwise_conv2d_forward


@pytest.fixture(autouse=True)
def _row_windows_on_small_images(row_windows_on_small_images):
    """These tests run the row-window strategy on small images."""


# (N, H, W, C, F), kernel, stride, pads, dilation, the plan type the strategy choice gives
STRATEGIES = [
    ((2, 7, 6, 3, 2), (1, 2), (2, 2), ((1, 1), (0, 1)), (1, 1), planning.Im2colPlan),
    ((2, 7, 6, 3, 2), (3, 3), (2, 2), ((1, 1), (0, 1)), (1, 1), planning.RowWindowPlan),
    ((2, 12, 12, 1, 3), (5, 5), (1, 1), ((0, 0), (0, 0)), (1, 1), planning.WideRowsPlan),
    ((2, 9, 9, 2, 3), (3, 3), (1, 1), ((1, 1), (1, 1)), (2, 2), planning.DilatedPlan),
    ((3, 8, 8, 3, 4), (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), planning.RowWindowPlan),
]
IDS = [f"{plan_type.__name__}-stride{stride[0]}" for _, _, stride, *_, plan_type in STRATEGIES]


def _refuse(name):
    def refused(*args, **kwargs):
        raise AssertionError(f"{name} ran: only the kernel gradient needs it")
    return refused


def _no_kernel_gradient_work(monkeypatch):
    """Make every builder of the input's block matrices, and the kernel-gradient GEMM, fail if called."""
    monkeypatch.setattr("glassnet.ops.blas.gemm_tall", _refuse("gemm_tall"))
    monkeypatch.setattr("glassnet.ops.conv.im2col._block_matrix", _refuse("im2col._block_matrix"))
    monkeypatch.setattr("glassnet.ops.conv.row_windows._block_windows", _refuse("row_windows._block_windows"))
    monkeypatch.setattr("glassnet.ops.conv.pool_windows._block_matrix", _refuse("pool_windows._block_matrix"))


@pytest.mark.parametrize("relu", [False, True], ids=["linear", "relu"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("shape, kernel_hw, stride, pads, dilation, plan_type", STRATEGIES, ids=IDS)
def test_input_gradient_alone_equals_the_full_pass(monkeypatch, relu, dtype, shape, kernel_hw, stride, pads, dilation,
                                                  plan_type):
    N, H, W, C, F = shape
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal((N, H, W, C)).astype(dtype)
    kernel = rng.standard_normal(kernel_hw + (C, F)).astype(dtype)
    bias = rng.standard_normal(F).astype(dtype)
    y, cache = ops.conv2d_forward(x, kernel, bias, stride, pads, relu=relu, dilation=dilation)
    assert type(cache.plan) is plan_type
    dy = rng.standard_normal(y.shape).astype(dtype)
    options = {"relu_output": y if relu else None, "gate_input": relu}
    full_dx, full_dkernel, _ = ops.conv2d_backward(dy, cache, kernel, **options)
    assert full_dkernel is not None
    _no_kernel_gradient_work(monkeypatch)
    dx, dkernel, dbias = ops.conv2d_backward(dy, cache, kernel, need_bias=False, need_kernel=False, **options)
    assert dkernel is None and dbias is None
    # row windows sum the taps in another order (shifted GEMMs straight into dx); the others run the same GEMMs
    tolerance = 1e-12 if dtype == "float64" else 2e-5
    np.testing.assert_allclose(dx, full_dx, rtol=tolerance, atol=tolerance * np.abs(full_dx).max())
    _, _, dbias = ops.conv2d_backward(dy, cache, kernel, need_dx=False, need_kernel=False)
    np.testing.assert_allclose(dbias, dy.sum(axis=(0, 1, 2)), rtol=1e-5)


@pytest.mark.parametrize("threads", [1, 2])
def test_input_gradient_alone_over_many_blocks_and_threads(monkeypatch, blocks_of_one_image, threads):
    blocks_of_one_image(threads, 10 * 8 * 3 * 3 * 8)
    rng = np.random.default_rng(5)
    x, kernel = rng.standard_normal((5, 8, 8, 3)), rng.standard_normal((3, 3, 3, 4))
    y, cache = ops.conv2d_forward(x, kernel, None, (1, 1), ((1, 1), (1, 1)))
    assert len(cache.plan.blocks) == 5
    dy = rng.standard_normal(y.shape)
    full_dx = ops.conv2d_backward(dy, cache, kernel, need_bias=False)[0]
    _no_kernel_gradient_work(monkeypatch)
    np.testing.assert_allclose(ops.conv2d_backward(dy, cache, kernel, need_bias=False, need_kernel=False)[0],
                               full_dx, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("gate_input", [False, True], ids=["", "gated"])
@pytest.mark.parametrize("relu", [True, False], ids=["relu", "linear"])
def test_fused_pooling_input_gradient_alone(monkeypatch, fused_method, relu, gate_input):
    rng = np.random.default_rng(6)
    x, kernel, bias = rng.standard_normal((3, 10, 10, 3)), rng.standard_normal((3, 3, 3, 4)), rng.standard_normal(4)
    y, cache = ops.conv2d_maxpool_forward(x, kernel, bias, (1, 1), ((1, 1), (1, 1)), (2, 2), relu=relu)
    assert isinstance(cache.plan, planning.PoolWindowsPlan) == (fused_method == "windows")
    dy = rng.standard_normal(y.shape)
    full_dx, full_dkernel, _ = ops.conv2d_maxpool_backward(dy, cache, kernel, gate_input=gate_input)
    assert full_dkernel is not None
    _no_kernel_gradient_work(monkeypatch)
    dx, dkernel, dbias = ops.conv2d_maxpool_backward(dy, cache, kernel, need_bias=False, gate_input=gate_input,
                                                     need_kernel=False)
    assert dkernel is None and dbias is None
    np.testing.assert_allclose(dx, full_dx, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("need_dx", [True, False])
def test_depthwise_input_gradient_alone(need_dx):
    rng = np.random.default_rng(7)
    x, kernel = rng.standard_normal((3, 7, 7, 2)), rng.standard_normal((3, 3, 2, 2))
    y, cache = depthwise_conv2d_forward(x, kernel, None, (1, 1), ((1, 1), (1, 1)), (1, 1))
    dy = rng.standard_normal(y.shape)
    full_dx, full_dkernel, _ = depthwise_conv2d_backward(dy, cache, kernel, need_dx=need_dx)
    dx, dkernel, dbias = depthwise_conv2d_backward(dy, cache, kernel, need_dx=need_dx, need_bias=False,
                                                   need_kernel=False)
    assert full_dkernel is not None and dkernel is None and dbias is None
    if need_dx:
        np.testing.assert_array_equal(dx, full_dx)
    else:
        assert dx is None
