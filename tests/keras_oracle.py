"""Real Keras 3 (PyTorch backend) as a dev-only test oracle: ``keras = keras_oracle.load()``."""
import os

import pytest


def load():
    """Import Keras 3 on the torch backend (skip with the reason when it is not installed)."""
    saved = os.environ.get("KERAS_BACKEND")
    os.environ["KERAS_BACKEND"] = "torch"       # read once, at Keras's import
    try:
        pytest.importorskip("torch", reason="torch (Keras's backend here, a dev-only oracle) is not installed")
        keras = pytest.importorskip("keras", reason="Keras 3 (a dev-only oracle, the dev extra) is not installed")
    finally:
        if saved is None:
            os.environ.pop("KERAS_BACKEND", None)
        else:
            os.environ["KERAS_BACKEND"] = saved
    if keras.backend.backend() != "torch":
        pytest.skip(f"Keras was imported earlier with the {keras.backend.backend()!r} backend")
    return keras


def dense_pair(keras, inputs, units, activation, seed=0):
    """A one-Dense-layer glassnet model and the same Keras model with equal float32 weights."""
    import numpy as np

    import glassnet as gn
    ours = gn.Sequential([gn.layers.Dense(units, activation=activation, input_shape=(inputs,))])
    theirs = keras.Sequential([keras.Input((inputs,)), keras.layers.Dense(units, activation=activation)])
    rng = np.random.default_rng(seed)
    weights = [rng.normal(0, 0.5, (inputs, units)).astype("float32"), rng.normal(0, 0.1, units).astype("float32")]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    return ours, theirs
