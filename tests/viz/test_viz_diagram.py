"""plot_model: graphviz when `dot` is there, a matplotlib drawing otherwise; every layer listed."""
import re
import shutil

import pytest

pytest.importorskip("matplotlib", reason="matplotlib (the viz extra) is not installed")

import glassnet as gn  # noqa: E402
from glassnet import layers, viz  # noqa: E402
from glassnet.viz import diagram  # noqa: E402
from viz_helpers import assert_png_drawn, figure_texts  # noqa: E402

HAS_DOT = shutil.which("dot") is not None


@pytest.fixture
def model():
    """Seed 000's Keras mnist_cnn: 1,199,882 parameters."""
    return gn.Sequential([
        layers.Conv2D(32, 3, activation="relu", input_shape=(28, 28, 1)),
        layers.Conv2D(64, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Dropout(0.25),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dropout(0.5),
        layers.Dense(10, activation="softmax", name="preds"),
    ])


def _expected(model):
    """(title, output shape, params) each box must show, in order."""
    return [(f"{layer.name} ({type(layer).__name__})", str(layer.output_shape), f"{layer.count_params():,} params")
            for layer in model.layers]


def test_model_to_dot_has_a_node_per_layer_in_order(model):
    source = viz.model_to_dot(model)
    nodes = re.findall(r"^\s*n(\d+) \[label=<(.*)>\];$", source, flags=re.M)
    assert len(nodes) == len(model.layers) + 1  # the input box first
    assert "(None, 28, 28, 1)" in nodes[0][1]
    for (_, label), (title, shape, params) in zip(nodes[1:], _expected(model)):
        assert title in label and shape in label and params in label
    assert re.findall(r"n(\d+) -> n(\d+);", source) == [(str(i), str(i + 1)) for i in range(len(model.layers))]
    assert "1,179,776 params" in source and "32 filters 3x3, relu" in source


def test_model_to_dot_escapes_names():
    model = gn.Sequential([layers.Dense(2, input_shape=(3,), name="a<b>&c")])
    source = viz.model_to_dot(model)
    assert "a&lt;b&gt;&amp;c" in source and "a<b>" not in source


@pytest.mark.skipif(not HAS_DOT, reason="graphviz's `dot` is not installed (apt install graphviz)")
def test_plot_model_graphviz_png_and_svg_list_every_layer(model, tmp_path):
    figure = viz.plot_model(model, to_file=tmp_path / "model.png", engine="graphviz")
    assert_png_drawn(tmp_path / "model.png")
    assert figure.dot_source == viz.model_to_dot(model)
    viz.plot_model(model, to_file=tmp_path / "model.svg")  # auto picks graphviz here
    svg = (tmp_path / "model.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    for title, shape, params in _expected(model):
        assert title in svg and shape in svg and params in svg
    viz.plot_model(model, to_file=tmp_path / "model.dot")
    assert (tmp_path / "model.dot").read_text() == figure.dot_source
    figure.savefig(tmp_path / "figure.png")
    assert_png_drawn(tmp_path / "figure.png")


def test_plot_model_matplotlib_fallback_lists_every_layer(model, tmp_path):
    figure = viz.plot_model(model, to_file=tmp_path / "model.png", engine="matplotlib")
    assert_png_drawn(tmp_path / "model.png")
    assert not hasattr(figure, "dot_source")
    texts = figure_texts(figure)  # per box: its title, then one line of details
    boxes = list(zip(texts[0::2], texts[1::2]))
    assert boxes[0] == ("input", "(None, 28, 28, 1)")
    assert [title for title, _ in boxes[1:]] == [title for title, _, _ in _expected(model)]
    for (_, shape, params), (_, details) in zip(_expected(model), boxes[1:]):
        assert shape in details and params in details


def test_auto_falls_back_to_matplotlib_without_dot(model, tmp_path, monkeypatch):
    monkeypatch.setattr(diagram.shutil, "which", lambda name: None)
    figure = viz.plot_model(model, to_file=tmp_path / "model.png")
    assert not hasattr(figure, "dot_source")
    assert "preds (Dense)" in figure_texts(figure)
    assert_png_drawn(tmp_path / "model.png")
    with pytest.raises(RuntimeError, match="engine='auto'"):
        viz.plot_model(model, engine="graphviz")


def test_plot_model_rejects_bad_arguments(model):
    with pytest.raises(ValueError, match="engine among"):
        viz.plot_model(model, engine="tikz")
    with pytest.raises(ValueError, match="rankdir"):
        viz.model_to_dot(model, rankdir="BT")
    unbuilt = gn.Sequential([layers.Dense(3)])
    with pytest.raises(RuntimeError, match="built model"):
        viz.plot_model(unbuilt)


def test_show_flags_drop_shapes_and_params(model):
    source = viz.model_to_dot(model, show_shapes=False, show_params=False)
    assert "(None, 26, 26, 32)" not in source and "params" not in source
    assert "conv2d" in source
