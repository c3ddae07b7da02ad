"""Merge layers (Add, Subtract, Multiply, Average, Maximum, Concatenate): float64 finite differences,
hand-computed values, the PyTorch oracle, and clear errors for mismatched shapes."""
import numpy as np
import pytest

from glassnet import layers
from glassnet.testing import numerical_gradient, relative_error

torch = pytest.importorskip("torch", reason="PyTorch is the dev-only oracle (pip install glassnet[dev])")

CASES = {
    "add": (layers.Add, 3, lambda ts: ts[0] + ts[1] + ts[2]),
    "subtract": (layers.Subtract, 2, lambda ts: ts[0] - ts[1]),
    "multiply": (layers.Multiply, 3, lambda ts: ts[0] * ts[1] * ts[2]),
    "average": (layers.Average, 3, lambda ts: (ts[0] + ts[1] + ts[2]) / 3),
    "maximum": (layers.Maximum, 3, lambda ts: torch.maximum(torch.maximum(ts[0], ts[1]), ts[2])),
    "concatenate": (lambda **kw: layers.Concatenate(**kw), 3, lambda ts: torch.cat(ts, dim=-1)),
}


def inputs(count, name, seed=0):
    rng = np.random.default_rng(seed)
    widths = [2, 3, 1] if name == "concatenate" else [4] * 3
    return [rng.standard_normal((2, 3, 3, widths[i])) for i in range(count)]


@pytest.mark.parametrize("name", sorted(CASES))
def test_merge_gradients_match_finite_differences(name):
    make, count, _ = CASES[name]
    layer = make(dtype="float64")
    xs = inputs(count, name)
    y, cache = layer.apply(xs)
    r = np.random.default_rng(1).standard_normal(y.shape)
    dy = r.copy()
    dy.setflags(write=False)
    dxs, grads = layer.vjp(cache, dy)
    assert grads == {} and len(dxs) == count and np.array_equal(dy, r)
    for i, x in enumerate(xs):
        numeric = numerical_gradient(lambda: float(np.sum(layer.apply(xs)[0] * r)), x)
        assert relative_error(dxs[i], numeric) < 1e-8, (name, i)


@pytest.mark.parametrize("name", sorted(CASES))
def test_merge_layers_agree_with_pytorch(name):
    make, count, reference = CASES[name]
    layer = make(dtype="float64")
    xs = inputs(count, name, seed=2)
    tensors = [torch.tensor(x, requires_grad=True) for x in xs]
    expected = reference(tensors)
    r = np.random.default_rng(3).standard_normal(expected.shape)
    expected.backward(torch.tensor(r))
    y, cache = layer.apply(xs)
    np.testing.assert_allclose(y, expected.detach().numpy(), rtol=1e-12, atol=1e-12)
    for dx, t in zip(layer.vjp(cache, r)[0], tensors):
        np.testing.assert_allclose(dx, t.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_values_by_hand_and_ties_go_to_the_first_input():
    a, b = np.array([[1.0, 5.0, 2.0]]), np.array([[3.0, 5.0, -1.0]])
    assert np.array_equal(layers.Subtract()([a, b]), [[-2.0, 0.0, 3.0]])
    assert np.array_equal(layers.Average()([a, b]), [[2.0, 5.0, 0.5]])
    maximum = layers.Maximum()
    y, cache = maximum.apply([a, b])
    assert np.array_equal(y, [[3.0, 5.0, 2.0]])
    da, db = maximum.vjp(cache, np.ones((1, 3)))[0]
    assert np.array_equal(da, [[0, 1, 1]]) and np.array_equal(db, [[1, 0, 0]])
    assert layers.Concatenate(axis=1)([a, b]).shape == (1, 6)


def test_mismatched_shapes_and_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match=r"one per-example shape.*\(None, 4\).*\(None, 5\)"):
        layers.Add().build([(None, 4), (None, 5)])
    with pytest.raises(ValueError, match="exactly 2 inputs"):
        layers.Subtract().build([(None, 4)] * 3)
    with pytest.raises(ValueError, match="at least 2 inputs"):
        layers.Multiply().build([(None, 4)])
    with pytest.raises(ValueError, match="agree except on axis -1"):
        layers.Concatenate().build([(None, 3, 3, 2), (None, 4, 3, 2)])
    with pytest.raises(ValueError, match="axis"):
        layers.Concatenate(axis=0)
    with pytest.raises(TypeError, match="list of float NumPy arrays"):
        layers.Add()(np.ones((2, 3)))
    assert layers.Concatenate(axis=2, name="c").get_config()["axis"] == 2
    assert layers.deserialize(layers.serialize(layers.Maximum(name="m"))).name == "m"
