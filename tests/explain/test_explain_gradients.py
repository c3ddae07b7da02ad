"""Input gradients, saliency, SmoothGrad and integrated gradients against answers worked by hand."""
import numpy as np
import pytest

from glassnet import explain
from glassnet.testing import numerical_gradient, relative_error

from explain_nets import (CONV_X, DENSE_X, conv_net, dense_net, images, linear_net, linear_weights,
                          small_cnn)

# d logit_0 / dx of dense_net at x = [1, 2], worked out in explain_nets:
# vanilla: g_z = [1, 3, -2] * [z > 0] = [1, 0, -2]   -> dx = W1 g_z = [-3, 1]
# guided:  g_z = [1, 3, -2] * [z > 0] * [g > 0] = [1, 0, 0] -> dx = [1, 1]
# rectified (deconvnet): g_z = max([1, 3, -2], 0) = [1, 3, 0] -> dx = [4, -2]
DENSE_EXPECTED = {None: [-3.0, 1.0], "guided": [1.0, 1.0], "rectified": [4.0, -2.0]}


@pytest.mark.parametrize("relu", ["fused", "relu", "activation", "prelu"])
@pytest.mark.parametrize("modifier", [None, "guided", "rectified"])
def test_dense_net_gradients_worked_by_hand(relu, modifier):
    model = dense_net(relu)
    grads = explain.input_gradients(model, DENSE_X, target=0, modifier=modifier)
    assert grads.shape == (1, 1, 2, 1)
    np.testing.assert_allclose(grads.reshape(-1), DENSE_EXPECTED[modifier], atol=1e-6)


def test_leaky_relu_vanilla_gradient_keeps_the_negative_slope():
    # g_z = [1, 0.1 * 3, -2] -> dx = [1 + 0.3 - 4, 1 - 0.3]; guided/rectified ignore the slope
    model = dense_net("leaky")
    np.testing.assert_allclose(explain.input_gradients(model, DENSE_X, target=0).reshape(-1), [-2.7, 0.7],
                               atol=1e-6)
    np.testing.assert_allclose(explain.input_gradients(model, DENSE_X, 0, "guided").reshape(-1), [1, 1],
                               atol=1e-6)


def test_default_target_is_the_predicted_class():
    # logits are [-1, 2]: class 1, whose weights [0, 0, 1] reach x through u3 = [2, 0] only
    model = dense_net()
    np.testing.assert_allclose(explain.input_gradients(model, DENSE_X).reshape(-1), [2.0, 0.0], atol=1e-6)


def test_probability_score_goes_through_the_softmax():
    # p = softmax([-1, 2]); dp0/dlogits = p0 p1 [1, -1]; dp0/dh = p0 p1 (W2[:, 0] - W2[:, 1]) = p0 p1 [1, 3, -3]
    # gated by [z > 0] = [1, 0, 1]: p0 p1 [1, 0, -3] -> dx = p0 p1 [1 - 6, 1]
    p0 = 1 / (1 + np.exp(3.0))
    model = dense_net(dtype="float64")
    grads = explain.input_gradients(model, DENSE_X, target=0, score="probability")
    np.testing.assert_allclose(grads.reshape(-1), p0 * (1 - p0) * np.array([-5.0, 1.0]), rtol=1e-12)


# conv_net (see explain_nets), class 0: G = dS/dA = CLASS0; pre-activations z0 = [[1, 2], [0, -1]],
# z1 = [[1, -3], [0, -1]]. Filter 0 sends dz0[i, j] to x[i, j], filter 1 sends -dz1[i, j] to x[i+1, j+1].
CONV_EXPECTED = {
    None: [[1, 2, 0], [0, 1, 0], [0, 0, 0]],          # dz0 = [[1, 2], [0, 0]], dz1 = [[-1, 0], [0, 0]]
    "guided": [[1, 2, 0], [0, 0, 0], [0, 0, 0]],      # dz1[0, 0] = -1 < 0 is dropped
    "rectified": [[1, 2, 0], [3, 4, 0], [0, -2, -1]],  # dz = max(G, 0), no forward gate
}


@pytest.mark.parametrize("modifier", [None, "guided", "rectified"])
def test_conv_net_gradients_worked_by_hand(modifier):
    grads = explain.input_gradients(conv_net(), CONV_X, target=0, modifier=modifier)
    np.testing.assert_allclose(grads[0, :, :, 0], CONV_EXPECTED[modifier], atol=1e-6)


def test_saliency_is_max_abs_over_channels():
    model = dense_net()
    np.testing.assert_allclose(explain.saliency(model, DENSE_X, target=0), [[[3.0, 1.0]]], atol=1e-6)
    model = small_cnn(seed=3)
    x = images(4, (8, 8, 2), seed=1)
    grads = explain.input_gradients(model, x, target=[0, 1, 2, 3], modifier="guided")
    sal = explain.saliency(model, x, target=[0, 1, 2, 3], modifier="guided")
    assert sal.shape == (4, 8, 8)
    np.testing.assert_array_equal(sal, np.abs(grads).max(axis=-1))


@pytest.mark.parametrize("score", ["logits", "probability"])
def test_input_gradients_match_finite_differences_float64(score):
    model = small_cnn(seed=5, dtype="float64")
    x = np.random.default_rng(2).standard_normal((3, 8, 8, 2))
    target = np.array([0, 3, 1])
    grads = explain.input_gradients(model, x, target=target, score=score)
    for n in range(len(x)):
        image = x[n:n + 1].copy()

        def f():
            return model.predict(image, logits=score == "logits")[0, target[n]]

        numeric = numerical_gradient(f, image, eps=1e-6)
        assert relative_error(grads[n:n + 1], numeric) < 1e-6


def test_smooth_grad_without_noise_is_the_gradient_and_is_exact_on_a_linear_model():
    model = small_cnn(seed=1)
    x = images(3, (8, 8, 2), seed=4)
    np.testing.assert_allclose(explain.smooth_grad(model, x, samples=3, noise=0.0, seed=0),
                               explain.input_gradients(model, x), rtol=1e-5, atol=1e-7)
    # a linear model's gradient is w whatever the noise; squared averages give w^2
    model = linear_net(seed=2)
    x = images(2, (5, 5, 1), seed=3, dtype="float64")
    w, _ = linear_weights(model, 1)
    np.testing.assert_allclose(explain.smooth_grad(model, x, target=1, samples=7, seed=0),
                               np.broadcast_to(w, x.shape), atol=1e-12)
    np.testing.assert_allclose(explain.smooth_grad(model, x, target=1, samples=7, seed=0, squared=True),
                               np.broadcast_to(w * w, x.shape), atol=1e-12)


def test_smooth_grad_is_reproducible_and_averages_noisy_gradients():
    model = small_cnn(seed=2)
    x = images(2, (8, 8, 2), seed=5)
    a = explain.smooth_grad(model, x, samples=4, noise=0.2, seed=7)
    b = explain.smooth_grad(model, x, samples=4, noise=0.2, seed=7)
    np.testing.assert_array_equal(a, b)
    # the same mean, computed by hand from each image's own noise stream (sigma = 0.2 * value range)
    seeds = explain.batching.image_seeds(7, 2)
    target = model.predict(x).argmax(axis=1)
    sigma = 0.2 * (x.max(axis=(1, 2, 3)) - x.min(axis=(1, 2, 3)))
    draws = np.stack([np.random.default_rng(seed).standard_normal((4, 8, 8, 2)) for seed in seeds])
    noisy = x[:, None] + draws.astype("float32") * sigma[:, None, None, None, None]
    by_hand = [explain.input_gradients(model, noisy[n], target=target[n]).mean(axis=0) for n in range(2)]
    np.testing.assert_allclose(a, np.stack(by_hand), rtol=1e-5, atol=1e-7)
    assert not np.allclose(a, explain.smooth_grad(model, x, samples=4, noise=0.2, seed=8))
    # an image's noise is its own: the second image alone, given its seed, gets the same map (in batches
    # of one image both times, so that the same products are computed)
    alone = explain.smooth_grad(model, x[1:], samples=4, noise=0.2, seed=seeds[1:], batch_size=1)
    np.testing.assert_array_equal(alone, explain.smooth_grad(model, x, samples=4, noise=0.2, seed=7, batch_size=1)[1:])
    # a Generator is drawn from in image order, batch after batch
    from_generator = explain.smooth_grad(model, x, samples=4, noise=0.2, seed=np.random.default_rng(7), batch_size=1)
    rng = np.random.default_rng(7)
    draws = rng.standard_normal((2, 4, 8, 8, 2)).astype("float32") * sigma[:, None, None, None, None]
    by_hand = [explain.input_gradients(model, x[n] + draws[n], target=target[n]).mean(axis=0) for n in range(2)]
    np.testing.assert_allclose(from_generator, np.stack(by_hand), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("baseline", [None, 0.5, "image"])
def test_integrated_gradients_on_a_linear_model_is_delta_times_w(baseline):
    model = linear_net(seed=0, classes=3)
    x = images(4, (5, 5, 1), seed=1, dtype="float64")
    base = images(1, (5, 5, 1), seed=9, dtype="float64")[0] if baseline == "image" else baseline
    reference = np.zeros_like(x) if base is None else np.broadcast_to(base, x.shape)
    attributions, gap = explain.integrated_gradients(model, x, target=2, baseline=base, steps=3,
                                                     return_gap=True)
    w, _ = linear_weights(model, 2)
    np.testing.assert_allclose(attributions, (x - reference) * w, atol=1e-12)
    np.testing.assert_allclose(gap, 0, atol=1e-10)


def test_integrated_gradients_completeness_improves_with_steps():
    # a smooth (tanh) float64 net: the midpoint rule's error falls like 1 / steps^2
    from glassnet import Sequential, layers
    model = Sequential([
        layers.Conv2D(3, 3, activation="tanh", input_shape=(6, 6, 1), dtype="float64"),
        layers.Flatten(dtype="float64"),
        layers.Dense(4, activation="tanh", dtype="float64"),
        layers.Dense(2, dtype="float64"),
    ], seed=4)
    x = 2 * images(3, (6, 6, 1), seed=2, dtype="float64")
    logits = model.predict(x, logits=True)
    delta = logits[np.arange(3), logits.argmax(1)] - model.predict(np.zeros_like(x))[np.arange(3), logits.argmax(1)]
    gaps = []
    for steps in (2, 8, 32, 128):
        attributions, gap = explain.integrated_gradients(model, x, steps=steps, return_gap=True)
        np.testing.assert_allclose(attributions.reshape(3, -1).sum(1) - delta, gap, atol=1e-12)
        gaps.append(np.abs(gap).max())
    assert gaps[0] > gaps[1] > gaps[2] > gaps[3]
    assert gaps[3] < 1e-3 * np.abs(delta).min()


def test_integrated_gradients_relu_net_completeness_within_tolerance():
    model = small_cnn(seed=6, dtype="float64")
    x = images(3, (8, 8, 2), seed=3, dtype="float64")
    _, gap_few = explain.integrated_gradients(model, x, steps=4, return_gap=True)
    attributions, gap = explain.integrated_gradients(model, x, steps=400, return_gap=True)
    scale = np.abs(attributions).sum(axis=(1, 2, 3))
    assert np.all(np.abs(gap) <= 0.02 * scale)
    assert np.abs(gap).sum() < np.abs(gap_few).sum()


def test_keras_vis_relu_modifier_is_the_rectified_rule():
    # seed 000 draws saliency with backprop_modifier in [None, 'guided', 'relu']
    np.testing.assert_allclose(explain.input_gradients(dense_net(), DENSE_X, 0, modifier="relu").reshape(-1),
                               DENSE_EXPECTED["rectified"], atol=1e-6)
