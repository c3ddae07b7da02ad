"""Label smoothing of the cross-entropies: the naive formula on smoothed targets, float64 finite
differences on both gradient paths, Keras 3 (categorical, binary) and PyTorch (class indices) as oracles,
the config round trip and the argument checks."""
import json

import numpy as np
import pytest

from glassnet import losses
from tests import keras_oracle
from tests.test_losses import CE_NAMES, make_case, numeric_grad, probabilities


def smoothed_targets(name, y, classes, s):
    """The targets each loss should see, written from Keras's definition."""
    if name == "sparse_categorical_crossentropy":
        y = np.eye(classes)[y]
    k = 2 if name == "binary_crossentropy" else classes
    return y * (1 - s) + s / k


def naive_value(name, soft, p):
    if name == "binary_crossentropy":
        return float(np.mean(-(soft * np.log(p) + (1 - soft) * np.log(1 - p))))
    return float(np.mean(-(soft * np.log(p)).sum(-1)))


@pytest.mark.parametrize("name", CE_NAMES)
@pytest.mark.parametrize("s", [0.0, 0.1, 0.35])
def test_value_is_the_cross_entropy_against_smoothed_targets(name, s):
    rng = np.random.default_rng(3)
    y, logits = make_case(name, rng)
    loss = type(losses.get(name))(label_smoothing=s)
    soft = smoothed_targets(name, y, logits.shape[-1], s)
    expected = naive_value(name, soft, probabilities(name, logits))
    np.testing.assert_allclose(loss(y, probabilities(name, logits)), expected, rtol=1e-10)
    np.testing.assert_allclose(loss.value_and_grad_logits(y, logits)[0], expected, rtol=1e-10)
    plain = naive_value(name, smoothed_targets(name, y, logits.shape[-1], 0.0), probabilities(name, logits))
    assert s == 0 or abs(expected - plain) > 1e-3          # the smoothing changed the value


@pytest.mark.parametrize("name", CE_NAMES)
def test_gradients_match_finite_differences(name):
    rng = np.random.default_rng(4)
    y, logits = make_case(name, rng)
    loss = type(losses.get(name))(label_smoothing=0.2)
    grad = loss.value_and_grad_logits(y, logits)[1]
    np.testing.assert_allclose(grad, numeric_grad(lambda z: loss.value_and_grad_logits(y, z)[0], logits.copy()),
                               atol=1e-8)
    p = probabilities(name, logits)
    grad = loss.value_and_grad(y, p)[1]
    np.testing.assert_allclose(grad, numeric_grad(lambda q: loss.value_and_grad(y, q)[0], p.copy()), atol=1e-6)


def test_sparse_equals_categorical_on_one_hot():
    rng = np.random.default_rng(5)
    y, logits = make_case("sparse_categorical_crossentropy", rng)
    sparse = losses.SparseCategoricalCrossentropy(label_smoothing=0.15)
    dense = losses.CategoricalCrossentropy(label_smoothing=0.15)
    for a, b in zip(sparse.value_and_grad_logits(y, logits), dense.value_and_grad_logits(np.eye(5)[y], logits)):
        np.testing.assert_allclose(a, b, rtol=1e-12)


@pytest.mark.parametrize("name,cls", [("categorical_crossentropy", "CategoricalCrossentropy"),
                                      ("binary_crossentropy", "BinaryCrossentropy")])
def test_matches_keras3(name, cls):
    keras = keras_oracle.load()
    rng = np.random.default_rng(6)
    y, logits = make_case(name, rng)
    p = probabilities(name, logits)
    ours = type(losses.get(name))(label_smoothing=0.1)
    theirs = getattr(keras.losses, cls)(label_smoothing=0.1)
    expected = float(keras.ops.convert_to_numpy(theirs(y.astype("float32"), p.astype("float32"))))
    np.testing.assert_allclose(ours(y, p), expected, rtol=1e-5)
    theirs = getattr(keras.losses, cls)(from_logits=True, label_smoothing=0.1)
    expected = float(keras.ops.convert_to_numpy(theirs(y.astype("float32"), logits.astype("float32"))))
    np.testing.assert_allclose(ours.value_and_grad_logits(y, logits)[0], expected, rtol=1e-5)


def test_sparse_matches_pytorch_cross_entropy_on_class_indices():
    torch = pytest.importorskip("torch", reason="PyTorch (a dev-only oracle) is not installed")
    rng = np.random.default_rng(7)
    y, logits = make_case("sparse_categorical_crossentropy", rng, shape=(6, 7))
    z = torch.tensor(logits, requires_grad=True)
    value = torch.nn.functional.cross_entropy(z, torch.tensor(y), label_smoothing=0.25)
    value.backward()
    ours = losses.SparseCategoricalCrossentropy(label_smoothing=0.25).value_and_grad_logits(y, logits)
    np.testing.assert_allclose(ours[0], value.item(), rtol=1e-12)
    np.testing.assert_allclose(ours[1], z.grad.numpy(), atol=1e-14)


def test_config_round_trip_keeps_the_smoothing():
    for name in CE_NAMES:
        loss = type(losses.get(name))(from_logits=True, label_smoothing=0.1)
        rebuilt = losses.get(json.loads(json.dumps(loss.get_config())))
        assert (type(rebuilt), rebuilt.label_smoothing, rebuilt.from_logits) == (type(loss), 0.1, True)
        assert "label_smoothing=0.1" in repr(rebuilt)
    assert losses.get("sparse_categorical_crossentropy").label_smoothing == 0.0


def test_bad_label_smoothing_is_refused():
    with pytest.raises(TypeError, match="label_smoothing"):
        losses.CategoricalCrossentropy(label_smoothing="0.1")
    with pytest.raises(ValueError, match="label_smoothing"):
        losses.SparseCategoricalCrossentropy(label_smoothing=1.5)
    with pytest.raises(ValueError, match="label_smoothing"):
        losses.BinaryCrossentropy(label_smoothing=-0.1)
    with pytest.raises(TypeError):
        losses.MeanSquaredError(label_smoothing=0.1)
    with pytest.raises(ValueError, match="cross-entropy"):
        losses.from_config({"class_name": "MeanSquaredError", "label_smoothing": 0.1})
