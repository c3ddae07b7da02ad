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
non_positive = st.integers(-5, 0)
not_an_int = st.one_of(st.floats(allow_nan=True), st.text(max_size=3), st.none(), st.booleans(),
                       st.lists(st.integers(1, 3), min_size=3, max_size=4))
bad_pairs = st.one_of(non_positive, not_an_int, st.tuples(st.integers(1, 3), non_positive),
                      st.tuples(non_positive, st.integers(1, 3)))
bad_paddings = st.one_of(st.text(max_size=6).filter(lambda s: s.lower() not in ("valid", "same")),
                         st.integers(-5, -1), st.floats(), st.none(),
                         st.tuples(st.integers(-3, 3), st.integers(-3, -1)),
                         st.tuples(st.tuples(st.integers(0, 2)), st.tuples(st.integers(0, 2), st.integers(0, 2))))
bad_activations = st.one_of(st.text(max_size=8).filter(
    lambda s: s.lower() not in ("relu", "sigmoid", "tanh", "linear", "softmax")), st.integers(), st.floats())
bad_rates = st.one_of(st.floats(1.0, 1e6), st.floats(-1e6, -1e-9), st.just(float("nan")), st.text(max_size=3),
                      st.none())

BAD_CONSTRUCTIONS = st.one_of(
    st.builds(lambda v: ("Conv2D", lambda: layers.Conv2D(v, 3)), st.one_of(non_positive, not_an_int)),
    st.builds(lambda v: ("Conv2D", lambda: layers.Conv2D(2, v)), bad_pairs),
    st.builds(lambda v: ("Conv2D", lambda: layers.Conv2D(2, 3, strides=v)), bad_pairs),
    st.builds(lambda v: ("Conv2D", lambda: layers.Conv2D(2, 3, padding=v)), bad_paddings),
    st.builds(lambda v: ("Conv2D", lambda: layers.Conv2D(2, 3, activation=v)), bad_activations),
    st.builds(lambda v: ("Dense", lambda: layers.Dense(v)), st.one_of(non_positive, not_an_int)),
    st.builds(lambda v: ("Dense", lambda: layers.Dense(3, activation=v)), bad_activations),
    st.builds(lambda v: ("MaxPooling2D", lambda: layers.MaxPooling2D(v)), bad_pairs),
    st.builds(lambda v: ("AveragePooling2D", lambda: layers.AveragePooling2D(2, v)),
              bad_pairs.filter(lambda v: v is not None)),          # strides=None means pool_size
    st.builds(lambda v: ("MaxPooling2D", lambda: layers.MaxPooling2D(2, padding=v)), bad_paddings),
    st.builds(lambda v: ("Dropout", lambda: layers.Dropout(v)), bad_rates),
    st.builds(lambda v: ("Activation", lambda: layers.Activation(v)), bad_activations),
    st.builds(lambda v: ("LeakyReLU", lambda: layers.LeakyReLU(v)), bad_rates),
    st.builds(lambda v: ("BatchNormalization", lambda: layers.BatchNormalization(momentum=v)), bad_rates),
    st.builds(lambda v: ("Dense", lambda: layers.Dense(3, dtype=v)),
              st.sampled_from(["int32", "float16", "uint8", "complex64", "bogus", "bool"])),
)


@FUZZ
@given(case=BAD_CONSTRUCTIONS)
def test_invalid_hyperparameters_always_raise_the_documented_error(case):
    name, construct = case
    with pytest.raises(ValueError) as info:
        construct()
    assert type(info.value) is ValueError
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
