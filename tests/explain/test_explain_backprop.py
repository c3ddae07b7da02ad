"""The shared machinery: ReLU rules, the model left unchanged, batches, chunks, argument checks."""
import numpy as np
import pytest

import glassnet as gn
from glassnet import explain, layers
from glassnet.explain import backprop

from explain_nets import (DENSE_X, assert_same_state, dense_net, gap_net, images, model_state, small_cnn)

# every method with the arguments it needs, as (name, function, kwargs)
METHODS = [
    ("input_gradients", explain.input_gradients, {}),
    ("input_gradients_guided", explain.input_gradients, {"modifier": "guided"}),
    ("input_gradients_rectified", explain.input_gradients, {"modifier": "rectified"}),
    ("saliency_probability", explain.saliency, {"score": "probability"}),
    ("smooth_grad", explain.smooth_grad, {"samples": 3, "noise": 0.0}),
    ("integrated_gradients", explain.integrated_gradients, {"steps": 4}),
    ("grad_cam", explain.grad_cam, {}),
    ("grad_cam_first_layer", explain.grad_cam, {"layer": 0, "modifier": "guided"}),
    ("grad_cam_plus_plus", explain.grad_cam_plus_plus, {}),
    ("guided_grad_cam", explain.guided_grad_cam, {}),
    ("cam", explain.cam, {}),
    ("occlusion", explain.occlusion, {"window": 3, "stride": 2}),
]


def test_the_relu_rule_is_an_argument_of_the_pass_never_an_attribute_of_a_layer():
    model = gn.Sequential([
        layers.Conv2D(4, 3, activation="relu", input_shape=(6, 6, 1)), layers.LeakyReLU(), layers.PReLU(),
        layers.ReLU(), layers.Activation("tanh"), layers.Flatten(), layers.Dense(2),
    ], seed=0)
    x = images(2, (6, 6, 1), seed=1) - 0.5
    attributes = [dict(vars(layer)) for layer in model.layers]
    results = {modifier: explain.input_gradients(model, x, target=0, modifier=modifier)
               for modifier in (None, "guided", "rectified")}
    assert all(not hasattr(layer, "relu_rule") for layer in model.layers)
    assert [set(vars(layer)) for layer in model.layers] == [set(a) for a in attributes]
    assert not np.array_equal(results[None], results["guided"])
    assert not np.array_equal(results["guided"], results["rectified"])
    with pytest.raises(ValueError, match="modifier"):
        explain.input_gradients(model, x, modifier="leaky")


@pytest.mark.parametrize("name, method, kwargs", METHODS, ids=[m[0] for m in METHODS])
def test_explanations_leave_the_model_unchanged(name, method, kwargs):
    model = gap_net(seed=4)
    x = images(3, (10, 10, 1), seed=5)
    model.forward(x, training=True)
    model.backward(np.ones((3, 3), dtype="float32"))
    before = model_state(model)
    predictions = model.predict(x)
    method(model, x, **kwargs)
    assert_same_state(before, model_state(model))
    np.testing.assert_array_equal(model.predict(x), predictions)


def test_trust_and_inspection_leave_the_model_unchanged():
    model = gap_net(seed=5)
    x = images(3, (10, 10, 1), seed=6)
    before = model_state(model)
    explain.sanity_check(model, x, "saliency")
    explain.deletion_insertion(model, x, explain.saliency(model, x), steps=4)
    explain.feature_maps(model, x, 2)
    explain.activation_maximization(model, 2, 1, steps=3)
    assert_same_state(before, model_state(model))


@pytest.mark.parametrize("name, method, kwargs", METHODS, ids=[m[0] for m in METHODS])
def test_a_batch_equals_one_image_at_a_time(name, method, kwargs):
    model = gap_net(seed=6)
    x = images(5, (10, 10, 1), seed=7)
    batch = method(model, x, **kwargs)
    singles = np.concatenate([method(model, x[i:i + 1], **kwargs) for i in range(len(x))])
    np.testing.assert_allclose(batch, singles, rtol=1e-5, atol=1e-6)
    # and explicit per-image targets pick each image's own class
    target = np.array([0, 1, 2, 1, 0])
    batch = method(model, x, target=target, **kwargs)
    singles = np.concatenate([method(model, x[i:i + 1], target=int(target[i]), **kwargs) for i in range(5)])
    np.testing.assert_allclose(batch, singles, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name, method, kwargs", METHODS, ids=[m[0] for m in METHODS])
def test_chunked_batches_give_the_same_maps(name, method, kwargs, monkeypatch):
    model = gap_net(seed=7)
    x = images(7, (10, 10, 1), seed=8)
    whole = method(model, x, **kwargs)
    monkeypatch.setattr(backprop, "MEMORY_BUDGET", 3 * backprop.bytes_per_example(model))
    assert backprop.chunk_size(model) == 3
    np.testing.assert_allclose(method(model, x, **kwargs), whole, rtol=1e-5, atol=1e-6)


def test_backprop_returns_layer_activations_and_gradients():
    model = small_cnn(seed=8, dtype="float64")
    x = images(4, (8, 8, 2), seed=9, dtype="float64")
    result = backprop.backprop(model, x, layer=2)
    np.testing.assert_allclose(result.activations, model.forward(x, stop=3), rtol=1e-12)
    logits = model.predict(x, logits=True)
    np.testing.assert_allclose(result.scores, logits, rtol=1e-12)
    np.testing.assert_array_equal(result.targets, logits.argmax(axis=1))
    # finite differences through the top of the network, from the layer's output
    n, target = 1, result.targets[1]
    a = result.activations[n:n + 1].copy()

    def f():
        out = a
        for layer in model.layers[3:-1]:
            out = layer.forward(out)
        return model.layers[-1].forward(out, logits=True)[0, target]

    from glassnet.testing import numerical_gradient
    np.testing.assert_allclose(result.layer_grads[n:n + 1], numerical_gradient(f, a), atol=1e-7)
    np.testing.assert_allclose(result.input_grads, explain.input_gradients(model, x), rtol=1e-12)
    # the final softmax of a model with a separate Softmax layer is not an explainable layer
    model = gn.Sequential([layers.Flatten(input_shape=(2, 2, 1)), layers.Dense(3), layers.Softmax()])
    with pytest.raises(ValueError, match="below the class scores"):
        backprop.backprop(model, images(1, (2, 2, 1)), layer=2)


def test_separate_softmax_layer_logits_and_probabilities():
    model = gn.Sequential([layers.Flatten(input_shape=(1, 2, 1)), layers.Dense(3, activation="relu", name="hidden"),
                           layers.Dense(2, name="out"), layers.Softmax()])
    fused = dense_net()
    model.get_layer("hidden").set_weights(fused.get_layer("hidden").get_weights())
    model.get_layer("out").set_weights(fused.get_layer("out").get_weights())
    for score in ("logits", "probability"):
        np.testing.assert_allclose(explain.input_gradients(model, DENSE_X, 0, score=score),
                                   explain.input_gradients(fused, DENSE_X, 0, score=score), rtol=1e-6)


def test_argument_errors_say_what_was_expected():
    model = gap_net()
    x = images(2, (10, 10, 1))
    with pytest.raises(ValueError, match=r"target class indices in \[0, 2\]"):
        explain.saliency(model, x, target=3)
    with pytest.raises(ValueError, match=r"target class indices"):
        explain.grad_cam(model, x, target=[0, -1])
    with pytest.raises(ValueError, match=r"one target per image, shape \(2,\)"):
        explain.input_gradients(model, x, target=[0, 1, 2])
    with pytest.raises(TypeError, match="target"):
        explain.input_gradients(model, x, target=0.5)
    with pytest.raises(TypeError, match="target"):
        explain.input_gradients(model, x, target=True)
    with pytest.raises(ValueError, match="modifier"):
        explain.input_gradients(model, x, modifier="deconv")
    with pytest.raises(ValueError, match="score"):
        explain.saliency(model, x, score="softmax")
    with pytest.raises(ValueError, match=r"x\[None, \.\.\., None\]"):
        explain.saliency(model, np.zeros((10, 10)))
    with pytest.raises(ValueError, match=r"\(N, H, W, C\)"):
        explain.grad_cam(model, np.zeros((2, 1, 10, 10)))
    with pytest.raises(TypeError, match="Sequential"):
        explain.saliency(np.zeros(3), x)
    with pytest.raises(ValueError, match="finite"):
        explain.occlusion(model, np.full((1, 10, 10, 1), np.nan))
    with pytest.raises(ValueError, match="steps"):
        explain.integrated_gradients(model, x, steps=0)
    with pytest.raises(ValueError, match="samples"):
        explain.smooth_grad(model, x, samples=0)
    with pytest.raises(ValueError, match="noise"):
        explain.smooth_grad(model, x, noise=-1)
    with pytest.raises(TypeError, match="seed"):
        explain.smooth_grad(model, x, seed="a")
    with pytest.raises(ValueError, match="baseline"):
        explain.integrated_gradients(model, x, baseline=np.zeros((3, 10, 10, 1)))
    with pytest.raises(ValueError, match=r"\(N, K\)"):
        explain.saliency(gn.Sequential([layers.Conv2D(2, 3, input_shape=(5, 5, 1))]), images(1, (5, 5, 1)))


def test_unbuilt_model_is_built_from_the_images():
    model = gn.Sequential([layers.Conv2D(2, 3, activation="relu"), layers.GlobalAveragePooling2D(),
                           layers.Dense(3)], seed=0)
    x = images(2, (6, 6, 1))
    assert explain.grad_cam(model, x).shape == (2, 6, 6)
    assert explain.saliency(model, x).shape == (2, 6, 6)
