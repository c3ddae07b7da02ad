"""Conv2D and ZeroPadding2D: float64 gradient checks over many configurations, padding arithmetic."""
import numpy as np
import pytest

from glassnet import layers
from glassnet.testing import check_layer_gradients
from layer_cases import distinct, smooth_conv_input

# (N, H, W, C), filters, kernel_size, strides, padding, activation, use_bias
CONV_CONFIGS = [
    ((2, 5, 5, 2), 3, 3, 1, "valid", None, True),
    ((2, 7, 6, 2), 3, 3, 2, "valid", None, True),                  # stride 2, 6 - 3 not divisible by 2
    ((2, 7, 8, 3), 2, 3, 2, "same", None, True),                   # same, odd H / even W with stride 2
    ((2, 8, 8, 1), 3, 3, 2, "same", "relu", True),                 # asymmetric Keras split (0, 1)
    ((1, 6, 7, 2), 3, (2, 3), (2, 1), "same", "sigmoid", True),    # batch of 1, rectangular kernel
    ((2, 6, 7, 2), 2, (3, 2), (1, 3), "valid", "tanh", True),      # rectangular strides
    ((2, 4, 5, 2), 3, 3, 1, 1, "linear", True),                    # int padding
    ((2, 4, 5, 2), 2, 3, 2, (2, 1), "softmax", True),              # (ph, pw) padding
    ((2, 5, 4, 1), 2, (2, 3), 1, ((1, 0), (0, 2)), "relu", True),  # ((t, b), (l, r)) padding
    ((1, 6, 7, 2), 2, 2, 3, ((0, 2), (1, 1)), None, False),        # stride > kernel: skipped pixels
    ((2, 4, 4, 3), 4, 1, 1, "valid", "relu", True),                # 1x1 convolution
    ((2, 4, 5, 2), 3, (4, 5), 1, "valid", "sigmoid", True),        # kernel == input: 1x1 output
    ((2, 3, 3, 2), 2, 5, 1, "same", "tanh", True),                 # kernel larger than input, same padding
    ((1, 9, 4, 1), 2, 3, (4, 1), "same", None, False),             # tall input, stride 4, no bias
    ((2, 5, 5, 2), 3, 3, 2, "same", "softmax", False),             # softmax over filters, no bias
    ((2, 6, 6, 2), 2, 2, 2, "valid", "linear", True),              # windows tile exactly
    ((1, 1, 1, 3), 2, 1, 1, "valid", "tanh", True),                # 1x1 image
    ((2, 2, 3, 1), 2, 3, 3, "same", "relu", True),                 # stride > size: one output per axis
    ((3, 5, 3, 2), 2, (1, 3), (2, 2), 2, "sigmoid", False),
    ((2, 7, 7, 1), 1, 3, 3, "valid", None, True),                  # single filter, stride == kernel
]


def _conv_id(config):
    shape, filters, kernel, strides, padding, activation, bias = config
    return f"{shape}-f{filters}-k{kernel}-s{strides}-p{padding}-{activation}-{'bias' if bias else 'nobias'}"


@pytest.mark.parametrize("config", CONV_CONFIGS, ids=[_conv_id(c) for c in CONV_CONFIGS])
def test_conv2d_gradients(config):
    shape, filters, kernel, strides, padding, activation, use_bias = config
    rng = np.random.default_rng(CONV_CONFIGS.index(config))
    layer = layers.Conv2D(filters, kernel, strides=strides, padding=padding, activation=activation,
                          use_bias=use_bias, bias_initializer="normal", dtype="float64")
    layer.build(shape[1:])
    layer.set_weights([rng.standard_normal(w.shape) for w in layer.get_weights()])
    x = smooth_conv_input(layer, shape, rng)
    errors = check_layer_gradients(layer, x, seed=1)
    assert set(errors) == {"x", "kernel"} | ({"bias"} if use_bias else set())
    assert layer.output_shape[1:] == layer.forward(x).shape[1:]


@pytest.mark.parametrize("activation", ["sigmoid", "softmax", "relu"])
def test_conv2d_logits_path_is_the_linear_layer(activation):
    """forward(logits=True) + backward differentiate the pre-activation (what losses and explanations use)."""
    rng = np.random.default_rng(3)
    layer = layers.Conv2D(3, 3, padding="same", activation=activation, dtype="float64")
    x = rng.standard_normal((2, 4, 4, 2))
    check_layer_gradients(layer, x, forward_kwargs={"logits": True})
    linear = layers.Conv2D(3, 3, padding="same", dtype="float64")
    linear.build((4, 4, 2))
    linear.set_weights(layer.get_weights())
    np.testing.assert_allclose(layer.forward(x, logits=True), linear.forward(x), rtol=0, atol=0)


@pytest.mark.parametrize("padding", [1, (2, 1), ((1, 2), (0, 3)), ((0, 0), (2, 0))],
                         ids=["int", "pair", "tblr", "left-only"])
def test_zero_padding_gradients_and_values(padding):
    rng = np.random.default_rng(4)
    layer = layers.ZeroPadding2D(padding, dtype="float64")
    x = distinct((2, 3, 4, 2), rng)
    check_layer_gradients(layer, x)
    y = layer.forward(x)
    (top, bottom), (left, right) = layer.pads
    assert y.shape == (2, 3 + top + bottom, 4 + left + right, 2) == (2,) + layer.output_shape[1:]
    np.testing.assert_array_equal(y[:, top:top + 3, left:left + 4], x)
    assert np.count_nonzero(y) == x.size


def test_zero_padding_matches_keras_pair_meaning():
    """Keras: ZeroPadding2D((1, 2)) pads 1 row top and bottom, 2 columns left and right."""
    layer = layers.ZeroPadding2D((1, 2))
    assert layer.pads == ((1, 1), (2, 2))
    assert layer.build((3, 3, 1)).output_shape == (None, 5, 7, 1)


@pytest.mark.parametrize("size, kernel, stride, expected_pads, expected_out", [
    (8, 3, 2, (0, 1), 4),     # total 1: the extra pixel goes to the bottom/right (TensorFlow)
    (7, 3, 2, (1, 1), 4),
    (5, 4, 1, (1, 2), 5),     # even kernel, stride 1
    (3, 5, 1, (2, 2), 3),
    (6, 1, 3, (0, 0), 2),
    (2, 3, 3, (0, 1), 1),
    (10, 2, 4, (0, 0), 3),    # (3 - 1) * 4 + 2 - 10 < 0: no padding at all
])
def test_same_padding_follows_keras(size, kernel, stride, expected_pads, expected_out):
    layer = layers.Conv2D(1, (kernel, 1), strides=(stride, 1), padding="same")
    assert layer._pads((size, 4))[0] == expected_pads
    assert layer.build((size, 4, 1)).output_shape[1] == expected_out == -(-size // stride)


def test_conv2d_matches_direct_sum():
    """Cross-correlation definition y[n,i,j,f] = sum xp[n, i*sh + a, j*sw + b, c] k[a, b, c, f] + bias[f]."""
    rng = np.random.default_rng(5)
    layer = layers.Conv2D(3, (2, 3), strides=(2, 1), padding=((1, 0), (0, 2)), bias_initializer="normal",
                          dtype="float64")
    x = rng.standard_normal((2, 5, 4, 2))
    y = layer.forward(x)
    kernel, bias = layer.get_weights()
    xp = np.pad(x, ((0, 0), (1, 0), (0, 2), (0, 0)))
    expected = np.zeros(y.shape)
    for i in range(y.shape[1]):
        for j in range(y.shape[2]):
            window = xp[:, 2 * i:2 * i + 2, j:j + 3, :]
            expected[:, i, j, :] = np.einsum("nabc,abcf->nf", window, kernel) + bias
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


def test_conv2d_first_layer_skips_input_gradient():
    layer = layers.Conv2D(2, 3, dtype="float64")
    x = np.random.default_rng(6).standard_normal((2, 5, 5, 1))
    _, cache = layer.apply(x)
    dx, grads = layer.vjp(cache, np.ones((2, 3, 3, 2)), need_dx=False)
    assert dx is None and grads["kernel"].shape == (3, 3, 1, 2)
    dx, grads = layer.vjp(cache, np.ones((2, 3, 3, 2)), need_grads=False)
    assert dx.shape == x.shape and grads == {}
