"""glassnet.activations: values, stability at +-1000, gradients, ReLU backward rules, dtypes, names."""
import numpy as np
import pytest

from glassnet import activations as A
from glassnet.testing import numerical_gradient, relative_error

NAMES = ["relu", "sigmoid", "tanh", "linear", "softmax"]


def _reference(name, x):
    if name == "relu":
        return np.where(x > 0, x, 0.0)
    if name == "sigmoid":
        return 1 / (1 + np.exp(-x))
    if name == "tanh":
        return (np.exp(x) - np.exp(-x)) / (np.exp(x) + np.exp(-x))
    if name == "softmax":
        return np.exp(x) / np.exp(x).sum(axis=-1, keepdims=True)
    return x


@pytest.mark.parametrize("name", NAMES)
def test_forward_matches_textbook_formulas_in_the_safe_range(name):
    x = np.random.default_rng(0).uniform(-5, 5, (4, 7))
    np.testing.assert_allclose(A.forward(name, x), _reference(name, x), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("name", NAMES)
def test_backward_matches_central_differences(name):
    rng = np.random.default_rng(1)
    x = rng.uniform(-4, 4, (3, 6))
    x[np.abs(x) < 1e-3] = 0.5                        # away from relu's kink
    r = rng.standard_normal(x.shape)
    y = A.forward(name, x)
    dy = r.copy()
    dy.setflags(write=False)
    dx = A.backward(name, dy, x, y)
    numeric = numerical_gradient(lambda: float(np.sum(A.forward(name, x) * r)), x)
    assert relative_error(dx, numeric) < 1e-8
    np.testing.assert_array_equal(dy, r)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sigmoid_and_softmax_are_finite_and_right_at_plus_minus_1000(dtype):
    x = np.array([[-1000.0, -1.0, 0.0, 1.0, 1000.0]], dtype=dtype)
    with np.errstate(over="raise", under="ignore", invalid="raise", divide="raise"):
        s = A.sigmoid(x)
        p = A.softmax(x)
        logp = A.log_softmax(x)
        t = A.forward("tanh", x)
    for value in (s, p, logp, t):
        assert value.dtype == dtype and np.isfinite(value).all()
    np.testing.assert_allclose(s, [[0.0, 1 / (1 + np.e), 0.5, 1 / (1 + np.exp(-1)), 1.0]], atol=1e-7)
    np.testing.assert_allclose(p, [[0, 0, 0, 0, 1]], atol=1e-7)
    np.testing.assert_allclose(logp[0, [0, 4]], [-2000.0, 0.0], rtol=1e-6)
    np.testing.assert_allclose(A.softmax(np.array([[-1000.0, -1000.0], [1000.0, 1000.0]], dtype=dtype)), 0.5)
    np.testing.assert_allclose(t[0, [0, 4]], [-1, 1])


def test_sigmoid_is_symmetric_and_monotone_in_the_tails():
    x = np.linspace(-800, 800, 4001)
    s = A.sigmoid(x)
    np.testing.assert_allclose(s + A.sigmoid(-x), 1.0, rtol=0, atol=1e-15)
    assert np.all(np.diff(s) >= 0)
    np.testing.assert_allclose(A.sigmoid(np.array([-30.0])), np.exp(-30) / (1 + np.exp(-30)), rtol=1e-14)


def test_softmax_gradient_at_saturation_is_finite():
    x = np.array([[1000.0, 0.0, -1000.0]])
    y = A.softmax(x)
    dx = A.softmax_backward(np.array([[1.0, 2.0, 3.0]]), y)
    assert np.isfinite(dx).all()
    np.testing.assert_allclose(dx.sum(), 0.0, atol=1e-12)     # softmax outputs sum to 1 for every input


@pytest.mark.parametrize("name", NAMES)
def test_float32_stays_float32(name):
    x = np.random.default_rng(2).standard_normal((3, 4)).astype("float32")
    y = A.forward(name, x)
    assert y.dtype == np.float32
    assert A.backward(name, np.ones_like(y), x, y).dtype == np.float32


def test_relu_backward_rules():
    """vanilla: g [x > 0]; guided: g [x > 0][g > 0]; rectified (deconvnet): max(g, 0)."""
    x = np.array([-2.0, -1.0, 1.0, 2.0])
    g = np.array([1.0, -1.0, -3.0, 4.0])
    np.testing.assert_array_equal(A.relu_gate(g, x, "vanilla"), [0, 0, -3, 4])
    np.testing.assert_array_equal(A.relu_gate(g, x, "guided"), [0, 0, 0, 4])
    np.testing.assert_array_equal(A.relu_gate(g, x, "rectified"), [1, 0, 0, 4])
    np.testing.assert_array_equal(A.relu_gate(g, x, "vanilla", negative_slope=0.5), [0.5, -0.5, -3, 4])
    assert A.relu_gate(g.astype("float32"), x.astype("float32"), "guided").dtype == np.float32


def test_check_name():
    assert A.check_name(None, "X") == "linear"
    assert A.check_name("Softmax", "X") == "softmax"
    for bad in ("gelu", ""):
        with pytest.raises(ValueError, match=r"X expects activation one of .*; got .*separate layer"):
            A.check_name(bad, "X")
    for bad in (3, np.tanh):                  # not a name at all: a TypeError (issue 20)
        with pytest.raises(TypeError, match=r"X expects activation as a name, one of .*; got .*separate layer"):
            A.check_name(bad, "X")
