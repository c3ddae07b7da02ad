"""The Layer protocol, checked on one layer of every kind (layer_cases.CATALOG).

backward never mutates dy; float32 in -> float32 out everywhere; get_weights/set_weights in
Keras order; get_config -> deserialize gives an identical layer; output_shape agrees with the
actual output; count_params; build takes (H, W, C) and (None, H, W, C).
"""
import json

import numpy as np
import pytest

from glassnet import layers
from layer_cases import CATALOG, CATALOG_IDS, distinct

EXPECTED_WEIGHTS = {    # Keras's names and order
    "Conv2D": ["kernel", "bias"], "Dense": ["kernel", "bias"], "PReLU": ["alpha"],
    "BatchNormalization": ["gamma", "beta", "moving_mean", "moving_variance"],
    "DepthwiseConv2D": ["kernel", "bias"], "SeparableConv2D": ["depthwise_kernel", "pointwise_kernel", "bias"],
}


def _built(factory, shape, dtype="float32", seed=0):
    layer = factory(dtype)
    layer.build(shape)
    rng = np.random.default_rng(seed)
    # random weights (positive where BatchNormalization needs a variance) so that copies are informative
    layer.set_weights([rng.uniform(0.5, 1.5, w.shape) for w in layer.get_weights()])
    return layer


def _input(shape, batch=3, dtype="float32", seed=0):
    return distinct((batch,) + tuple(shape), np.random.default_rng(seed)).astype(dtype)


@pytest.mark.parametrize("training", [False, True], ids=["inference", "training"])
@pytest.mark.parametrize("case", CATALOG, ids=CATALOG_IDS)
def test_backward_never_mutates_dy(case, training):
    _, factory, shape = case
    layer = _built(factory, shape)
    y = layer.forward(_input(shape), training=training)
    dy = np.random.default_rng(1).standard_normal(y.shape).astype("float32")
    frozen = dy.copy()
    frozen.setflags(write=False)
    dx = layer.backward(frozen)
    np.testing.assert_array_equal(frozen, dy)
    assert dx.shape == (3,) + shape
    if not np.shares_memory(dx, frozen):        # pass-through layers may hand dy back as is
        assert dx.flags.writeable, "backward returned a read-only gradient"
    # a non-contiguous dy (a strided slice of a larger buffer) gives the same result from the same cache
    wide = np.zeros(y.shape[:-1] + (2 * y.shape[-1],), dtype="float32")
    wide[..., ::2] = dy
    np.testing.assert_allclose(layer.backward(wide[..., ::2]), dx, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(wide[..., ::2], dy)


@pytest.mark.parametrize("training", [False, True], ids=["inference", "training"])
@pytest.mark.parametrize("case", CATALOG, ids=CATALOG_IDS)
def test_float32_in_float32_out(case, training):
    _, factory, shape = case
    layer = _built(factory, shape)
    y = layer.forward(_input(shape), training=training)
    assert y.dtype == np.float32
    dx = layer.backward(np.ones(y.shape, dtype="float32"))
    assert dx.dtype == np.float32
    for key, value in list(layer.params.items()) + list(layer.non_trainable.items()) + list(layer.grads.items()):
        assert value.dtype == np.float32, key


@pytest.mark.parametrize("case", CATALOG, ids=CATALOG_IDS)
def test_float64_layers_stay_float64(case):
    _, factory, shape = case
    layer = _built(factory, shape, dtype="float64")
    y = layer.forward(_input(shape, dtype="float64"), training=True)
    assert y.dtype == np.float64 and layer.backward(np.ones_like(y)).dtype == np.float64
    assert all(w.dtype == np.float64 for w in layer.get_weights())


@pytest.mark.parametrize("case", CATALOG, ids=CATALOG_IDS)
def test_output_shape_agrees_with_forward(case):
    _, factory, shape = case
    for batch in (1, 4):
        layer = factory("float32")
        y = layer.forward(_input(shape, batch=batch))          # builds on first use
        assert layer.built and layer.input_shape == (None,) + shape
        assert y.shape == (batch,) + tuple(layer.output_shape[1:])
        assert tuple(layer.compute_output_shape(shape)) == y.shape[1:]


@pytest.mark.parametrize("case", CATALOG, ids=CATALOG_IDS)
def test_build_accepts_shape_with_or_without_batch(case):
    _, factory, shape = case
    plain, batched, listed = factory("float32"), factory("float32"), factory("float32")
    plain.build(shape)
    batched.build((None,) + shape)
    listed.build([None] + list(shape))
    assert plain.output_shape == batched.output_shape == listed.output_shape
    assert plain.input_shape == batched.input_shape == (None,) + shape
    assert [w.shape for w in plain.get_weights()] == [w.shape for w in batched.get_weights()]


@pytest.mark.parametrize("case", CATALOG, ids=CATALOG_IDS)
def test_get_config_round_trip_gives_an_identical_layer(case):
    _, factory, shape = case
    layer = _built(factory, shape, dtype="float64")
    config = layers.serialize(layer)
    config = json.loads(json.dumps(config))                    # what saving does: JSON, tuples become lists
    clone = layers.deserialize(config)
    assert type(clone) is type(layer)
    assert clone.get_config() == layer.get_config()
    clone.build(shape)
    clone.set_weights(layer.get_weights())
    x = _input(shape, dtype="float64")
    for training in (False, True):
        for item in (layer, clone):
            item.rng = np.random.default_rng(7)               # same Dropout mask
        np.testing.assert_array_equal(clone.forward(x, training=training), layer.forward(x, training=training))
    assert clone.count_params() == layer.count_params() and clone.output_shape == layer.output_shape


@pytest.mark.parametrize("case", CATALOG, ids=CATALOG_IDS)
def test_get_set_weights_round_trip_and_errors(case):
    _, factory, shape = case
    layer = _built(factory, shape, seed=1)
    weights = layer.get_weights()
    full = EXPECTED_WEIGHTS.get(type(layer).__name__, [])
    assert layer.weight_names == [name for name in full if name in layer.weight_names]
    assert set(full) - set(layer.weight_names) <= {"bias", "gamma", "beta"}     # use_bias/center/scale off
    for w in weights:
        w[...] = 123.0                                          # copies: the layer is not affected
    assert not any(np.any(w == 123.0) for w in layer.get_weights())
    new = [np.random.default_rng(2).uniform(0.5, 1.5, w.shape) for w in weights]
    layer.set_weights(new)
    for got, want in zip(layer.get_weights(), new):
        np.testing.assert_allclose(got, want, rtol=1e-6)
        assert got.dtype == np.float32
    before = layer.get_weights()
    with pytest.raises(ValueError, match=f"expects {len(new)} arrays"):
        layer.set_weights(new + [np.zeros(1)])
    if new:
        with pytest.raises(ValueError, match="of shape"):
            layer.set_weights(new[:-1] + [np.zeros(new[-1].shape + (2,))])
        with pytest.raises(ValueError, match="finite"):
            layer.set_weights([np.full(w.shape, np.nan) for w in new])
    with pytest.raises(TypeError, match="list of"):
        layer.set_weights(np.zeros(3))
    for got, want in zip(layer.get_weights(), before):         # failed calls change nothing
        np.testing.assert_array_equal(got, want)


def test_set_weights_on_an_unbuilt_layer_says_how_to_build_it():
    with pytest.raises(RuntimeError, match="input_shape"):
        layers.Dense(3).set_weights([np.zeros((2, 3)), np.zeros(3)])


@pytest.mark.parametrize("layer, shape, expected", [
    (lambda: layers.Conv2D(32, 3), (28, 28, 1), 3 * 3 * 1 * 32 + 32),
    (lambda: layers.Conv2D(64, 3), (26, 26, 32), 3 * 3 * 32 * 64 + 64),
    (lambda: layers.Conv2D(8, (2, 5), use_bias=False), (9, 9, 3), 2 * 5 * 3 * 8),
    (lambda: layers.Dense(128), (9216,), 9216 * 128 + 128),
    (lambda: layers.Dense(10, use_bias=False), (128,), 1280),
    (lambda: layers.BatchNormalization(), (5, 5, 7), 4 * 7),
    (lambda: layers.BatchNormalization(center=False, scale=False), (7,), 2 * 7),
    (lambda: layers.PReLU(), (4, 4, 3), 48),
    (lambda: layers.PReLU(shared_axes=[1, 2]), (4, 4, 3), 3),
    (lambda: layers.MaxPooling2D(), (4, 4, 3), 0),
    (lambda: layers.Flatten(), (4, 4, 3), 0),
    (lambda: layers.Dropout(0.5), (10,), 0),
], ids=["conv1", "conv2", "conv_rect_nobias", "dense", "dense_nobias", "bn", "bn_bare", "prelu", "prelu_shared",
        "pool", "flatten", "dropout"])
def test_count_params(layer, shape, expected):
    built = layer().build(shape)
    assert built.count_params() == expected == sum(w.size for w in built.get_weights())


def test_automatic_names_are_unique_and_keras_like():
    a, b = layers.Conv2D(2, 3), layers.Conv2D(2, 3)
    assert a.name != b.name and a.name.startswith("conv2d_") and b.name.startswith("conv2d_")
    assert layers.Dense(2, name="preds").name == "preds"


@pytest.mark.parametrize("case", CATALOG, ids=CATALOG_IDS)
def test_forward_on_a_new_batch_size_and_input_size(case):
    """A built layer takes any batch size; a new per-example shape either works (convolution and
    pooling on a larger image) or raises glassnet's ValueError saying what it expected."""
    _, factory, shape = case
    layer = _built(factory, shape)
    assert layer.forward(_input(shape, batch=1)).shape[0] == 1
    assert layer.forward(_input(shape, batch=5)).shape[0] == 5
    bigger = (shape[0] + 2,) + shape[1:] if len(shape) == 3 else (shape[0] + 3,)
    try:
        y = layer.forward(_input(bigger, batch=2))
    except ValueError as error:
        assert "expects" in str(error) and "got" in str(error)
        assert layer.weights or type(layer).__name__ == "Reshape"       # weights sized by the input
    else:
        assert y.shape[1:] == tuple(layer.compute_output_shape(bigger))
        assert layer.backward(np.ones_like(y)).shape == (2,) + bigger


@pytest.mark.parametrize("case", CATALOG, ids=CATALOG_IDS)
def test_non_contiguous_input_gives_the_same_result(case):
    """A strided view (e.g. every other example of a batch, or a transposed array) is read correctly."""
    _, factory, shape = case
    layer = _built(factory, shape, dtype="float64")
    x = _input(shape, batch=6, dtype="float64")
    strided = np.stack([x, x + 1], axis=-1)[..., 0][::2]           # neither C- nor F-contiguous
    assert not strided.flags.c_contiguous
    np.testing.assert_array_equal(layer.forward(strided), layer.forward(np.ascontiguousarray(x[::2])))


@pytest.mark.parametrize("case", CATALOG, ids=CATALOG_IDS)
def test_returned_arrays_are_not_overwritten_by_later_calls(case):
    """Outputs, dx and grads stay valid after more calls of this layer or of another layer of the same
    kind (no scratch buffer handed out twice), and forward/backward leave their inputs untouched."""
    _, factory, shape = case
    first, second = _built(factory, shape, seed=1), _built(factory, shape, seed=2)
    x1, x2 = _input(shape, seed=1), _input(shape, seed=2)
    x1_copy = x1.copy()
    y1 = first.forward(x1, training=True)
    y1_copy = y1.copy()
    dy = np.random.default_rng(3).standard_normal(y1.shape).astype("float32")
    dx1 = first.backward(dy)
    dx1_copy = dx1.copy()
    grads1 = {key: (value, value.copy()) for key, value in first.grads.items()}
    for layer in (second, first):                  # another layer of this kind, then this layer again
        y = layer.forward(x2, training=True)
        layer.backward(np.ones_like(y))
    np.testing.assert_array_equal(x1, x1_copy)
    np.testing.assert_array_equal(y1, y1_copy)
    np.testing.assert_array_equal(dx1, dx1_copy)
    for key, (value, saved) in grads1.items():
        np.testing.assert_array_equal(value, saved, err_msg=key)
