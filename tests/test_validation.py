"""glassnet.validation, the one home of argument checks (issue 20): it imports nothing of glassnet but
errors, and the public boundary splits wrong types (TypeError) from wrong values (ValueError)."""
import os
import subprocess
import sys

import numpy as np
import pytest

import glassnet as gn
from glassnet import explain, layers, ops, validation

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_importing_validation_loads_no_other_glassnet_module():
    code = ("import sys, glassnet.validation; "
            "print(sorted(m for m in sys.modules if m.startswith('glassnet')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": ROOT}).stdout
    assert out.strip() == "['glassnet', 'glassnet.errors', 'glassnet.validation']"


# -- layers' hyperparameters: (layer, constructor of one argument, a wrong type, a wrong value) ---------
LAYER_ARGUMENTS = [
    ("Conv2D.filters", lambda v: layers.Conv2D(v, 3), "8", 0),
    ("Conv2D.filters", lambda v: layers.Conv2D(v, 3), True, -2),
    ("Conv2D.filters", lambda v: layers.Conv2D(v, 3), 8.0, 0),
    ("Conv2D.kernel_size", lambda v: layers.Conv2D(2, v), "3", (3, 0)),
    ("Conv2D.kernel_size", lambda v: layers.Conv2D(2, v), (3, 3.0), (3, 3, 3)),
    ("Conv2D.strides", lambda v: layers.Conv2D(2, 3, strides=v), None, 0),
    ("Conv2D.dilation_rate", lambda v: layers.Conv2D(2, 3, dilation_rate=v), 2.0, (1, -1)),
    ("Conv2D.padding", lambda v: layers.Conv2D(2, 3, padding=v), 1.5, "full"),
    ("Conv2D.padding", lambda v: layers.Conv2D(2, 3, padding=v), None, -1),
    ("Conv2D.padding", lambda v: layers.Conv2D(2, 3, padding=v), ((1, 2), 3), (1, 2, 3)),
    ("Conv2D.activation", lambda v: layers.Conv2D(2, 3, activation=v), np.tanh, "gelu"),
    ("Conv2D.kernel_initializer", lambda v: layers.Conv2D(2, 3, kernel_initializer=v), 0.1, "xavier"),
    ("Dense.units", lambda v: layers.Dense(v), "10", 0),
    ("Dense.units", lambda v: layers.Dense(v), False, -1),
    ("Dropout.rate", lambda v: layers.Dropout(v), "0.5", 1.0),
    ("Dropout.rate", lambda v: layers.Dropout(v), None, float("nan")),
    ("MaxPooling2D.pool_size", lambda v: layers.MaxPooling2D(v), "2", 0),
    ("AveragePooling2D.strides", lambda v: layers.AveragePooling2D(2, v), 1.0, (2, 0)),
    ("MaxPooling2D.padding", lambda v: layers.MaxPooling2D(2, padding=v), 1, "full"),
    ("ZeroPadding2D.padding", lambda v: layers.ZeroPadding2D(v), "same", -1),
    ("Cropping2D.cropping", lambda v: layers.Cropping2D(v), "1", (1, 2, 3)),
    ("DepthwiseConv2D.depth_multiplier", lambda v: layers.DepthwiseConv2D(3, depth_multiplier=v), 2.0, 0),
    ("SeparableConv2D.filters", lambda v: layers.SeparableConv2D(v, 3), "4", 0),
    ("UpSampling2D.size", lambda v: layers.UpSampling2D(v), 2.5, 0),
    ("UpSampling2D.interpolation", lambda v: layers.UpSampling2D(interpolation=v), 1, "bicubic"),
    ("RandomFlip.mode", lambda v: layers.RandomFlip(v), None, "diagonal"),
    ("RandomCrop.height", lambda v: layers.RandomCrop(v, 4), 4.0, 0),
    ("Concatenate.axis", lambda v: layers.Concatenate(axis=v), "1", 0),
    ("LeakyReLU.alpha", lambda v: layers.LeakyReLU(v), "0.1", 1.5),
    ("BatchNormalization.epsilon", lambda v: layers.BatchNormalization(epsilon=v), "1e-3", 0.0),
    ("Rescaling.scale", lambda v: layers.Rescaling(v), "1/255", float("inf")),
    ("Layer.input_shape", lambda v: layers.Dense(2, input_shape=v), "784", (0, 3)),
    ("Layer.input_shape", lambda v: layers.Dense(2, input_shape=v), (2.0, 3), (None, 3)),
    ("Layer.dtype", lambda v: layers.Dense(2, dtype=v), 64, "int32"),
    ("Layer.dtype", lambda v: layers.Dense(2, dtype=v), [np.float32], "float16"),
    ("InputLayer.batch_size", lambda v: layers.InputLayer(shape=(3,), batch_size=v), "32", 0),
    ("gn.Input.shape", lambda v: gn.Input(v), "28x28", (28, 0)),
]


def _check_error(error, construct, value, where):
    with pytest.raises((TypeError, ValueError)) as info:
        construct(value)
    assert type(info.value) is error, f"{where}({value!r}) raised {type(info.value).__name__}: {info.value}"
    text = str(info.value)
    assert " expects " in text and "; got " in text, text        # what was expected, what was received
    assert "/glassnet/" in str(info.traceback[-1].path)            # glassnet's own check, not NumPy's


@pytest.mark.parametrize("where, construct, wrong_type, wrong_value", LAYER_ARGUMENTS,
                         ids=[f"{case[0]}-{i}" for i, case in enumerate(LAYER_ARGUMENTS)])
def test_layer_hyperparameters_split_type_and_value_errors(where, construct, wrong_type, wrong_value):
    _check_error(TypeError, construct, wrong_type, where)
    _check_error(ValueError, construct, wrong_value, where)


# -- explanation methods' arguments ------------------------------------------------------------------
@pytest.fixture(scope="module")
def net():
    model = gn.Sequential([layers.Conv2D(2, 3, activation="relu", input_shape=(6, 6, 1), name="conv"),
                           layers.GlobalAveragePooling2D(), layers.Dense(3, name="out")], seed=0)
    x = np.random.default_rng(0).random((2, 6, 6, 1), dtype=np.float32)
    return model, x


EXPLAIN_ARGUMENTS = [
    ("target", lambda m, x, v: explain.saliency(m, x, target=v), "0", 3),
    ("target", lambda m, x, v: explain.input_gradients(m, x, target=v), True, [0, 1, 2]),
    ("modifier", lambda m, x, v: explain.input_gradients(m, x, modifier=v), 1, "leaky"),
    ("score", lambda m, x, v: explain.saliency(m, x, score=v), 0, "softmax"),
    ("steps", lambda m, x, v: explain.integrated_gradients(m, x, steps=v), 2.0, 0),
    ("samples", lambda m, x, v: explain.smooth_grad(m, x, samples=v), "3", 0),
    ("layer", lambda m, x, v: explain.grad_cam(m, x, layer=v), 1.5, "nope"),
    ("window", lambda m, x, v: explain.occlusion(m, x, window=v), "2", 0),
    ("stride", lambda m, x, v: explain.occlusion(m, x, window=2, stride=v), 1.0, (1, 0)),
    ("seed", lambda m, x, v: explain.smooth_grad(m, x, seed=v), "a", -1),
    ("noise", lambda m, x, v: explain.smooth_grad(m, x, noise=v), "0.1", -0.5),
    ("upsample", lambda m, x, v: explain.grad_cam(m, x, upsample=v), 1, "nearest"),
    ("maximization steps", lambda m, x, v: explain.activation_maximization(m, "out", 0, steps=v), "5", -1),
    ("maximization l2", lambda m, x, v: explain.activation_maximization(m, "out", 0, l2=v), "0", -1.0),
    ("maximization optimizer", lambda m, x, v: explain.activation_maximization(m, "out", 0, optimizer=v),
     None, "rmsprop"),
    ("maximization bounds", lambda m, x, v: explain.activation_maximization(m, "out", 0, bounds=v), 1, (1, 0)),
    ("maximization index", lambda m, x, v: explain.activation_maximization(m, "out", v), 1.5, 3),
    ("return_trajectory", lambda m, x, v: explain.activation_maximization(m, "out", 0, return_trajectory=v),
     "yes", None),
    ("sanity_check null_models", lambda m, x, v: explain.sanity_check(m, x, "saliency", null_models=v), "2", 1),
    ("sanity_check method", lambda m, x, v: explain.sanity_check(m, x, v), 3, "lime"),
]


@pytest.mark.parametrize("where, call, wrong_type, wrong_value", EXPLAIN_ARGUMENTS,
                         ids=[f"{case[0]}-{i}" for i, case in enumerate(EXPLAIN_ARGUMENTS)])
def test_explain_arguments_split_type_and_value_errors(net, where, call, wrong_type, wrong_value):
    model, x = net
    _check_error(TypeError, lambda v: call(model, x, v), wrong_type, where)
    if wrong_value is not None:
        _check_error(ValueError, lambda v: call(model, x, v), wrong_value, where)


# -- the helpers ----------------------------------------------------------------------------------
@pytest.mark.parametrize("padding, parsed", [
    ("SAME", "same"), ("valid", "valid"), (0, ((0, 0), (0, 0))), (np.int64(2), ((2, 2), (2, 2))),
    ((1, 3), ((1, 1), (3, 3))), ([[0, 2], [1, 0]], ((0, 2), (1, 0))),
])
def test_padding_is_parsed_once_into_the_form_ops_reads(padding, parsed):
    assert validation.check_padding(padding, "here") == parsed
    layer = layers.Conv2D(1, 3, padding=padding)
    assert layer.padding == parsed                                # what the layer keeps and saves
    assert layers.Conv2D.from_config(layer.get_config()).padding == parsed
    assert ops.resolve_padding(parsed, (3, 3), (1, 1), (6, 6)) == ops.resolve_padding(padding, (3, 3), (1, 1), (6, 6))


def test_ops_resolve_padding_uses_the_same_parser():
    with pytest.raises(ValueError, match="padding"):
        ops.resolve_padding(-1, (3, 3), (1, 1), (6, 6))
    with pytest.raises(TypeError, match="padding"):
        ops.resolve_padding(1.5, (3, 3), (1, 1), (6, 6))


def test_helpers_return_canonical_values():
    assert validation.check_pair(3, "k", "here") == (3, 3)
    assert validation.check_pair([2, np.int32(1)], "k", "here") == (2, 1)
    assert validation.check_pair(0, "cropping", "here", minimum=0) == (0, 0)
    assert validation.check_number(np.float32(0.5), "x", "here", lambda v: v > 0, "> 0") == 0.5
    assert validation.check_name_choice("ADAM", ["adam", "sgd"], "optimizer", "here") == "adam"
    assert validation.check_shape([None, 28, 28, 1], "here") == (None, 28, 28, 1)
    with pytest.raises(ValueError, match=r"input_shape .*; got \(None, 3\)"):
        validation.check_shape((None, 3), "here", batch=False)


def test_dtype_none_is_float32_as_in_keras():
    assert layers.Dense(2, dtype=None).dtype == np.float32
    assert layers.Dense(2, dtype=np.float64).dtype == np.float64
