"""Keras's names and shapes: gn.models.*, to_json / model_from_json, Layer.from_config, InputLayer,
utils.plot_model, and the clear errors for Keras idioms glassnet does not have."""
import json
import os
import zipfile

import numpy as np
import pytest

import glassnet as gn
import keras_oracle
from glassnet import layers
from glassnet.layers.base import _REGISTRY


def mnist_convnet(first):
    """Keras 3's "Simple MNIST convnet" example, with ``first`` as its input entry."""
    return gn.models.Sequential([
        first,
        layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(10, activation="softmax"),
    ])


def test_input_layer_gives_keras3_shapes_and_parameter_count():
    keras = keras_oracle.load()
    ours = mnist_convnet(layers.InputLayer(shape=(28, 28, 1)))
    theirs = keras.Sequential([keras.Input(shape=(28, 28, 1))] + [
        keras.layers.Conv2D(32, (3, 3), activation="relu"), keras.layers.MaxPooling2D((2, 2)),
        keras.layers.Conv2D(64, (3, 3), activation="relu"), keras.layers.MaxPooling2D((2, 2)),
        keras.layers.Flatten(), keras.layers.Dropout(0.5), keras.layers.Dense(10, activation="softmax")])
    assert ours.built and ours.input_shape == (None, 28, 28, 1)
    assert ours.count_params() == theirs.count_params() == 34826       # the number Keras's example prints
    assert len(ours.layers) == len(theirs.layers) == 7                 # the InputLayer is not a layer of the chain
    assert [l.output_shape for l in ours.layers] == [tuple(l.output.shape) for l in theirs.layers]
    for keyword in ({"input_shape": (28, 28, 1)}, {"batch_shape": (None, 28, 28, 1)}):
        assert mnist_convnet(layers.InputLayer(**keyword)).count_params() == 34826


def test_input_layer_only_first_and_with_one_shape():
    model = gn.Sequential([layers.Dense(2, input_shape=(3,))])
    with pytest.raises(ValueError, match="first"):
        model.add(layers.InputLayer(shape=(3,)))
    with pytest.raises(ValueError, match="one of shape"):
        layers.InputLayer()


def test_models_namespace_as_keras_spells_it(tmp_path):
    model = mnist_convnet(layers.InputLayer(shape=(28, 28, 1)))
    assert gn.models.Sequential is gn.Sequential
    model.save(tmp_path / "m.npz")
    loaded = gn.models.load_model(tmp_path / "m.npz")
    x = np.random.default_rng(0).random((2, 28, 28, 1), dtype=np.float32)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    # the presets moved to glassnet.presets; the old names still resolve
    assert gn.models.lenet5 is gn.presets.lenet5 and gn.models.get is gn.presets.get
    with pytest.raises(AttributeError):
        gn.models.no_such_thing


def test_to_json_and_model_from_json_round_trip():
    model = mnist_convnet(layers.InputLayer(shape=(28, 28, 1)))
    text = model.to_json()
    description = json.loads(text)
    assert description["class_name"] == "Sequential"
    assert [l["class_name"] for l in description["config"]["layers"]][:2] == ["Conv2D", "MaxPooling2D"]
    clone = gn.models.model_from_json(text)
    assert clone.to_json() == text
    clone.set_weights(model.get_weights())
    x = np.random.default_rng(1).random((3, 28, 28, 1), dtype=np.float32)
    np.testing.assert_array_equal(clone.predict(x), model.predict(x))
    assert json.loads(model.to_json(indent=2)) == description           # kwargs go to json.dumps
    fresh = gn.models.clone_model(model)
    assert fresh.to_json() != "" and not np.array_equal(fresh.get_weights()[0], model.get_weights()[0])


def test_model_from_json_refuses_keras_json_and_garbage():
    keras = keras_oracle.load()
    theirs = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="Keras 3"):
        gn.models.model_from_json(theirs.to_json())
    with pytest.raises(ValueError, match="invalid JSON"):
        gn.models.model_from_json("{not json")
    with pytest.raises(TypeError, match="JSON string"):
        gn.models.model_from_json({"class_name": "Sequential"})


@pytest.mark.parametrize("name", sorted(_REGISTRY))
def test_every_layer_class_has_from_config(name):
    cls = _REGISTRY[name]
    examples = {"Conv2D": dict(filters=3, kernel_size=2, strides=2, padding="same", activation="relu"),
                "Dense": dict(units=4, activation="tanh", use_bias=False), "Dropout": dict(rate=0.3, seed=1),
                "Reshape": dict(target_shape=(2, -1)), "Activation": dict(activation="sigmoid"),
                "InputLayer": dict(input_shape=(5, 5, 2)), "LeakyReLU": dict(alpha=0.2),
                "ZeroPadding2D": dict(padding=1), "DepthwiseConv2D": dict(kernel_size=3, depth_multiplier=2),
                "SeparableConv2D": dict(filters=4, kernel_size=3), "Rescaling": dict(scale=1 / 255, offset=0.5),
                "RandomCrop": dict(height=4, width=3), "Cropping2D": dict(cropping=1)}
    layer = cls(**examples.get(name, {}))
    config = json.loads(json.dumps(layer.get_config()))
    clone = cls.from_config(config)
    assert type(clone) is cls and clone.get_config() == layer.get_config()
    with pytest.raises(TypeError, match="get_config"):
        cls.from_config([("name", "x")])


def test_sequentials_input_layer_has_from_config_too():
    layer = layers.InputLayer(shape=(5, 5, 2), name="pixels")
    clone = layers.InputLayer.from_config(json.loads(json.dumps(layer.get_config())))
    assert clone.get_config() == layer.get_config() and clone.shape == (5, 5, 2)


def test_plot_model_as_keras_utils(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib (the viz extra) is not installed")
    model = mnist_convnet(layers.InputLayer(shape=(28, 28, 1)))
    path = tmp_path / "model.png"
    figure = gn.utils.plot_model(model, to_file=str(path), show_shapes=True, show_layer_names=True, rankdir="LR")
    assert path.read_bytes()[:4] == b"\x89PNG"
    source = getattr(figure, "dot_source", None)
    if source is not None:                      # graphviz drew it
        assert "rankdir=LR" in source and "(None, 13, 13, 32)" in source and model.layers[0].name in source
        bare = gn.utils.plot_model(model, to_file=str(tmp_path / "bare.png")).dot_source
        assert model.layers[0].name not in bare and "(None, 13, 13, 32)" not in bare   # Keras 3's defaults


def test_keras_input_in_a_sequential_and_layer_output_says_what_to_use():
    assert mnist_convnet(gn.Input(shape=(28, 28, 1))).count_params() == 34826     # Keras 3's own example
    dense = layers.Dense(2)
    with pytest.raises(AttributeError, match="feature_maps"):
        dense.output
    assert not hasattr(dense, "output")


def test_load_model_names_the_library_that_made_the_file(tmp_path):
    # Keras's .keras / .h5 and ONNX files load (glassnet.interop); files of libraries glassnet cannot read
    # are named instead of being called damaged.
    import torch
    torch.save({"w": torch.zeros(2)}, tmp_path / "model.pt")
    (tmp_path / "saved").mkdir()
    (tmp_path / "saved" / "saved_model.pb").write_bytes(b"\x08\x01")
    for path, library in {tmp_path / "model.pt": "PyTorch", tmp_path / "saved": "SavedModel"}.items():
        with pytest.raises(ValueError, match=library) as info:
            gn.load_model(path)
        assert "damaged" not in str(info.value)
