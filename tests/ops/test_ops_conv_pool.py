"""Fused convolution + ReLU + max pooling (glassnet.ops.conv2d_maxpool_*) against the two separate ops."""
import numpy as np
import pytest

from glassnet import ops
from glassnet.ops.conv import plan as planning


# (N, H, W, C, F), kernel, conv stride, conv pads, pool, whether one matrix row per pooling window applies
CONFIGS = [
    ((3, 8, 8, 2, 3), (3, 3), (1, 1), ((0, 0), (0, 0)), (2, 2), True),
    ((2, 9, 10, 3, 4), (3, 3), (1, 1), ((1, 1), (1, 1)), (2, 2), True),      # 9x10 output: a leftover row
    ((2, 11, 11, 2, 5), (2, 3), (1, 2), ((0, 1), (2, 0)), (3, 2), False),
    ((4, 14, 14, 6, 16), (5, 5), (1, 1), ((0, 0), (0, 0)), (2, 2), True),    # 5x5, 6 -> 16 channels
    ((2, 7, 7, 4, 2), (3, 3), (1, 1), ((0, 0), (0, 0)), (5, 5), False),      # one window, most cells left over
    ((3, 12, 12, 1, 6), (5, 5), (1, 1), ((2, 2), (2, 2)), (2, 2), True),     # C = 1, 5x5 -> 6 filters
    ((2, 11, 9, 3, 4), (3, 3), (2, 1), ((1, 1), (0, 0)), (2, 2), False),     # row stride 2: im2col method
    ((2, 6, 7, 2, 3), (3, 3), (1, 1), ((0, 0), (0, 0)), (1, 1), True),       # one-cell windows
    # non-square kernels and windows, partial patch cells
    ((2, 10, 12, 3, 4), (3, 4), (1, 1), ((0, 1), (1, 0)), (2, 2), True),
    ((2, 12, 11, 1, 5), (5, 5), (1, 1), ((1, 0), (0, 2)), (3, 2), True),     # 7x6 patches: 3 + 3 + 1 rows
    ((3, 9, 13, 2, 3), (3, 5), (1, 1), ((0, 0), (0, 0)), (1, 3), True),
    ((2, 11, 8, 3, 2), (4, 3), (1, 1), ((1, 1), (0, 0)), (2, 1), True),
    ((1, 55, 55, 1, 2), (39, 39), (1, 1), ((0, 0), (0, 0)), (17, 17), True),  # 289 cells a window: int32 winners
    ((2, 9, 9, 2, 3), (2, 2), (1, 1), ((0, 0), (0, 0)), (2, 2), False),     # a 3x3 patch for a 2x2 kernel: 2.25x
    ((2, 8, 8, 17, 3), (3, 3), (1, 1), ((0, 0), (0, 0)), (2, 2), False),    # channels over the windows limit
]


def _separate(x, kernel, bias, stride, pads, pool, dy, relu=True):
    z, conv_cache = ops.conv2d_forward(x, kernel, bias, stride, pads, relu=relu)
    y, pool_cache = ops.max_pool2d_forward(z, pool, pool, ((0, 0), (0, 0)))
    dz = ops.max_pool2d_backward(dy, pool_cache)
    return y, ops.conv2d_backward(dz, conv_cache, kernel, need_bias=bias is not None, relu_output=z if relu else None)


@pytest.mark.parametrize("relu", [True, False], ids=["relu", "linear"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("shape, kernel_hw, stride, pads, pool, windows", CONFIGS)
def test_fused_equals_conv_relu_then_max_pool(fused_method, relu, dtype, shape, kernel_hw, stride, pads, pool, windows):
    N, H, W, C, F = shape
    rng = np.random.default_rng(sum(shape))
    # small integers: many ReLU zeros and exact ties inside windows
    x = rng.integers(-2, 3, size=(N, H, W, C)).astype(dtype)
    kernel = rng.integers(-1, 2, size=kernel_hw + (C, F)).astype(dtype)
    bias = rng.integers(-1, 2, size=F).astype(dtype) if F % 2 else None
    assert ops.conv2d_maxpool_fusable(x, kernel, stride, pads, pool)
    y, cache = ops.conv2d_maxpool_forward(x, kernel, bias, stride, pads, pool, relu=relu)
    assert isinstance(cache.plan, planning.PoolWindowsPlan) == (fused_method == "windows" and windows)
    dy = rng.standard_normal(y.shape).astype(dtype)
    expected_y, expected_grads = _separate(x, kernel, bias, stride, pads, pool, dy, relu)
    np.testing.assert_array_equal(y, expected_y)
    grads = ops.conv2d_maxpool_backward(dy, cache, kernel, need_bias=bias is not None)
    tolerance = 1e-12 if dtype == "float64" else 1e-5
    for got, expected in zip(grads, expected_grads):
        if expected is None:
            assert got is None
        else:
            assert got.shape == expected.shape and got.dtype == expected.dtype
            np.testing.assert_allclose(got, expected, rtol=tolerance, atol=tolerance)
    dx, dkernel, _ = ops.conv2d_maxpool_backward(dy, cache, kernel, need_dx=False)
    assert dx is None
    np.testing.assert_allclose(dkernel, expected_grads[1], rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("gate_input", [False, True], ids=["", "gated"])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_fused_over_many_blocks_and_threads(monkeypatch, blocks_of_one_image, fused_method, threads, gate_input):
    blocks_of_one_image(threads, 12 * 10 * 3 * 3 * 8)
    if fused_method == "windows":
        monkeypatch.setattr("glassnet.ops.conv.plan.BLOCK_BYTES", 5 * 5 * 4 * 4 * 3 * 8)    # one image's window matrix
    plans = []
    real_plan = planning.conv_pool_plan
    monkeypatch.setattr(planning, "conv_pool_plan", lambda *args: plans.append(real_plan(*args)) or plans[-1])
    rng = np.random.default_rng(4)
    x, kernel, bias = rng.standard_normal((7, 10, 10, 3)), rng.standard_normal((3, 3, 3, 4)), rng.standard_normal(4)
    y, cache = ops.conv2d_maxpool_forward(x, kernel, bias, (1, 1), ((1, 1), (1, 1)), (2, 2))
    dy = rng.standard_normal(y.shape)
    expected_y, expected_grads = _separate(x, kernel, bias, (1, 1), ((1, 1), (1, 1)), (2, 2), dy)
    if gate_input:
        expected_grads = (expected_grads[0] * (x > 0),) + expected_grads[1:]
    np.testing.assert_allclose(y, expected_y, rtol=1e-12, atol=1e-12)   # the window method sums in another order
    for got, expected in zip(ops.conv2d_maxpool_backward(dy, cache, kernel, gate_input=gate_input), expected_grads):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    used = [plan for plan in plans if plan is not None]
    assert [len(plan.blocks) for plan in used] == [7] * len(used) and len(used) >= 1   # an image per block
    assert isinstance(used[0], planning.PoolWindowsPlan) == (fused_method == "windows")


def test_not_fusable_without_whole_image_blocks_or_a_whole_window(monkeypatch):
    x, kernel = np.zeros((2, 10, 10, 3)), np.zeros((3, 3, 3, 4))
    assert ops.conv2d_maxpool_fusable(x, kernel, (1, 1), ((0, 0), (0, 0)), (2, 2))
    assert not ops.conv2d_maxpool_fusable(x, kernel, (1, 1), ((0, 0), (0, 0)), (9, 2))            # 8 output rows < 9
    monkeypatch.setattr("glassnet.ops.MEMORY_BUDGET_BYTES", 1000)                        # images split in rows
    assert not ops.conv2d_maxpool_fusable(x, kernel, (2, 1), ((0, 0), (0, 0)), (2, 2))


def test_fusable_decides_on_the_whole_batch(monkeypatch):
    """Two threads halve each block's share of the memory budget; a batch big enough to be
    threaded must not be called fusable on the strength of a single image's plan."""
    monkeypatch.setattr(ops, "NUM_THREADS", 2)
    x, kernel = np.ones((64, 12, 12, 4)), np.ones((3, 3, 4, 2))
    image_bytes = 6 * 10 * 3 * 3 * 4 * 8                    # one image's im2col matrix (row stride 2: im2col)
    for budget in range(image_bytes, 2 * image_bytes + 1, image_bytes // 8):
        monkeypatch.setattr("glassnet.ops.MEMORY_BUDGET_BYTES", budget)
        if ops.conv2d_maxpool_fusable(x, kernel, (2, 1), ((1, 0), (0, 0)), (2, 2)):
            y, _ = ops.conv2d_maxpool_forward(x, kernel, None, (2, 1), ((1, 0), (0, 0)), (2, 2))
            assert y.shape == (64, 3, 5, 2)
