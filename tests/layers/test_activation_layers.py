"""Activation, ReLU, LeakyReLU, PReLU, Softmax: float64 gradient checks away from kinks, values."""
import numpy as np
import pytest

from glassnet import layers
from glassnet.testing import check_layer_gradients
from layer_cases import away_from, distinct

SHAPES = [(2, 3, 4, 2), (3, 5), (1, 6)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh", "linear", "softmax"])
def test_activation_layer_gradients(name, shape):
    layer = layers.Activation(name, dtype="float64")
    x = distinct(shape, np.random.default_rng(len(shape)), -3, 3)
    check_layer_gradients(layer, x)


@pytest.mark.parametrize("kwargs, kinks", [
    ({}, [0.0]),
    ({"max_value": 1.0}, [0.0, 1.0]),
    ({"max_value": 0.5, "negative_slope": 0.2}, [0.0, 0.5]),
    ({"negative_slope": 0.05}, [0.0]),
    ({"max_value": 6.0}, [0.0, 6.0]),
])
@pytest.mark.parametrize("shape", SHAPES)
def test_relu_gradients(kwargs, kinks, shape):
    layer = layers.ReLU(**kwargs, dtype="float64")
    x = away_from(distinct(shape, np.random.default_rng(3), -2, 8), kinks)
    check_layer_gradients(layer, x)
    slope = kwargs.get("negative_slope", 0.0)
    expected = np.where(x > 0, x, slope * x)
    if "max_value" in kwargs:
        expected = np.minimum(expected, kwargs["max_value"])
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-15)


@pytest.mark.parametrize("alpha", [0.0, 0.01, 0.3, 0.9])
def test_leaky_relu_gradients(alpha):
    layer = layers.LeakyReLU(alpha, dtype="float64")
    x = distinct((2, 3, 3, 2), np.random.default_rng(4))
    check_layer_gradients(layer, x)
    np.testing.assert_allclose(layer.forward(x), np.where(x > 0, x, alpha * x), rtol=1e-15)
    assert layers.LeakyReLU().alpha == 0.3                    # Keras's default


@pytest.mark.parametrize("shape, shared_axes, alpha_shape", [
    ((2, 3, 4, 2), None, (3, 4, 2)),
    ((2, 3, 4, 2), [1, 2], (1, 1, 2)),                  # one alpha per channel
    ((2, 3, 4, 2), [3], (3, 4, 1)),
    ((1, 3, 4, 2), [1, 2, 3], (1, 1, 1)),               # a single alpha
    ((2, 3, 4, 2), 1, (1, 4, 2)),                       # an int like Keras allows
    ((3, 5), None, (5,)),
    ((3, 5), [1], (1,)),
])
def test_prelu_gradients(shape, shared_axes, alpha_shape):
    layer = layers.PReLU(shared_axes=shared_axes, dtype="float64")
    layer.build(shape)
    assert layer.params["alpha"].shape == alpha_shape
    rng = np.random.default_rng(5)
    layer.set_weights([rng.uniform(-0.5, 0.5, alpha_shape)])
    x = distinct(shape, rng)
    assert set(check_layer_gradients(layer, x)) == {"x", "alpha"}
    alpha = layer.params["alpha"]
    np.testing.assert_allclose(layer.forward(x), np.where(x > 0, x, alpha * x), rtol=1e-15)


def test_prelu_starts_as_relu():
    layer = layers.PReLU(dtype="float64")
    x = distinct((2, 4), np.random.default_rng(0))
    np.testing.assert_array_equal(layer.forward(x), np.maximum(x, 0))


@pytest.mark.parametrize("shape", SHAPES)
def test_softmax_layer_gradients(shape):
    layer = layers.Softmax(dtype="float64")
    x = np.random.default_rng(6).standard_normal(shape) * 3
    check_layer_gradients(layer, x)
    y = layer.forward(x)
    np.testing.assert_allclose(y.sum(axis=-1), 1.0, rtol=1e-14)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    np.testing.assert_allclose(y, e / e.sum(axis=-1, keepdims=True), rtol=1e-14)


def test_activation_is_case_insensitive_and_none_is_linear():
    assert layers.Activation("ReLU").activation == "relu"
    assert layers.Activation(None).activation == "linear"
    assert layers.Dense(2).activation == "linear"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_saturating_layers_stay_finite_at_plus_minus_1000(dtype):
    x = np.array([[-1000.0, -30.0, 0.0, 30.0, 1000.0]], dtype=dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        for layer in (layers.Activation("sigmoid", dtype=dtype), layers.Activation("softmax", dtype=dtype),
                      layers.Softmax(dtype=dtype), layers.Activation("tanh", dtype=dtype)):
            y = layer.forward(x)
            dx = layer.backward(np.ones_like(y))
            assert y.dtype == dx.dtype == dtype and np.isfinite(y).all() and np.isfinite(dx).all()
        dense = layers.Dense(2, activation="softmax", dtype=dtype).build((None, 5,))
        dense.set_weights([np.eye(5, 2, dtype=dtype) * 1000, np.zeros(2, dtype=dtype)])
        y = dense.forward(x)
        assert np.isfinite(dense.backward(np.ones_like(y))).all()
    np.testing.assert_allclose(layers.Activation("sigmoid").forward(x.astype("float32"))[0, [0, 4]], [0, 1])
    np.testing.assert_allclose(layers.Softmax().forward(x.astype("float32"))[0], [0, 0, 0, 0, 1], atol=1e-7)
