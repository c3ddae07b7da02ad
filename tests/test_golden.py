"""glassnet's layers against golden vectors computed by PyTorch (tests/golden/*.npz).

The files were written by ``tests/golden/make_golden.py`` (torch is a dev-only oracle); this
module needs only NumPy. Each file gives a layer configuration, its weights in glassnet's
layouts, an input, an upstream gradient and torch's output, input gradient and weight
gradients; glassnet must agree to 1e-9 in float64.
"""
import json
from pathlib import Path

import numpy as np
import pytest

from glassnet import layers

GOLDEN = Path(__file__).resolve().parent / "golden"
FILES = sorted(GOLDEN.glob("*.npz"))
TOL = dict(rtol=1e-9, atol=1e-9)


def load(path):
    with np.load(path, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    return json.loads(str(arrays.pop("config"))), arrays


def test_the_golden_files_are_there():
    names = {path.stem for path in FILES}
    assert {"conv_stride2_pad1", "conv_rect_kernel", "conv_same_stride2", "maxpool_3x3_s2", "avgpool_2x2",
            "dense", "batchnorm_nhwc"} <= names
    assert all(path.stat().st_size < 50_000 for path in FILES)


@pytest.mark.parametrize("path", FILES, ids=[path.stem for path in FILES])
def test_layer_matches_torch(path):
    config, data = load(path)
    args = {k: tuple(v) if isinstance(v, list) else v for k, v in config["args"].items()}
    layer = getattr(layers, config["layer"])(**args, dtype="float64")
    layer.build(data["x"].shape)
    if config["weights"]:
        layer.set_weights([data[name] for name in config["weights"]])

    y = layer.forward(data["x"].copy(), training=config["training"])
    np.testing.assert_allclose(y, data["y"], **TOL, err_msg=f"{path.stem}: output")
    dx = layer.backward(data["dy"].copy())
    np.testing.assert_allclose(dx, data["dx"], **TOL, err_msg=f"{path.stem}: dx")

    trainable = [name for name in config["weights"] if f"d_{name}" in data]
    assert sorted(layer.grads) == sorted(trainable)
    for name in trainable:
        np.testing.assert_allclose(layer.grads[name], data[f"d_{name}"], **TOL, err_msg=f"{path.stem}: d_{name}")
    weights = dict(zip(layer.weight_names, layer.get_weights()))
    for name in config["weights"]:
        if f"{name}_after" in data:
            np.testing.assert_allclose(weights[name], data[f"{name}_after"], **TOL,
                                       err_msg=f"{path.stem}: {name} after one training step")
