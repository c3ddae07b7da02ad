"""plot_sanity_check: the cascade curve of every measure, the null band, the bar and the judged mean."""
import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="matplotlib (the viz extra) is not installed")

import glassnet as gn  # noqa: E402
from glassnet import explain, layers  # noqa: E402
from glassnet.viz.trust import plot_sanity_check  # noqa: E402


def gap_net(seed):
    return gn.Sequential([layers.Conv2D(4, 3, activation="relu", input_shape=(10, 10, 1)), layers.MaxPooling2D(2),
                          layers.Conv2D(6, 3, padding="same", activation="relu"), layers.GlobalAveragePooling2D(),
                          layers.Dense(3, activation="softmax")], seed=seed)


def images(n, shape, seed):
    return np.random.default_rng(seed).random((n,) + shape).astype(np.float32)


def test_the_curve_shows_every_measure_the_null_band_and_the_bar(tmp_path):
    model = gap_net(seed=1)
    result = explain.sanity_check(model, images(6, (10, 10, 1), seed=2), "guided_backprop", seed=0,
                                  independent=False)
    figure = plot_sanity_check(result, title="guided backprop", to_file=tmp_path / "curve.png")
    assert (tmp_path / "curve.png").stat().st_size > 5000
    ax = figure.axes[0]
    labels = [line.get_label() for line in ax.lines]
    for label in ("Spearman signed", "Spearman |map|", "SSIM", "HOG", "pass bar", "top layer, mean of 5 draws"):
        assert label in labels
    signed = ax.lines[labels.index("Spearman signed")]
    np.testing.assert_allclose(signed.get_ydata(), result.mean)
    assert signed.get_linewidth() > ax.lines[labels.index("SSIM")].get_linewidth()    # the verdict's measure
    bar = ax.lines[labels.index("pass bar")]
    assert bar.get_ydata()[0] == pytest.approx(result.threshold)
    star = ax.lines[labels.index("top layer, mean of 5 draws")]
    assert star.get_ydata()[0] == pytest.approx(result.top["spearman"].mean())
    (band,) = [patch for patch in ax.patches if patch.get_label() == "null (random copies)"]
    low, high = band.get_y(), band.get_y() + band.get_height()          # axhspan: a Rectangle in data y
    pair_means = result.null["spearman"].mean(axis=1)
    assert low == pytest.approx(pair_means.min()) and high == pytest.approx(pair_means.max())
    assert [tick.get_text() for tick in ax.get_xticklabels()] == [f"{k + 1}: {name}"
                                                                  for k, name in enumerate(result.layers)]


def test_a_blank_result_draws_without_curves_and_bad_input_is_named():
    model = gap_net(seed=2)
    result = explain.sanity_check(model, images(3, (10, 10, 1), seed=3),
                                  lambda net, x, target=None: np.zeros(x.shape[:3]), independent=False)
    figure = plot_sanity_check(result)
    assert not any(np.isfinite(line.get_ydata()).any() for line in figure.axes[0].lines
                   if line.get_label() == "Spearman signed")
    with pytest.raises(TypeError, match="explain.sanity_check"):
        plot_sanity_check({"passed": True})
