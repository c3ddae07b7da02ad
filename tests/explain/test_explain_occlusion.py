"""Occlusion maps against closed forms on linear models and a brute-force loop."""
import numpy as np
import pytest

from glassnet import explain
from glassnet.explain import backprop

from explain_nets import images, linear_net, linear_weights, small_cnn


@pytest.mark.parametrize("channels", [1, 2])
def test_one_pixel_occlusion_of_a_linear_model_is_w_times_x(channels):
    model = linear_net(seed=1, size=5, channels=channels)
    x = images(3, (5, 5, channels), seed=2, dtype="float64")
    maps = explain.occlusion(model, x, target=2, window=1, stride=1, baseline=0.0)
    w, _ = linear_weights(model, 2)
    # hiding pixel (i, j) removes its contribution sum_c w[i, j, c] x[i, j, c] from the logit
    np.testing.assert_allclose(maps, (w * x).sum(axis=-1), atol=1e-12)


def test_overlapping_windows_average_the_drops_of_every_covering_window():
    model = linear_net(seed=3, size=5)
    x = images(2, (5, 5, 1), seed=4, dtype="float64")
    w, _ = linear_weights(model, 0)
    contribution = (w * x)[..., 0]
    # window 2, stride 2 on 5 pixels: starts 0, 2 and the flush one at 3
    starts = [0, 2, 3]
    total, count = np.zeros((2, 5, 5)), np.zeros((5, 5))
    for top in starts:
        for left in starts:
            drop = contribution[:, top:top + 2, left:left + 2].sum(axis=(1, 2))
            total[:, top:top + 2, left:left + 2] += drop[:, None, None]
            count[top:top + 2, left:left + 2] += 1
    got = explain.occlusion(model, x, target=0, window=2, stride=2)
    np.testing.assert_allclose(got, total / count, atol=1e-12)


def test_occlusion_matches_a_brute_force_loop_on_a_nonlinear_net():
    model = small_cnn(seed=4, dtype="float64")
    x = images(2, (8, 8, 2), seed=5, dtype="float64")
    baseline = images(1, (8, 8, 2), seed=6, dtype="float64")[0]
    target = np.array([1, 3])
    got = explain.occlusion(model, x, target=target, window=(3, 3), stride=(2, 3), baseline=baseline,
                            score="probability")
    clean = model.predict(x)[np.arange(2), target]
    total, count = np.zeros((2, 8, 8)), np.zeros((8, 8))
    for top in (0, 2, 4, 5):            # rows: range(0, 6, 2) plus the flush start 8 - 3
        for left in (0, 3, 5):          # cols: range(0, 6, 3) plus the flush start 8 - 3
            occluded = x.copy()
            occluded[:, top:top + 3, left:left + 3] = baseline[top:top + 3, left:left + 3]
            drop = clean - model.predict(occluded)[np.arange(2), target]
            total[:, top:top + 3, left:left + 3] += drop[:, None, None]
            count[top:top + 3, left:left + 3] += 1
    assert count.min() >= 1
    np.testing.assert_allclose(got, total / count, atol=1e-12)


def test_occlusion_default_stride_is_the_window_and_predicted_class_is_default(monkeypatch):
    model = small_cnn(seed=2)
    x = images(3, (8, 8, 2), seed=1)
    predicted = model.predict(x).argmax(axis=1)
    a = explain.occlusion(model, x, window=4)
    np.testing.assert_array_equal(a, explain.occlusion(model, x, target=predicted, window=4, stride=4))
    # copies evaluated in tiny chunks give the same maps (to float32 rounding: BLAS may order a
    # product's sums differently for a different number of rows)
    monkeypatch.setattr(backprop, "MEMORY_BUDGET", 1)
    np.testing.assert_allclose(explain.occlusion(model, x, window=4), a, rtol=1e-5, atol=1e-6)


def test_occlusion_argument_errors():
    model = small_cnn()
    x = images(1, (8, 8, 2))
    with pytest.raises(ValueError, match="window"):
        explain.occlusion(model, x, window=9)
    with pytest.raises(ValueError, match="window"):
        explain.occlusion(model, x, window=0)
    with pytest.raises(ValueError, match="stride"):
        explain.occlusion(model, x, stride=(1, 2, 3))
    with pytest.raises(ValueError, match="every pixel"):
        explain.occlusion(model, x, window=2, stride=3)
    with pytest.raises(ValueError, match="baseline"):
        explain.occlusion(model, x, baseline=np.zeros((3, 3)))
