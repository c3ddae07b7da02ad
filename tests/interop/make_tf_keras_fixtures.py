"""Write tests/interop/fixtures/tf_keras/: Keras 2 ``.h5`` files saved by tf.keras itself, and what
tf.keras predicted for them.

- ``sequential.h5``: a Sequential CNN (Conv2D, BatchNormalization, MaxPooling2D, Dropout, Flatten, Dense);
- ``residual_concat.h5``: a Functional graph (identity and projection shortcuts, a two-branch
  Concatenate, DepthwiseConv2D, GlobalAveragePooling2D);
- ``channels_first.h5``: a ``channels_first`` Functional graph with two outputs: a residual Add,
  a Concatenate on the channel axis (axis=1), BatchNormalization(axis=1), a Flatten on each of two
  branches feeding one Dense through a Concatenate, and a GlobalAveragePooling2D head;
- ``expected.npz``: the inputs (``x``, NHWC; ``x_nchw`` for the channels_first model) and each model's
  outputs as tf.keras computed them; and, the other way round, for glassnet models saved with
  ``model.save("m.h5")`` (:func:`glassnet_written`), the ``model_config`` glassnet wrote and what
  tf.keras predicted after opening the file with ``tf_keras.models.load_model``.

TensorFlow's CPU kernels run no channels_first convolution or pooling, so the channels_first file's
outputs are computed by its channels-last twin in tf.keras: the same layers and the very same weights
(Keras keeps HWIO convolution kernels in both layouts) with its input moved channels-last by a Permute
layer and each tensor moved back to (C, H, W) by a Permute before it is flattened, so nothing is
reordered by hand.

tf.keras is not a glassnet dependency and cannot share the dev virtualenv (TensorFlow pins its own
NumPy and Keras); run this with a separate one, from the repository root::

    python3.11 -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install tensorflow-cpu==2.21.0 tf-keras==2.21.0
    PYTHONPATH=$PWD /tmp/tfvenv/bin/python tests/interop/make_tf_keras_fixtures.py
"""
import json
import os
import sys

import numpy as np

FOLDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "tf_keras")


def sequential(k):
    L = k.layers
    return k.Sequential([L.Conv2D(4, 3, activation="relu", input_shape=(12, 12, 1), name="conv1"),
                         L.BatchNormalization(name="bn"), L.MaxPooling2D(2, name="pool"),
                         L.Conv2D(6, 3, padding="same", activation="relu", name="conv2"), L.Dropout(0.25, name="drop"),
                         L.Flatten(name="flat"), L.Dense(8, activation="relu", name="hidden"),
                         L.Dense(5, activation="softmax", name="preds")], name="sequential_cnn")


def residual_concat(k):
    L = k.layers
    x = k.Input((12, 12, 2), name="image")
    h = L.ReLU(name="stem_relu")(L.BatchNormalization(name="stem_bn")(L.Conv2D(4, 3, padding="same", name="stem")(x)))
    y = L.Conv2D(4, 3, padding="same", activation="relu", name="conv_a")(h)
    y = L.Conv2D(4, 3, padding="same", name="conv_b")(y)
    h = L.Activation("relu", name="block_out")(L.Add(name="identity")([h, y]))
    y = L.DepthwiseConv2D(3, strides=2, padding="same", activation="relu", name="depthwise")(h)
    h = L.Add(name="projection")([L.Conv2D(6, 1, strides=2, name="shortcut")(h), L.Conv2D(6, 1, name="pointwise")(y)])
    wide = L.Conv2D(3, 1, activation="relu", name="wide")(h)
    deep = L.Conv2D(3, 3, padding="same", dilation_rate=2, activation="tanh", name="deep")(h)
    h = L.Concatenate(name="branches")([wide, deep, h])
    return k.Model(x, L.Dense(4, activation="softmax", name="preds")(L.GlobalAveragePooling2D(name="gap")(h)),
                   name="residual_concat")


def channels_first(k, twin=False):
    """The channels_first graph, or (``twin``) the same function in channels-last layers on NCHW input."""
    L = k.layers
    fmt = {"data_format": "channels_last" if twin else "channels_first"}
    channel = -1 if twin else 1
    image = k.Input((2, 10, 10), name="image")
    x = L.Permute((2, 3, 1), name="to_last")(image) if twin else image
    as_keras = (lambda t, name: L.Permute((3, 1, 2), name=name)(t)) if twin else (lambda t, name: t)
    h = L.Conv2D(4, 3, padding="same", use_bias=False, name="stem", **fmt)(x)
    h = L.ReLU(name="stem_relu")(L.BatchNormalization(axis=channel, name="stem_bn")(h))
    y = L.Conv2D(4, 3, padding="same", activation="relu", name="conv_a", **fmt)(h)
    h = L.Add(name="residual")([h, L.Conv2D(4, 3, padding="same", name="conv_b", **fmt)(y)])
    side = L.Conv2D(2, 1, activation="tanh", name="side", **fmt)(x)
    h = L.Concatenate(axis=channel, name="channels")([h, side])
    pooled = L.AveragePooling2D(2, name="pool", **fmt)(h)
    small = L.Conv2D(3, 3, strides=2, activation="relu", name="small", **fmt)(h)
    flat = L.Concatenate(name="features")([L.Flatten(name="flat_pooled")(as_keras(pooled, "back_pooled")),
                                           L.Flatten(name="flat_small")(as_keras(small, "back_small"))])
    classes = L.Dense(5, activation="softmax", name="classes")(L.Dropout(0.2, name="drop")(flat))
    value = L.Dense(2, name="value")(L.GlobalAveragePooling2D(name="gap", **fmt)(h))
    return k.Model(image, [classes, value], name="channels_first_graph")


def randomize(model, seed, scale=0.4):
    """Random weights (moving variances positive) so that no layer is near the identity."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = [rng.normal(0, scale, w.shape).astype("float32") for w in layer.get_weights()]
        if weights and "moving_variance" in layer.weights[-1].name:
            weights[-1] = np.abs(weights[-1]) + 0.5
        if weights:
            layer.set_weights(weights)
    return model


def glassnet_written():
    """name -> a glassnet model (seeded weights) for the ``.h5`` writer: a graph and two Sequentials
    that together use every layer the writer knows."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from producers import glassnet_models

    from glassnet.presets import resnet8
    return {"resnet8": resnet8(seed=3), **glassnet_models()}


def _glassnet_to_tf_keras(k, expected, folder):
    """Save each glassnet model as .h5, open it in tf.keras, and keep the config and tf.keras's predictions."""
    import h5py
    for name, model in glassnet_written().items():
        x = np.random.default_rng(5).random((3,) + tuple(model.input_shape[1:])).astype("float32")
        path = os.path.join(folder, f"{name}.h5")
        model.save(path)
        with h5py.File(path, "r") as handle:
            expected[f"glassnet_{name}_config"] = np.array(json.dumps(json.loads(handle.attrs["model_config"])))
        expected[f"glassnet_{name}_x"] = x
        expected[f"glassnet_{name}_tf"] = k.models.load_model(path, compile=False).predict(x, verbose=0)


def main():
    import tempfile

    import tensorflow as tf
    import tf_keras as k
    os.makedirs(FOLDER, exist_ok=True)
    rng = np.random.default_rng(0)
    expected = {"x": rng.random((4, 12, 12, 1)).astype("float32"),
                "x_graph": rng.random((4, 12, 12, 2)).astype("float32"),
                "x_nchw": rng.random((4, 2, 10, 10)).astype("float32"),
                "versions": np.array([tf.__version__, k.__version__])}
    for name, make, seed, x in (("sequential", sequential, 0, "x"), ("residual_concat", residual_concat, 1, "x_graph")):
        model = randomize(make(k), seed)
        model.save(os.path.join(FOLDER, f"{name}.h5"))
        expected[name] = model.predict(expected[x], verbose=0)
    model = randomize(channels_first(k), 2, scale=0.15)         # 0.15: its 198 features leave softmax unsaturated
    model.save(os.path.join(FOLDER, "channels_first.h5"))
    twin = channels_first(k, twin=True)
    for layer in model.layers:
        twin.get_layer(layer.name).set_weights(layer.get_weights())
    expected["channels_first_classes"], expected["channels_first_value"] = twin.predict(expected["x_nchw"], verbose=0)
    with tempfile.TemporaryDirectory() as folder:
        _glassnet_to_tf_keras(k, expected, folder)
    np.savez(os.path.join(FOLDER, "expected.npz"), **expected)


if __name__ == "__main__":
    main()
