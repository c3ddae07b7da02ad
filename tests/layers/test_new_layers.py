"""DepthwiseConv2D, SeparableConv2D, UpSampling2D, Cropping2D, Rescaling, RandomFlip, RandomCrop:
float64 gradient checks, loop references and golden vectors, hyperparameter validation, Keras's parameter
counts and summary shapes, saving round trips, and the augmentation layers' training-only randomness.
(The PyTorch oracle is tests/layers/test_new_layers_vs_torch.py; the protocol checks run them through
layer_cases.CATALOG.)
"""
import numpy as np
import pytest

import glassnet as gn
from glassnet import layers
from glassnet.testing import check_layer_gradients
from layer_cases import smooth_conv_input


# ----------------------------------------------------------------------------------------------
# gradient checks (float64 central differences)
# ----------------------------------------------------------------------------------------------
def f64(cls, *args, **kwargs):
    """A factory of float64 layers (central differences need float64)."""
    return lambda: cls(*args, **kwargs, dtype="float64")


GRADIENT_CASES = [
    ("depthwise_valid", f64(layers.DepthwiseConv2D, 3, bias_initializer="normal"), (6, 5, 2)),
    ("depthwise_same_s2_m3_tanh", f64(layers.DepthwiseConv2D, (3, 2), strides=2, padding="same",
                                                                 depth_multiplier=3, activation="tanh"), (7, 6, 2)),
    ("depthwise_dilated_sigmoid", f64(layers.DepthwiseConv2D, 2, dilation_rate=(2, 3), padding="same",
                                                                 activation="sigmoid"), (6, 7, 3)),
    ("depthwise_dilated_strided", f64(layers.DepthwiseConv2D, 3, strides=(2, 1), dilation_rate=2, padding=1,
                                                                 use_bias=False), (8, 7, 2)),
    ("depthwise_relu", f64(layers.DepthwiseConv2D, 3, padding="same", activation="relu"), (5, 5, 2)),
    ("separable", f64(layers.SeparableConv2D, 4, 3, depth_multiplier=2, bias_initializer="normal"), (6, 5, 3)),
    ("separable_same_s2_softmax", f64(layers.SeparableConv2D, 3, (2, 3), strides=2, padding="same",
                                                                 activation="softmax"), (5, 7, 2)),
    ("separable_dilated_relu", f64(layers.SeparableConv2D, 2, 2, dilation_rate=2, activation="relu",
                                                              use_bias=False), (6, 6, 2)),
    ("upsampling_nearest", f64(layers.UpSampling2D, (3, 2)), (3, 4, 2)),
    ("upsampling_bilinear", f64(layers.UpSampling2D, (2, 3), interpolation="bilinear"), (4, 3, 2)),
    ("upsampling_bilinear_1", f64(layers.UpSampling2D, 2, interpolation="bilinear"), (1, 1, 2)),
    ("cropping", f64(layers.Cropping2D, ((2, 1), (0, 3))), (5, 6, 2)),
    ("rescaling", f64(layers.Rescaling, -0.5, offset=3.0), (3, 4, 2)),
]


@pytest.mark.parametrize("factory, shape", [case[1:] for case in GRADIENT_CASES],
                         ids=[case[0] for case in GRADIENT_CASES])
def test_float64_gradients(factory, shape):
    layer = factory()
    rng = np.random.default_rng(len(shape) * 31 + shape[0])
    layer.build((None,) + shape)
    layer.set_weights([rng.standard_normal(w.shape) for w in layer.get_weights()])
    batch = (2,) + shape
    x = smooth_conv_input(layer, batch, rng) if getattr(layer, "activation", None) == "relu" else rng.standard_normal(batch)
    errors = check_layer_gradients(layer, x)
    assert set(errors) == {"x", *layer.params}
    assert max(errors.values()) < 1e-6


@pytest.mark.parametrize("mode", ["horizontal", "vertical", "horizontal_and_vertical"])
def test_random_layers_gradients_follow_their_draw(mode):
    """The training-mode backward pass is the transpose of that forward pass's own transform."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((6, 5, 4, 2))
    for layer in (layers.RandomFlip(mode, seed=1, dtype="float64"), layers.RandomCrop(3, 2, seed=2, dtype="float64")):
        y = layer.forward(x, training=True)
        r = rng.standard_normal(y.shape)
        dx = layer.backward(r)
        # <dy, J x> == <J^T dy, x> for the linear map J drawn by this pass
        np.testing.assert_allclose(np.vdot(r, y), np.vdot(dx, x), rtol=1e-12)
        assert dx.shape == x.shape


# ----------------------------------------------------------------------------------------------
# loop references and golden vectors
# ----------------------------------------------------------------------------------------------
def _depthwise_loop(x, kernel, bias, strides, pads, dilation):
    """Per-pixel loops straight from the definition (x NHWC, kernel (KH, KW, C, M))."""
    (top, bottom), (left, right) = pads
    xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    KH, KW, C, M = kernel.shape
    OH = (xp.shape[1] - (KH - 1) * dilation[0] - 1) // strides[0] + 1
    OW = (xp.shape[2] - (KW - 1) * dilation[1] - 1) // strides[1] + 1
    y = np.zeros((x.shape[0], OH, OW, C * M))
    for n in range(x.shape[0]):
        for i in range(OH):
            for j in range(OW):
                for c in range(C):
                    for m in range(M):
                        total = bias[c * M + m]
                        for a in range(KH):
                            for b in range(KW):
                                total += (xp[n, i * strides[0] + a * dilation[0], j * strides[1] + b * dilation[1], c]
                                          * kernel[a, b, c, m])
                        y[n, i, j, c * M + m] = total
    return y


@pytest.mark.parametrize("kwargs", [dict(kernel_size=3), dict(kernel_size=(2, 3), strides=2, padding="same"),
                                    dict(kernel_size=2, dilation_rate=(2, 1), depth_multiplier=2, padding=(1, 0)),
                                    dict(kernel_size=3, strides=(1, 2), dilation_rate=2, padding="same")])
def test_depthwise_matches_a_loop_reference(kwargs):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 7, 8, 3))
    layer = layers.DepthwiseConv2D(**kwargs, bias_initializer="normal", dtype="float64")
    y = layer.forward(x)
    kernel, bias = layer.get_weights()
    np.testing.assert_allclose(y, _depthwise_loop(x, kernel, bias, layer.strides, layer._pads(x.shape[1:3]),
                                                  layer.dilation_rate), rtol=1e-12, atol=1e-12)


def test_separable_is_depthwise_then_pointwise():
    rng = np.random.default_rng(12)
    x = rng.standard_normal((2, 6, 6, 3))
    separable = layers.SeparableConv2D(5, 3, depth_multiplier=2, padding="same", activation="tanh",
                                       bias_initializer="normal", dtype="float64", seed=3).build(x.shape)
    depthwise_kernel, pointwise_kernel, bias = separable.get_weights()
    depthwise = layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", use_bias=False,
                                       dtype="float64").build(x.shape)
    depthwise.set_weights([depthwise_kernel])
    expected = np.tanh(np.einsum("nhwk,kf->nhwf", depthwise.forward(x), pointwise_kernel[0, 0]) + bias)
    # the two orders of summation differ by rounding only: 1e-12 relative, and absolute near zero
    np.testing.assert_allclose(separable.forward(x), expected, rtol=1e-12, atol=1e-12)


def test_upsampling_golden_vectors():
    """Hand-computed values: half-pixel bilinear (PyTorch align_corners=False, Keras 3) and nearest."""
    x = np.array([0.0, 1.0, 2.0, 3.0])[None, None, :, None]               # one row of 4 pixels
    bilinear = layers.UpSampling2D((1, 2), interpolation="bilinear", dtype="float64").forward(x)
    np.testing.assert_allclose(bilinear[0, 0, :, 0], [0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3])
    three = layers.UpSampling2D((1, 3), interpolation="bilinear", dtype="float64").forward(x[:, :, :2])
    np.testing.assert_allclose(three[0, 0, :, 0], [0, 0, 1 / 3, 2 / 3, 1, 1])
    nearest = layers.UpSampling2D(2, dtype="float64").forward(np.arange(4.0).reshape(1, 2, 2, 1))
    np.testing.assert_array_equal(nearest[0, :, :, 0], [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]])


def test_cropping_and_rescaling_values():
    x = np.arange(2 * 5 * 6 * 2, dtype="float32").reshape(2, 5, 6, 2)
    np.testing.assert_array_equal(layers.Cropping2D(((1, 2), (3, 0))).forward(x), x[:, 1:3, 3:, :])
    np.testing.assert_array_equal(layers.Cropping2D(1).forward(x), x[:, 1:4, 1:5, :])
    y = layers.Rescaling(1 / 127.5, offset=-1).forward(np.array([[0.0, 127.5, 255.0]], dtype="float32"))
    np.testing.assert_allclose(y, [[-1, 0, 1]], atol=1e-7)
    assert y.dtype == np.float32


# ----------------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("build, error", [
    (lambda: layers.DepthwiseConv2D(0), ValueError),
    (lambda: layers.DepthwiseConv2D(3, strides=(1, 0)), ValueError),
    (lambda: layers.DepthwiseConv2D(3, depth_multiplier=0), ValueError),
    (lambda: layers.DepthwiseConv2D(3, depth_multiplier=1.5), TypeError),
    (lambda: layers.DepthwiseConv2D(3, dilation_rate=-1), ValueError),
    (lambda: layers.DepthwiseConv2D(3, padding="full"), ValueError),
    (lambda: layers.DepthwiseConv2D(3, activation="swish"), ValueError),
    (lambda: layers.DepthwiseConv2D(3, depthwise_initializer="nope"), ValueError),
    (lambda: layers.SeparableConv2D(0, 3), ValueError),
    (lambda: layers.SeparableConv2D(True, 3), TypeError),
    (lambda: layers.SeparableConv2D(4, 3, pointwise_initializer="nope"), ValueError),
    (lambda: layers.UpSampling2D(0), ValueError),
    (lambda: layers.UpSampling2D(2, interpolation="bicubic"), ValueError),
    (lambda: layers.UpSampling2D(2, interpolation=None), TypeError),
    (lambda: layers.Cropping2D(-1), ValueError),
    (lambda: layers.Cropping2D((1, 2, 3)), ValueError),
    (lambda: layers.Cropping2D(((1, 2), "a")), TypeError),
    (lambda: layers.Rescaling("1/255"), TypeError),
    (lambda: layers.Rescaling(1.0, offset=float("nan")), ValueError),
    (lambda: layers.RandomFlip("diagonal"), ValueError),
    (lambda: layers.RandomCrop(0, 3), ValueError),
    (lambda: layers.RandomCrop(3, 2.5), TypeError),
    (lambda: layers.RandomErasing(1.5), ValueError),
    (lambda: layers.RandomErasing("half"), TypeError),
    (lambda: layers.RandomErasing(scale=(0.1,)), ValueError),
    (lambda: layers.RandomErasing(scale=0.3), TypeError),
    (lambda: layers.RandomErasing(fill_value="black"), TypeError),
    (lambda: layers.RandomErasing(value_range=(1, 0)), ValueError),
], ids=lambda _: "")
def test_bad_hyperparameters_raise_glassnets_error(build, error):
    """A wrong type (a float or bool for an int, a str for a number, None) is a TypeError, a wrong value a
    ValueError (issue 20)."""
    with pytest.raises(error, match="expects") as info:
        build()
    assert type(info.value) is error


@pytest.mark.parametrize("layer, shape", [
    (lambda: layers.DepthwiseConv2D(5), (4, 8, 2)),
    (lambda: layers.DepthwiseConv2D(3, dilation_rate=3), (6, 6, 1)),
    (lambda: layers.SeparableConv2D(2, 3), (2, 5, 1)),
    (lambda: layers.Cropping2D(((2, 2), (0, 0))), (4, 5, 1)),
    (lambda: layers.RandomCrop(6, 3), (5, 5, 1)),
    (lambda: layers.UpSampling2D(), (5, 5)),
])
def test_inputs_that_do_not_fit_raise_glassnets_error(layer, shape):
    with pytest.raises(ValueError, match="expects"):
        layer().build((None,) + shape)


def test_a_built_layer_refuses_another_channel_count():
    layer = layers.DepthwiseConv2D(3).build((None, 6, 6, 2))
    with pytest.raises(ValueError, match="channels"):
        layer.forward(np.zeros((1, 6, 6, 3), dtype="float32"))


# ----------------------------------------------------------------------------------------------
# Keras's parameter counts, summary shapes, configs and saving
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("layer, shape, params, output", [
    (lambda: layers.DepthwiseConv2D(3, depth_multiplier=2), (28, 28, 3), 3 * 3 * 3 * 2 + 6, (26, 26, 6)),
    (lambda: layers.DepthwiseConv2D(3, strides=2, padding="same", use_bias=False), (28, 28, 8), 72, (14, 14, 8)),
    (lambda: layers.DepthwiseConv2D(3, dilation_rate=2), (28, 28, 1), 10, (24, 24, 1)),
    (lambda: layers.SeparableConv2D(32, 3), (28, 28, 3), 27 + 3 * 32 + 32, (26, 26, 32)),
    (lambda: layers.SeparableConv2D(16, 5, depth_multiplier=2, padding="same", strides=2), (15, 15, 4),
     5 * 5 * 4 * 2 + 8 * 16 + 16, (8, 8, 16)),
    (lambda: layers.UpSampling2D((2, 3)), (7, 5, 4), 0, (14, 15, 4)),
    (lambda: layers.Cropping2D(((1, 2), (3, 4))), (28, 28, 1), 0, (25, 21, 1)),
    (lambda: layers.Rescaling(0.5), (28, 28, 1), 0, (28, 28, 1)),
    (lambda: layers.RandomFlip(), (28, 28, 1), 0, (28, 28, 1)),
    (lambda: layers.RandomCrop(24, 20), (28, 28, 3), 0, (24, 20, 3)),
])
def test_count_params_and_output_shape_as_keras(layer, shape, params, output):
    built = layer().build((None,) + shape)
    assert built.count_params() == params
    assert built.output_shape == (None,) + output


def _all_new_layers_model():
    return gn.Sequential([
        layers.Rescaling(2.0, offset=-1.0, input_shape=(12, 12, 2)),
        layers.RandomFlip("horizontal", seed=1),
        layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", activation="relu"),
        layers.SeparableConv2D(4, 3, strides=2, padding="same", activation="relu"),
        layers.UpSampling2D(2, interpolation="bilinear"),
        layers.Cropping2D(((1, 1), (2, 0))),
        layers.ZeroPadding2D(1),
        layers.RandomCrop(10, 10, seed=2),
        layers.UpSampling2D((1, 2)),
        layers.Flatten(),
        layers.Dense(3, activation="softmax"),
    ], seed=0)


def test_summary_lists_the_new_layers_with_keras_shapes():
    lines = []
    model = _all_new_layers_model()
    model.summary(print_fn=lines.append)
    rows = {type(layer).__name__: next(line for line in lines if line.startswith(layer.name + " "))
            for layer in model.layers}
    for name, shape, params in [("DepthwiseConv2D", "(None, 12, 12, 4)", 3 * 3 * 2 * 2 + 4),
                                ("SeparableConv2D", "(None, 6, 6, 4)", 3 * 3 * 4 + 4 * 4 + 4),
                                ("Cropping2D", "(None, 10, 10, 4)", 0), ("RandomCrop", "(None, 10, 10, 4)", 0),
                                ("Rescaling", "(None, 12, 12, 2)", 0), ("RandomFlip", "(None, 12, 12, 2)", 0)]:
        assert rows[name].split()[-5:] == shape.split() + [str(params)], rows[name]
    assert f"Total params: {model.count_params():,}" in lines


def test_save_and_load_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    model = _all_new_layers_model()
    for layer in model.layers:
        if layer.weights:
            layer.set_weights([rng.standard_normal(w.shape).astype("float32") for w in layer.get_weights()])
    x = rng.random((4, 12, 12, 2)).astype("float32")
    path = tmp_path / "new_layers.npz"
    model.save(path)
    loaded = gn.load_model(path)
    assert [type(a) for a in loaded.layers] == [type(b) for b in model.layers]
    assert [a.get_config() for a in loaded.layers] == [b.get_config() for b in model.layers]
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_training_a_model_of_new_layers_lowers_the_loss():
    rng = np.random.default_rng(4)
    x = rng.random((64, 12, 12, 2)).astype("float32")
    y = (x[:, :6].mean(axis=(1, 2, 3)) > x[:, 6:].mean(axis=(1, 2, 3))).astype(int)
    model = _all_new_layers_model()
    model.compile(optimizer=gn.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=16, epochs=6, verbose=0, seed=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


# ----------------------------------------------------------------------------------------------
# augmentation layers: active only in training, seeded by the layer's rng
# ----------------------------------------------------------------------------------------------
def test_random_layers_are_identity_or_central_at_inference():
    x = np.random.default_rng(6).standard_normal((5, 8, 8, 1)).astype("float32")
    assert layers.RandomFlip(seed=0).forward(x) is x
    np.testing.assert_array_equal(layers.RandomCrop(6, 4, seed=0).forward(x), x[:, 1:7, 2:6])
    # ZeroPadding2D(2) + RandomCrop: random shifts of up to 2 pixels in training, the identity at inference
    pad_crop = gn.Sequential([layers.ZeroPadding2D(2, input_shape=(8, 8, 1)), layers.RandomCrop(8, 8, seed=1)])
    np.testing.assert_array_equal(pad_crop.predict(x, verbose=0), x)


def test_random_flip_draws_each_image_and_axis_with_probability_one_half():
    x = np.arange(2 * 3, dtype="float64").reshape(1, 2, 3, 1).repeat(4000, axis=0)
    for mode, axes in [("horizontal", (2,)), ("vertical", (1,)), ("horizontal_and_vertical", (1, 2))]:
        y = layers.RandomFlip(mode, seed=7, dtype="float64").forward(x, training=True)
        seen = {axis: np.array([np.array_equal(image, np.flip(x[0], axis - 1)) for image in y]) for axis in axes}
        unchanged = np.array([np.array_equal(image, x[0]) for image in y])
        if len(axes) == 1:
            assert np.all(seen[axes[0]] ^ unchanged)
            assert 0.46 < seen[axes[0]].mean() < 0.54
        else:                   # independent coins: each of the 4 outcomes about a quarter of the time
            both = np.array([np.array_equal(image, x[0, ::-1, ::-1]) for image in y])
            for outcome in (unchanged, seen[1], seen[2], both):
                assert 0.21 < outcome.mean() < 0.29


def test_random_crop_covers_every_window_uniformly():
    H = W = 5
    x = np.arange(H * W, dtype="float64").reshape(1, H, W, 1).repeat(6000, axis=0)
    y = layers.RandomCrop(3, 4, seed=8, dtype="float64").forward(x, training=True)
    corners = y[:, 0, 0, 0].astype(int)                      # top-left pixel = top * W + left
    tops, lefts = corners // W, corners % W
    counts = np.bincount(tops * 2 + lefts, minlength=6)     # 3 tops x 2 lefts
    assert counts.min() > 0.8 * 1000 and counts.max() < 1.2 * 1000
    for k in range(len(x)):                                  # each output is one real window
        np.testing.assert_array_equal(y[k], x[k, tops[k]:tops[k] + 3, lefts[k]:lefts[k] + 4])


def test_random_layers_are_reproducible_from_their_seed():
    x = np.random.default_rng(9).standard_normal((16, 6, 6, 2)).astype("float32")
    for make in (lambda: layers.RandomFlip(seed=5), lambda: layers.RandomCrop(4, 4, seed=5)):
        first, second = make(), make()
        a = [first.forward(x, training=True) for _ in range(3)]
        b = [second.forward(x, training=True) for _ in range(3)]
        for u, v in zip(a, b):
            np.testing.assert_array_equal(u, v)
        assert not np.array_equal(a[0], a[1])                # fresh draws on every call


def test_fit_with_augmentation_layers_is_reproducible_with_fit_seed():
    rng = np.random.default_rng(10)
    x = rng.random((32, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 2, 32)

    def train():
        model = gn.Sequential([layers.RandomFlip(input_shape=(8, 8, 1)), layers.ZeroPadding2D(1),
                               layers.RandomCrop(8, 8), layers.Conv2D(2, 3, activation="relu"),
                               layers.Flatten(), layers.Dense(2, activation="softmax")], seed=1)
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        model.fit(x, y, batch_size=8, epochs=2, verbose=0, seed=3)
        return model.get_weights() if hasattr(model, "get_weights") else [w for l in model.layers for w in l.get_weights()]

    for u, v in zip(train(), train()):
        np.testing.assert_array_equal(u, v)


def test_a_model_of_the_new_layers_passes_the_model_gradient_check_and_explains():
    """Through Sequential.forward/backward (training mode, the random layers' draws replayed), and the
    explanations run on it."""
    from glassnet import explain
    from glassnet.testing import check_model_gradients
    from layer_cases import reseed
    model = gn.Sequential([
        layers.Rescaling(2.0, offset=-1.0, input_shape=(8, 8, 2), dtype="float64"),
        layers.RandomFlip(seed=1, dtype="float64"),
        layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", activation="tanh", dtype="float64"),
        layers.SeparableConv2D(3, 3, strides=2, padding="same", activation="sigmoid", dtype="float64"),
        layers.UpSampling2D(2, interpolation="bilinear", dtype="float64"),
        layers.ZeroPadding2D(1, dtype="float64"),
        layers.RandomCrop(7, 7, seed=2, dtype="float64"),
        layers.Cropping2D(((1, 0), (0, 1)), dtype="float64"),
        layers.Flatten(dtype="float64"),
        layers.Dense(3, activation="softmax", dtype="float64"),
    ], seed=0)
    x = np.random.default_rng(11).random((2, 8, 8, 2))

    def replay(m):
        for index, layer in enumerate(m.layers):
            reseed(index)(layer)
    errors = check_model_gradients(model, x, training=True, prepare=replay)
    assert max(errors.values()) < 1e-6 and len(errors) == 1 + 2 + 3 + 2
    assert explain.saliency(model, x).shape == (2, 8, 8)
    assert explain.grad_cam(model, x, layer=model.layers[2]).shape == (2, 8, 8)
