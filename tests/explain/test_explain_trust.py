"""Rank correlation, the model-randomization sanity check, deletion/insertion curves."""
import numpy as np
import pytest
from scipy import stats

from glassnet import explain

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
    assert result.passed is False
    assert result.layers == [model.layers[i].name for i in (5, 2, 0)]


def test_sanity_check_randomizes_from_the_top_on_a_copy():
    model = gap_net(seed=1)
    x = images(6, (10, 10, 1), seed=2)
    before = model_state(model)
    result = explain.sanity_check(model, x, "grad_cam", seed=0, layer=0)
    assert_same_state(before, model_state(model))
    names_with_weights = [l.name for l in model.layers if l.weights]
    assert result.layers == names_with_weights[::-1]
    assert result.correlations.shape == (3, 6)
    np.testing.assert_allclose(result.mean, result.correlations.mean(axis=1))
    # with every layer random, the maps no longer resemble the model's
    assert result.mean[-1] < 0.5 and result.passed
    # same seed, same verdict and numbers; the threshold is validated
    again = explain.sanity_check(model, x, "grad_cam", seed=0, layer=0)
    np.testing.assert_array_equal(result.correlations, again.correlations)
    with pytest.raises(ValueError, match="threshold"):
        explain.sanity_check(model, x, "grad_cam", threshold=2)
    with pytest.raises(ValueError, match="method"):
        explain.sanity_check(model, x, "gradcam")


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
