"""glassnet.testing itself: the checker passes correct layers and catches every kind of wrong one."""
import numpy as np
import pytest

import glassnet as gn
from glassnet import layers
from glassnet.testing import (check_layer_gradients, check_model_gradients, numerical_gradient,
                              relative_error)


class _WrongDx(layers.Dense):
    def vjp(self, cache, dy, *args, **kwargs):
        dx, grads = super().vjp(cache, dy, *args, **kwargs)
        return (None if dx is None else dx * 1.001), grads


class _WrongBias(layers.Dense):
    def vjp(self, cache, dy, *args, **kwargs):
        dx, grads = super().vjp(cache, dy, *args, **kwargs)
        return dx, {**grads, "bias": grads["bias"] * 1.001} if grads else grads


class _MutatesDy(layers.Dense):
    def vjp(self, cache, dy, *args, **kwargs):
        dy *= 1.0
        return super().vjp(cache, dy, *args, **kwargs)


class _ForgetsAGradient(layers.Dense):
    def vjp(self, cache, dy, *args, **kwargs):
        dx, grads = super().vjp(cache, dy, *args, **kwargs)
        return dx, {**grads, "kernel": np.zeros_like(self.params["kernel"])} if grads else grads


X = np.random.default_rng(0).standard_normal((3, 4))


def test_correct_layer_passes_with_tiny_errors():
    errors = check_layer_gradients(layers.Dense(3, activation="tanh", dtype="float64"), X)
    assert set(errors) == {"x", "kernel", "bias"} and max(errors.values()) < 1e-8


@pytest.mark.parametrize("cls, key", [(_WrongDx, "x"), (_WrongBias, "bias"), (_ForgetsAGradient, "kernel")])
def test_wrong_gradients_are_caught(cls, key):
    with pytest.raises(AssertionError, match=f"for {key}: "):
        check_layer_gradients(cls(3, bias_initializer="normal", dtype="float64"), X)


def test_mutating_dy_is_caught():
    with pytest.raises(ValueError, match="read-only"):
        check_layer_gradients(_MutatesDy(3, dtype="float64"), X)


def test_float32_is_refused_with_a_fix():
    with pytest.raises(TypeError, match="dtype='float64'"):
        check_layer_gradients(layers.Dense(3), X.astype("float32"))
    with pytest.raises(TypeError, match="float64"):
        check_layer_gradients(layers.Dense(3), X)               # float32 layer, float64 input: float32 weights


def test_numerical_gradient_restores_the_array_and_is_accurate():
    a = np.random.default_rng(1).standard_normal((3, 2))
    before = a.copy()
    grad = numerical_gradient(lambda: float(np.sum(np.sin(a) * 2)), a)
    np.testing.assert_array_equal(a, before)
    np.testing.assert_allclose(grad, 2 * np.cos(a), rtol=1e-8)


def test_relative_error():
    assert relative_error([1.0, 2.0], [1.0, 2.0]) == 0
    assert relative_error([1.0, 0.0], [1.1, 0.0]) == pytest.approx(0.1 / 1.1)
    assert relative_error([1e-9], [3e-9]) == pytest.approx(2e-9)      # both ~0: absolute error
    with pytest.raises(ValueError, match="same shape"):
        relative_error([1.0], [1.0, 2.0])


def _model(wrong=False):
    dense = (_WrongBias if wrong else layers.Dense)(4, activation="softmax", bias_initializer="normal",
                                                    dtype="float64")
    return gn.Sequential([
        layers.Conv2D(3, 3, strides=2, padding="same", activation="tanh", input_shape=(7, 6, 2), dtype="float64"),
        layers.BatchNormalization(dtype="float64"),
        layers.AveragePooling2D(2, padding="same", dtype="float64"),
        layers.Flatten(dtype="float64"),
        dense,
    ], seed=0)


def test_model_checker_passes_a_correct_model_and_catches_a_wrong_layer():
    x = np.random.default_rng(2).standard_normal((2, 7, 6, 2))
    errors = check_model_gradients(_model(), x, training=True)
    assert len(errors) == 1 + 2 + 2 + 2 and max(errors.values()) < 1e-7
    check_model_gradients(_model(), x, logits=True)
    with pytest.raises(AssertionError, match="/bias"):
        check_model_gradients(_model(wrong=True), x)
