"""Pooling layers: float64 gradient checks (overlapping, same padding, non-dividing sizes), routing rules."""
import numpy as np
import pytest

from glassnet import layers
from glassnet.testing import check_layer_gradients
from layer_cases import distinct

# (N, H, W, C), pool_size, strides, padding
POOL_CONFIGS = [
    ((2, 6, 6, 2), 2, None, "valid"),          # tiles exactly (reshape fast path)
    ((2, 7, 5, 2), 2, None, "valid"),          # sizes that do not divide: last row/column dropped
    ((2, 7, 6, 2), 3, 2, "same"),              # overlapping 3x3 stride 2, Keras same padding
    ((1, 8, 8, 1), 3, 2, "same"),              # batch of 1, even size: asymmetric padding
    ((2, 5, 6, 3), 3, 1, "same"),              # stride 1, heavy overlap
    ((2, 6, 7, 2), (2, 3), (1, 2), "valid"),   # rectangular window and strides
    ((2, 7, 5, 2), (3, 2), (2, 3), "same"),
    ((2, 4, 5, 2), 1, None, "valid"),          # 1x1 pooling: identity
    ((2, 4, 5, 2), (4, 5), None, "valid"),     # window == input
    ((2, 7, 7, 2), 2, 3, "valid"),             # stride > window: skipped pixels
    ((2, 6, 6, 1), 2, None, "same"),           # same with nothing to pad
    ((1, 3, 3, 2), 5, 2, "same"),              # window larger than the input
]


def _pool_id(config):
    return "{}-p{}-s{}-{}".format(*config)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("config", POOL_CONFIGS, ids=[_pool_id(c) for c in POOL_CONFIGS])
def test_pooling_gradients(kind, config):
    shape, pool_size, strides, padding = config
    cls = layers.MaxPooling2D if kind == "max" else layers.AveragePooling2D
    layer = cls(pool_size, strides, padding=padding, dtype="float64")
    x = distinct(shape, np.random.default_rng(POOL_CONFIGS.index(config)))
    assert check_layer_gradients(layer, x).keys() == {"x"}
    assert layer.forward(x).shape[1:] == layer.output_shape[1:] == layer.compute_output_shape(shape[1:])


@pytest.mark.parametrize("shape", [(2, 3, 4, 2), (1, 1, 1, 3), (3, 5, 2, 1)])
@pytest.mark.parametrize("cls", [layers.GlobalAveragePooling2D, layers.GlobalMaxPooling2D])
def test_global_pooling_gradients(cls, shape):
    layer = cls(dtype="float64")
    x = distinct(shape, np.random.default_rng(sum(shape)))
    check_layer_gradients(layer, x)
    y = layer.forward(x)
    reduce = np.max if cls is layers.GlobalMaxPooling2D else np.mean
    np.testing.assert_allclose(y, reduce(x, axis=(1, 2)), rtol=1e-14)
    assert y.shape == (shape[0], shape[3]) and layer.output_shape == (None, shape[3])


def _loop_pool(x, pool, stride, pads, reduce):
    """Independent loop over output pixels: pad with NaN and reduce only the real cells of each window."""
    (top, bottom), (left, right) = pads
    xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=np.nan)
    OH = (xp.shape[1] - pool[0]) // stride[0] + 1
    OW = (xp.shape[2] - pool[1]) // stride[1] + 1
    y = np.empty((x.shape[0], OH, OW, x.shape[3]))
    for i in range(OH):
        for j in range(OW):
            window = xp[:, i * stride[0]:i * stride[0] + pool[0], j * stride[1]:j * stride[1] + pool[1]]
            y[:, i, j] = reduce(window, axis=(1, 2))
    return y


@pytest.mark.parametrize("config", POOL_CONFIGS, ids=[_pool_id(c) for c in POOL_CONFIGS])
def test_pooling_values_match_loop(config):
    """Max ignores padding; Keras/TensorFlow "same" average divides by the number of real cells."""
    shape, pool_size, strides, padding = config
    x = np.random.default_rng(7).standard_normal(shape)
    for cls, reduce in ((layers.MaxPooling2D, np.nanmax), (layers.AveragePooling2D, np.nanmean)):
        layer = cls(pool_size, strides, padding=padding, dtype="float64")
        y = layer.forward(x)
        pads = layer._pads(shape[1:3])
        np.testing.assert_allclose(y, _loop_pool(x, layer.pool_size, layer.strides, pads, reduce),
                                   rtol=1e-12, atol=1e-12)


def test_max_pool_ties_route_the_gradient_to_one_element():
    x = np.ones((1, 4, 4, 1))
    layer = layers.MaxPooling2D(2, dtype="float64")
    layer.forward(x)
    dx = layer.backward(np.full((1, 2, 2, 1), 3.0))
    assert np.count_nonzero(dx) == 4 and dx.sum() == 12.0
    assert np.all(dx.reshape(2, 2, 2, 2).transpose(0, 2, 1, 3).reshape(4, 4).max(axis=1) == 3.0)


def test_overlapping_max_pool_accumulates_shared_winners():
    """One global maximum in the middle wins all four overlapping 3x3 windows: it gets the sum."""
    x = np.zeros((1, 5, 5, 1))
    x[0, 2, 2, 0] = 9.0
    layer = layers.MaxPooling2D(3, 2, dtype="float64")
    layer.forward(x)
    dy = np.arange(1.0, 5.0).reshape(1, 2, 2, 1)
    dx = layer.backward(dy)
    assert dx[0, 2, 2, 0] == 10.0 and np.count_nonzero(dx) == 1


def test_global_max_pool_ties_route_to_one_element():
    layer = layers.GlobalMaxPooling2D(dtype="float64")
    layer.forward(np.ones((2, 3, 3, 2)))
    dx = layer.backward(np.ones((2, 2)))
    assert np.count_nonzero(dx) == 4 and dx.sum() == 4


def test_pooling_defaults_follow_keras():
    layer = layers.MaxPooling2D()
    assert (layer.pool_size, layer.strides, layer.padding) == ((2, 2), (2, 2), "valid")
    layer = layers.AveragePooling2D((3, 2), padding="SAME")
    assert (layer.strides, layer.padding) == ((3, 2), "same")
