"""Everything downstream on models imported from Keras and ONNX files: predictions against the producers'
recorded outputs, for chains (read as Sequential) and graphs (residual blocks and concatenated branches,
read as gn.Model): summary, diagram, every explain method, the HTML report, fine-tuning with fit, and
the command line (``glassnet report`` / ``glassnet explain --image``).

The files in fixtures/ were written by Keras 3 and torch.onnx.export (tests/interop/make_fixtures.py);
this module needs neither.
"""
import os

import numpy as np
import pytest

import glassnet as gn
from glassnet import cli, explain

pytest.importorskip("h5py", reason="h5py (glassnet[interop]) is not installed")
pytest.importorskip("onnx", reason="onnx (glassnet[interop]) is not installed")

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
#: file -> the key of its producer's probabilities in expected.npz; the *_resnet files are graphs (gn.Model)
FILES = {"keras_cnn.keras": "keras", "keras_cnn.h5": "keras", "torch_cnn.onnx": "torch",
         "keras_resnet.keras": "keras_resnet", "keras_resnet.h5": "keras_resnet", "torch_resnet.onnx": "torch_resnet"}


@pytest.fixture(scope="module")
def expected():
    with np.load(os.path.join(FIXTURES, "expected.npz")) as data:
        return dict(data)


@pytest.fixture(scope="module", params=sorted(FILES))
def imported(request):
    return request.param, gn.load_model(os.path.join(FIXTURES, request.param))


def test_predictions_equal_the_producers(imported, expected):
    name, model = imported
    np.testing.assert_allclose(model.predict(expected["x"]), expected[FILES[name]], atol=1e-5)


def test_summary_and_diagram(imported, tmp_path):
    name, model = imported
    lines = []
    model.summary(print_fn=lines.append)
    assert lines[0].startswith("Model: ")
    assert f"Total params: {model.count_params():,}" in lines
    assert any("Conv2D" in line for line in lines)
    if "resnet" in name:                     # a graph: Keras 2's "Connected to" column names each call's inputs
        assert type(model) is gn.Model and "Connected to" in lines[2]
        assert any(("Add" in line or "Concatenate" in line) for line in lines)
    figure = gn.viz.plot_model(model, to_file=tmp_path / "model.png", engine="matplotlib")
    assert figure is not None and (tmp_path / "model.png").stat().st_size > 1000


def test_every_explain_method(imported, expected):
    name, model = imported
    x = expected["x"][:2]
    conv = [layer.name for layer in model.layers if type(layer).__name__ == "Conv2D"]
    for method in (explain.saliency, explain.grad_cam, explain.grad_cam_plus_plus, explain.guided_grad_cam):
        maps = method(model, x)
        assert maps.shape[:3] == (2, 28, 28) and np.isfinite(maps).all() and np.abs(maps).max() > 0
    assert explain.input_gradients(model, x, modifier="guided").shape == (2, 28, 28, 1)
    assert explain.occlusion(model, x, window=7).shape == (2, 28, 28)
    assert explain.integrated_gradients(model, x, steps=8).shape == (2, 28, 28, 1)
    assert explain.smooth_grad(model, x, samples=4, seed=0).shape == (2, 28, 28, 1)
    assert explain.feature_maps(model, x, conv[0]).shape[:1] == (2,)
    assert explain.filters(model, conv[0]).shape[0] == model.get_layer(conv[0]).filters
    assert explain.activation_maximization(model, -1, 3, steps=3, seed=0).shape[-3:] == (28, 28, 1)
    curves = explain.deletion_insertion(model, x, explain.saliency(model, x), steps=4)
    assert curves is not None
    assert isinstance(explain.sanity_check(model, x, "saliency").passed, (bool, np.bool_))
    if name.endswith(".onnx"):               # a global-average-pooling head: CAM applies
        assert explain.cam(model, x).shape == (2, 28, 28)


def test_fine_tuning_with_fit(imported, expected):
    name, model = imported
    x, y = expected["x"], np.arange(8) % 10
    model.compile(optimizer=gn.optimizers.SGD(learning_rate=0.5), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    before = model.evaluate(x, y)[0]
    weights = model.get_weights()
    history = model.fit(x, y, epochs=3, batch_size=8, verbose=0, seed=0)
    assert history.history["loss"][-1] < before
    assert any(not np.array_equal(a, b) for a, b in zip(weights, model.get_weights()))


def test_report_on_an_imported_model(tmp_path, expected):
    model = gn.load_model(os.path.join(FIXTURES, "keras_cnn.keras"))
    path = gn.viz.report(model, expected["x"], np.arange(8) % 10, tmp_path, n_explain=2, sanity=False,
                         progress=False, methods=["saliency", "grad_cam"], maximization_steps=2)
    text = open(path, encoding="utf-8").read()
    assert 'id="summary"' in text and "conv2" in text and 'id="explanations"' in text


@pytest.mark.parametrize("file", ["torch_cnn.onnx", "keras_resnet.keras"])
def test_cli_report(tmp_path, capsys, file):
    """glassnet report on an ONNX chain and a Keras graph."""
    out = tmp_path / "report"
    status = cli.main(["report", "--model", os.path.join(FIXTURES, file), "--dataset", "mnist-t10k",
                       "--test-limit", "30", "--n-explain", "1", "--no-sanity", "--quiet", "--out", str(out)])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert (out / "report.html").stat().st_size > 10000


@pytest.mark.parametrize("file", ["torch_cnn.onnx", "torch_resnet.onnx"])
def test_cli_explain_own_image_with_an_onnx_model(tmp_path, capsys, file):
    from PIL import Image
    picture = np.zeros((40, 40), np.uint8)
    picture[8:32, 16:24] = 255
    Image.fromarray(picture).save(tmp_path / "photo.png")
    status = cli.main(["explain", "--model", os.path.join(FIXTURES, file), "--image",
                       str(tmp_path / "photo.png"), "--method", "grad_cam", "--out", str(tmp_path / "e.png")])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert captured.out.startswith(f"{tmp_path / 'photo.png'}: predicted ")
    assert (tmp_path / "e.png").stat().st_size > 1000


def test_cli_summary_of_a_keras_file(capsys):
    assert cli.main(["summary", "--model", os.path.join(FIXTURES, "keras_cnn.h5")]) == 0
    assert "conv1 (Conv2D)" in capsys.readouterr().out
