"""glassnet.reference: the seeds' loop code reproduces every printed number and is correct math.

Seed 002's printed code has two slips that its printed numbers do not depend on:
``conv_forward`` slices ``vert_start + stride`` (the example has f == stride == 2, so the
window is the same) and ``conv_backward`` un-pads with ``[pad:-pad]`` (the example has
pad == 2). The reference uses the correct slices; the tests below show it still prints the
seed's numbers and also works where the printed code would not (f != stride, pad == 0).
"""
import numpy as np
import pytest

from glassnet import reference as R
from golden.seed_examples import (SEED002_PRINTED as P, seed001_nhwc, seed002_conv_inputs,
                                  seed002_conv_single_step_inputs, seed002_mask_input,
                                  seed002_pool_backward_inputs, seed002_pool_forward_inputs,
                                  seed002_zero_pad_input)

FULL_REPR = dict(rtol=1e-15, atol=0)          # printed repr floats: same arithmetic, same bits


# ----------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------
def numerical_gradient(f, x, eps=1e-6):
    """Central differences of a scalar function ``f()`` with respect to array ``x`` (changed in place)."""
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + eps
        plus = f()
        x[idx] = old - eps
        minus = f()
        x[idx] = old
        grad[idx] = (plus - minus) / (2 * eps)
    return grad


def assert_gradient(analytic, numeric, tol=1e-7):
    scale = max(1.0, np.abs(numeric).max())
    np.testing.assert_allclose(analytic, numeric, rtol=0, atol=tol * scale)


# ----------------------------------------------------------------------------------------
# seed 002: every printed number
# ----------------------------------------------------------------------------------------
def test_seed002_zero_pad():
    x = seed002_zero_pad_input()
    x_pad = R.zero_pad(x, 2)
    assert x.shape == P["x.shape"]
    assert x_pad.shape == P["x_pad.shape"]
    np.testing.assert_array_almost_equal(x[1, 1], P["x[1,1]"], decimal=8)
    np.testing.assert_array_equal(x_pad[1, 1], P["x_pad[1,1]"])
    np.testing.assert_array_equal(x_pad[:, 2:5, 2:5, :], x)      # the interior is x itself


def test_seed002_conv_single_step():
    a_slice_prev, W, b = seed002_conv_single_step_inputs()
    Z = R.conv_single_step(a_slice_prev, W, b)
    assert np.ndim(Z) == 0
    np.testing.assert_allclose(Z, P["Z"], **FULL_REPR)


def test_seed002_conv_forward():
    A_prev, W, b, hparameters = seed002_conv_inputs()
    Z, cache_conv = R.conv_forward(A_prev, W, b, hparameters)
    assert Z.shape == (10, 4, 4, 8)                                # (4 - 2 + 2*2) // 2 + 1 = 4
    np.testing.assert_allclose(np.mean(Z), P["Z's mean"], **FULL_REPR)
    np.testing.assert_array_almost_equal(Z[3, 2, 1], P["Z[3,2,1]"], decimal=8)
    np.testing.assert_array_almost_equal(cache_conv[0][1][2][3], P["cache_conv[0][1][2][3]"], decimal=8)


def test_seed002_conv_backward():
    A_prev, W, b, hparameters = seed002_conv_inputs()
    Z, cache_conv = R.conv_forward(A_prev, W, b, hparameters)
    dA, dW, db = R.conv_backward(Z, cache_conv)
    assert dA.shape == A_prev.shape and dW.shape == W.shape and db.shape == b.shape
    np.testing.assert_allclose(np.mean(dA), P["dA_mean"], **FULL_REPR)
    np.testing.assert_allclose(np.mean(dW), P["dW_mean"], **FULL_REPR)
    np.testing.assert_allclose(np.mean(db), P["db_mean"], **FULL_REPR)


@pytest.mark.parametrize("mode", ["max", "average"])
def test_seed002_pool_forward(mode):
    A_prev, hparameters = seed002_pool_forward_inputs()
    A, cache = R.pool_forward(A_prev, hparameters, mode=mode)
    assert A.shape == (2, 1, 1, 3)
    np.testing.assert_array_almost_equal(A, P[f"A {mode}"], decimal=8)
    assert cache[0] is A_prev


def test_seed002_create_mask_from_window():
    x = seed002_mask_input()
    np.testing.assert_array_almost_equal(x, P["mask x"], decimal=8)
    np.testing.assert_array_equal(R.create_mask_from_window(x), P["mask"])


def test_seed002_distribute_value():
    np.testing.assert_array_equal(R.distribute_value(2, (2, 2)), P["distributed value"])


@pytest.mark.parametrize("mode", ["max", "average"])
def test_seed002_pool_backward(mode):
    A_prev, hparameters, dA = seed002_pool_backward_inputs()
    A, cache = R.pool_forward(A_prev, hparameters)                 # the seed caches the max pass
    assert A.shape == dA.shape == (5, 4, 2, 2)
    np.testing.assert_allclose(np.mean(dA), P["mean of dA"], **FULL_REPR)
    dA_prev = R.pool_backward(dA, cache, mode=mode)
    np.testing.assert_array_almost_equal(dA_prev[1, 1], P[f"dA_prev[1,1] {mode}"], decimal=8)


# ----------------------------------------------------------------------------------------
# seed 002: where the printed code slips, the reference is right
# ----------------------------------------------------------------------------------------
def test_printed_conv_forward_window_slip_does_not_change_the_seed_example():
    """The seed slices ``[h*stride : h*stride + stride]``; with f == stride that is the f-window."""
    A_prev, W, b, hparameters = seed002_conv_inputs()
    f, stride = W.shape[0], hparameters["stride"]
    assert f == stride == 2
    A_pad = R.zero_pad(A_prev, hparameters["pad"])
    # The seed's Z[3, 2, 1] recomputed with its own (stride-wide) slice:
    window = A_pad[3, 2 * stride:2 * stride + stride, 1 * stride:1 * stride + stride, :]
    as_printed = [R.conv_single_step(window, W[..., c], b[..., c]) for c in range(W.shape[-1])]
    np.testing.assert_array_almost_equal(as_printed, P["Z[3,2,1]"], decimal=8)


def test_conv_forward_window_is_f_wide_when_f_differs_from_stride():
    rng = np.random.default_rng(0)
    A_prev, W, b = rng.standard_normal((1, 5, 5, 2)), rng.standard_normal((3, 3, 2, 1)), np.zeros(1)
    Z, _ = R.conv_forward(A_prev, W, b, {"stride": 1, "pad": 0})
    assert Z.shape == (1, 3, 3, 1)
    np.testing.assert_allclose(Z[0, 1, 2, 0], np.sum(A_prev[0, 1:4, 2:5, :] * W[..., 0]), rtol=1e-14)


def test_conv_backward_without_padding_keeps_the_whole_gradient():
    """The seed's ``[pad:-pad]`` is an empty slice when pad == 0."""
    rng = np.random.default_rng(1)
    A_prev, W, b = rng.standard_normal((2, 4, 4, 2)), rng.standard_normal((2, 2, 2, 3)), rng.standard_normal(3)
    Z, cache = R.conv_forward(A_prev, W, b, {"stride": 1, "pad": 0})
    dA, _, _ = R.conv_backward(np.ones_like(Z), cache)
    assert dA.shape == A_prev.shape
    # With dZ = 1, a corner pixel is used by one window only: its gradient is sum over filters of W[0, 0].
    np.testing.assert_allclose(dA[0, 0, 0], W[0, 0].sum(axis=-1), rtol=1e-14)


def test_mask_marks_one_element_on_ties():
    """The seed's ``x >= max(x)`` would mark both maxima and double the gradient."""
    x = np.array([[1.0, 3.0], [3.0, 0.0]])
    mask = R.create_mask_from_window(x)
    np.testing.assert_array_equal(mask, [[False, True], [False, False]])


def test_max_pool_backward_conserves_the_gradient_on_ties():
    A_prev = np.zeros((1, 4, 4, 1))                                 # every window is a tie
    A, cache = R.pool_forward(A_prev, {"f": 2, "stride": 2})
    dA = np.arange(1.0, 5.0).reshape(1, 2, 2, 1)
    dA_prev = R.pool_backward(dA, cache, mode="max")
    assert dA_prev.sum() == dA.sum()
    assert np.count_nonzero(dA_prev) == 4


# ----------------------------------------------------------------------------------------
# seed 002 functions are the correct derivatives (central differences)
# ----------------------------------------------------------------------------------------
CONV_CASES = [
    # (N, H, W, C, KH, KW, F, stride, pad)
    (1, 5, 5, 2, 3, 3, 2, 1, 0),
    (2, 6, 7, 1, 3, 2, 3, (2, 1), (1, 0)),
    (1, 7, 6, 3, 2, 3, 2, 3, 2),
    (2, 5, 4, 2, 3, 3, 1, 2, ((0, 1), (1, 0))),                  # Keras-style asymmetric padding
]


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_backward_matches_central_differences(case):
    N, H, W, C, KH, KW, F, stride, pad = case
    rng = np.random.default_rng(2)
    A_prev = rng.standard_normal((N, H, W, C))
    kernel = rng.standard_normal((KH, KW, C, F))
    bias = rng.standard_normal(F)
    hparameters = {"stride": stride, "pad": pad}
    Z, cache = R.conv_forward(A_prev, kernel, bias, hparameters)
    dZ = rng.standard_normal(Z.shape)
    loss = lambda: np.sum(R.conv_forward(A_prev, kernel, bias, hparameters)[0] * dZ)   # noqa: E731
    dA, dW, db = R.conv_backward(dZ, cache)
    assert_gradient(dA, numerical_gradient(loss, A_prev))
    assert_gradient(dW, numerical_gradient(loss, kernel))
    assert_gradient(db, numerical_gradient(loss, bias))


@pytest.mark.parametrize("mode", ["max", "average"])
@pytest.mark.parametrize("f, stride, hw", [(2, 2, (4, 4)), (3, 2, (7, 6)), ((2, 3), (1, 2), (5, 7)), (2, 3, (7, 8))])
def test_pool_backward_matches_central_differences(mode, f, stride, hw):
    rng = np.random.default_rng(3)
    A_prev = rng.standard_normal((2,) + hw + (2,))
    hparameters = {"f": f, "stride": stride}
    A, cache = R.pool_forward(A_prev, hparameters, mode=mode)
    dA = rng.standard_normal(A.shape)
    loss = lambda: np.sum(R.pool_forward(A_prev, hparameters, mode=mode)[0] * dA)     # noqa: E731
    assert_gradient(R.pool_backward(dA, cache, mode=mode), numerical_gradient(loss, A_prev))


def test_pool_rejects_an_unknown_mode():
    with pytest.raises(ValueError, match="'max' or 'average'"):
        R.pool_forward(np.zeros((1, 2, 2, 1)), {"f": 2, "stride": 2}, mode="min")


@pytest.mark.parametrize("n, k, s, expected", [(5, 3, 1, (1, 1)), (5, 3, 2, (1, 1)), (6, 3, 2, (0, 1)),
                                               (7, 2, 3, (0, 1)), (4, 1, 2, (0, 0)), (6, 4, 2, (1, 1))])
def test_same_padding_matches_keras(n, k, s, expected):
    pads = R.same_padding(n, k, s)
    assert pads == (expected, expected)
    assert (n + sum(expected) - k) // s + 1 == -(-n // s)           # output = ceil(n / s)


# ----------------------------------------------------------------------------------------
# seed 001: the worked example and the sensitivity-map algorithm
# ----------------------------------------------------------------------------------------
def test_seed001_worked_example_forward():
    ex = seed001_nhwc()
    out, _ = R.conv_layer_forward(ex["x"], ex["kernel"], ex["bias"], ex["stride"], ex["pad"], "linear")
    np.testing.assert_array_equal(out, ex["forward"])             # small integers: exact


def test_seed001_worked_example_update():
    ex = seed001_nhwc()
    _, cache = R.conv_layer_forward(ex["x"], ex["kernel"], ex["bias"], ex["stride"], ex["pad"], "linear")
    _, dkernel, dbias = R.conv_layer_backward(ex["dy"], cache)
    lr = ex["learning_rate"]
    np.testing.assert_allclose(ex["kernel"] - lr * dkernel, ex["updated_kernel"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(ex["bias"] - lr * dbias, ex["updated_bias"], rtol=0, atol=1e-12)
    # The printed update pins the gradients down exactly: they are integers here.
    np.testing.assert_array_equal(dkernel, np.round((ex["kernel"] - ex["updated_kernel"]) / lr))
    np.testing.assert_array_equal(dbias, [9.0, 7.0])


def test_seed001_and_seed002_algorithms_agree_on_the_worked_example():
    ex = seed001_nhwc()
    _, cache001 = R.conv_layer_forward(ex["x"], ex["kernel"], ex["bias"], ex["stride"], ex["pad"])
    dx001, dk001, db001 = R.conv_layer_backward(ex["dy"], cache001)
    _, cache002 = R.conv_forward(ex["x"], ex["kernel"], ex["bias"], {"stride": ex["stride"], "pad": ex["pad"]})
    dx002, dk002, db002 = R.conv_backward(ex["dy"], cache002)
    np.testing.assert_array_equal(dx001, dx002)
    np.testing.assert_array_equal(dk001, dk002)
    np.testing.assert_array_equal(db001, db002)


SEED001_CASES = [
    # (H, W, C, KH, KW, F, stride, pad, activation, prev_activation)
    (5, 5, 3, 3, 3, 2, 2, 1, "linear", "linear"),
    (6, 7, 2, 3, 2, 3, (2, 3), (1, 2), "relu", "relu"),
    (7, 7, 1, 2, 2, 2, 3, 2, "sigmoid", "sigmoid"),            # pad > f - 1: the seed's shortcut breaks
    (6, 5, 2, 3, 3, 2, 2, ((0, 1), (1, 1)), "tanh", "tanh"),
]


@pytest.mark.parametrize("case", SEED001_CASES)
def test_seed001_sensitivity_maps_match_seed002_loops(case):
    H, W, C, KH, KW, F, stride, pad, activation, prev_activation = case
    rng = np.random.default_rng(4)
    x = R.ACTIVATORS[prev_activation][0](rng.standard_normal((2, H, W, C)))   # output of a previous layer
    kernel, bias = rng.standard_normal((KH, KW, C, F)), rng.standard_normal(F)
    out, cache = R.conv_layer_forward(x, kernel, bias, stride, pad, activation)
    Z, cache002 = R.conv_forward(x, kernel, bias, {"stride": stride, "pad": pad})
    np.testing.assert_allclose(out, R.ACTIVATORS[activation][0](Z), rtol=1e-12, atol=1e-12)

    dy = rng.standard_normal(out.shape)
    delta = dy * R.ACTIVATORS[activation][1](out)                  # this layer's sensitivity map
    dx, dkernel, dbias = R.conv_layer_backward(delta, cache, prev_activation)
    dx002, dkernel002, dbias002 = R.conv_backward(delta, cache002)
    np.testing.assert_allclose(dkernel, dkernel002, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dbias, dbias002, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, dx002 * R.ACTIVATORS[prev_activation][1](x), rtol=1e-12, atol=1e-12)


def test_expand_sensitivity_map_puts_errors_at_stride_positions():
    delta = np.arange(1.0, 7.0).reshape(1, 2, 3, 1)
    expanded = R.expand_sensitivity_map(delta, (2, 2), (3, 5))
    expected = np.array([[1, 0, 2, 0, 3], [0, 0, 0, 0, 0], [4, 0, 5, 0, 6]], dtype=float)
    np.testing.assert_array_equal(expanded[0, :, :, 0], expected)


@pytest.mark.parametrize("activation, net, out, derivative", [
    ("linear", [-2.0, 3.0], [-2.0, 3.0], [1.0, 1.0]),
    ("relu", [-2.0, 3.0], [0.0, 3.0], [0.0, 1.0]),
    ("sigmoid", [0.0, -1000.0, 1000.0], [0.5, 0.0, 1.0], [0.25, 0.0, 0.0]),
    ("tanh", [0.0, 1000.0], [0.0, 1.0], [1.0, 0.0]),
])
def test_activators(activation, net, out, derivative):
    forward, backward = R.ACTIVATORS[activation]
    np.testing.assert_allclose(forward(np.array(net)), out, atol=1e-15)
    np.testing.assert_allclose(backward(forward(np.array(net))), derivative, atol=1e-15)


@pytest.mark.parametrize("pool_size, stride", [(2, 2), (3, 2), (2, 1), ((2, 3), (2, 1))])
def test_seed001_max_pooling_layer_matches_pool_functions(pool_size, stride):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 7, 6, 3))
    out = R.max_pooling_layer_forward(x, pool_size, stride)
    A, cache = R.pool_forward(x, {"f": pool_size, "stride": stride}, mode="max")
    np.testing.assert_array_equal(out, A)
    delta = rng.standard_normal(out.shape)
    np.testing.assert_allclose(R.max_pooling_layer_backward(x, delta, pool_size, stride),
                               R.pool_backward(delta, cache, mode="max"), rtol=1e-15, atol=1e-15)


# ----------------------------------------------------------------------------------------
# seed 003: the tiny loop-based network
# ----------------------------------------------------------------------------------------
def test_tiny_params_have_the_seed_shapes_and_scales():
    params = R.init_tiny_params(seed=0)
    assert params["conv_kernel"].shape == (3, 3, 1, 8)
    assert params["dense_kernel"].shape == (13 * 13 * 8, 10)
    assert params["dense_bias"].shape == (10,)
    assert np.all(params["dense_bias"] == 0)
    assert 0.07 < params["conv_kernel"].std() < 0.16                   # N(0, 1) / 9
    np.testing.assert_array_equal(R.init_tiny_params(seed=0)["dense_kernel"], params["dense_kernel"])


def test_tiny_forward_composes_the_seed002_functions():
    rng = np.random.default_rng(6)
    params = R.init_tiny_params(seed=1, num_filters=4, input_hw=(9, 8))
    image = rng.uniform(-0.5, 0.5, (9, 8))
    probs, cache = R.tiny_forward(params, image)
    conv, _ = R.conv_forward(image[None, :, :, None], params["conv_kernel"], np.zeros(4), {"stride": 1, "pad": 0})
    pooled, _ = R.pool_forward(conv, {"f": 2, "stride": 2}, mode="max")
    assert pooled.shape == (1, 3, 3, 4)                                # 7x6 conv output -> 3x3
    totals = pooled.reshape(-1) @ params["dense_kernel"] + params["dense_bias"]
    expected = np.exp(totals) / np.exp(totals).sum()
    np.testing.assert_allclose(probs, expected, rtol=1e-12)
    np.testing.assert_allclose(cache["conv"], conv[0], rtol=1e-12)
    assert probs.sum() == pytest.approx(1.0)


def test_tiny_gradients_match_central_differences():
    rng = np.random.default_rng(7)
    params = R.init_tiny_params(seed=2, num_filters=3, input_hw=(8, 9), num_classes=4)
    params["dense_kernel"] *= 50                                       # make the gradients non-trivial
    image = rng.uniform(-0.5, 0.5, (8, 9))
    label = 2
    loss, correct, grads = R.tiny_gradients(params, image, label)
    assert loss == pytest.approx(-np.log(R.tiny_forward(params, image)[0][label]))
    for key in params:
        numeric = numerical_gradient(lambda: -np.log(R.tiny_forward(params, image)[0][label]), params[key])
        assert_gradient(grads[key], numeric, tol=1e-6)


def test_tiny_pool_gradient_goes_to_one_element_on_flat_background():
    """A blank image makes every 2x2 window of the conv output a four-way tie."""
    params = R.init_tiny_params(seed=3, num_filters=2, input_hw=(6, 6), num_classes=3)
    image = np.full((6, 6), -0.5)                                      # MNIST background after scaling
    loss, _, grads = R.tiny_gradients(params, image, 1)
    probs, _ = R.tiny_forward(params, image)
    d_totals = probs - np.eye(3)[1]
    d_pooled = (params["dense_kernel"] @ d_totals).reshape(2, 2, 2)
    # Conv output is constant per filter, so dkernel[:, :, f] = -0.5 * (sum of routed gradients of f).
    expected = -0.5 * d_pooled.sum(axis=(0, 1))
    np.testing.assert_allclose(grads["conv_kernel"][1, 1, 0, :], expected, rtol=1e-12)


def test_train_tiny_step_is_one_sgd_step():
    rng = np.random.default_rng(8)
    params = R.init_tiny_params(seed=4)
    image = rng.uniform(-0.5, 0.5, (28, 28, 1))
    before = {k: v.copy() for k, v in params.items()}
    loss, correct, grads = R.tiny_gradients(before, image, 7)
    step_loss, step_correct = R.train_tiny_step(params, image, 7, learning_rate=0.005)
    assert (step_loss, step_correct) == (loss, correct)
    for key in params:
        np.testing.assert_allclose(params[key], before[key] - 0.005 * grads[key], rtol=1e-15, atol=1e-18)


def test_train_tiny_steps_reduce_the_loss_on_one_image():
    rng = np.random.default_rng(9)
    params = R.init_tiny_params(seed=5, num_filters=4, input_hw=(12, 12))
    image = rng.uniform(-0.5, 0.5, (12, 12))
    losses = [R.train_tiny_step(params, image, 3, learning_rate=0.05)[0] for _ in range(5)]
    assert losses[-1] < losses[0] - 0.1
