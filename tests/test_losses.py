"""Losses: values against naive formulas, finite-difference gradients (float64), the fused
logits path's stability at +-1000, Keras's clipping on the probability path, validation."""
import json
import math

import numpy as np
import pytest

from glassnet import losses

CE_NAMES = ["categorical_crossentropy", "sparse_categorical_crossentropy", "binary_crossentropy"]
ALL_NAMES = CE_NAMES + ["mse"]


# ---------------------------------------------------------------------------
# Helpers: naive formulas and finite differences, written independently
# ---------------------------------------------------------------------------

def naive_softmax(z):
    e = np.exp(z)                       # fine for moderate logits only
    return e / e.sum(axis=-1, keepdims=True)


def naive_sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def numeric_grad(f, x, h=1e-6):
    """Central differences of scalar f at every entry of x (float64)."""
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        saved = x[index]
        x[index] = saved + h
        up = f(x)
        x[index] = saved - h
        down = f(x)
        x[index] = saved
        grad[index] = (up - down) / (2 * h)
    return grad


def make_case(name, rng, shape=(4, 5), logits_scale=1.5):
    """Targets in the loss's format and moderate logits of shape ``shape``."""
    logits = rng.normal(scale=logits_scale, size=shape)
    if name == "categorical_crossentropy":
        y = np.eye(shape[-1])[rng.integers(0, shape[-1], size=shape[:-1])]
    elif name == "sparse_categorical_crossentropy":
        y = rng.integers(0, shape[-1], size=shape[:-1])
    elif name == "binary_crossentropy":
        y = rng.integers(0, 2, size=shape).astype(np.float64)
    else:
        y = rng.normal(size=shape)
    return y, logits


def probabilities(name, logits):
    if name in ("categorical_crossentropy", "sparse_categorical_crossentropy"):
        return naive_softmax(logits)
    if name == "binary_crossentropy":
        return naive_sigmoid(logits)
    return logits


# ---------------------------------------------------------------------------
# Values against naive formulas
# ---------------------------------------------------------------------------

def test_categorical_value_matches_naive_formula():
    rng = np.random.default_rng(0)
    y, z = make_case("categorical_crossentropy", rng)
    p = naive_softmax(z)
    expected = np.mean(-np.sum(y * np.log(p), axis=1))
    loss = losses.get("categorical_crossentropy")
    assert loss(y, p) == pytest.approx(expected, rel=1e-12)
    assert loss.value_and_grad_logits(y, z)[0] == pytest.approx(expected, rel=1e-12)


def test_sparse_equals_categorical_on_one_hot_both_paths():
    rng = np.random.default_rng(1)
    labels, z = make_case("sparse_categorical_crossentropy", rng, shape=(6, 4))
    onehot = np.eye(4)[labels]
    p = naive_softmax(z)
    cat = losses.get("categorical_crossentropy")
    sparse = losses.get("sparse_categorical_crossentropy")
    for a, b in [(cat.value_and_grad(onehot, p), sparse.value_and_grad(labels, p)),
                 (cat.value_and_grad_logits(onehot, z), sparse.value_and_grad_logits(labels, z))]:
        assert a[0] == pytest.approx(b[0], rel=1e-14)
        np.testing.assert_allclose(a[1], b[1], rtol=1e-14, atol=1e-16)
    # (N, 1) labels and float labels holding integers are the same labels.
    assert sparse(labels[:, None], p) == pytest.approx(sparse(labels, p), rel=1e-15)
    assert sparse(labels.astype(np.float32), p) == pytest.approx(sparse(labels, p), rel=1e-15)


def test_binary_value_matches_naive_formula():
    rng = np.random.default_rng(2)
    y, z = make_case("binary_crossentropy", rng, shape=(5, 3))
    p = naive_sigmoid(z)
    expected = np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p)))
    loss = losses.get("binary_crossentropy")
    assert loss(y, p) == pytest.approx(expected, rel=1e-10)
    assert loss.value_and_grad_logits(y, z)[0] == pytest.approx(expected, rel=1e-10)


def test_mse_value_and_gradient_by_hand():
    y = np.array([[1.0, 2.0], [0.0, -1.0]])
    p = np.array([[1.5, 2.0], [1.0, -3.0]])
    value, grad = losses.get("mse").value_and_grad(y, p)
    # squared errors 0.25, 0, 1, 4 -> per-sample means 0.125, 2.5 -> batch mean 1.3125
    assert value == pytest.approx(1.3125, rel=1e-15)
    np.testing.assert_allclose(grad, 2 * (p - y) / 4, rtol=1e-15)
    assert losses.get("mean_squared_error")(y, p) == value


def test_mse_accepts_flat_targets_for_single_output():
    y = np.array([1.0, 2.0, 3.0])
    p = np.array([[1.0], [2.5], [2.0]])
    assert losses.get("mse")(y, p) == pytest.approx((0 + 0.25 + 1) / 3)


def test_categorical_probability_path_renormalizes_like_keras():
    # Keras divides y_pred by its row sum before the log; an unnormalized row
    # scaled by 3 gives the same loss.
    y = np.array([[0.0, 1.0, 0.0]])
    p = np.array([[0.2, 0.5, 0.3]])
    loss = losses.get("categorical_crossentropy")
    assert loss(y, 3 * p) == pytest.approx(-math.log(0.5), rel=1e-14)


def test_probability_path_clips_like_keras_and_stops_gradient_there():
    y = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    p = np.array([[1.0, 0.0, 0.0], [0.6, 0.3, 0.1]])
    loss = losses.get("categorical_crossentropy")
    value, grad = loss.value_and_grad(y, p)
    expected = (-math.log(1e-7) - math.log(0.6)) / 2
    assert value == pytest.approx(expected, rel=1e-12)
    assert np.all(np.isfinite(grad))
    np.testing.assert_array_equal(grad[0], 0.0)      # the true class's probability was clipped
    binary = losses.get("binary_crossentropy")
    value, grad = binary.value_and_grad(np.array([[1.0], [0.0]]), np.array([[0.0], [1.0]]))
    assert value == pytest.approx(-math.log(1e-7), rel=1e-6)
    np.testing.assert_array_equal(grad, 0.0)


# ---------------------------------------------------------------------------
# Gradients by finite differences (float64)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ALL_NAMES)
def test_probability_path_gradient_matches_finite_differences(name):
    rng = np.random.default_rng(3)
    y, z = make_case(name, rng)
    p = probabilities(name, z)
    if name == "categorical_crossentropy":
        p = p * rng.uniform(0.5, 2.0, size=(len(p), 1))   # exercise the renormalization
    loss = losses.get(name)
    value, grad = loss.value_and_grad(y, p)
    assert value == pytest.approx(loss(y, p), rel=1e-15)
    assert grad.shape == p.shape and grad.dtype == np.float64
    np.testing.assert_allclose(grad, numeric_grad(lambda q: loss(y, q), p.copy()),
                               rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", CE_NAMES)
def test_logits_path_gradient_matches_finite_differences(name):
    rng = np.random.default_rng(4)
    y, z = make_case(name, rng)
    loss = losses.get(name)
    _, grad = loss.value_and_grad_logits(y, z)
    numeric = numeric_grad(lambda q: loss.value_and_grad_logits(y, q)[0], z.copy())
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", CE_NAMES)
def test_from_logits_loss_uses_the_logits_formulas(name):
    rng = np.random.default_rng(5)
    y, z = make_case(name, rng)
    fused = losses.get(name).value_and_grad_logits(y, z)
    loss = type(losses.get(name))(from_logits=True)
    value, grad = loss.value_and_grad(y, z)
    assert value == fused[0] and loss(y, z) == fused[0]
    np.testing.assert_array_equal(grad, fused[1])
    assert not loss.fuses_with(loss.logits_activation)


@pytest.mark.parametrize("name", ["categorical_crossentropy", "sparse_categorical_crossentropy"])
def test_gradients_for_spatial_outputs(name):
    """(N, H, W, C) outputs: the mean runs over N*H*W positions."""
    rng = np.random.default_rng(6)
    y, z = make_case(name, rng, shape=(2, 3, 2, 4))
    loss = losses.get(name)
    value, grad = loss.value_and_grad_logits(y, z)
    onehot = y if y.shape == z.shape else np.eye(4)[y]
    expected = np.mean(-np.sum(onehot * np.log(naive_softmax(z)), axis=-1))
    assert value == pytest.approx(expected, rel=1e-12)
    numeric = numeric_grad(lambda q: loss.value_and_grad_logits(y, q)[0], z.copy())
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)


def test_fused_gradient_is_chain_rule_of_probability_path():
    """softmax Jacobian^T (dL/dp) equals dL/dz on moderate logits."""
    rng = np.random.default_rng(7)
    y, z = make_case("categorical_crossentropy", rng)
    loss = losses.get("categorical_crossentropy")
    p = naive_softmax(z)
    _, dp = loss.value_and_grad(y, p)
    dz_chain = p * (dp - np.sum(dp * p, axis=1, keepdims=True))
    _, dz = loss.value_and_grad_logits(y, z)
    np.testing.assert_allclose(dz, dz_chain, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(dz, (p - y) / len(y), rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------------------
# Stability of the fused path
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_categorical_logits_stable_at_plus_minus_1000(dtype):
    z = np.array([[1000.0, -1000.0, 0.0],      # true class 0 dominates: loss ~ 0
                  [-1000.0, 1000.0, 0.0],      # true class 0 is 2000 below the max
                  [1000.0, 1000.0, -1000.0]],  # two-way tie: loss = log 2
                 dtype=dtype)
    labels = np.array([0, 0, 1])
    for loss, y in [(losses.get("sparse_categorical_crossentropy"), labels),
                    (losses.get("categorical_crossentropy"), np.eye(3)[labels])]:
        value, grad = loss.value_and_grad_logits(y, z)
        assert math.isfinite(value)
        assert value == pytest.approx((0.0 + 2000.0 + math.log(2)) / 3, rel=1e-6)
        assert grad.dtype == dtype and np.all(np.isfinite(grad))
        expected = np.array([[0, 0, 0], [-1, 1, 0], [0.5, -0.5, 0]]) / 3
        np.testing.assert_allclose(grad, expected, atol=1e-7)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_binary_logits_stable_at_plus_minus_1000(dtype):
    z = np.array([[1000.0], [-1000.0], [1000.0], [-1000.0]], dtype=dtype)
    y = np.array([[1.0], [0.0], [0.0], [1.0]])
    value, grad = losses.get("binary_crossentropy").value_and_grad_logits(y, z)
    assert value == pytest.approx((0 + 0 + 1000 + 1000) / 4, rel=1e-7)
    assert grad.dtype == dtype
    np.testing.assert_allclose(grad[:, 0], np.array([0, 0, 1, -1]) / 4, atol=1e-12)


def test_float32_inputs_give_float32_gradients():
    rng = np.random.default_rng(8)
    for name in ALL_NAMES:
        y, z = make_case(name, rng)
        p = probabilities(name, z).astype(np.float32)
        loss = losses.get(name)
        value, grad = loss.value_and_grad(y, p)
        assert isinstance(value, float) and grad.dtype == np.float32
        if loss.supports_logits:
            assert loss.value_and_grad_logits(y, z.astype(np.float32))[1].dtype == np.float32


def test_inputs_are_not_modified():
    rng = np.random.default_rng(9)
    for name in ALL_NAMES:
        y, z = make_case(name, rng)
        y0, z0 = y.copy(), z.copy()
        loss = losses.get(name)
        loss.value_and_grad(y, probabilities(name, z))
        if loss.supports_logits:
            loss.value_and_grad_logits(y, z)
        np.testing.assert_array_equal(y, y0)
        np.testing.assert_array_equal(z, z0)


# ---------------------------------------------------------------------------
# Look-up, attributes, configuration
# ---------------------------------------------------------------------------

def test_get_names_aliases_and_instances():
    assert isinstance(losses.get("mse"), losses.MeanSquaredError)
    assert losses.get("MSE").name == "mean_squared_error"
    assert isinstance(losses.get("Categorical_Crossentropy"), losses.CategoricalCrossentropy)
    assert isinstance(losses.get("SparseCategoricalCrossentropy"),
                      losses.SparseCategoricalCrossentropy)
    instance = losses.BinaryCrossentropy()
    assert losses.get(instance) is instance


def test_get_unknown_name_lists_valid_names():
    with pytest.raises(ValueError) as info:
        losses.get("crossentropy")
    for name in ["categorical_crossentropy", "sparse_categorical_crossentropy",
                 "binary_crossentropy", "mse"]:
        assert name in str(info.value)
    with pytest.raises(TypeError, match="subclass"):
        losses.get(lambda y, p: 0.0)


def test_logits_attributes():
    expected = {"categorical_crossentropy": "softmax",
                "sparse_categorical_crossentropy": "softmax",
                "binary_crossentropy": "sigmoid"}
    for name, activation in expected.items():
        loss = losses.get(name)
        assert loss.supports_logits and loss.logits_activation == activation
        assert loss.fuses_with(activation) and not loss.fuses_with("relu")
    mse = losses.get("mse")
    assert not mse.supports_logits and mse.logits_activation is None
    with pytest.raises(TypeError):
        mse.value_and_grad_logits(np.zeros((2, 1)), np.zeros((2, 1)))
    with pytest.raises(ValueError):
        losses.MeanSquaredError(from_logits=True)


def test_config_round_trip_is_json():
    for name in ALL_NAMES:
        config = losses.get(name).get_config()
        rebuilt = losses.get(json.loads(json.dumps(config)))
        assert type(rebuilt) is type(losses.get(name))
    rebuilt = losses.from_config(losses.CategoricalCrossentropy(from_logits=True).get_config())
    assert rebuilt.from_logits


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------

P3 = np.full((2, 3), 1 / 3)


def test_categorical_rejects_integer_labels_and_suggests_sparse():
    with pytest.raises(ValueError, match="sparse_categorical_crossentropy"):
        losses.get("categorical_crossentropy")(np.array([0, 2]), P3)
    with pytest.raises(ValueError, match="to_categorical"):
        losses.get("categorical_crossentropy")(np.array([[0], [2]]), P3)


def test_categorical_rejects_width_mismatch():
    with pytest.raises(ValueError, match="3 wide"):
        losses.get("categorical_crossentropy")(np.eye(4)[:2], P3)


@pytest.mark.parametrize("name", ALL_NAMES)
def test_sample_count_mismatch(name):
    y, z = make_case(name, np.random.default_rng(10), shape=(3, 3))
    with pytest.raises(ValueError, match="same number of samples"):
        losses.get(name)(y[:2], probabilities(name, z))


def test_sparse_label_errors():
    sparse = losses.get("sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        sparse(np.array([0, 3]), P3)
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        sparse(np.array([-1, 0]), P3)
    with pytest.raises(ValueError, match="integer"):
        sparse(np.array([0.5, 1.0]), P3)
    with pytest.raises(ValueError, match="categorical_crossentropy"):
        sparse(np.eye(3)[:2], P3)
    with pytest.raises(ValueError, match="logits|range|labels"):
        sparse.value_and_grad_logits(np.array([5, 0]), np.zeros((2, 3)))


def test_non_numeric_and_nan_targets():
    with pytest.raises(TypeError, match="numeric"):
        losses.get("sparse_categorical_crossentropy")(np.array(["a", "b"]), P3)
    with pytest.raises(ValueError, match="NaN"):
        losses.get("mse")(np.array([[np.nan], [1.0]]), np.zeros((2, 1)))
    with pytest.raises(TypeError, match="numeric"):
        losses.get("mse")(np.zeros((2, 1)), np.array([["a"], ["b"]]))


def test_binary_targets_must_be_in_unit_interval():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        losses.get("binary_crossentropy")(np.array([[2.0], [0.0]]), np.full((2, 1), 0.5))


def test_shape_mismatch_for_mse():
    with pytest.raises(ValueError, match="shape"):
        losses.get("mse")(np.zeros((2, 3)), np.zeros((2, 2)))


def test_check_targets_returns_canonical_targets():
    sparse = losses.get("sparse_categorical_crossentropy")
    labels = sparse.check_targets(np.array([[1.0], [2.0]]), (2, 3))
    assert labels.shape == (2,) and labels.dtype.kind == "i"
    np.testing.assert_array_equal(labels, [1, 2])
    y = losses.get("mse").check_targets(np.array([1.0, 2.0]), (2, 1))
    assert y.shape == (2, 1)
