"""One im2col row per pooling window (glassnet.ops.conv.pool_windows): where it applies, and the
cases the fused-pair tests (test_ops_conv_pool.py, run with both methods) do not reach."""
import numpy as np
import pytest

from glassnet import ops
from glassnet.ops.conv import plan as planning


@pytest.mark.parametrize("kernel_shape, stride, pool, applies", [
    ((5, 5, 1, 6), (1, 1), (2, 2), True),                   # 5x5, one channel, 6 filters
    ((5, 5, 6, 16), (1, 1), (2, 2), True),                  # 5x5, 6 -> 16 channels
    ((3, 3, 32, 17), (1, 1), (2, 2), False),                # more filters than POOL_WINDOWS_MAX_FILTERS
    ((3, 3, 3, 4), (2, 1), (2, 2), False),                  # a stride
    ((3, 3, 3, 4), (1, 1), (13, 2), False),                 # no whole window: 12 output rows
])
def test_the_method_applies_to_stride_1_convolutions_with_few_filters(kernel_shape, stride, pool, applies):
    plan = planning.pool_windows_plan((8, 14, 14, kernel_shape[2]), kernel_shape, stride, pool, np.float32)
    assert (plan is not None) == applies
    if applies:
        KH, KW = kernel_shape[:2]
        assert plan.window == pool and plan.patch == (KH + pool[0] - 1, KW + pool[1] - 1)
        assert plan.pooled_hw == ((14 - KH + 1) // pool[0], (14 - KW + 1) // pool[1])


def test_an_image_over_the_memory_budget_leaves_it_to_the_other_methods(monkeypatch):
    x, kernel = np.zeros((2, 10, 10, 3)), np.zeros((3, 3, 3, 4))
    held_bytes = 4 * 4 * (16 * 3 + 4 * 4 + 2 * 2 * 4 * 3) * 8    # one image's matrix, product, patch gradients
    monkeypatch.setattr("glassnet.ops.MEMORY_BUDGET_BYTES", held_bytes - 1)
    assert planning.pool_windows_plan(x.shape, kernel.shape, (1, 1), (2, 2), x.dtype) is None
    assert ops.conv2d_maxpool_fusable(x, kernel, (1, 1), ((0, 0), (0, 0)), (2, 2))          # by row windows
    y, cache = ops.conv2d_maxpool_forward(x, kernel, None, (1, 1), ((0, 0), (0, 0)), (2, 2))
    assert not isinstance(cache.plan, planning.PoolWindowsPlan) and y.shape == (2, 4, 4, 4)
    monkeypatch.setattr("glassnet.ops.MEMORY_BUDGET_BYTES", held_bytes)
    assert planning.pool_windows_plan(x.shape, kernel.shape, (1, 1), (2, 2), x.dtype) is not None


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("threads", [1, 2])
def test_kept_matrices_serve_only_their_own_forward_pass(blocks_of_one_image, channels, threads):
    """Two forward passes share one storage (a layer called twice); the first pass's backward must
    not use the second pass's matrices. One image per block, C = 1 (transposed matrices) and C = 3."""
    rng = np.random.default_rng(6)
    shape, kernel_shape, pads = (3, 9, 9, channels), (3, 3, channels, 4), ((1, 1), (1, 1))
    blocks_of_one_image(threads, 4 * 4 * 16 * channels * 8)
    x_a, x_b, kernel = rng.standard_normal(shape), rng.standard_normal(shape), rng.standard_normal(kernel_shape)
    y_a, cache_a = ops.conv2d_maxpool_forward(x_a, kernel, None, (1, 1), pads, (2, 2))
    dy = rng.standard_normal(y_a.shape)
    expected = ops.conv2d_maxpool_backward(dy, cache_a, kernel, need_bias=False)
    storage = {}
    _, kept_a = ops.conv2d_maxpool_forward(x_a, kernel, None, (1, 1), pads, (2, 2), keep=storage)
    assert isinstance(kept_a.plan, planning.PoolWindowsPlan) and len(kept_a.plan.blocks) == 3
    ops.conv2d_maxpool_forward(x_b, kernel, None, (1, 1), pads, (2, 2), keep=storage)    # rewrites the storage
    for g, e in zip(ops.conv2d_maxpool_backward(dy, kept_a, kernel, need_bias=False), expected):
        if e is not None:
            np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12)
    y_b, kept_b = ops.conv2d_maxpool_forward(x_b, kernel, None, (1, 1), pads, (2, 2), keep=storage)
    _, cache_b = ops.conv2d_maxpool_forward(x_b, kernel, None, (1, 1), pads, (2, 2))
    for g, e in zip(ops.conv2d_maxpool_backward(dy, kept_b, kernel, need_bias=False),
                    ops.conv2d_maxpool_backward(dy, cache_b, kernel, need_bias=False)):
        if e is not None:
            np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12)


def test_a_float64_gradient_into_a_float32_pair_is_computed_in_float64():
    rng = np.random.default_rng(2)
    x, kernel = rng.standard_normal((3, 12, 12, 2)), rng.standard_normal((5, 5, 2, 6))
    bias = rng.standard_normal(6)
    y32, cache32 = ops.conv2d_maxpool_forward(*(a.astype(np.float32) for a in (x, kernel, bias)),
                                              (1, 1), ((2, 2), (2, 2)), (2, 2), keep={})
    y64, cache64 = ops.conv2d_maxpool_forward(x, kernel, bias, (1, 1), ((2, 2), (2, 2)), (2, 2))
    assert isinstance(cache32.plan, planning.PoolWindowsPlan)
    np.testing.assert_allclose(y32, y64, rtol=1e-4, atol=1e-4)
    dy = rng.standard_normal(y64.shape)
    got = ops.conv2d_maxpool_backward(dy, cache32, kernel.astype(np.float32))
    expected = ops.conv2d_maxpool_backward(dy, cache64, kernel)
    for g, e in zip(got, expected):
        assert g.dtype == np.float64
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-4)


def test_the_backward_pass_runs_on_the_forward_pass_blocks(monkeypatch, blocks_of_one_image):
    """Winners are stored per block: another thread count between the passes changes nothing."""
    rng = np.random.default_rng(5)
    x, kernel = rng.standard_normal((5, 8, 8, 2)), rng.standard_normal((3, 3, 2, 3))
    y, cache = ops.conv2d_maxpool_forward(x, kernel, None, (1, 1), ((0, 0), (0, 0)), (2, 2))
    dy = rng.standard_normal(y.shape)
    expected = ops.conv2d_maxpool_backward(dy, cache, kernel, need_bias=False)
    blocks_of_one_image(2, 3 * 3 * 4 * 4 * 2 * 8)                 # one image's window matrix per block
    y_blocks, cache_blocks = ops.conv2d_maxpool_forward(x, kernel, None, (1, 1), ((0, 0), (0, 0)), (2, 2))
    assert len(cache_blocks.plan.blocks) == 5
    monkeypatch.setattr(ops, "NUM_THREADS", 1)
    monkeypatch.setattr("glassnet.ops.conv.plan.BLOCK_BYTES", 2 ** 22)
    for g, e in zip(ops.conv2d_maxpool_backward(dy, cache_blocks, kernel, need_bias=False), expected):
        if e is not None:
            np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12)


def test_blocks_keep_what_they_hold_within_the_memory_budget(monkeypatch):
    """One channel, 3x3 kernel, 16 filters, 2x2 windows: per window a 16-value matrix row, a
    64-value product and 16 values of patch gradients, all held at once by a training block."""
    monkeypatch.setattr(ops, "NUM_THREADS", 1)
    monkeypatch.setattr("glassnet.ops.MEMORY_BUDGET_BYTES", 300_000)
    held_bytes = 13 * 13 * (16 + 64 + 16) * 8                  # one image, float64
    plan = planning.pool_windows_plan((8, 28, 28, 1), (3, 3, 1, 16), (1, 1), (2, 2), np.float64)
    most = max(images.stop - images.start for images, _ in plan.blocks)
    assert most * held_bytes <= 300_000 and len(plan.blocks) == 4
    monkeypatch.setattr("glassnet.ops.MEMORY_BUDGET_BYTES", held_bytes - 1)
    assert planning.pool_windows_plan((8, 28, 28, 1), (3, 3, 1, 16), (1, 1), (2, 2), np.float64) is None


def test_a_window_of_289_cells_routes_to_its_last_cell():
    """The only positive output is the last of a 17x17 window's 289 cells: a uint8 winner would
    wrap to cell 32."""
    x, kernel = np.zeros((1, 55, 55, 1)), np.ones((39, 39, 1, 1))
    x[0, 54, 54, 0] = 1.0                         # seen only by the output (16, 16)
    y, cache = ops.conv2d_maxpool_forward(x, kernel, None, (1, 1), ((0, 0), (0, 0)), (17, 17))
    assert isinstance(cache.plan, planning.PoolWindowsPlan) and y[0, 0, 0, 0] == 1.0
    dx, dkernel, _ = ops.conv2d_maxpool_backward(np.ones_like(y), cache, kernel, need_bias=False)
    expected_dx = np.zeros_like(x)
    expected_dx[0, 16:55, 16:55, 0] = 1.0         # the input window of output (16, 16)
    np.testing.assert_array_equal(dx, expected_dx)
    assert dkernel[38, 38, 0, 0] == 1.0 and dkernel.sum() == 1.0
