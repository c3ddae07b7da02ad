"""glassnet.ops.normalization: batch normalization in wide 2-D passes against the textbook formulas in float64."""
import numpy as np
import pytest

from glassnet.ops.normalization import batch_norm_backward, batch_norm_forward, wide_view

SHAPES = [(6, 5), (4, 3, 5, 2), (3, 7, 7, 16)]


def _reference(x, gamma, beta, epsilon, dy, mean=None, var=None, relu=False, rule="vanilla"):
    """Forward and gradients by the textbook formulas (statistics over all axes but the last, float64)."""
    axes = tuple(range(x.ndim - 1))
    batch = mean is None
    mean, var = (x.mean(axis=axes), x.var(axis=axes)) if batch else (mean, var)
    x_hat = (x - mean) / np.sqrt(var + epsilon)
    z = x_hat * gamma + beta
    y = np.maximum(z, 0) if relu else z
    g = dy
    if relu:
        g = {"vanilla": dy * (z > 0), "guided": dy * ((z > 0) & (dy > 0)), "rectified": np.maximum(dy, 0)}[rule]
    dgamma, dbeta = (g * x_hat).sum(axis=axes), g.sum(axis=axes)
    dx_hat = g * gamma / np.sqrt(var + epsilon)
    if batch:
        dx = dx_hat - dx_hat.mean(axis=axes) - x_hat * (dx_hat * x_hat).mean(axis=axes)
    else:
        dx = dx_hat
    return y, dx, dgamma, dbeta


def _case(shape, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    C = shape[-1]
    x = (rng.standard_normal(shape) * 2 + 3).astype(dtype)          # a mean far from 0: no cancellation allowed
    gamma, beta = rng.uniform(0.5, 1.5, C).astype(dtype), rng.standard_normal(C).astype(dtype)
    return x, gamma, beta, rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("fixed", [False, True])
def test_forward_and_backward_match_the_textbook_formulas(shape, relu, fixed):
    x, gamma, beta, dy = _case(shape)
    stats = (np.full(shape[-1], 2.5), np.full(shape[-1], 3.0)) if fixed else (None, None)
    y, cache, mean, var = batch_norm_forward(x, gamma, beta, 1e-3, *stats, relu=relu)
    want_y, want_dx, want_dgamma, want_dbeta = _reference(x, gamma, beta, 1e-3, dy, *stats, relu=relu)
    np.testing.assert_allclose(y, want_y, rtol=1e-12, atol=1e-12)
    if not fixed:
        axes = tuple(range(x.ndim - 1))
        np.testing.assert_allclose(mean, x.mean(axis=axes), rtol=1e-12)
        np.testing.assert_allclose(var, x.var(axis=axes), rtol=1e-12)
    dx, dgamma, dbeta = batch_norm_backward(dy, cache, gamma)
    for got, want in ((dx, want_dx), (dgamma, want_dgamma), (dbeta, want_dbeta)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    assert y.shape == dx.shape == x.shape


@pytest.mark.parametrize("rule", ["guided", "rectified"])
def test_a_fused_relu_follows_the_backward_rule(rule):
    x, gamma, beta, dy = _case((4, 3, 5, 2), seed=1)
    _, cache, _, _ = batch_norm_forward(x, gamma, beta, 1e-3, relu=True)
    dx, dgamma, _ = batch_norm_backward(dy, cache, gamma, rule=rule)
    _, want_dx, want_dgamma, _ = _reference(x, gamma, beta, 1e-3, dy, relu=True, rule=rule)
    np.testing.assert_allclose(dx, want_dx, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(dgamma, want_dgamma, rtol=1e-10, atol=1e-10)


def test_float32_stays_float32_and_close_to_float64():
    x, gamma, beta, dy = _case((8, 6, 6, 16), seed=2)
    y64, cache64, _, _ = batch_norm_forward(x, gamma, beta, 1e-3)
    f32 = [a.astype(np.float32) for a in (x, gamma, beta, dy)]
    y32, cache32, mean, var = batch_norm_forward(f32[0], f32[1], f32[2], 1e-3)
    dx32, dgamma32, dbeta32 = batch_norm_backward(f32[3], cache32, f32[1])
    assert {a.dtype for a in (y32, mean, var, dx32, dgamma32, dbeta32, cache32.centered)} == {np.dtype(np.float32)}
    np.testing.assert_allclose(y32, y64, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dx32, batch_norm_backward(dy, cache64, gamma)[0], rtol=1e-3, atol=1e-4)


def test_only_what_is_asked_is_computed_and_nothing_is_mutated():
    x, gamma, beta, dy = _case((4, 3, 5, 2), seed=3)
    x0, dy0 = x.copy(), dy.copy()
    _, cache, _, _ = batch_norm_forward(x, gamma, beta, 1e-3, relu=True)
    assert batch_norm_backward(dy, cache, gamma, need_dx=False)[0] is None
    assert batch_norm_backward(dy, cache, gamma, need_grads=False)[1:] == (None, None)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(dy, dy0)


@pytest.mark.parametrize("relu", [False, True])
def test_chunks_on_worker_threads_give_the_one_thread_results(monkeypatch, relu):
    import glassnet.ops
    from glassnet.ops import normalization, parallel
    x, gamma, beta, dy = _case((5, 6, 7, 3), seed=4)
    one = batch_norm_forward(x, gamma, beta, 1e-3, relu=relu)
    one_grads = batch_norm_backward(dy, one[1], gamma)
    monkeypatch.setattr(normalization, "CHUNK_BYTES", 7 * 3 * 8 * 4)        # 4 rows of the wide view a chunk
    monkeypatch.setattr(parallel, "MIN_PARALLEL_BYTES", 0)
    monkeypatch.setattr(glassnet.ops, "NUM_THREADS", 2)
    two = batch_norm_forward(x, gamma, beta, 1e-3, relu=relu)
    two_grads = batch_norm_backward(dy, two[1], gamma)
    for a, b in zip((one[0], *one[2:], *one_grads), (two[0], *two[2:], *two_grads)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)


def test_the_wide_view_joins_the_last_two_axes_without_copying():
    x = np.zeros((2, 3, 4, 5))
    wide, repeats = wide_view(x)
    assert wide.shape == (6, 20) and repeats == 4 and np.shares_memory(wide, x)
    assert wide_view(np.zeros((7, 5)))[0].shape == (7, 5) and wide_view(np.zeros((7, 5)))[1] == 1
