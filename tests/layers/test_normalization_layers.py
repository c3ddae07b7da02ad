"""BatchNormalization: gradients in training and inference mode, moving statistics, Keras defaults."""
import numpy as np
import pytest

from glassnet import layers
from glassnet.testing import check_layer_gradients

OPTIONS = [dict(), dict(center=False), dict(scale=False), dict(center=False, scale=False),
           dict(epsilon=0.5, momentum=0.5)]
SHAPES = [(4, 3, 3, 2), (6, 5), (2, 1, 1, 3), (1, 3, 4, 2)]


def _random_bn(shape, options, seed):
    rng = np.random.default_rng(seed)
    layer = layers.BatchNormalization(**options, dtype="float64")
    layer.build(shape)
    C = shape[-1]
    values = {"gamma": rng.uniform(0.5, 2.0, C), "beta": rng.standard_normal(C),
              "moving_mean": rng.standard_normal(C), "moving_variance": rng.uniform(0.5, 2.0, C)}
    layer.set_weights([values[key] for key in layer.weight_names])
    x = rng.standard_normal(shape) * rng.uniform(0.5, 3, C) + rng.standard_normal(C)
    return layer, x


@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()) or "default")
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_batchnorm_gradients(shape, options, training):
    layer, x = _random_bn(shape, options, seed=len(shape) + 7 * training)
    errors = check_layer_gradients(layer, x, training=training)
    expected = {"x"} | ({"gamma"} if layer.scale else set()) | ({"beta"} if layer.center else set())
    assert set(errors) == expected


def test_batchnorm_training_normalizes_with_batch_statistics():
    layer, x = _random_bn((8, 3, 3, 2), {}, seed=1)
    gamma, beta = layer.params["gamma"].copy(), layer.params["beta"].copy()
    y = layer.forward(x, training=True)
    x_hat = (x - x.mean(axis=(0, 1, 2))) / np.sqrt(x.var(axis=(0, 1, 2)) + 1e-3)
    np.testing.assert_allclose(y, gamma * x_hat + beta, rtol=1e-12, atol=1e-12)


def test_batchnorm_inference_uses_moving_statistics():
    layer, x = _random_bn((3, 2, 2, 2), {}, seed=2)
    g, b, m, v = layer.get_weights()
    np.testing.assert_allclose(layer.forward(x), g * (x - m) / np.sqrt(v + 1e-3) + b, rtol=1e-12)
    np.testing.assert_array_equal(layer.get_weights()[2], m)        # inference leaves them alone


def test_batchnorm_moving_statistics_update():
    """moving = momentum * moving + (1 - momentum) * batch, with the unbiased batch variance (as PyTorch)."""
    layer, x = _random_bn((5, 2, 3, 2), dict(momentum=0.9), seed=3)
    _, _, m0, v0 = layer.get_weights()
    layer.forward(x, training=True)
    _, _, m1, v1 = layer.get_weights()
    np.testing.assert_allclose(m1, 0.9 * m0 + 0.1 * x.mean(axis=(0, 1, 2)), rtol=1e-12)
    np.testing.assert_allclose(v1, 0.9 * v0 + 0.1 * x.var(axis=(0, 1, 2), ddof=1), rtol=1e-12)


def test_batchnorm_keras_defaults_and_weight_order():
    layer = layers.BatchNormalization().build((None, 4, 4, 3))
    assert (layer.momentum, layer.epsilon) == (0.99, 1e-3)
    assert layer.weight_names == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert list(layer.params) == ["gamma", "beta"]                  # moving statistics are not trainable
    assert layer.count_params() == 12 and layer.count_trainable_params() == 6
    g, b, m, v = layer.get_weights()
    np.testing.assert_array_equal(np.stack([g, b, m, v]), [[1] * 3, [0] * 3, [0] * 3, [1] * 3])
