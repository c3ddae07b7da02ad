"""The map similarity measures of the sanity checks: known values, loop references, scikit-image and SciPy."""
import numpy as np
import pytest
from scipy import stats

from glassnet.explain import similarity

skimage_metrics = pytest.importorskip("skimage.metrics", reason="scikit-image (dev extra) is the SSIM/HOG oracle")
skimage_feature = pytest.importorskip("skimage.feature", reason="scikit-image (dev extra) is the SSIM/HOG oracle")


def _maps(n=3, size=(28, 28), seed=0):
    rng = np.random.default_rng(seed)
    a = rng.random((n,) + size)
    return a, a + 0.4 * rng.random((n,) + size)


def test_blank_maps_are_constant_or_not_finite():
    maps = np.zeros((5, 4, 4))
    maps[1, 0, 0] = 1e-30                     # tiny but real evidence
    maps[2] = 3.0                            # constant, not zero
    maps[3] = 3.0 + 1e-15 * np.arange(16).reshape(4, 4)   # rounding noise on a constant
    maps[4, 1, 1] = np.nan
    np.testing.assert_array_equal(similarity.blank_maps(maps), [True, False, True, True, True])


def test_ssim_is_scikit_images_on_the_interior_patches():
    a, b = _maps()
    got = similarity.ssim(a, b)
    scaled_a, scaled_b = similarity.scale_to_unit(a), similarity.scale_to_unit(b)
    for n in range(len(a)):
        _, full = skimage_metrics.structural_similarity(scaled_a[n], scaled_b[n], data_range=1, win_size=7,
                                                        full=True)
        assert got[n] == pytest.approx(full[3:-3, 3:-3].mean(), rel=1e-10)
    np.testing.assert_allclose(similarity.ssim(a, a), 1.0)
    # the index of one patch, written out with loops
    one = similarity.ssim(a[:, :7, :7], b[:, :7, :7], window=7)
    for n in range(len(a)):
        u, v = scaled_a[n, :7, :7].ravel(), scaled_b[n, :7, :7].ravel()
        u = (a[n, :7, :7].ravel() - a[n, :7, :7].min()) / np.ptp(a[n, :7, :7])
        v = (b[n, :7, :7].ravel() - b[n, :7, :7].min()) / np.ptp(b[n, :7, :7])
        cov = np.cov(u, v)       # sample covariances, n - 1
        expected = ((2 * u.mean() * v.mean() + 1e-4) * (2 * cov[0, 1] + 9e-4)) / (
            (u.mean() ** 2 + v.mean() ** 2 + 1e-4) * (cov[0, 0] + cov[1, 1] + 9e-4))
        assert one[n] == pytest.approx(expected, rel=1e-10)


def test_hog_features_are_scikit_images_with_l2_blocks():
    a, _ = _maps(seed=1)
    got = similarity.hog_features(a)
    expected = np.stack([skimage_feature.hog(image, orientations=9, pixels_per_cell=(4, 4), cells_per_block=(2, 2),
                                             block_norm="L2", feature_vector=True) for image in a])
    assert got.shape == expected.shape == (3, 6 * 6 * 4 * 9)
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_hog_similarity_sees_edges_not_brightness():
    square = np.zeros((1, 28, 28))
    square[0, 8:20, 8:20] = 1.0
    brighter = 3 * square + 1                       # same edges, other values
    moved = np.roll(square, 9, axis=2)              # edges elsewhere
    assert similarity.hog_similarity(square, brighter)[0] == pytest.approx(1.0)
    assert similarity.hog_similarity(square, moved)[0] < 0.5
    assert similarity.hog_similarity(square, np.zeros_like(square))[0] == 0.0


def test_rank_correlation_is_scipys_spearman_and_similarities_name_the_four_measures():
    a, b = _maps(seed=2)
    b -= 0.7
    got = similarity.similarities(a - 0.5, b)
    assert tuple(got) == similarity.MEASURES
    for n in range(len(a)):
        assert got["spearman"][n] == pytest.approx(stats.spearmanr((a[n] - 0.5).ravel(), b[n].ravel())[0])
        assert got["spearman_abs"][n] == pytest.approx(stats.spearmanr(np.abs(a[n] - 0.5).ravel(),
                                                                       np.abs(b[n]).ravel())[0])
    same = similarity.similarities(a, a)
    for values in same.values():
        np.testing.assert_allclose(values, 1.0)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="same shape"):
        similarity.ssim(np.zeros((2, 5, 5)), np.zeros((2, 5, 4)))
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        similarity.hog_similarity(np.zeros((2, 5, 5, 1)), np.zeros((2, 5, 5, 1)))
    with pytest.raises(TypeError, match="numeric"):
        similarity.rank_correlation(np.array([["a"]]), np.array([["b"]]))
