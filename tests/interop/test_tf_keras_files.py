"""Keras 2 ``.h5`` files written by tf.keras itself (TensorFlow 2.21, tf-keras 2.21), read without TensorFlow.

The files and what tf.keras predicted for them were made once by ``make_tf_keras_fixtures.py`` in a
separate virtualenv (TensorFlow pins its own NumPy and Keras): a Sequential CNN, a Functional graph
with residual Adds and a Concatenate, and a ``channels_first`` Functional graph with two outputs.
glassnet's predictions must equal tf.keras's within 1e-5.

The other way round, the same script saved glassnet models as ``.h5`` and opened them with
``tf_keras.models.load_model``: the configuration glassnet writes today must be the one tf.keras
opened, and glassnet's predictions those tf.keras made.
"""
import json
from pathlib import Path

import numpy as np
import pytest

import glassnet as gn

pytest.importorskip("h5py", reason="h5py (glassnet[interop]) is not installed")

FOLDER = Path(__file__).parent / "fixtures" / "tf_keras"


@pytest.fixture(scope="module")
def expected():
    with np.load(FOLDER / "expected.npz") as arrays:
        return dict(arrays)


@pytest.mark.parametrize("name", ["sequential", "residual_concat", "channels_first"])
def test_the_fixtures_come_from_tf_keras(name):
    import h5py
    with h5py.File(FOLDER / f"{name}.h5", "r") as handle:
        assert handle.attrs["backend"] == "tensorflow"
        assert str(handle.attrs["keras_version"]).startswith("2.")
        assert "model_weights" in handle


@pytest.mark.parametrize("name, inputs, kind", [("sequential", "x", gn.Sequential),
                                                ("residual_concat", "x_graph", gn.Model)])
def test_channels_last_files_predict_as_tf_keras(expected, name, inputs, kind):
    model = gn.load_model(FOLDER / f"{name}.h5")
    assert type(model) is kind
    got = model.predict(expected[inputs])
    assert got.max() < 0.95                     # the fixture's softmax is not saturated: the check has teeth
    np.testing.assert_allclose(got, expected[name], atol=1e-5)


def test_channels_first_graph_becomes_channels_last_and_predicts_as_tf_keras(expected):
    model = gn.load_model(FOLDER / "channels_first.h5")
    assert type(model) is gn.Model
    assert model.input_shape == (None, 10, 10, 2)
    concat = model.get_layer("channels")
    assert concat.axis in (-1, 3)               # Keras's axis=1 of (N, C, H, W) is glassnet's channel axis
    classes, value = model.predict(expected["x_nchw"].transpose(0, 2, 3, 1))
    assert classes.max() < 0.95
    np.testing.assert_allclose(classes, expected["channels_first_classes"], atol=1e-5)
    np.testing.assert_allclose(value, expected["channels_first_value"], atol=1e-5)


def _renamed(config):
    """A model configuration with the model's and layers' names numbered in order of appearance (glassnet's
    automatic names count the layers made before in the process)."""
    names = [config["config"]["name"]] + [entry["config"]["name"] for entry in config["config"]["layers"]]
    numbered = {name: f"name_{i}" for i, name in enumerate(dict.fromkeys(names))}

    def walk(value):
        if isinstance(value, dict):
            return {key: walk(item) for key, item in value.items()}
        if isinstance(value, list):
            return [walk(item) for item in value]
        return numbered.get(value, value) if isinstance(value, str) else value
    return walk(config)


@pytest.mark.parametrize("name", ["resnet8", "every_layer", "depthwise_family"])
def test_h5_files_glassnet_writes_open_in_tf_keras(expected, name, tmp_path):
    import h5py
    from make_tf_keras_fixtures import glassnet_written
    model = glassnet_written()[name]
    model.save(tmp_path / "m.h5")
    with h5py.File(tmp_path / "m.h5", "r") as handle:
        written = json.loads(handle.attrs["model_config"])
    assert _renamed(written) == _renamed(json.loads(str(expected[f"glassnet_{name}_config"])))
    np.testing.assert_allclose(model.predict(expected[f"glassnet_{name}_x"]), expected[f"glassnet_{name}_tf"],
                               atol=1e-5)
