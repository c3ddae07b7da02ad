"""Training curves, confusion matrix and most-confused examples."""
import json

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="matplotlib (the viz extra) is not installed")

from glassnet import viz  # noqa: E402
from viz_helpers import assert_png_drawn, figure_texts  # noqa: E402

HISTORY = {"loss": [1.2, 0.7, 0.45, 0.3], "accuracy": [0.55, 0.78, 0.86, 0.91],
           "val_loss": [1.1, 0.8, 0.6, 0.62], "val_accuracy": [0.6, 0.74, 0.81, 0.8]}


class FakeHistory:
    """What model.fit returns: an object with a .history dict."""
    history = HISTORY


def _curve_data(figure):
    return {ax.get_title(): [tuple(line.get_ydata()) for line in ax.get_lines()] for ax in figure.axes}


@pytest.mark.parametrize("source", ["dict", "object", "json_file", "json_text", "saved_record"])
def test_plot_history_accepts_every_form_and_draws_both_curves(tmp_path, source):
    path = tmp_path / "history.json"
    path.write_text(json.dumps({"history": HISTORY, "params": {"epochs": 4}}))
    history = {"dict": HISTORY, "object": FakeHistory(), "json_file": str(path),
               "json_text": json.dumps(HISTORY), "saved_record": path}[source]
    figure = viz.plot_history(history, to_file=tmp_path / "curves.png")
    assert_png_drawn(tmp_path / "curves.png")
    curves = _curve_data(figure)
    assert set(curves) == {"loss", "accuracy"}
    assert curves["loss"] == [tuple(HISTORY["loss"]), tuple(HISTORY["val_loss"])]
    assert curves["accuracy"][1] == tuple(HISTORY["val_accuracy"])
    assert all(float(tick).is_integer() for tick in figure.axes[0].get_xticks())  # whole epochs


def test_plot_history_metric_selection_and_errors(tmp_path):
    figure = viz.plot_history(HISTORY, metrics=["accuracy"])
    assert [ax.get_title() for ax in figure.axes] == ["accuracy"]
    with pytest.raises(ValueError, match="metrics among"):
        viz.plot_history(HISTORY, metrics=["precision"])
    with pytest.raises(ValueError, match="JSON"):
        viz.plot_history("{not json")
    with pytest.raises(TypeError, match="non-empty"):
        viz.plot_history({})


def test_confusion_matrix_counts_by_hand():
    y_true = [0, 0, 1, 2, 2, 2]
    y_pred = [0, 1, 1, 2, 0, 2]
    expected = np.array([[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    np.testing.assert_array_equal(viz.confusion_matrix(y_true, y_pred), expected)
    one_hot = np.eye(4)[y_pred]  # probabilities / one-hot: argmax, and K from the width
    np.testing.assert_array_equal(viz.confusion_matrix(y_true, one_hot)[:3, :3], expected)
    assert viz.confusion_matrix(y_true, one_hot).shape == (4, 4)
    with pytest.raises(ValueError, match="same number of examples"):
        viz.confusion_matrix([0, 1], [0])


@pytest.mark.parametrize("normalize", [False, True])
def test_plot_confusion_matrix_writes_every_cell(tmp_path, normalize):
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 5, 300)
    y_pred = np.where(rng.random(300) < 0.7, y_true, rng.integers(0, 5, 300))
    names = ["cat", "dog", "bird", "fish", "frog"]
    figure = viz.plot_confusion_matrix(y_true, y_pred, class_names=names, normalize=normalize,
                                       to_file=tmp_path / "cm.png")
    assert_png_drawn(tmp_path / "cm.png")
    texts = figure_texts(figure)
    counts = viz.confusion_matrix(y_true, y_pred)
    cells = counts / counts.sum(axis=1, keepdims=True) if normalize else counts
    for value in cells.ravel():
        assert (f"{value:.2f}" if normalize else str(value)) in texts
    assert set(names) <= set(texts)
    accuracy = np.mean(y_true == y_pred)
    assert any(f"{accuracy:.1%}" in text for text in texts)


def test_most_confused_ranks_confident_mistakes_first():
    y_true = np.array([0, 1, 2, 0, 1])
    probs = np.array([[0.9, 0.1, 0.0],    # right
                      [0.6, 0.4, 0.0],    # wrong, 0.6
                      [0.05, 0.95, 0.0],  # wrong, 0.95
                      [0.2, 0.8, 0.0],    # wrong, 0.8
                      [0.1, 0.9, 0.0]])   # right
    np.testing.assert_array_equal(viz.most_confused(y_true, probs, n=2), [2, 3])
    np.testing.assert_array_equal(viz.most_confused(y_true, probs), [2, 3, 1])
    with pytest.raises(ValueError, match="model.predict"):
        viz.most_confused(y_true, probs[:3])


def test_plot_most_confused_titles_true_and_predicted(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.random((40, 12, 12, 1)).astype(np.float32)
    y_true = rng.integers(0, 3, 40)
    probs = rng.dirichlet(np.ones(3), 40)
    names = ["square", "circle", "ring"]
    figure = viz.plot_most_confused(x, y_true, probs, class_names=names, n=6, to_file=tmp_path / "mc.png")
    assert_png_drawn(tmp_path / "mc.png")
    shown = viz.most_confused(y_true, probs, n=6)
    titles = [ax.get_title() for ax in figure.axes if ax.get_visible()]
    assert len(titles) == len(shown) > 0
    for title, index in zip(titles, shown):
        assert title.startswith(f"#{index}: {names[y_true[index]]}")
        assert names[probs[index].argmax()] in title.split("→")[1]


def test_plot_most_confused_without_mistakes_says_so(tmp_path):
    probs = np.eye(3)[[0, 1, 2]]
    figure = viz.plot_most_confused(np.zeros((3, 8, 8)), [0, 1, 2], probs, to_file=tmp_path / "none.png")
    assert "no misclassified examples" in figure_texts(figure)
