"""Filters, feature maps, heatmap overlays (sign kept, colorbar) and activation maximization."""
import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="matplotlib (the viz extra) is not installed")

import glassnet as gn  # noqa: E402
from glassnet import explain, layers, viz  # noqa: E402
from glassnet.viz.images import SIGNED_CMAP, UNSIGNED_CMAP, color_scale  # noqa: E402
from viz_helpers import assert_png_drawn, colorbars, image_axes, rgb_in  # noqa: E402


@pytest.fixture(scope="module")
def model():
    return gn.Sequential([
        layers.Conv2D(6, 3, activation="relu", input_shape=(16, 16, 1)),
        layers.MaxPooling2D(2),
        layers.Conv2D(12, 3, activation="relu"),
        layers.Flatten(),
        layers.Dense(4, activation="softmax"),
    ], seed=3)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    x = 0.1 * rng.random((3, 16, 16, 1)).astype(np.float32)
    x[:, 4:12, 5:11] += 0.8
    return x


def test_color_scale_keeps_zero_in_the_middle_for_signed_maps():
    name, norm, signed = color_scale(np.array([[-0.2, 0.5], [0.1, 0.0]]))
    assert (name, signed) == (SIGNED_CMAP, True)
    assert (norm.vmin, norm.vmax) == (-0.5, 0.5) and norm(0.0) == 0.5
    name, norm, signed = color_scale(np.array([[0.0, 2.0], [1.0, 0.5]]))
    assert (name, signed) == (UNSIGNED_CMAP, False)
    assert (norm.vmin, norm.vmax) == (0.0, 2.0)
    assert color_scale(np.zeros((2, 2)), signed=True)[1].vmax == 1.0  # all-zero map: a usable scale
    assert color_scale(np.ones((2, 2)), cmap="magma")[0] == "magma"


def test_signed_heatmap_shows_sign_as_colour_with_symmetric_colorbar(tmp_path):
    image = np.zeros((20, 20))
    heatmap = np.where(np.arange(20) < 10, 1.0, -1.0)[None, :].repeat(20, axis=0) * 3e-3
    figure = viz.plot_heatmaps(image, heatmap, titles=["grad"], to_file=tmp_path / "signed.png")
    assert_png_drawn(tmp_path / "signed.png")
    (bar,) = colorbars(figure)
    assert bar.norm.vmin == pytest.approx(-3e-3) and bar.norm.vmax == pytest.approx(3e-3)
    assert bar.cmap.name == SIGNED_CMAP
    (ax,) = image_axes(figure)
    red, _, blue = rgb_in(figure, ax, 0.5, 0.25)  # positive half
    assert red > blue + 0.2
    red, _, blue = rgb_in(figure, ax, 0.5, 0.75)  # negative half
    assert blue > red + 0.2


def test_unsigned_heatmap_uses_sequential_scale_from_zero_and_stretches_coarse_maps(tmp_path):
    image = np.zeros((28, 28, 1))
    coarse = np.zeros((7, 7))
    coarse[0, 0] = 5.0  # covers pixels [0:4, 0:4] once stretched
    figure = viz.plot_heatmaps(image[None], coarse[None], to_file=tmp_path / "cam.png")
    assert_png_drawn(tmp_path / "cam.png")
    (bar,) = colorbars(figure)
    assert (bar.norm.vmin, bar.norm.vmax) == (0.0, 5.0) and bar.cmap.name == UNSIGNED_CMAP
    (ax,) = image_axes(figure)
    hot = rgb_in(figure, ax, 2 / 28, 2 / 28)
    cold = rgb_in(figure, ax, 20 / 28, 20 / 28)
    assert hot[0] > 0.4 and hot[0] > hot[2] + 0.2  # red where the map is high
    assert np.allclose(cold, cold[0], atol=0.02) and cold[0] < 0.2  # the dark image shows through


def test_heatmaps_grid_one_colorbar_per_panel_and_channels_summed(images, tmp_path):
    maps = np.random.default_rng(1).normal(size=(3, 16, 16, 2))
    figure = viz.plot_heatmaps(images, maps, titles=["a", "b", "c"], max_cols=2, suptitle="test",
                               to_file=tmp_path / "grid.png")
    assert_png_drawn(tmp_path / "grid.png")
    panels = image_axes(figure)
    assert [ax.get_title() for ax in panels] == ["a", "b", "c"]
    bars = colorbars(figure)
    assert len(bars) == 3
    for bar, m in zip(bars, maps.sum(axis=-1)):
        assert bar.norm.vmax == pytest.approx(np.abs(m).max()) and bar.norm.vmin == -bar.norm.vmax
    alone = viz.plot_heatmaps(images, maps, overlay=False)
    np.testing.assert_allclose(image_axes(alone)[0].images[0].get_array(), maps[0].sum(axis=-1))


def test_heatmaps_reject_mismatched_inputs(images):
    with pytest.raises(ValueError, match="one heatmap per image"):
        viz.plot_heatmaps(images, np.zeros((2, 16, 16)))
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        viz.plot_heatmaps(images, np.zeros(5))
    with pytest.raises(ValueError, match="3 titles"):
        viz.plot_heatmaps(images, np.zeros((3, 16, 16)), titles=["x"])
    with pytest.raises(TypeError, match="numeric"):
        viz.plot_heatmaps(np.array([["a"]]), np.zeros((1, 1)))


def test_plot_filters_from_model_shows_each_kernel_on_a_zero_centred_scale(model, tmp_path):
    figure = viz.plot_filters(model, to_file=tmp_path / "filters.png")
    assert_png_drawn(tmp_path / "filters.png")
    kernels = explain.filters(model)  # (F, KH, KW, C)
    panels = image_axes(figure)
    assert len(panels) == len(kernels) == 6
    for ax, kernel in zip(panels, kernels):
        np.testing.assert_allclose(ax.images[0].get_array(), kernel[..., 0])
    (bar,) = colorbars(figure)
    assert bar.norm.vmax == pytest.approx(np.abs(kernels).max()) and bar.norm.vmin == -bar.norm.vmax
    assert "conv2d" in figure._suptitle.get_text()
    deeper = viz.plot_filters(model, layer=2, max_filters=5)  # 6 input channels: mean, 5 shown
    assert len(image_axes(deeper)) == 5
    np.testing.assert_allclose(image_axes(deeper)[1].images[0].get_array(),
                               explain.filters(model, 2)[1].mean(axis=-1), rtol=1e-6)
    one = viz.plot_filters(model, layer=2, channel=4)
    np.testing.assert_allclose(image_axes(one)[0].images[0].get_array(), explain.filters(model, 2)[0][..., 4])


def test_plot_filters_from_arrays_rgb_and_errors(tmp_path):
    rgb = np.random.default_rng(2).normal(size=(4, 5, 5, 3))
    figure = viz.plot_filters(rgb, to_file=tmp_path / "rgb.png")
    assert_png_drawn(tmp_path / "rgb.png")
    assert all(ax.images[0].get_array().shape == (5, 5, 3) for ax in image_axes(figure))
    with pytest.raises(ValueError, match=r"\(F, KH, KW, C\)"):
        viz.plot_filters(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="channel in"):
        viz.plot_filters(rgb, channel=3)


def test_plot_feature_maps_shows_input_then_every_channel(model, images, tmp_path):
    figure = viz.plot_feature_maps(model, images[0], layer=0, to_file=tmp_path / "maps.png")
    assert_png_drawn(tmp_path / "maps.png")
    maps = explain.feature_maps(model, images[:1], 0)[0]
    panels = image_axes(figure)
    assert len(panels) == 1 + maps.shape[-1]
    assert panels[0].get_title() == "input"
    for c, ax in enumerate(panels[1:]):
        np.testing.assert_allclose(ax.images[0].get_array(), maps[..., c])
    limited = viz.plot_feature_maps(model, images[:1], layer=2, max_maps=4)
    assert len(image_axes(limited)) == 5
    from_array = viz.plot_feature_maps(maps, to_file=tmp_path / "array.png")
    assert len(image_axes(from_array)) == maps.shape[-1]
    with pytest.raises(ValueError, match="an image x"):
        viz.plot_feature_maps(model)


def test_plot_activation_maximization_one_image_per_class(model, tmp_path):
    names = ["a", "b", "c", "d"]
    figure = viz.plot_activation_maximization(model, class_names=names, steps=5, seed=0,
                                              to_file=tmp_path / "am.png")
    assert_png_drawn(tmp_path / "am.png")
    panels = image_axes(figure)
    assert [ax.get_title() for ax in panels] == names
    expected = explain.activation_maximization(model, -1, [0, 1, 2, 3], steps=5, seed=0)
    shown = panels[2].images[0].get_array()
    target = expected[2, ..., 0]
    np.testing.assert_allclose(shown, (target - target.min()) / (target.max() - target.min()), atol=1e-5)
    some = viz.plot_activation_maximization(np.zeros((2, 8, 8)) + np.arange(8), indices=[3, 7])
    assert [ax.get_title() for ax in image_axes(some)] == ["3", "7"]
    with pytest.raises(ValueError, match="2 indices"):
        viz.plot_activation_maximization(np.zeros((2, 8, 8)), indices=[1])
