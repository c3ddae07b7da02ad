"""One InputLayer for Sequential and gn.Model: Keras 3's arguments, config round trip, the files and
summaries saved before the two InputLayer classes were merged (tests/fixtures/saved, written by main at
31d5f84 on 2026-12-07)."""
import json
from pathlib import Path

import numpy as np
import pytest

import glassnet as gn
from glassnet import functional, layers
from glassnet.layers.base import _REGISTRY
from tests import keras_oracle

SAVED = Path(__file__).resolve().parents[1] / "fixtures" / "saved"


def test_one_registered_class_serves_both_apis():
    assert functional.InputLayer is layers.InputLayer is _REGISTRY["InputLayer"]
    tensor = gn.Input((4,), name="features")
    graph = gn.Model(tensor, layers.Dense(2)(tensor))
    assert type(graph.layers[0]) is layers.InputLayer and graph.layers[0].shape == (4,)
    sequential = gn.Sequential([layers.InputLayer(shape=(4,)), layers.Dense(2)])
    assert sequential.built and sequential.input_shape == (None, 4)
    # the layer gn.Input made declares a Sequential's input as well
    assert gn.Sequential([graph.layers[0], layers.Dense(3)]).input_shape == (None, 4)


@pytest.mark.parametrize("keywords", [dict(shape=(5, 5, 2)), dict(input_shape=(5, 5, 2)),
                                      dict(batch_shape=(None, 5, 5, 2)), dict(shape=(5, 5, 2), batch_size=8),
                                      dict(batch_shape=[8, 5, 5, 2], dtype="float64", name="pixels")])
def test_config_round_trips_through_json(keywords):
    layer = layers.InputLayer(**keywords)
    config = json.loads(json.dumps(layer.get_config()))
    clone = layers.deserialize({"class_name": "InputLayer", "config": config})
    assert clone.get_config() == layer.get_config()
    expected = tuple(keywords.get("batch_shape", (keywords.get("batch_size"), 5, 5, 2)))
    assert clone.shape == (5, 5, 2) and clone.batch_shape == expected
    assert clone.built and clone.count_params() == 0 and "input_shape" not in config


def test_config_matches_keras3_keys():
    keras = keras_oracle.load()
    theirs = keras.layers.InputLayer(shape=(5, 5, 2), batch_size=4, name="pixels").get_config()
    ours = layers.InputLayer(shape=(5, 5, 2), batch_size=4, name="pixels").get_config()
    for key in ("batch_shape", "name", "dtype"):
        assert ours[key] == (list(theirs[key]) if key == "batch_shape" else theirs[key])
    # a Keras 3 config (its extra keys aside) builds ours
    clone = layers.InputLayer.from_config({k: theirs[k] for k in ("batch_shape", "dtype", "name")})
    assert clone.batch_shape == (4, 5, 5, 2)


def test_an_older_sequential_declaration_config_still_loads():
    # the Sequential-only class (before the merge) saved "shape" and "batch_size"
    layer = layers.InputLayer.from_config({"name": "old", "dtype": "float32", "trainable": True,
                                           "shape": [3, 4], "batch_size": None})
    assert layer.shape == (3, 4) and layer.get_config()["batch_shape"] == [None, 3, 4]


def test_identity_forward_and_backward():
    layer = layers.InputLayer(shape=(3,))
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert layer.forward(x) is x
    dy = np.ones_like(x)
    assert layer.backward(dy) is dy
    assert layer.vjp(None, dy, need_dx=False) == (None, {})


@pytest.mark.parametrize("keywords, error, match", [
    (dict(), ValueError, "one of shape"),
    (dict(shape=(3,), input_shape=(3,)), ValueError, "2 of them"),
    (dict(batch_shape=(None,)), ValueError, "at least one axis"),
    (dict(batch_shape="28x28"), TypeError, "batch_shape as a tuple"),
    (dict(shape=(3,), batch_size="8"), TypeError, "batch_size as a positive int"),
    (dict(shape=(3,), batch_size=True), TypeError, "batch_size as a positive int"),
    (dict(shape=(3,), batch_size=0), ValueError, "batch_size as a positive int"),
    (dict(shape=(3,), dtype="int8"), ValueError, "dtype 'float32' or 'float64'"),
])
def test_bad_arguments_raise_glassnets_errors(keywords, error, match):
    with pytest.raises(error, match=match):
        layers.InputLayer(**keywords)


def test_input_takes_keras3_batch_arguments():
    tensor = gn.Input(batch_shape=(16, 7), name="rows")
    assert tensor.shape == (None, 7) and tensor.history.layer.batch_shape == (16, 7)
    assert gn.Input(7, batch_size=2).history.layer.batch_size == 2


def _predictions():
    return np.load(SAVED / "expected_predictions_2026-12-07.npz")


@pytest.mark.parametrize("stem, key", [("graph_model", "graph"), ("sequential_input_layer", "seq")])
def test_files_saved_before_the_merge_load_predict_and_summarize_the_same(stem, key):
    model = gn.load_model(SAVED / f"{stem}_2026-12-07.npz")
    expected = _predictions()
    np.testing.assert_array_equal(model.predict(expected[f"{key}_x"]), expected[f"{key}_y"])
    lines = []
    model.summary(print_fn=lines.append)
    summary = "graph" if key == "graph" else "sequential"
    assert "\n".join(lines) + "\n" == (SAVED / f"{summary}_summary_2026-12-07.txt").read_text()


def test_graph_model_config_round_trip_keeps_the_input_layer(tmp_path):
    model = gn.load_model(SAVED / "graph_model_2026-12-07.npz")
    config = json.loads(json.dumps(model.get_config()))
    assert config["layers"][0]["class_name"] == "InputLayer"
    clone = gn.Model.from_config(config)
    assert clone.get_config() == model.get_config()
    model.save(tmp_path / "again.npz")
    again = gn.load_model(tmp_path / "again.npz")
    x = _predictions()["graph_x"]
    np.testing.assert_array_equal(again.predict(x), model.predict(x))
