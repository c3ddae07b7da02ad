"""Rank correlation, the model-randomization sanity check, deletion/insertion curves."""
import numpy as np
import pytest
from scipy import stats

import glassnet as gn
from glassnet import explain, layers

from explain_nets import assert_same_state, gap_net, images, linear_net, linear_weights, model_state


def test_rank_correlation_known_values_and_ties():
    a = np.array([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0], [5.0, 5.0, 5.0, 5.0]])
    b = np.array([[10.0, 20.0, 30.0, 40.0], [4.0, 3.0, 2.0, 1.0], [1.0, 2.0, 3.0, 4.0]])
    np.testing.assert_allclose(explain.rank_correlation(a, b), [1.0, -1.0, 0.0])
    # ties share the average rank: [0, 0, 1, 2] -> ranks [0.5, 0.5, 2, 3]
    x = np.array([[0.0, 0.0, 1.0, 2.0]])
    y = np.array([[0.0, 1.0, 2.0, 3.0]])
    ranks_x, ranks_y = np.array([0.5, 0.5, 2, 3]), np.arange(4.0)
    expected = np.corrcoef(ranks_x, ranks_y)[0, 1]
    np.testing.assert_allclose(explain.rank_correlation(x, y), [expected])
    rng = np.random.default_rng(0)
    u = rng.integers(0, 4, (3, 5, 5)).astype(float)
    v = u + rng.integers(0, 3, (3, 5, 5))
    scipy_values = [stats.spearmanr(u[i].ravel(), v[i].ravel())[0] for i in range(3)]
    np.testing.assert_allclose(explain.rank_correlation(u, v), scipy_values, rtol=1e-12)


def test_sanity_check_flags_a_model_independent_method():
    model = gap_net(seed=0)
    x = images(4, (10, 10, 1), seed=1)

    def edge_detector(model, images, target=None):
        return np.abs(np.diff(images[..., 0], axis=1))   # ignores the model entirely

    result = explain.sanity_check(model, x, edge_detector)
    np.testing.assert_allclose(result.correlations, 1.0)
    for values in result.null.values():      # unrelated random models agree perfectly: input structure only
        np.testing.assert_allclose(values, 1.0)
    assert result.passed is False and result.score == 1.0
    assert result.layers == [model.layers[i].name for i in (5, 2, 0)]
    assert result.reason.startswith("fails:")


def _logits_only(model, images, target=None):
    """Each image's map is its target's column of the top Dense kernel: a pure function of the logits layer."""
    column = model.layers[-1].params["kernel"][:, np.asarray(target)]          # (H * W, N)
    return column.T.reshape((len(images),) + images.shape[1:3])


def _logits_net(seed):
    return gn.Sequential([layers.Conv2D(1, 3, padding="same", input_shape=(10, 10, 1)), layers.Flatten(),
                          layers.Dense(3, activation="softmax")], seed=seed)


def test_a_method_that_is_a_pure_function_of_the_logits_layer_passes():
    model = _logits_net(seed=3)
    x = images(6, (10, 10, 1), seed=4)
    result = explain.sanity_check(model, x, _logits_only, seed=0)
    # it changes entirely at the first step, and unrelated models' maps share nothing
    assert abs(result.mean[0]) < 0.3 and abs(result.null_mean["spearman"]) < 0.3
    assert result.passed and result.reason.startswith("passes:")
    assert result.n_blank == 0 and result.measure == "spearman"
    # the independent randomization: only the logits layer matters to it
    independent = result.independent["spearman"].mean(axis=1)
    assert independent[0] < 0.3 and np.allclose(independent[1:], 1.0)


def test_the_null_calibration_is_deterministic_under_a_seed():
    model = gap_net(seed=1)
    x = images(5, (10, 10, 1), seed=2)
    first = explain.sanity_check(model, x, "input_gradients", seed=7)
    again = explain.sanity_check(model, x, "input_gradients", seed=np.random.default_rng(7))
    other = explain.sanity_check(model, x, "input_gradients", seed=8)
    for name in explain.similarity.MEASURES:
        np.testing.assert_array_equal(first.null[name], again.null[name])
        np.testing.assert_array_equal(first.measures[name], again.measures[name])
        assert first.null[name].shape == (3, 5)            # three copies: three pairs
    assert (first.passed, first.score, first.threshold) == (again.passed, again.score, again.threshold)
    assert not np.array_equal(first.null["spearman"], other.null["spearman"])
    # the bar is the null plus the limit's share of what the null leaves
    null = first.null_mean["spearman"]
    assert first.threshold == pytest.approx(null + first.limit * (1 - null))
    assert first.score == pytest.approx((first.top["spearman"].mean() - null) / (1 - null))


def test_blank_maps_never_pass_and_are_counted():
    model = gap_net(seed=2)
    x = images(4, (10, 10, 1), seed=3)
    result = explain.sanity_check(model, x, lambda net, images, target=None: np.zeros(images.shape[:3]))
    assert result.passed is False and result.n_blank == 4 and "blank" in result.reason
    assert np.isnan(result.mean).all()

    def mostly_blank(net, images, target=None):
        maps = explain.input_gradients(net, images, target)
        maps[:3] = 0.0              # three of four images: no evidence
        return maps

    result = explain.sanity_check(model, x, mostly_blank)
    assert result.passed is False and result.n_blank == 3 and "3 of 4 maps are blank" in result.reason
    np.testing.assert_array_equal(result.blank, [True, True, True, False])

    def one_blank(net, images, target=None):
        maps = explain.input_gradients(net, images, target)
        maps[0] = 0.0
        return maps

    result = explain.sanity_check(model, x, one_blank)
    assert result.n_blank == 1 and "1 of 4 maps blank" in result.reason
    # the blank image is left out of the means
    np.testing.assert_allclose(result.mean, result.correlations[:, 1:].mean(axis=1))


def test_data_randomization_and_independent_randomization_are_reported():
    model = gap_net(seed=4)
    rng = np.random.default_rng(0)
    x_train = images(64, (10, 10, 1), seed=5)
    y_train = rng.integers(0, 3, 64)
    x = images(4, (10, 10, 1), seed=6)
    result = explain.sanity_check(model, x, "grad_cam", seed=0, train_data=(x_train, y_train), repeats=2,
                                  null_models=2)
    assert set(result.data_randomization) == set(explain.similarity.MEASURES)
    assert result.data_randomization["spearman"].shape == (4,)
    assert np.isfinite(result.data_score) and "permuted labels" in result.reason
    assert result.top["spearman"].shape == (2, 4) and result.null["ssim"].shape == (1, 4)
    assert result.independent["hog"].shape == (3, 4)
    # one-hot labels give the same model
    again = explain.sanity_check(model, x, "grad_cam", seed=0, train_data=(x_train, np.eye(3)[y_train]), repeats=2,
                                 null_models=2)
    np.testing.assert_array_equal(result.data_randomization["ssim"], again.data_randomization["ssim"])
    with pytest.raises(TypeError, match="train_data"):
        explain.sanity_check(model, x, "grad_cam", train_data=x_train)
    with pytest.raises(ValueError, match="one label per training image"):
        explain.sanity_check(model, x, "grad_cam", train_data=(x_train, y_train[:5]))


def test_sanity_check_randomizes_from_the_top_on_a_copy():
    model = gap_net(seed=1)
    x = images(6, (10, 10, 1), seed=2)
    before = model_state(model)
    result = explain.sanity_check(model, x, "grad_cam", seed=0, layer=0)
    assert_same_state(before, model_state(model))
    names_with_weights = [l.name for l in model.layers if l.weights]
    assert result.layers == names_with_weights[::-1]
    assert result.correlations.shape == (3, 6)
    np.testing.assert_allclose(result.mean, result.correlations[:, ~result.blank].mean(axis=1))
    np.testing.assert_array_equal(result.correlations, result.measures["spearman"])
    # same seed, same verdict and numbers; the arguments are validated
    again = explain.sanity_check(model, x, "grad_cam", seed=0, layer=0)
    np.testing.assert_array_equal(result.correlations, again.correlations)
    absolute = explain.sanity_check(model, x, "grad_cam", seed=0, layer=0, absolute=True)
    assert absolute.measure == "spearman_abs"
    fixed = explain.sanity_check(model, x, "grad_cam", seed=0, layer=0, threshold=0.99)
    assert fixed.threshold == 0.99 and "fixed threshold" in fixed.reason
    with pytest.raises(ValueError, match="threshold"):
        explain.sanity_check(model, x, "grad_cam", threshold=2)
    with pytest.raises(ValueError, match="method"):
        explain.sanity_check(model, x, "gradcam")
    with pytest.raises(ValueError, match="measure"):
        explain.sanity_check(model, x, "grad_cam", measure="pearson")
    with pytest.raises(ValueError, match="null_models"):
        explain.sanity_check(model, x, "grad_cam", null_models=1)
    with pytest.raises(ValueError, match="limit"):
        explain.sanity_check(model, x, "grad_cam", limit=1.5)


def test_deletion_insertion_on_a_linear_model_worked_by_hand():
    model = linear_net(seed=2, size=3, classes=2)
    x = images(2, (3, 3, 1), seed=3, dtype="float64")
    w, b = linear_weights(model, 1)
    contribution = (w * x)[..., 0].reshape(2, -1)       # exact per-pixel share of the logit
    steps = 3
    result = explain.deletion_insertion(model, x, contribution.reshape(2, 3, 3), target=1, steps=steps,
                                        score="logits", seed=0)
    order = np.argsort(-contribution, axis=1, kind="stable")
    counts = np.rint(np.linspace(0, 9, steps + 1)).astype(int)       # 0, 3, 6, 9 pixels
    np.testing.assert_allclose(result.fractions, counts / 9)
    for n in range(2):
        deleted = [b + contribution[n].sum() - contribution[n, order[n, :k]].sum() for k in counts]
        inserted = [b + contribution[n, order[n, :k]].sum() for k in counts]
        np.testing.assert_allclose(result.deletion[n], deleted, atol=1e-12)
        np.testing.assert_allclose(result.insertion[n], inserted, atol=1e-12)
        trapezoid = lambda c: (np.sum(c) - (c[0] + c[-1]) / 2) / steps
        np.testing.assert_allclose(result.deletion_auc[n], trapezoid(np.array(deleted)))
        np.testing.assert_allclose(result.insertion_auc[n], trapezoid(np.array(inserted)))
    # removing the largest contributions first is optimal: never worse than a random order
    assert np.all(result.deletion_auc <= result.random_deletion_auc + 1e-12)
    assert np.all(result.insertion_auc >= result.random_insertion_auc - 1e-12)
    assert result.random_deletion.shape == (2, steps + 1)
    # both orders start from the same image and end at the same one
    np.testing.assert_allclose(result.random_deletion[:, [0, -1]], result.deletion[:, [0, -1]], atol=1e-12)


def test_deletion_insertion_probability_default_and_errors():
    model = gap_net(seed=3)
    x = images(3, (10, 10, 1), seed=4)
    maps = explain.grad_cam(model, x)
    result = explain.deletion_insertion(model, x, maps, steps=5)
    probabilities = model.predict(x)
    np.testing.assert_allclose(result.deletion[:, 0], probabilities.max(axis=1), rtol=1e-5)
    assert np.all((result.deletion >= 0) & (result.deletion <= 1))
    # maps with channels are summed over them
    with_channels = explain.deletion_insertion(model, x, maps[..., None], steps=5)
    np.testing.assert_allclose(with_channels.deletion, result.deletion)
    with pytest.raises(ValueError, match="maps of shape"):
        explain.deletion_insertion(model, x, maps[:, :5])
    with pytest.raises(ValueError, match="finite"):
        explain.deletion_insertion(model, x, np.full(maps.shape, np.nan))
