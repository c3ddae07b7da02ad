"""Property tests (issue 8, item 5, the layer part) with hypothesis.

Random valid Conv2D / pooling / Dense configurations and input shapes: forward and backward never
crash, give finite values and the shapes compute_output_shape promises (checked against an
independent formula). Random invalid hyperparameters and inputs: always glassnet's documented
ValueError/TypeError with "expects ...; got ...", never an error from NumPy or Python internals.
"""
import math
import traceback

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glassnet import layers

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ACTIVATIONS = st.sampled_from(["relu", "sigmoid", "tanh", "linear", "softmax", None])

sizes = st.integers(1, 5)
pairs = st.one_of(sizes, st.tuples(sizes, sizes))
stride_values = st.one_of(st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3)))
paddings = st.one_of(st.sampled_from(["valid", "same", "VALID", "Same"]), st.integers(0, 2),
                     st.tuples(st.integers(0, 2), st.integers(0, 2)),
                     st.tuples(st.tuples(st.integers(0, 2), st.integers(0, 2)),
                               st.tuples(st.integers(0, 2), st.integers(0, 2))))
images = st.tuples(st.integers(1, 3), st.integers(1, 10), st.integers(1, 10), st.integers(1, 3))


def _pair(value):
    return (value, value) if isinstance(value, int) else tuple(value)


def _expected_hw(hw, kernel, strides, padding):
    """Independent output-size arithmetic (Keras/TensorFlow for "same"); None when the window does not fit."""
    out = []
    for axis, (size, k, s) in enumerate(zip(hw, kernel, strides)):
        if isinstance(padding, str) and padding.lower() == "same":
            out.append(math.ceil(size / s))
            continue
        if isinstance(padding, str):
            before = after = 0
        elif isinstance(padding, int):
            before = after = padding
        elif isinstance(padding[0], int):
            before = after = padding[axis]
        else:
            before, after = padding[axis]
        if size + before + after < k:
            return None
        out.append((size + before + after - k) // s + 1)
    return tuple(out)


def _assert_glassnet_error(info, name):
    text = str(info.value)
    assert "expects" in text and "; got " in text, text
    assert name in text or "Sequential" in text, text
    assert "/glassnet/" in str(info.traceback[-1].path), info.traceback[-1].path


def _forward_backward(layer, shape, rng, training=False):
    x = rng.standard_normal(shape).astype("float32")
    y = layer.forward(x, training=training)
    assert y.dtype == np.float32 and np.isfinite(y).all()
    dy = rng.standard_normal(y.shape).astype("float32")
    dy.setflags(write=False)
    dx = layer.backward(dy)
    assert dx.shape == x.shape and dx.dtype == np.float32 and np.isfinite(dx).all()
    for key, value in layer.params.items():
        assert layer.grads[key].shape == value.shape and np.isfinite(layer.grads[key]).all()
    return y


@FUZZ
@given(shape=images, filters=st.integers(1, 4), kernel=pairs, strides=stride_values, padding=paddings,
       activation=ACTIVATIONS, use_bias=st.booleans(), seed=st.integers(0, 2**16))
def test_conv2d_valid_configs_never_crash(shape, filters, kernel, strides, padding, activation, use_bias, seed):
    layer = layers.Conv2D(filters, kernel, strides=strides, padding=padding, activation=activation,
                          use_bias=use_bias)
    expected = _expected_hw(shape[1:3], _pair(kernel), _pair(strides), padding)
    if expected is None:
        with pytest.raises(ValueError) as info:
            layer.build(shape)
        _assert_glassnet_error(info, "Conv2D")
        return
    layer.build((None,) + shape[1:])
    assert layer.compute_output_shape(shape[1:]) == expected + (filters,)
    y = _forward_backward(layer, shape, np.random.default_rng(seed))
    assert y.shape == (shape[0],) + expected + (filters,) == (shape[0],) + layer.output_shape[1:]


@FUZZ
@given(shape=images, kind=st.sampled_from([layers.MaxPooling2D, layers.AveragePooling2D]), pool=pairs,
       strides=st.one_of(st.none(), stride_values), padding=st.sampled_from(["valid", "same"]),
       seed=st.integers(0, 2**16))
def test_pooling_valid_configs_never_crash(shape, kind, pool, strides, padding, seed):
    layer = kind(pool, strides, padding=padding)
    expected = _expected_hw(shape[1:3], _pair(pool), _pair(strides if strides is not None else pool), padding)
    if expected is None:
        with pytest.raises(ValueError) as info:
            layer.build(shape)
        _assert_glassnet_error(info, kind.__name__)
        return
    assert layer.compute_output_shape(shape[1:]) == expected + (shape[3],)
    y = _forward_backward(layer, shape, np.random.default_rng(seed))
    assert y.shape == (shape[0],) + expected + (shape[3],) == (shape[0],) + layer.output_shape[1:]


@FUZZ
@given(batch=st.integers(1, 4), features=st.integers(1, 12), units=st.integers(1, 6), activation=ACTIVATIONS,
       use_bias=st.booleans(), rate=st.floats(0, 0.95), seed=st.integers(0, 2**16))
def test_dense_dropout_bn_stack_never_crashes(batch, features, units, activation, use_bias, rate, seed):
    rng = np.random.default_rng(seed)
    for layer, shape, out in [
        (layers.Dense(units, activation=activation, use_bias=use_bias), (batch, features), (batch, units)),
        (layers.Dropout(rate, seed=seed), (batch, features), (batch, features)),
        (layers.BatchNormalization(), (batch, features), (batch, features)),
    ]:
        for training in (False, True):
            y = _forward_backward(layer, shape, rng, training=training)
            assert y.shape == out == (batch,) + layer.output_shape[1:]


# ----------------------------------------------------------------------------------------------
# invalid hyperparameters
# ----------------------------------------------------------------------------------------------
# Each case carries the error it must raise: TypeError for a wrong type (a float, a string or a bool
# where an int is expected), ValueError for a value of the right type out of its range (issue 20).
non_positive = st.integers(-5, 0)
not_an_int = st.one_of(st.floats(allow_nan=True), st.text(max_size=3), st.none(), st.booleans())
bad_pair_values = st.one_of(non_positive, st.lists(st.integers(1, 3), min_size=3, max_size=4),
                            st.tuples(st.integers(1, 3), non_positive), st.tuples(non_positive, st.integers(1, 3)))
bad_pair_types = st.one_of(not_an_int, st.tuples(st.integers(1, 3), st.floats()))
bad_padding_values = st.one_of(st.text(max_size=6).filter(lambda s: s.lower() not in ("valid", "same")),
                               st.integers(-5, -1), st.tuples(st.integers(-3, 3), st.integers(-3, -1)),
                               st.tuples(st.tuples(st.integers(0, 2)), st.tuples(st.integers(0, 2), st.integers(0, 2))))
bad_padding_types = st.one_of(st.floats(), st.none(), st.booleans(), st.tuples(st.floats(), st.integers(0, 2)))
bad_activation_values = st.text(max_size=8).filter(
    lambda s: s.lower() not in ("relu", "sigmoid", "tanh", "linear", "softmax"))
bad_activation_types = st.one_of(st.integers(), st.floats())
bad_rate_values = st.one_of(st.floats(1.0, 1e6), st.floats(-1e6, -1e-9), st.just(float("nan")))
bad_rate_types = st.one_of(st.text(max_size=3), st.none(), st.booleans())


def cases(name, construct, wrong_values, wrong_types=st.nothing()):
    """(layer name, a call constructing the layer from a drawn argument, the error it must raise)."""
    return st.one_of(st.builds(lambda v: (name, lambda: construct(v), ValueError), wrong_values),
                     st.builds(lambda v: (name, lambda: construct(v), TypeError), wrong_types))


BAD_CONSTRUCTIONS = st.one_of(
    cases("Conv2D", lambda v: layers.Conv2D(v, 3), non_positive,
          st.one_of(not_an_int, st.lists(st.integers(1, 3), min_size=1, max_size=3))),
    cases("Conv2D", lambda v: layers.Conv2D(2, v), bad_pair_values, bad_pair_types),
    cases("Conv2D", lambda v: layers.Conv2D(2, 3, strides=v), bad_pair_values, bad_pair_types),
    cases("Conv2D", lambda v: layers.Conv2D(2, 3, padding=v), bad_padding_values, bad_padding_types),
    cases("Conv2D", lambda v: layers.Conv2D(2, 3, activation=v), bad_activation_values, bad_activation_types),
    cases("Dense", lambda v: layers.Dense(v), non_positive, not_an_int),
    cases("Dense", lambda v: layers.Dense(3, activation=v), bad_activation_values, bad_activation_types),
    cases("MaxPooling2D", lambda v: layers.MaxPooling2D(v), bad_pair_values, bad_pair_types),
    cases("AveragePooling2D", lambda v: layers.AveragePooling2D(2, v), bad_pair_values,
          bad_pair_types.filter(lambda v: v is not None)),        # strides=None means pool_size
    cases("MaxPooling2D", lambda v: layers.MaxPooling2D(2, padding=v), bad_padding_values.filter(
        lambda v: isinstance(v, str)), st.one_of(bad_padding_types, st.integers(0, 3))),   # no explicit amounts
    cases("Dropout", lambda v: layers.Dropout(v), bad_rate_values, bad_rate_types),
    cases("Activation", lambda v: layers.Activation(v), bad_activation_values, bad_activation_types),
    cases("LeakyReLU", lambda v: layers.LeakyReLU(v), bad_rate_values, bad_rate_types),
    cases("BatchNormalization", lambda v: layers.BatchNormalization(momentum=v), bad_rate_values, bad_rate_types),
    cases("Dense", lambda v: layers.Dense(3, dtype=v),
          st.sampled_from(["int32", "float16", "uint8", "complex64", "bogus", "bool"])),
)


@FUZZ
@given(case=BAD_CONSTRUCTIONS)
def test_invalid_hyperparameters_always_raise_the_documented_error(case):
    name, construct, error = case
    with pytest.raises((TypeError, ValueError)) as info:
        construct()
    assert type(info.value) is error, (error, info.value)
    _assert_glassnet_error(info, name)


# ----------------------------------------------------------------------------------------------
# inputs of random rank and size fed to built layers
# ----------------------------------------------------------------------------------------------
BUILT = {
    "conv": lambda: layers.Conv2D(2, 3, input_shape=(6, 6, 2)).build((None, 6, 6, 2)),
    "conv_same": lambda: layers.Conv2D(2, 3, strides=2, padding="same").build((None, 6, 6, 2)),
    "maxpool": lambda: layers.MaxPooling2D(2).build((None, 6, 6, 2)),
    "avgpool_same": lambda: layers.AveragePooling2D(3, 2, padding="same").build((None, 6, 6, 2)),
    "gap": lambda: layers.GlobalAveragePooling2D().build((None, 6, 6, 2)),
    "dense": lambda: layers.Dense(3).build((None, 2,)),
    "bn": lambda: layers.BatchNormalization().build((None, 6, 6, 2)),
    "prelu": lambda: layers.PReLU(shared_axes=[1, 2]).build((None, 6, 6, 2)),
    "flatten": lambda: layers.Flatten().build((None, 6, 6, 2)),
    "softmax": lambda: layers.Softmax().build((None, 2,)),
}


@FUZZ
@given(key=st.sampled_from(sorted(BUILT)), shape=st.lists(st.integers(1, 7), min_size=1, max_size=5),
       seed=st.integers(0, 2**16))
def test_built_layers_take_any_input_or_say_why_not(key, shape, seed):
    layer = BUILT[key]()
    x = np.random.default_rng(seed).standard_normal(shape).astype("float32")
    try:
        y = layer.forward(x)
    except ValueError as error:
        assert "expects" in str(error) and "; got " in str(error), error
        assert "/glassnet/" in traceback.extract_tb(error.__traceback__)[-1].filename
        return
    assert y.shape[0] == x.shape[0] and np.isfinite(y).all()
    assert layer.backward(np.ones_like(y)).shape == x.shape
