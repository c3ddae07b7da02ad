"""glassnet.initializers: Keras's formulas (fans, variances, truncation), reproducibility, configs."""
import numpy as np
import pytest

from glassnet import initializers, layers

TRUNC_STD = 0.87962566103423978           # standard deviation of a unit normal truncated at +-2
CONV = (3, 3, 16, 32)                     # fan_in = 144, fan_out = 288
DENSE = (400, 250)                        # fan_in = 400, fan_out = 250


@pytest.mark.parametrize("shape, fans", [(CONV, (144, 288)), (DENSE, (400, 250)), ((7,), (7, 7)), ((), (1, 1)),
                                         ((5, 2, 3, 4, 6), (5 * 2 * 3 * 4, 5 * 2 * 3 * 6))])
def test_fans_follow_keras(shape, fans):
    assert initializers.compute_fans(shape) == fans


# name, expected variance as a function of (fan_in, fan_out), distribution, bound in standard deviations
VARIANCE_CASES = [
    ("glorot_uniform", lambda i, o: 2 / (i + o), "uniform"),
    ("glorot_normal", lambda i, o: 2 / (i + o), "truncated"),
    ("he_normal", lambda i, o: 2 / i, "truncated"),
    ("he_uniform", lambda i, o: 2 / i, "uniform"),
    ("lecun_normal", lambda i, o: 1 / i, "truncated"),
    ("lecun_uniform", lambda i, o: 1 / i, "uniform"),
]


@pytest.mark.parametrize("shape", [CONV, DENSE], ids=["conv", "dense"])
@pytest.mark.parametrize("name, variance, kind", VARIANCE_CASES, ids=[c[0] for c in VARIANCE_CASES])
def test_variance_and_bounds(name, variance, kind, shape):
    values = initializers.get(name)(shape, "float64", np.random.default_rng(0))
    assert values.shape == shape and values.dtype == np.float64
    fan_in, fan_out = initializers.compute_fans(shape)
    target = variance(fan_in, fan_out)
    assert abs(values.var() / target - 1) < 0.03             # 73,728+ draws: sampling error < 1%
    assert abs(values.mean()) < 4 * np.sqrt(target / values.size)
    if kind == "uniform":
        limit = np.sqrt(3 * target)                          # e.g. Glorot: sqrt(6 / (fan_in + fan_out))
        assert np.abs(values).max() <= limit
        assert np.abs(values).max() > 0.99 * limit
    else:
        std = np.sqrt(target) / TRUNC_STD                    # the normal's std before truncation
        assert np.abs(values).max() <= 2 * std               # nothing beyond two standard deviations
        assert np.abs(values).max() > 1.95 * std
        assert 0.95 < np.mean(np.abs(values) > std) / 0.28477 < 1.05   # P(|z| > 1 given |z| <= 2)


@pytest.mark.parametrize("name", ["glorot_uniform", "he_normal", "normal", "uniform", "glorot_normal"])
def test_reproducible_by_rng_and_dtype(name):
    init = initializers.get(name)
    a = init((4, 5), "float32", np.random.default_rng(42))
    b = init((4, 5), "float32", np.random.default_rng(42))
    c = init((4, 5), "float32", np.random.default_rng(43))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.dtype == np.float32


def test_keras_random_defaults_and_constants():
    rng = np.random.default_rng(0)
    normal = initializers.get("normal")((200, 200), "float64", rng)
    assert abs(normal.std() - 0.05) < 0.002 and abs(normal.mean()) < 0.001
    uniform = initializers.get("uniform")((200, 200), "float64", rng)
    assert -0.05 <= uniform.min() and uniform.max() <= 0.05 and abs(uniform.std() - 0.1 / np.sqrt(12)) < 0.001
    np.testing.assert_array_equal(initializers.get("zeros")((2, 3)), 0)
    np.testing.assert_array_equal(initializers.get("ones")((2, 3)), 1)
    np.testing.assert_array_equal(initializers.Constant(0.5)((2,), "float32"), [0.5, 0.5])


@pytest.mark.parametrize("name", ["glorot_uniform", "he_normal", "normal", "uniform", "zeros", "constant"])
def test_config_round_trip(name):
    init = initializers.get(name)
    clone = initializers.get(initializers.serialize(init))
    assert initializers.serialize(clone) == initializers.serialize(init)
    np.testing.assert_array_equal(clone((3, 4), "float64", np.random.default_rng(1)),
                                  init((3, 4), "float64", np.random.default_rng(1)))
    assert initializers.get(init) is init


def test_layers_use_keras_defaults_and_are_reproducible_by_seed():
    conv = layers.Conv2D(8, 3, seed=7).build((None, 10, 10, 4))
    kernel, bias = conv.get_weights()
    limit = np.sqrt(6 / (9 * 4 + 9 * 8))                     # glorot_uniform on fan_in 36, fan_out 72
    assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.9 * limit
    np.testing.assert_array_equal(bias, 0)
    again = layers.Conv2D(8, 3, seed=7).build((None, 10, 10, 4))
    np.testing.assert_array_equal(again.get_weights()[0], kernel)
    he = layers.Dense(50, kernel_initializer="he_normal", seed=1).build((None, 300,))
    assert abs(he.get_weights()[0].var() * 300 / 2 - 1) < 0.05


def test_case_insensitive_names_and_errors():
    assert isinstance(initializers.get("He_Normal"), initializers.VarianceScaling)
    with pytest.raises(ValueError, match=r"initializers.get expects one of .*; got 'xavier'"):
        initializers.get("xavier")
    with pytest.raises(ValueError, match="scale > 0"):
        initializers.VarianceScaling(-1.0)
    with pytest.raises(ValueError, match="distribution"):
        initializers.VarianceScaling(1.0, distribution="gaussian")
