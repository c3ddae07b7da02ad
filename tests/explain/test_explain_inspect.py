"""feature_maps and filters."""
import numpy as np
import pytest

from glassnet import explain
from glassnet.explain import backprop

from explain_nets import CONV_KERNEL, CONV_X, conv_net, images, small_cnn


def test_feature_maps_worked_by_hand():
    # filter 0: top-left pixel of each window; filter 1: minus bottom-right; then ReLU
    maps = explain.feature_maps(conv_net(), CONV_X, "conv")
    assert maps.shape == (1, 2, 2, 2)
    np.testing.assert_allclose(maps[0, :, :, 0], [[1, 2], [0, 0]])
    np.testing.assert_allclose(maps[0, :, :, 1], [[1, 0], [0, 0]])


def test_feature_maps_of_every_layer_match_the_forward_pass_in_chunks(monkeypatch):
    model = small_cnn(seed=1)
    x = images(5, (8, 8, 2), seed=2)
    for index, layer in enumerate(model.layers):
        expected = model.forward(x, stop=index + 1)
        got = explain.feature_maps(model, x, layer.name)
        assert got.shape == (5,) + layer.output_shape[1:]
        np.testing.assert_allclose(got, expected, rtol=1e-6)
    monkeypatch.setattr(backprop, "MEMORY_BUDGET", 1)
    np.testing.assert_allclose(explain.feature_maps(model, x, 2), model.forward(x, stop=3), rtol=1e-6)
    # probabilities at the softmax layer
    np.testing.assert_allclose(explain.feature_maps(model, x, -1).sum(axis=1), 1, rtol=1e-5)


def test_filters_are_kernels_filter_first():
    model = small_cnn(seed=2)
    kernel = model.layers[2].get_weights()[0]                  # (2, 2, 3, 4)
    got = explain.filters(model, 2)
    assert got.shape == (4, 2, 2, 3)
    for f in range(4):
        np.testing.assert_array_equal(got[f], kernel[:, :, :, f])
    np.testing.assert_array_equal(explain.filters(conv_net())[:, :, :, 0], CONV_KERNEL[:, :, 0, :].transpose(2, 0, 1))
    got[...] = 0                                               # a copy: the model is untouched
    assert np.abs(model.layers[2].get_weights()[0]).sum() > 0
    assert explain.filters(model).shape == (3, 3, 3, 2)        # default: the first Conv2D


def test_filters_errors():
    model = small_cnn()
    with pytest.raises(ValueError, match="Conv2D"):
        explain.filters(model, -1)
    with pytest.raises(ValueError, match="layer"):
        explain.filters(model, "missing")
