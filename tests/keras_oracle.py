"""Real Keras 3 (PyTorch backend) as a dev-only test oracle: ``keras = keras_oracle.load()``."""
import contextlib
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


@contextlib.contextmanager
def seeded(keras, seed):
    """Run a block with Keras's randomness seeded (``keras.utils.set_random_seed``), so that what it
    trains does not depend on which tests ran before; Python's, NumPy's and torch's global generators
    get their previous states back afterwards (nothing leaks into later tests)."""
    import random

    import numpy as np
    import torch
    states = random.getstate(), np.random.get_state(), torch.random.get_rng_state()
    keras.utils.set_random_seed(seed)
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.random.set_rng_state(states[2])


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
