"""Dense, Flatten, Reshape, Dropout: float64 gradient checks and behaviour."""
import numpy as np
import pytest

from glassnet import layers
from glassnet.testing import check_layer_gradients
from layer_cases import distinct, reseed, smooth_conv_input

ACTIVATIONS = ["relu", "sigmoid", "tanh", "linear", "softmax", None]


@pytest.mark.parametrize("use_bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("batch", [1, 4])
def test_dense_gradients(batch, activation, use_bias):
    rng = np.random.default_rng(ACTIVATIONS.index(activation) + 10 * batch + use_bias)
    layer = layers.Dense(4, activation=activation, use_bias=use_bias, bias_initializer="normal",
                         dtype="float64")
    layer.build((6,))
    layer.set_weights([rng.standard_normal(w.shape) for w in layer.get_weights()])
    x = smooth_conv_input(layer, (batch, 6), rng)
    errors = check_layer_gradients(layer, x)
    assert set(errors) == {"x", "kernel"} | ({"bias"} if use_bias else set())


def test_dense_values():
    rng = np.random.default_rng(0)
    layer = layers.Dense(3, activation="tanh", bias_initializer="normal", dtype="float64")
    x = rng.standard_normal((5, 4))
    y = layer.forward(x)
    kernel, bias = layer.get_weights()
    assert kernel.shape == (4, 3) and bias.shape == (3,)
    np.testing.assert_allclose(y, np.tanh(x @ kernel + bias), rtol=1e-14)


@pytest.mark.parametrize("shape", [(2, 3, 4, 2), (1, 5), (3, 2, 2, 1)])
def test_flatten_gradients_and_keras_order(shape):
    layer = layers.Flatten(dtype="float64")
    x = distinct(shape, np.random.default_rng(1))
    check_layer_gradients(layer, x)
    y = layer.forward(x)
    assert y.shape == (shape[0], int(np.prod(shape[1:])))
    np.testing.assert_array_equal(y[0], x[0].ravel(order="C"))      # channels-last, row-major like Keras


@pytest.mark.parametrize("target", [(4, -1), (-1,), (2, 12), (6, 2, 2)])
def test_reshape_gradients(target):
    layer = layers.Reshape(target, dtype="float64")
    x = distinct((2, 3, 4, 2), np.random.default_rng(2))
    check_layer_gradients(layer, x)
    assert layer.forward(x).shape[1:] == layer.output_shape[1:]
    assert int(np.prod(layer.output_shape[1:])) == 24


@pytest.mark.parametrize("rate", [0.0, 0.25, 0.5, 0.9])
@pytest.mark.parametrize("shape", [(3, 4, 4, 2), (5, 7)])
def test_dropout_gradients_with_fixed_mask(rate, shape):
    layer = layers.Dropout(rate, dtype="float64")
    x = distinct(shape, np.random.default_rng(3))
    check_layer_gradients(layer, x, training=True, prepare=reseed(11))
    check_layer_gradients(layer, x, training=False)


def test_dropout_is_inverted_and_seeded():
    x = np.ones((200, 50), dtype="float32")
    layer = layers.Dropout(0.3, seed=5)
    y = layer.forward(x, training=True)
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.01                                   # 10,000 draws: sd 0.0046
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)                # survivors scaled up
    np.testing.assert_array_equal(layer.backward(np.ones_like(y)), y)      # same mask in backward
    again = layers.Dropout(0.3, seed=5).forward(x, training=True)
    np.testing.assert_array_equal(again, y)                                # reproducible by seed
    assert not np.array_equal(layer.forward(x, training=True), y)          # fresh mask each step
    assert layer.forward(x, training=False) is x                           # identity at inference


def test_dropout_expected_value_is_preserved():
    x = np.random.default_rng(0).standard_normal((400, 100))
    y = layers.Dropout(0.5, seed=0, dtype="float64").forward(x, training=True)
    assert abs(y.mean() - x.mean()) < 0.03                                 # sd of the difference ~0.01


@pytest.mark.parametrize("rule", ["vanilla", "guided", "rectified"])
@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh", "linear", "softmax"])
@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_fused_activation_equals_a_separate_activation_layer(kind, activation, rule):
    """Conv2D/Dense(activation=a) == Conv2D/Dense() + Activation(a), forward and backward, under every
    ReLU backward rule that explanations switch on (the fused relu gates on its output)."""
    rng = np.random.default_rng(9)
    make = (lambda **kw: layers.Dense(4, dtype="float64", **kw)) if kind == "dense" else \
        (lambda **kw: layers.Conv2D(3, 2, padding="same", dtype="float64", **kw))
    x = rng.standard_normal((3, 5) if kind == "dense" else (2, 4, 4, 2))
    fused, linear = make(activation=activation, bias_initializer="normal"), make()
    fused.build(x.shape[1:])
    linear.build(x.shape[1:])
    linear.set_weights(fused.get_weights())
    act = layers.Activation(activation, dtype="float64")
    fused.relu_rule = act.relu_rule = rule
    y = fused.forward(x)
    np.testing.assert_allclose(y, act.forward(linear.forward(x)), rtol=1e-14, atol=1e-15)
    dy = rng.standard_normal(y.shape)
    np.testing.assert_allclose(fused.backward(dy), linear.backward(act.backward(dy)), rtol=1e-13, atol=1e-15)
    for key in fused.params:
        np.testing.assert_allclose(fused.grads[key], linear.grads[key], rtol=1e-13, atol=1e-15)


def test_dropout_reuses_its_mask_array_only_when_no_call_holds_it():
    layer = layers.Dropout(0.5, seed=3)
    x = np.ones((4, 6), dtype="float32")
    first = layer.apply(x, training=True)[0]                   # the cache (the mask) is dropped
    first_mask = id(layer._kept_mask)                          # (an id: a reference would hold it)
    second, held = layer.apply(x, training=True)
    assert id(held) == first_mask                              # the same buffer, refilled
    assert not np.array_equal(first, second)                   # a new draw, and the old output intact
    third, held_too = layer.apply(x, training=True)            # ``held`` still refers to it: a fresh one
    assert held_too is not held and np.array_equal(held, np.where(second == 0, 0, 2))
    np.testing.assert_array_equal(layer.vjp(held_too, np.ones_like(x))[0], third)
    _, other = layer.apply(x[:2], training=True)               # another shape: a new buffer
    assert other.shape == (2, 6)


@pytest.mark.parametrize("threads", [2, 3])
def test_dropout_split_between_threads_equals_one_thread(threads, monkeypatch):
    """The draws come from one stream in one piece; only the masking is split by rows between the
    worker threads, so the mask, the output and the gradient do not depend on the thread count."""
    from glassnet import ops
    monkeypatch.setattr("glassnet.ops.parallel.MIN_PARALLEL_BYTES", 0)
    x = np.random.default_rng(1).standard_normal((7, 3, 5)).astype("float32")
    dy = np.random.default_rng(2).standard_normal(x.shape).astype("float32")
    results = []
    for count in (1, threads):
        monkeypatch.setattr(ops, "NUM_THREADS", count)
        layer = layers.Dropout(0.4, seed=8)
        results.append((layer.forward(x, training=True), layer.backward(dy)))
    (y1, dx1), (y2, dx2) = results
    np.testing.assert_array_equal(y2, y1)
    np.testing.assert_array_equal(dx2, dx1)
    assert 0 < np.count_nonzero(y1 == 0) < x.size                          # some dropped, some kept
    np.testing.assert_array_equal(dx1, np.where(y1 == 0, 0, dy * np.float32(1 / 0.6)))
