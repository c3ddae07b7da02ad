"""A training forward pass keeps its im2col / row-window matrices for the backward pass
(glassnet.ops.conv.plan.KEEP_MATRIX_BYTES): the same numbers, no rebuild, the same memory every step."""
import numpy as np
import pytest

from glassnet import layers, ops
from glassnet.ops.conv import im2col, plan as planning, pool_windows, row_windows


@pytest.fixture(autouse=True)
def _row_windows_on_small_images(row_windows_on_small_images):
    """These tests run the row-window strategy on small images."""


CASES = {   # name: (input shape, kernel shape, stride, pads): which method runs
    "rows": ((4, 9, 9, 3), (3, 3, 3, 5), (1, 1), ((1, 1), (1, 1))),
    "im2col, one channel": ((4, 9, 9, 1), (3, 3, 1, 5), (1, 1), ((0, 0), (0, 0))),
    "im2col, stride 2": ((4, 9, 9, 3), (3, 3, 3, 5), (2, 1), ((1, 0), (0, 1))),
}


@pytest.fixture
def builds(monkeypatch):
    """How many block matrices were built (im2col or row windows)."""
    count = []
    for module, name in ((im2col, "cols2d"), (pool_windows, "cols2d"), (row_windows, "_row_windows")):
        real = getattr(module, name)
        monkeypatch.setattr(module, name,
                            lambda *args, _real=real, _name=name, **kw: count.append(_name) or _real(*args, **kw))
    return count


def _arrays(case, dtype="float64"):
    shape, kernel_shape, stride, pads = CASES[case]
    rng = np.random.default_rng(0)
    return rng.standard_normal(shape).astype(dtype), rng.standard_normal(kernel_shape).astype(dtype), stride, pads


@pytest.mark.parametrize("case", sorted(CASES))
def test_kept_matrices_give_the_same_gradients_without_a_rebuild(builds, case):
    x, kernel, stride, pads = _arrays(case)
    bias = np.arange(kernel.shape[3], dtype=x.dtype)
    y, cache = ops.conv2d_forward(x, kernel, bias, stride, pads, relu=True)
    dy = np.random.default_rng(1).standard_normal(y.shape)
    expected = ops.conv2d_backward(dy, cache, kernel, relu_output=y)
    storage = {}
    del builds[:]
    y_kept, cache_kept = ops.conv2d_forward(x, kernel, bias, stride, pads, relu=True, keep=storage)
    built_forward = len(builds)
    got = ops.conv2d_backward(dy, cache_kept, kernel, relu_output=y_kept)
    assert built_forward >= 1 and len(builds) == built_forward          # the backward pass built nothing
    np.testing.assert_array_equal(y_kept, y)
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12)


def test_the_fused_pair_keeps_its_matrices_too(builds, fused_method):
    x, kernel, stride, pads = _arrays("rows")
    y, cache = ops.conv2d_maxpool_forward(x, kernel, None, stride, pads, (2, 2))
    dy = np.ones_like(y)
    expected = ops.conv2d_maxpool_backward(dy, cache, kernel, need_bias=False)
    del builds[:]
    y_kept, cache_kept = ops.conv2d_maxpool_forward(x, kernel, None, stride, pads, (2, 2), keep={})
    got = ops.conv2d_maxpool_backward(dy, cache_kept, kernel, need_bias=False)
    assert builds == ["cols2d" if fused_method == "windows" else "_row_windows"]
    for e, g in zip(expected, got):
        if e is not None:
            np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12)


def test_each_step_rewrites_the_same_arrays_and_a_new_layout_starts_over():
    x, kernel, stride, pads = _arrays("im2col, one channel")
    storage = {}
    ops.conv2d_forward(x, kernel, None, stride, pads, keep=storage)
    first = {key: held[0] for key, held in storage.items() if isinstance(key, tuple)}
    ops.conv2d_forward(x + 1, kernel, None, stride, pads, keep=storage)
    assert first and all(storage[key][0] is flat for key, flat in first.items())
    y, cache = ops.conv2d_forward(x[:2], kernel, None, stride, pads, keep=storage)    # another batch size
    assert all(storage[key][0] is not flat for key, flat in first.items() if key in storage)
    dx, _, _ = ops.conv2d_backward(np.ones_like(y), cache, kernel)
    expected, _, _ = ops.conv2d_backward(np.ones_like(y), ops.conv2d_forward(x[:2], kernel, None, stride, pads)[1],
                                         kernel)
    np.testing.assert_allclose(dx, expected, rtol=1e-12)


def test_matrices_over_the_limit_are_not_kept(monkeypatch, builds):
    x, kernel, stride, pads = _arrays("rows")
    storage = {}
    ops.conv2d_forward(x, kernel, None, stride, pads, keep=storage)
    assert len(storage) > 1
    monkeypatch.setattr(planning, "KEEP_MATRIX_BYTES", 100)
    y, cache = ops.conv2d_forward(x, kernel, None, stride, pads, keep=storage)
    assert storage == {} and cache.kept is None
    del builds[:]
    ops.conv2d_backward(np.ones_like(y), cache, kernel)
    assert builds                                                   # rebuilt in the backward pass


def test_a_conv_layer_keeps_matrices_only_while_training():
    layer = layers.Conv2D(4, 3, input_shape=(8, 8, 2), seed=0)
    x = np.random.default_rng(2).standard_normal((3, 8, 8, 2)).astype("float32")
    layer.forward(x)
    assert layer._cache.conv.kept is None and layer._kept_matrices == {}
    layer.forward(x, training=True)
    assert layer._cache.conv.kept[0] is layer._kept_matrices and len(layer._kept_matrices) > 2


def _reference_gradients(x, kernel, stride, pads, dy):
    return ops.conv2d_backward(dy, ops.conv2d_forward(x, kernel, None, stride, pads)[1], kernel)


def test_a_backward_pass_uses_only_its_own_forward_pass_matrices():
    """Two forward passes into one storage: the first pass's backward must not read the second's."""
    x, kernel, stride, pads = _arrays("im2col, one channel")
    storage = {}
    y, first_cache = ops.conv2d_forward(x, kernel, None, stride, pads, keep=storage)
    ops.conv2d_forward(x[::-1].copy(), kernel, None, stride, pads, keep=storage)     # rewrites the storage
    dy = np.random.default_rng(5).standard_normal(y.shape)
    expected = _reference_gradients(x, kernel, stride, pads, dy)
    for got, want in zip(ops.conv2d_backward(dy, first_cache, kernel), expected):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_a_backward_pass_planned_differently_builds_its_own_matrices(monkeypatch):
    """Other threads (so other blocks) or another dtype in the backward pass: the kept matrices do not
    fit its blocks; it must build its own and leave nothing behind for a later step."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((16, 12, 12, 1)).astype("float32")
    kernel = rng.standard_normal((5, 5, 1, 6)).astype("float32")
    stride, pads = (1, 1), ((2, 2), (2, 2))
    storage = {}
    for step in range(2):
        batch = x + step
        monkeypatch.setattr(ops, "NUM_THREADS", 2)
        monkeypatch.setattr(planning, "MIN_THREAD_FLOPS", 0)
        y, cache = ops.conv2d_forward(batch, kernel, None, stride, pads, keep=storage)
        monkeypatch.setattr(ops, "NUM_THREADS", 1)
        dy = rng.standard_normal(y.shape)                          # float64: another dtype as well
        got = ops.conv2d_backward(dy, cache, kernel)
        want = _reference_gradients(batch.astype("float64"), kernel.astype("float64"), stride, pads, dy)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)


def test_kept_blocks_take_their_own_size(monkeypatch):
    """Row blocks of one image: the last, shorter block keeps a matrix of its own size."""
    x, kernel, stride, pads = _arrays("im2col, stride 2")          # OH = 4 rows of 8 x 27 values
    row_bytes = 8 * 27 * x.itemsize
    monkeypatch.setattr(planning, "BLOCK_BYTES", 3 * row_bytes)          # blocks of 3 rows and 1 row
    monkeypatch.setattr(planning, "WHOLE_IMAGE_BYTES", 3 * row_bytes)
    storage = {}
    ops.conv2d_forward(x, kernel, None, stride, pads, keep=storage)
    blocks = [key for key in storage if isinstance(key, tuple)]
    assert {key[3] - key[2] for key in blocks} == {3, 1}
    for key in blocks:
        assert storage[key][0].size == (key[1] - key[0]) * (key[3] - key[2]) * 8 * 27
