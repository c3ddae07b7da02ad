"""Activation maximization converges to the analytic optimum of linear units."""
import numpy as np
import pytest

import glassnet as gn
from glassnet import explain, layers

from explain_nets import assert_same_state, linear_net, linear_weights, model_state, small_cnn


def grid_laplacian(H, W):
    """L = D - A of the 4-neighbour grid graph, so that TV(x) = x^T L x and dTV/dx = 2 L x."""
    L = np.zeros((H * W, H * W))
    for i in range(H):
        for j in range(W):
            for di, dj in ((1, 0), (0, 1)):
                if i + di < H and j + dj < W:
                    a, b = i * W + j, (i + di) * W + j + dj
                    L[a, a] += 1
                    L[b, b] += 1
                    L[a, b] -= 1
                    L[b, a] -= 1
    return L


def test_linear_logit_with_l2_converges_to_w_over_2_l2():
    model = linear_net(seed=0, size=4, classes=3)
    w, b = linear_weights(model, 1)
    l2 = 0.5
    image, trajectory = explain.activation_maximization(model, -1, 1, steps=80, seed=0, l2=l2, tv=0.0,
                                                        jitter=0, lr=0.5, optimizer="sgd", return_trajectory=True)
    assert image.shape == (4, 4, 1) and trajectory.shape == (81,)
    # J = w.x + b - l2 |x|^2 is maximized at x* = w / (2 l2); the step contracts by 1 - 2 lr l2 = 0.5
    np.testing.assert_allclose(image, w / (2 * l2), atol=1e-12)
    np.testing.assert_allclose(trajectory[-1], (w * w).sum() / (2 * l2) + b, atol=1e-10)
    assert np.all(np.diff(trajectory) >= -1e-12)       # the logit rises monotonically towards it


@pytest.mark.parametrize("l2, lr", [(0.5, 0.05), (0.1, 0.05), (2.0, 0.01)])
def test_adam_steps_reach_the_same_optimum(l2, lr):
    model = linear_net(seed=3, size=4, classes=3)
    w, b = linear_weights(model, 2)
    image, trajectory = explain.activation_maximization(model, -1, 2, steps=300, seed=1, l2=l2, tv=0.0,
                                                        jitter=0, lr=lr, return_trajectory=True)
    np.testing.assert_allclose(image, w / (2 * l2), rtol=0, atol=1e-3 * np.abs(w / (2 * l2)).max())
    np.testing.assert_allclose(trajectory[-1], (w * w).sum() / (2 * l2) + b, rtol=1e-3)


def test_total_variation_penalty_solves_the_regularized_linear_system():
    model = linear_net(seed=1, size=4, classes=2)
    w, _ = linear_weights(model, 0)
    l2, tv = 0.5, 0.1
    image = explain.activation_maximization(model, -1, 0, steps=400, seed=1, l2=l2, tv=tv, jitter=0, lr=0.25,
                                            optimizer="sgd")
    # stationary point of w.x - l2 |x|^2 - tv x^T L x:  (2 l2 I + 2 tv L) x = w
    expected = np.linalg.solve(2 * l2 * np.eye(16) + 2 * tv * grid_laplacian(4, 4), w.reshape(-1))
    np.testing.assert_allclose(image.reshape(-1), expected, atol=1e-10)


def test_conv_filter_mean_activation_optimum():
    model = gn.Sequential([layers.Conv2D(2, 3, input_shape=(5, 5, 1), dtype="float64", name="conv")], seed=2)
    kernel = model.get_layer("conv").get_weights()[0]
    # mean over the 3x3 output positions of filter 1: its gradient is the kernel summed over placements / 9
    grad = np.zeros((5, 5, 1))
    for i in range(3):
        for j in range(3):
            grad[i:i + 3, j:j + 3, :] += kernel[:, :, :, 1] / 9
    image, trajectory = explain.activation_maximization(model, "conv", 1, steps=60, l2=1.0, tv=0.0, jitter=0,
                                                        lr=0.25, seed=0, optimizer="sgd", return_trajectory=True)
    np.testing.assert_allclose(image, grad / 2.0, atol=1e-12)
    out = model.predict(image[None])[0, :, :, 1].mean()
    np.testing.assert_allclose(trajectory[-1], out, rtol=1e-12)


def test_several_indices_at_once_equal_separate_runs_and_model_is_unchanged():
    model = small_cnn(seed=3)
    start = np.random.default_rng(0).random((8, 8, 2)).astype("float32")
    before = model_state(model)
    images, trajectories = explain.activation_maximization(model, -1, [0, 2], steps=15, image=start, jitter=0,
                                                           return_trajectory=True)
    assert images.shape == (2, 8, 8, 2) and trajectories.shape == (2, 16)
    for row, index in enumerate([0, 2]):
        single, trajectory = explain.activation_maximization(model, -1, index, steps=15, image=start, jitter=0,
                                                                return_trajectory=True)
        np.testing.assert_allclose(images[row], single, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(trajectories[row], trajectory, rtol=1e-5, atol=1e-6)
    assert_same_state(before, model_state(model))


def test_default_settings_raise_the_activation_and_are_reproducible():
    model = small_cnn(seed=4)
    a, ta = explain.activation_maximization(model, 0, 1, steps=30, seed=3, return_trajectory=True)
    b, tb = explain.activation_maximization(model, 0, 1, steps=30, seed=3, return_trajectory=True)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ta, tb)
    assert ta[-1] > ta[0]
    image = explain.activation_maximization(model, 0, 1, steps=5, seed=3, bounds=(0, 1))
    assert isinstance(image, np.ndarray) and image.shape == a.shape            # one array, as every explanation
    assert image.min() >= 0 and image.max() <= 1


def test_activation_maximization_argument_errors():
    model = small_cnn()
    with pytest.raises(ValueError, match="unit indices in"):
        explain.activation_maximization(model, -1, 4)
    with pytest.raises(ValueError, match="filter indices in"):
        explain.activation_maximization(model, 0, 3)
    with pytest.raises(TypeError, match="index"):
        explain.activation_maximization(model, 0, 1.5)
    with pytest.raises(ValueError, match="layer"):
        explain.activation_maximization(model, "nope", 0)
    with pytest.raises(ValueError, match="l2"):
        explain.activation_maximization(model, 0, 0, l2=-1)
    with pytest.raises(ValueError, match="bounds"):
        explain.activation_maximization(model, 0, 0, bounds=(1, 0))
    with pytest.raises(ValueError, match="optimizer"):
        explain.activation_maximization(model, 0, 0, optimizer="rmsprop")
    with pytest.raises(TypeError, match="return_trajectory"):
        explain.activation_maximization(model, 0, 0, return_trajectory="yes")
