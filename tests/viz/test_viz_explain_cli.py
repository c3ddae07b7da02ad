"""plot_explanation, load_image and the `glassnet explain` / `glassnet report` subcommands."""
import json

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="matplotlib (the viz extra) is not installed")

import glassnet as gn  # noqa: E402
from glassnet import cli, datasets, explain, layers, viz  # noqa: E402
from viz_helpers import assert_png_drawn, colorbars, figure_texts  # noqa: E402


def _model(gap=False):
    head = [layers.GlobalAveragePooling2D()] if gap else [layers.MaxPooling2D(2), layers.Flatten()]
    return gn.Sequential([layers.Conv2D(4, 3, activation="relu", input_shape=(28, 28, 1))] + head
                         + [layers.Dense(10, activation="softmax")], seed=2)


@pytest.fixture(scope="module")
def image():
    x = np.zeros((28, 28, 1), np.float32)
    x[6:22, 10:16] = 1.0
    return x


@pytest.mark.parametrize("method", [key for key in viz.METHODS if key != "cam"])
def test_plot_explanation_every_method(method, image, tmp_path):
    model = _model()
    names = [f"c{k}" for k in range(10)]
    figure = viz.plot_explanation(model, image, method, class_names=names, label=3, to_file=tmp_path / "e.png")
    assert_png_drawn(tmp_path / "e.png")
    predicted = int(model.predict(image[None]).argmax())
    texts = figure_texts(figure)
    assert any(text.startswith(f"true c3, predicted c{predicted} (") for text in texts)
    assert f"{viz.METHODS[method].title} for c{predicted}" in texts
    (bar,) = colorbars(figure)
    maps = np.asarray(viz.METHODS[method].compute(model, image[None], predicted))[0]
    maps = maps.sum(axis=-1) if maps.ndim == 3 else maps
    assert bar.norm.vmax == pytest.approx(np.abs(maps).max(), rel=1e-5)
    if maps.min() < 0:
        assert bar.norm.vmin == -bar.norm.vmax


def test_plot_explanation_target_cam_and_errors(image):
    model = _model(gap=True)
    figure = viz.plot_explanation(model, image, "cam", target=7)
    assert "CAM for 7" in figure_texts(figure)
    np.testing.assert_allclose(colorbars(figure)[0].norm.vmax, np.abs(explain.cam(model, image[None], 7)).max(),
                               rtol=1e-5)
    with pytest.raises(ValueError, match="method one of"):
        viz.plot_explanation(model, image, "lime")
    with pytest.raises(ValueError, match="one image"):
        viz.plot_explanation(model, np.stack([image, image]))


def test_load_image_converts_and_resizes_like_pillow(tmp_path):
    from PIL import Image
    rng = np.random.default_rng(0)
    pixels = (rng.random((56, 40, 3)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "photo.png")
    gray = viz.load_image(tmp_path / "photo.png", (28, 28, 1))
    expected = np.asarray(Image.fromarray(pixels).convert("L").resize((28, 28), Image.LANCZOS)) / 255.0
    assert gray.shape == (28, 28, 1) and gray.dtype == np.float32
    np.testing.assert_allclose(gray[..., 0], expected, atol=1e-6)
    colour = viz.load_image(tmp_path / "photo.png", (20, 30, 3))
    assert colour.shape == (20, 30, 3) and 0 <= colour.min() and colour.max() <= 1
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ValueError, match="Pillow can read"):
        viz.load_image(tmp_path / "notes.png", (28, 28, 1))
    with pytest.raises(ValueError, match="existing image file"):
        viz.load_image(tmp_path / "missing.png", (28, 28, 1))
    with pytest.raises(ValueError, match=r"\(H, W, 1\)"):
        viz.load_image(tmp_path / "photo.png", (784,))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A small model saved the way `glassnet train` saves it, with a history.json beside it."""
    folder = tmp_path_factory.mktemp("run")
    model = _model()
    model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    model.metadata = {"dataset": "shapes", "class_names": list(datasets.shapes.CLASS_NAMES)}
    model.save(folder / "model.npz")
    (folder / "history.json").write_text(json.dumps({"history": {"loss": [2.0, 1.5], "accuracy": [0.3, 0.5]},
                                                     "epoch": [0, 1]}))
    bare = _model()
    bare.save(folder / "bare.npz")
    return folder


def test_cli_explain_a_test_image(saved, tmp_path, capsys):
    out = tmp_path / "heatmap.png"
    status = cli.main(["explain", "--model", str(saved / "model.npz"), "--index", "23", "--method", "grad_cam",
                       "--test-limit", "50", "--out", str(out)])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert_png_drawn(out)
    (_, _), (x_test, y_test) = datasets.shapes.load_data(n_train=1, n_test=50, seed=0)
    assert captured.out.startswith(f"test image #23: true {datasets.shapes.CLASS_NAMES[y_test[23]]}, predicted ")
    assert str(out) in captured.out


def test_cli_explain_own_image(saved, tmp_path, capsys):
    from PIL import Image
    picture = np.zeros((64, 64), np.uint8)
    picture[16:48, 16:48] = 255
    Image.fromarray(picture).save(tmp_path / "mine.png")
    status = cli.main(["explain", "--model", str(saved / "model.npz"), "--image", str(tmp_path / "mine.png"),
                       "--method", "saliency", "--out", str(tmp_path / "mine-saliency.png")])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert_png_drawn(tmp_path / "mine-saliency.png")
    assert captured.out.startswith(f"{tmp_path / 'mine.png'}: predicted ")


@pytest.mark.parametrize("arguments, status, text", [
    (["--index", "5000", "--test-limit", "50"], 2, "--index 5000 is out of range"),
    (["--image", "{folder}/history.json"], 1, "Pillow can read"),
    (["--index", "1", "--target", "12", "--test-limit", "5"], 1, "target class indices in [0, 9]"),
    (["--index", "1", "--image", "x.png"], 2, "not allowed with argument"),
    (["--method", "lime"], 2, "invalid choice"),
])
def test_cli_explain_errors_are_one_line(saved, tmp_path, capsys, arguments, status, text):
    arguments = [a.replace("{folder}", str(saved)) for a in arguments]
    try:
        result = cli.main(["explain", "--model", str(saved / "model.npz"), "--out", str(tmp_path / "x.png")]
                          + arguments)
    except SystemExit as exit_:  # argparse usage errors exit
        result = exit_.code
    captured = capsys.readouterr()
    assert result == status
    assert text in captured.err and captured.err.count("\n") == 1 and "Traceback" not in captured.err


def test_cli_needs_a_dataset_when_the_model_file_names_none(saved, tmp_path, capsys):
    assert cli.main(["explain", "--model", str(saved / "bare.npz"), "--out", str(tmp_path / "x.png")]) == 2
    assert "--dataset is required" in capsys.readouterr().err
    assert cli.main(["explain", "--model", str(saved / "bare.npz"), "--dataset", "shapes", "--test-limit", "3",
                     "--out", str(tmp_path / "x.png")]) == 0


def test_cli_report_uses_history_beside_the_model(saved, tmp_path, capsys):
    out = tmp_path / "report"
    status = cli.main(["report", "--model", str(saved / "model.npz"), "--test-limit", "40", "--n-explain", "2",
                       "--no-sanity", "--quiet", "--out", str(out)])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert captured.err == ""  # --quiet: no progress bar
    text = (out / "report.html").read_text(encoding="utf-8")
    assert captured.out.splitlines()[-1].startswith(f"Report: {out / 'report.html'}")
    for section in ("summary", "architecture", "training", "accuracy", "explanations"):
        assert f'id="{section}"' in text
    assert "40 test examples" in text and "frame" in text  # class names from the model file
    assert cli.main(["report", "--model", str(saved / "model.npz"), "--history", str(tmp_path / "none.json"),
                     "--out", str(out)]) == 2
    assert "--history" in capsys.readouterr().err


@pytest.fixture(scope="module")
def dead(tmp_path_factory):
    """A model whose convolution is switched off (zero kernel, bias -1 before its ReLU): every Grad-CAM map is 0."""
    model = _model()
    conv = model.layers[0]
    conv.set_weights([np.zeros_like(conv.params["kernel"]), np.full_like(conv.params["bias"], -1.0)])
    model.metadata = {"dataset": "shapes", "class_names": list(datasets.shapes.CLASS_NAMES)}
    path = tmp_path_factory.mktemp("dead") / "dead.npz"
    model.save(path)
    return path


def test_cli_explain_warns_of_a_blank_map(dead, tmp_path, capsys):
    out = tmp_path / "blank.png"
    status = cli.main(["explain", "--model", str(dead), "--index", "0", "--method", "grad_cam", "--test-limit", "5",
                       "--out", str(out)])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert_png_drawn(out)
    (line,) = captured.err.splitlines()
    assert line.startswith("glassnet: warning: the Grad-CAM map for class ") and "is blank (every pixel 0)" in line
    figure = viz.plot_explanation(gn.load_model(dead), np.zeros((28, 28, 1), np.float32), "grad_cam")
    assert colorbars(figure) == [] and any("blank Grad-CAM map" in text for text in figure_texts(figure))
    # a map with evidence: no warning
    warnings = []
    viz.plot_explanation(_model(), np.eye(28, dtype=np.float32)[..., None], "saliency", on_warning=warnings.append)
    assert warnings == []


def test_cli_report_warns_of_blank_maps_and_they_fail(dead, tmp_path, capsys):
    out = tmp_path / "report"
    status = cli.main(["report", "--model", str(dead), "--test-limit", "12", "--n-explain", "3", "--quiet",
                       "--out", str(out)])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    warnings = [line for line in captured.err.splitlines() if line.startswith("glassnet: warning: ")]
    assert any(line.startswith("glassnet: warning: Grad-CAM: 3 of 3 explained maps are blank (constant), 3 of the "
                               "sanity-checked ones") for line in warnings), captured.err
    text = (out / "report.html").read_text(encoding="utf-8")
    row = text.split('data-method="grad_cam">', 1)[1].split("</tr>", 1)[0]
    assert "fails sanity check" in row and "all 3 maps are blank" in row and "3 of 3" in row
