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


def _check_conv_gradients(shape, seed, **conv_args):
    """Finite-difference check of a float64 Conv2D with random weights on a kink-free input."""
    rng = np.random.default_rng(seed)
    layer = layers.Conv2D(bias_initializer="normal", dtype="float64", **conv_args)
    layer.build(shape)
    layer.set_weights([rng.standard_normal(w.shape) for w in layer.get_weights()])
    x = smooth_conv_input(layer, shape, rng)
    errors = check_layer_gradients(layer, x, seed=1)
    assert set(errors) == {"x", "kernel"} | ({"bias"} if conv_args["use_bias"] else set())
    assert layer.output_shape[1:] == layer.forward(x).shape[1:]


@pytest.mark.parametrize("config", CONV_CONFIGS, ids=[_conv_id(c) for c in CONV_CONFIGS])
def test_conv2d_gradients(config):
    shape, filters, kernel, strides, padding, activation, use_bias = config
    _check_conv_gradients(shape, CONV_CONFIGS.index(config), filters=filters, kernel_size=kernel, strides=strides,
                          padding=padding, activation=activation, use_bias=use_bias)


@pytest.mark.parametrize("activation", ["sigmoid", "softmax", "relu"])
def test_conv2d_logits_path_is_the_linear_layer(activation):
    """forward(logits=True) + backward differentiate the pre-activation (what losses and explanations use)."""
    rng = np.random.default_rng(3)
    layer = layers.Conv2D(3, 3, padding="same", activation=activation, dtype="float64")
    x = rng.standard_normal((2, 4, 4, 2))
    check_layer_gradients(layer, x, forward_kwargs={"logits": True})
    linear = layers.Conv2D(3, 3, padding="same", dtype="float64")
    linear.build((None, 4, 4, 2))
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
    assert layer.build((None, 3, 3, 1)).output_shape == (None, 5, 7, 1)


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
    assert layer.build((None, size, 4, 1)).output_shape[1] == expected_out == -(-size // stride)


def _direct_sum(xp, kernel, bias, out_hw, window):
    """The convolution by its definition: output (i, j) is sum over (a, b, c) of xp[:, rows, cols][a, b, c]
    * kernel[a, b, c] + bias, with (rows, cols) = window(i, j) the slices of the taps it reads."""
    expected = np.zeros((len(xp),) + out_hw + (kernel.shape[3],))
    for i in range(out_hw[0]):
        for j in range(out_hw[1]):
            rows, cols = window(i, j)
            expected[:, i, j, :] = np.einsum("nabc,abcf->nf", xp[:, rows, cols, :], kernel) + bias
    return expected


def test_conv2d_matches_direct_sum():
    """Cross-correlation definition y[n,i,j,f] = sum xp[n, i*sh + a, j*sw + b, c] k[a, b, c, f] + bias[f]."""
    rng = np.random.default_rng(5)
    layer = layers.Conv2D(3, (2, 3), strides=(2, 1), padding=((1, 0), (0, 2)), bias_initializer="normal",
                          dtype="float64")
    x = rng.standard_normal((2, 5, 4, 2))
    y = layer.forward(x)
    kernel, bias = layer.get_weights()
    xp = np.pad(x, ((0, 0), (1, 0), (0, 2), (0, 0)))
    expected = _direct_sum(xp, kernel, bias, y.shape[1:3], lambda i, j: (slice(2 * i, 2 * i + 2), slice(j, j + 3)))
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


def test_conv2d_first_layer_skips_input_gradient():
    layer = layers.Conv2D(2, 3, dtype="float64")
    x = np.random.default_rng(6).standard_normal((2, 5, 5, 1))
    _, cache = layer.apply(x)
    dx, grads = layer.vjp(cache, np.ones((2, 3, 3, 2)), need_dx=False)
    assert dx is None and grads["kernel"].shape == (3, 3, 1, 2)
    dx, grads = layer.vjp(cache, np.ones((2, 3, 3, 2)), need_grads=False)
    assert dx.shape == x.shape and grads == {}


# (N, H, W, C), filters, kernel_size, dilation_rate, padding, activation, use_bias
DILATED_CONFIGS = [
    ((2, 7, 7, 2), 3, 3, 2, "valid", None, True),                  # a 5x5 span
    ((2, 8, 9, 3), 2, 3, (2, 1), "same", "relu", True),            # dilated down the rows only
    ((1, 9, 6, 1), 2, (2, 3), (3, 2), "same", "tanh", False),      # one channel, rectangular
    ((2, 6, 7, 2), 3, 2, 3, 1, "sigmoid", True),                   # int padding, even kernel
    ((2, 5, 8, 2), 2, (1, 3), (1, 3), ((1, 0), (2, 1)), "linear", True),
    ((2, 5, 5, 2), 2, 3, 2, "same", "softmax", True),              # span 5 on a 5x5 input
]


@pytest.mark.parametrize("config", DILATED_CONFIGS, ids=[_conv_id(c) for c in DILATED_CONFIGS])
def test_dilated_conv2d_gradients(config):
    shape, filters, kernel, dilation, padding, activation, use_bias = config
    _check_conv_gradients(shape, DILATED_CONFIGS.index(config), filters=filters, kernel_size=kernel,
                          dilation_rate=dilation, padding=padding, activation=activation, use_bias=use_bias)


def test_dilated_conv2d_matches_direct_sum():
    """y[n,i,j,f] = sum xp[n, i + a*dh, j + b*dw, c] k[a, b, c, f] + bias[f], and its gradients by loops."""
    rng = np.random.default_rng(8)
    layer = layers.Conv2D(3, (2, 3), padding=((1, 0), (0, 2)), dilation_rate=(3, 2), bias_initializer="normal",
                          dtype="float64")
    x = rng.standard_normal((2, 7, 6, 2))
    y = layer.forward(x)
    kernel, bias = layer.get_weights()
    xp = np.pad(x, ((0, 0), (1, 0), (0, 2), (0, 0)))
    taps = lambda i, j: (slice(i, i + 4, 3), slice(j, j + 5, 2))     # noqa: E731  (3 rows, 2 columns apart)
    np.testing.assert_allclose(y, _direct_sum(xp, kernel, bias, y.shape[1:3], taps), rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)
    dxp, dkernel = np.zeros(xp.shape), np.zeros(kernel.shape)
    for i in range(y.shape[1]):
        for j in range(y.shape[2]):
            rows, cols = taps(i, j)
            dxp[:, rows, cols, :] += np.einsum("nf,abcf->nabc", dy[:, i, j], kernel)
            dkernel += np.einsum("nabc,nf->abcf", xp[:, rows, cols, :], dy[:, i, j])
    np.testing.assert_allclose(dx, dxp[:, 1:, :-2], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.grads["kernel"], dkernel, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.grads["bias"], dy.sum(axis=(0, 1, 2)), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("size, kernel, dilation, expected_pads", [
    (7, 3, 2, (2, 2)),       # span 5: 4 pixels of padding, split evenly
    (8, 2, 3, (1, 2)),       # span 4: 3 pixels, the extra one at the bottom (Keras)
    (5, 3, 3, (3, 3)),       # span 7 larger than the input
])
def test_same_padding_of_a_dilated_kernel_follows_keras(size, kernel, dilation, expected_pads):
    layer = layers.Conv2D(1, (kernel, 1), padding="same", dilation_rate=(dilation, 1))
    assert layer._pads((size, 4))[0] == expected_pads
    assert layer.compute_output_shape((size, 4, 1)) == (size, 4, 1)


def test_dilation_rate_in_the_config_and_back():
    layer = layers.Conv2D(4, 3, dilation_rate=(2, 3), padding="same")
    config = layer.get_config()
    assert config["dilation_rate"] == [2, 3]
    clone = layers.deserialize(layers.serialize(layer))
    assert clone.dilation_rate == (2, 3) and clone.get_config() == config
    assert layers.Conv2D(4, 3).get_config()["dilation_rate"] == [1, 1]
    assert layers.Conv2D(4, 3, dilation_rate=2).dilation_rate == (2, 2)


def test_a_dilated_convolution_is_not_fused_with_its_pooling():
    pool = layers.MaxPooling2D(2)
    assert not layers.Conv2D(4, 3, activation="relu", dilation_rate=2).pools_with(pool)
    assert layers.Conv2D(4, 3, activation="relu").pools_with(pool)


@pytest.mark.slow                                        # importing Keras takes a minute on a loaded 2-core machine
@pytest.mark.parametrize("size, kernel, dilation", [((9, 8), 3, 2), ((8, 8), 2, 3), ((7, 10), (2, 3), (3, 2))])
def test_dilated_same_convolution_matches_keras(monkeypatch, size, kernel, dilation):
    """Keras 3 (the dev-only oracle, on its torch backend) with the same weights: the same output,
    so "same" padding of a dilated kernel is split as Keras splits it."""
    monkeypatch.setenv("KERAS_BACKEND", "torch")         # read once, when keras is first imported
    keras = pytest.importorskip("keras", reason="Keras 3 (a dev-only oracle) is not importable")
    x = np.random.default_rng(0).standard_normal((2,) + size + (3,)).astype("float32")
    theirs = keras.layers.Conv2D(4, kernel, padding="same", dilation_rate=dilation)
    expected = keras.ops.convert_to_numpy(theirs(x))
    ours = layers.Conv2D(4, kernel, padding="same", dilation_rate=dilation)
    ours.build(x.shape[1:])
    ours.set_weights([keras.ops.convert_to_numpy(w) for w in theirs.weights])
    np.testing.assert_allclose(ours.forward(x), expected, rtol=1e-5, atol=1e-5)


def test_a_model_with_dilated_convolutions_trains_saves_and_loads(tmp_path):
    """Two stacked dilated ReLU convolutions (the upper one gates the lower one's gradient in its
    blocks) then a pooling: a training step lowers the loss on its batch, and the saved model
    predicts the same after loading."""
    import glassnet as gn
    model = gn.Sequential([layers.Conv2D(4, 3, activation="relu", dilation_rate=2, padding="same",
                                         input_shape=(12, 12, 2)),
                           layers.Conv2D(6, 3, activation="relu", dilation_rate=(1, 2)),
                           layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(3, activation="softmax")], seed=0)
    model.compile(optimizer=gn.optimizers.SGD(0.05), loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((16, 12, 12, 2)).astype("float32"), rng.integers(0, 3, 16)
    assert model.layers[1].output_shape == (None, 10, 8, 6)
    first = model.train_on_batch(x, y)
    for _ in range(5):
        model.train_on_batch(x, y)
    assert model.evaluate(x, y) < first
    model.save(tmp_path / "dilated.npz")
    loaded = gn.load_model(tmp_path / "dilated.npz")
    assert loaded.layers[0].dilation_rate == (2, 2) and loaded.layers[1].dilation_rate == (1, 2)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
