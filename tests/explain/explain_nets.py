"""Small networks with hand-set weights, and helpers, shared by the explain tests."""
import numpy as np

import glassnet as gn
from glassnet import layers


def set_weights(model, weights):
    """Set each named layer's [kernel, bias] (bias zero when left out)."""
    for name, kernel in weights.items():
        layer = model.get_layer(name)
        kernel = np.asarray(kernel, dtype=layer.dtype)
        values = [kernel] + ([np.zeros(layer.params["bias"].shape)] if "bias" in layer.params else [])
        layer.set_weights(values)
    return model


# -- dense net worked by hand ----------------------------------------------------------------
# x = [1, 2];  W1 columns u1 = [1, 1], u2 = [1, -1], u3 = [2, 0]  ->  z1 = [3, -1, 2]
# W2[:, 0] = [1, 3, -2] (class 0), W2[:, 1] = [0, 0, 1] (class 1)  ->  logits [-1, 2]
DENSE_X = np.array([[[[1.0], [2.0]]]])          # (1, 1, 2, 1)
DENSE_W1 = np.array([[1.0, 1.0, 2.0], [1.0, -1.0, 0.0]])
DENSE_W2 = np.array([[1.0, 0.0], [3.0, 0.0], [-2.0, 1.0]])


def dense_net(relu="fused", dtype="float32"):
    """Flatten -> Dense(3) + a ReLU-family activation -> Dense(2, softmax), weights above."""
    hidden = {
        "fused": [layers.Dense(3, activation="relu", name="hidden", dtype=dtype)],
        "relu": [layers.Dense(3, name="hidden", dtype=dtype), layers.ReLU(dtype=dtype)],
        "activation": [layers.Dense(3, name="hidden", dtype=dtype), layers.Activation("relu", dtype=dtype)],
        "leaky": [layers.Dense(3, name="hidden", dtype=dtype), layers.LeakyReLU(0.1, dtype=dtype)],
        "prelu": [layers.Dense(3, name="hidden", dtype=dtype), layers.PReLU(dtype=dtype)],
    }[relu]
    model = gn.Sequential([layers.Flatten(input_shape=(1, 2, 1), dtype=dtype)] + hidden
                          + [layers.Dense(2, activation="softmax", name="out", dtype=dtype)])
    return set_weights(model, {"hidden": DENSE_W1, "out": DENSE_W2})


# -- conv net worked by hand -----------------------------------------------------------------
# 3x3 image, Conv2D(2, 2x2, relu): filter 0 picks the window's top-left pixel, filter 1 is minus
# its bottom-right pixel; Flatten -> Dense(2) with the class-0 weights W0[i, j, c] below.
CONV_X = np.array([[1.0, 2.0, 0.0], [0.0, -1.0, 3.0], [4.0, 0.0, 1.0]]).reshape(1, 3, 3, 1)
CONV_KERNEL = np.zeros((2, 2, 1, 2))
CONV_KERNEL[0, 0, 0, 0] = 1.0
CONV_KERNEL[1, 1, 0, 1] = -1.0
CLASS0 = np.stack([[[1.0, 2.0], [3.0, 4.0]], [[-1.0, 0.0], [2.0, 1.0]]], axis=-1)      # (i, j, c)
CLASS1 = np.stack([[[-1.0, -1.0], [-1.0, -1.0]], [[0.0, 0.0], [0.0, 0.0]]], axis=-1)


def conv_net(dtype="float32", softmax=True):
    model = gn.Sequential([
        layers.Conv2D(2, 2, activation="relu", input_shape=(3, 3, 1), name="conv", dtype=dtype),
        layers.Flatten(dtype=dtype),
        layers.Dense(2, activation="softmax" if softmax else None, name="out", dtype=dtype),
    ])
    # Flatten is channels-last row-major: feature (i * 2 + j) * 2 + c
    dense = np.stack([CLASS0.reshape(-1), CLASS1.reshape(-1)], axis=1)
    return set_weights(model, {"conv": CONV_KERNEL, "out": dense})


# -- random nets -----------------------------------------------------------------------------
def gap_net(seed=0, dtype="float32", size=10, channels=1, classes=3):
    """Conv -> MaxPool -> Conv -> ReLU layer -> GAP -> Dense(softmax): CAM's architecture."""
    return gn.Sequential([
        layers.Conv2D(4, 3, activation="relu", input_shape=(size, size, channels), dtype=dtype),
        layers.MaxPooling2D(2, dtype=dtype),
        layers.Conv2D(6, 3, padding="same", dtype=dtype),
        layers.ReLU(dtype=dtype),
        layers.GlobalAveragePooling2D(dtype=dtype),
        layers.Dense(classes, activation="softmax", dtype=dtype),
    ], seed=seed)


def small_cnn(seed=0, dtype="float32", size=8, channels=2, classes=4):
    """A bit of everything: fused relu, pooling, a tanh conv, LeakyReLU, dropout, dense softmax."""
    return gn.Sequential([
        layers.Conv2D(3, 3, activation="relu", padding="same", input_shape=(size, size, channels), dtype=dtype),
        layers.MaxPooling2D(2, dtype=dtype),
        layers.Conv2D(4, 2, activation="tanh", dtype=dtype),
        layers.LeakyReLU(0.2, dtype=dtype),
        layers.Dropout(0.5, dtype=dtype),
        layers.Flatten(dtype=dtype),
        layers.Dense(5, activation="relu", dtype=dtype),
        layers.Dense(classes, activation="softmax", dtype=dtype),
    ], seed=seed)


def linear_net(seed=0, dtype="float64", size=5, channels=1, classes=3, softmax=True):
    """Flatten -> Dense: the logits are exactly w . x + b."""
    model = gn.Sequential([
        layers.Flatten(input_shape=(size, size, channels), dtype=dtype),
        layers.Dense(classes, activation="softmax" if softmax else None, dtype=dtype,
                     bias_initializer="ones"),
    ], seed=seed)
    return model


def linear_weights(model, target):
    """The logit's weight map (H, W, C) and bias of class ``target`` of :func:`linear_net`."""
    kernel, bias = model.layers[-1].get_weights()
    return kernel[:, target].reshape(model.input_shape[1:]), bias[target]


def images(n, shape, seed=0, dtype="float32"):
    return np.random.default_rng(seed).random((n,) + tuple(shape)).astype(dtype)


def model_state(model):
    """Everything an explanation could change: weights, gradients, the layers' attributes, config."""
    state = {"config": repr(model.get_config())}
    for layer in model.layers:
        state[layer.name] = {
            "weights": [w.copy() for w in layer.get_weights()],
            "grads": {k: np.array(v, copy=True) for k, v in layer.grads.items()},
            "attributes": sorted(vars(layer)),
        }
    return state


def assert_same_state(before, after):
    assert before.keys() == after.keys()
    assert before["config"] == after["config"]
    for name in before:
        if name == "config":
            continue
        b, a = before[name], after[name]
        assert b["attributes"] == a["attributes"], name
        for wb, wa in zip(b["weights"], a["weights"]):
            np.testing.assert_array_equal(wb, wa)
        assert b["grads"].keys() == a["grads"].keys()
        for key in b["grads"]:
            np.testing.assert_array_equal(b["grads"][key], a["grads"][key])
