"""gn.load_model on files written by real Keras 3 (PyTorch backend), and model.save('m.keras') read by Keras.

Each architecture is built in Keras with random weights, saved as ``.keras`` and as a legacy ``.h5``,
and opened by glassnet: its predictions must equal Keras's within 1e-5 and its Grad-CAM and saliency
those computed by Keras's own autograd on the same file's model.
"""
import json
import zipfile

import numpy as np
import pytest

from producers import (glassnet_models, keras, keras_architectures, keras_logits_and_grads, randomize_keras,
                       write_keras_files)

import glassnet as gn
from glassnet import explain

pytest.importorskip("h5py", reason="h5py (glassnet[interop]) is not installed")


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """name -> (Keras model, path of its .keras, path of its .h5)."""
    return write_keras_files(keras_architectures(), tmp_path_factory.mktemp("keras"), 0)


def _inputs(model, seed, n=3):
    return np.random.default_rng(seed).random((n,) + tuple(model.input_shape[1:])).astype("float32")


@pytest.mark.parametrize("suffix", ["keras", "h5"])
@pytest.mark.parametrize("name", list(keras_architectures()))
def test_predictions_and_explanations_match_keras(written, name, suffix):
    model, keras_path, h5_path = written[name]
    loaded = gn.load_model(keras_path if suffix == "keras" else h5_path)
    channels_first = name == "channels_first"
    x = _inputs(model, 1)
    x_nhwc = x.transpose(0, 2, 3, 1) if channels_first else x
    np.testing.assert_allclose(loaded.predict(x_nhwc), model.predict(x, verbose=0), atol=1e-5)
    target = np.arange(len(x)) % loaded.output_shape[-1]
    logits, saliency, cam = keras_logits_and_grads(model, x, target, "cam", channels_first)
    np.testing.assert_allclose(loaded.predict(x_nhwc, logits=True), logits, atol=1e-5)
    np.testing.assert_allclose(explain.saliency(loaded, x_nhwc, target), saliency, rtol=1e-4, atol=1e-6)
    got = explain.grad_cam(loaded, x_nhwc, target, layer="cam", upsample=False)
    assert cam.max() > 0
    np.testing.assert_allclose(got, cam, rtol=1e-4, atol=1e-6 * cam.max())
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    assert loaded.count_params() == model.count_params()


def test_batch_norm_statistics_and_layer_settings_are_kept(written):
    model, path, _ = written["bn_prelu_gap"]
    loaded = gn.load_model(path)
    keras_bn, bn = model.layers[1], loaded.layers[1]
    for got, want in zip(bn.get_weights(), keras_bn.get_weights()):
        np.testing.assert_array_equal(got, want)
    assert (bn.epsilon, bn.momentum) == (keras_bn.epsilon, keras_bn.momentum)
    pool = loaded.layers[3]
    assert (pool.pool_size, pool.strides, pool.padding) == ((3, 3), (1, 1), "same")
    assert loaded.layers[5].alpha == pytest.approx(0.2)


def test_channels_first_becomes_nhwc_with_the_dense_kernel_permuted(written):
    model, path, _ = written["channels_first"]
    loaded = gn.load_model(path)
    assert loaded.input_shape == (None, 9, 9, 2)
    dense = loaded.get_layer(model.layers[5].name)
    keras_kernel = model.layers[5].get_weights()[0]            # rows in (C, H, W) order: 3 x 2 x 2
    expected = keras_kernel.reshape(3, 2, 2, -1).transpose(1, 2, 0, 3).reshape(12, -1)
    np.testing.assert_array_equal(dense.get_weights()[0], expected)
    assert not np.array_equal(expected, keras_kernel)


@pytest.mark.parametrize("name", ["every_layer", "depthwise_family"])
def test_glassnet_save_keras_is_read_by_keras(tmp_path, name):
    """glassnet -> .keras -> Keras, and .keras -> glassnet, predict what the model does."""
    k = keras()
    model = glassnet_models()[name]
    model.save(tmp_path / "g.keras")
    x = np.random.default_rng(1).random((4,) + model.input_shape[1:]).astype("float32")
    theirs = k.models.load_model(tmp_path / "g.keras")
    np.testing.assert_allclose(theirs.predict(x, verbose=0), model.predict(x), atol=1e-5)
    assert theirs.count_params() == model.count_params()
    again = gn.load_model(tmp_path / "g.keras")
    np.testing.assert_allclose(again.predict(x), model.predict(x), atol=1e-6)
    with zipfile.ZipFile(tmp_path / "g.keras") as archive:
        assert sorted(archive.namelist()) == ["config.json", "metadata.json", "model.weights.h5"]
        assert json.loads(archive.read("config.json"))["class_name"] == "Sequential"
    if name == "every_layer":      # explicit padding: a ZeroPadding2D, then the convolution
        assert [layer.name for layer in theirs.layers[:2]] == ["c_padding", "c"]


@pytest.mark.parametrize("name", ["every_layer", "depthwise_family"])
def test_glassnet_save_h5_is_read_by_keras_legacy_loader(tmp_path, name):
    """glassnet -> Keras 2 .h5 (model_config, model_weights/<layer>/<layer>/<w>:0) -> Keras 3's legacy
    h5 loader, and -> glassnet, predict what the model does."""
    import h5py
    model = glassnet_models()[name]
    model.save(tmp_path / "g.h5")
    x = np.random.default_rng(2).random((4,) + model.input_shape[1:]).astype("float32")
    theirs = keras().models.load_model(tmp_path / "g.h5", compile=False)
    np.testing.assert_allclose(theirs.predict(x, verbose=0), model.predict(x), atol=1e-5)
    np.testing.assert_allclose(gn.load_model(tmp_path / "g.h5").predict(x), model.predict(x), atol=1e-6)
    with h5py.File(tmp_path / "g.h5", "r") as handle:
        assert json.loads(handle.attrs["model_config"])["class_name"] == "Sequential"
        first = next(layer.name for layer in model.layers if layer.weights)   # a Conv2D or a SeparableConv2D
        names = [n.decode() if isinstance(n, bytes) else n for n in handle["model_weights"][first].attrs["weight_names"]]
        assert names == [f"{first}/{key}:0" for key in ("kernel", "bias")] if name == "every_layer" else \
            [f"{first}/{key}:0" for key in ("depthwise_kernel", "pointwise_kernel", "bias")]


def test_unsupported_layers_are_all_listed_in_one_error(tmp_path):
    k = keras()
    L_ = k.layers

    @k.saving.register_keras_serializable(package="mine")
    class Doubler(L_.Layer):
        def call(self, x):
            return 2 * x

    model = k.Sequential([k.Input((8, 8, 2)), L_.Conv2D(2, 3, groups=2, name="grouped"),
                          L_.Lambda(lambda t: t * 3, name="code"), Doubler(name="custom"),
                          L_.Conv2D(2, 3, activation="elu", name="elu_conv"), L_.Flatten(), L_.Dense(2)])
    model.save(tmp_path / "bad.keras")
    model.save(tmp_path / "bad.h5")
    for path in (tmp_path / "bad.keras", tmp_path / "bad.h5"):
        with pytest.raises(ValueError) as error:
            gn.load_model(path)
        text = str(error.value)
        assert "4 unsupported layers" in text
        for name, kind in (("grouped", "Conv2D"), ("code", "Lambda"), ("custom", "Doubler"), ("elu_conv", "Conv2D")):
            assert f"'{name}' (" in text and kind in text.split(f"'{name}' (")[1].split(":")[0]   # .h5: mine>Doubler
        assert "Python code" in text and "groups=2" in text and "'elu'" in text


def test_keras2_style_h5_with_batch_input_shape(tmp_path, written):
    """A tf.keras 2 era file: batch_input_shape on the first layer, string dtypes, 'name:0' weights."""
    h5py = pytest.importorskip("h5py")
    model, _, _ = written["mnist_cnn"]
    layers_config = []
    for i, layer in enumerate(model.layers):
        config = {key: value for key, value in layer.get_config().items() if key not in ("dtype",)}
        config["dtype"] = "float32"
        if i == 0:
            config["batch_input_shape"] = [None, 14, 14, 1]
        layers_config.append({"class_name": type(layer).__name__, "config": config})
    path = tmp_path / "keras2.h5"
    with h5py.File(path, "w") as handle:
        handle.attrs["keras_version"] = "2.2.4"
        handle.attrs["backend"] = "tensorflow"
        handle.attrs["model_config"] = json.dumps({"class_name": "Sequential",
                                                   "config": {"name": "sequential_1", "layers": layers_config}})
        weights = handle.create_group("model_weights")
        weights.attrs["layer_names"] = [layer.name.encode() for layer in model.layers]
        for layer in model.layers:
            group = weights.create_group(layer.name)
            names = [f"{layer.name}/{v.name}:0" for v in layer.weights]
            group.attrs["weight_names"] = [n.encode() for n in names]
            for n, value in zip(names, layer.get_weights()):
                group.create_dataset(n, data=value)
    x = _inputs(model, 5)
    np.testing.assert_allclose(gn.load_model(path).predict(x), model.predict(x, verbose=0), atol=1e-5)


def test_functional_models_that_are_one_chain(tmp_path):
    """keras.Model(inputs, outputs) built layer by layer reads as the same Sequential; a branching one as a graph."""
    k = keras()
    inputs = k.Input((10, 10, 2))
    x = k.layers.Conv2D(3, 3, activation="relu", name="cam")(inputs)
    x = k.layers.BatchNormalization()(x)
    x = k.layers.MaxPooling2D(2)(x)
    outputs = k.layers.Dense(4, activation="softmax")(k.layers.Flatten()(x))
    model = randomize_keras(k.Model(inputs, outputs), 7)
    x = np.random.default_rng(2).random((3, 10, 10, 2)).astype("float32")
    for suffix in ("keras", "h5"):
        model.save(tmp_path / f"chain.{suffix}")
        loaded = gn.load_model(tmp_path / f"chain.{suffix}")
        np.testing.assert_allclose(loaded.predict(x), model.predict(x, verbose=0), atol=1e-5)
        assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers[1:]]
    a = k.layers.Conv2D(2, 3, padding="same", name="a")(inputs)
    b = k.layers.Conv2D(2, 3, padding="same", name="b")(inputs)
    merged = k.layers.Add(name="sum")([a, b])
    branch = randomize_keras(k.Model(inputs, k.layers.Dense(2)(k.layers.Flatten()(merged))), 8)
    branch.save(tmp_path / "branch.keras")
    loaded = gn.load_model(tmp_path / "branch.keras")        # a branching model is a graph, not a Sequential
    assert type(loaded) is gn.Model
    np.testing.assert_allclose(loaded.predict(x), branch.predict(x, verbose=0), atol=1e-5)
