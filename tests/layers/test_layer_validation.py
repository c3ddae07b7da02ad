"""Hyperparameter and input validation (issue 8, item 1, the layer part).

Every bad value raises glassnet's own ValueError/TypeError (never a NumPy or Python error from
deep inside) whose message says what was expected, what was received and how to fix it.
A wrong type (a string, float, bool or None where an int is expected) is a TypeError, a value of the
right type out of its range a ValueError (issue 20).
"""
import re

import numpy as np
import pytest

import glassnet as gn
from glassnet import initializers, layers

L = layers
F32 = "float32"


def _x(*shape):
    return np.zeros(shape, dtype=F32)


# (id, call, exception, substrings the message must contain: the received value and a fix hint)
CASES = [
    # --- Conv2D hyperparameters --------------------------------------------------------------
    ("conv_filters_zero", lambda: L.Conv2D(0, 3), ValueError, ["filters", "got 0", "For example"]),
    ("conv_filters_negative", lambda: L.Conv2D(-4, 3), ValueError, ["filters", "got -4", "For example"]),
    ("conv_filters_float", lambda: L.Conv2D(2.5, 3), TypeError, ["filters", "2.5", "For example"]),
    ("conv_filters_str", lambda: L.Conv2D("8", 3), TypeError, ["filters", "'8'", "For example"]),
    ("conv_filters_bool", lambda: L.Conv2D(True, 3), TypeError, ["filters", "True", "For example"]),
    ("conv_kernel_zero", lambda: L.Conv2D(2, 0), ValueError, ["kernel_size", "got 0", "kernel_size=3"]),
    ("conv_kernel_negative", lambda: L.Conv2D(2, -3), ValueError, ["kernel_size", "-3", "kernel_size=3"]),
    ("conv_kernel_pair_zero", lambda: L.Conv2D(2, (3, 0)), ValueError, ["kernel_size", "(3, 0)", "(3, 3)"]),
    ("conv_kernel_triple", lambda: L.Conv2D(2, (3, 3, 3)), ValueError, ["kernel_size", "(3, 3, 3)", "(3, 3)"]),
    ("conv_dilation_zero", lambda: L.Conv2D(2, 3, dilation_rate=0), ValueError,
     ["dilation_rate", "got 0", "dilation_rate=3"]),
    ("conv_dilation_pair_negative", lambda: L.Conv2D(2, 3, dilation_rate=(2, -1)), ValueError,
     ["dilation_rate", "(2, -1)", "(3, 3)"]),
    ("conv_dilation_float", lambda: L.Conv2D(2, 3, dilation_rate=1.5), TypeError, ["dilation_rate", "1.5"]),
    ("conv_dilation_with_strides", lambda: L.Conv2D(2, 3, strides=2, dilation_rate=2), ValueError,
     ["strides of 1", "strides=(2, 2) and dilation_rate=(2, 2)", "Use strides=1"]),
    ("conv_kernel_single", lambda: L.Conv2D(2, (3,)), ValueError, ["kernel_size", "(3,)", "(3, 3)"]),
    ("conv_kernel_float", lambda: L.Conv2D(2, 3.0), TypeError, ["kernel_size", "3.0", "kernel_size=3"]),
    ("conv_kernel_none", lambda: L.Conv2D(2, None), TypeError, ["kernel_size", "None", "kernel_size=3"]),
    ("conv_strides_zero", lambda: L.Conv2D(2, 3, strides=0), ValueError, ["strides", "got 0", "strides=3"]),
    ("conv_strides_negative", lambda: L.Conv2D(2, 3, strides=(1, -2)), ValueError, ["strides", "(1, -2)", "strides="]),
    ("conv_padding_full", lambda: L.Conv2D(2, 3, padding="full"), ValueError, ["padding", "'full'", "padding='same'"]),
    ("conv_padding_causal", lambda: L.Conv2D(2, 3, padding="causal"), ValueError, ["padding", "'causal'", "padding='same'"]),
    ("conv_padding_negative", lambda: L.Conv2D(2, 3, padding=-1), ValueError, ["padding", "-1", "padding='same'"]),
    ("conv_padding_pair_negative", lambda: L.Conv2D(2, 3, padding=(1, -1)), ValueError, ["padding", "(1, -1)", "padding="]),
    ("conv_padding_float", lambda: L.Conv2D(2, 3, padding=1.5), TypeError, ["padding", "1.5", "padding="]),
    ("conv_padding_bools", lambda: L.Conv2D(2, 3, padding=(True, False)), TypeError, ["padding", "True", "padding="]),
    ("conv_padding_mixed", lambda: L.Conv2D(2, 3, padding=((1, 2), 3)), TypeError, ["padding", "((1, 2), 3)", "padding="]),
    ("conv_padding_ragged", lambda: L.Conv2D(2, 3, padding=((1,), (2, 3))), ValueError, ["padding", "((1,), (2, 3))", "padding="]),
    ("conv_padding_none", lambda: L.Conv2D(2, 3, padding=None), TypeError, ["padding", "None", "padding="]),
    ("conv_activation_unknown", lambda: L.Conv2D(2, 3, activation="gelu"), ValueError, ["activation", "'gelu'", "LeakyReLU"]),
    ("conv_activation_int", lambda: L.Conv2D(2, 3, activation=3), TypeError, ["activation", "got int 3", "LeakyReLU"]),
    ("conv_initializer_unknown", lambda: L.Conv2D(2, 3, kernel_initializer="xavier"), ValueError,
     ["kernel_initializer", "'xavier'", "glorot_uniform"]),
    ("conv_bias_initializer_unknown", lambda: L.Conv2D(2, 3, bias_initializer=5), TypeError,
     ["bias_initializer", "5", "zeros"]),
    # --- Dense ---------------------------------------------------------------------------------
    ("dense_units_zero", lambda: L.Dense(0), ValueError, ["units", "got 0", "Dense(10)"]),
    ("dense_units_negative", lambda: L.Dense(-1), ValueError, ["units", "-1", "Dense(10)"]),
    ("dense_units_float", lambda: L.Dense(10.0), TypeError, ["units", "10.0", "Dense(10)"]),
    ("dense_units_none", lambda: L.Dense(None), TypeError, ["units", "None", "Dense(10)"]),
    ("dense_activation_unknown", lambda: L.Dense(3, activation="swish"), ValueError, ["activation", "'swish'", "LeakyReLU"]),
    ("dense_initializer_unknown", lambda: L.Dense(3, kernel_initializer="he"), ValueError, ["kernel_initializer", "'he'", "he_normal"]),
    # --- pooling -------------------------------------------------------------------------------
    ("maxpool_size_zero", lambda: L.MaxPooling2D(0), ValueError, ["pool_size", "got 0", "pool_size=3"]),
    ("maxpool_size_negative", lambda: L.MaxPooling2D((2, -2)), ValueError, ["pool_size", "(2, -2)", "pool_size="]),
    ("avgpool_size_float", lambda: L.AveragePooling2D(1.5), TypeError, ["pool_size", "1.5", "pool_size="]),
    ("maxpool_strides_zero", lambda: L.MaxPooling2D(2, 0), ValueError, ["strides", "got 0", "strides="]),
    ("avgpool_strides_negative", lambda: L.AveragePooling2D(2, -1), ValueError, ["strides", "-1", "strides="]),
    ("maxpool_padding_int", lambda: L.MaxPooling2D(2, padding=1), TypeError, ["padding", "got int 1", "ZeroPadding2D"]),
    ("avgpool_padding_full", lambda: L.AveragePooling2D(2, padding="full"), ValueError, ["padding", "'full'", "ZeroPadding2D"]),
    ("zeropad_padding_same", lambda: L.ZeroPadding2D("same"), TypeError, ["padding", "'same'", "ZeroPadding2D(1)"]),
    ("zeropad_padding_negative", lambda: L.ZeroPadding2D(-1), ValueError, ["padding", "-1", "padding="]),
    # --- Dropout -------------------------------------------------------------------------------
    ("dropout_rate_one", lambda: L.Dropout(1.0), ValueError, ["rate in [0, 1)", "1.0", "Dropout(0.5)"]),
    ("dropout_rate_above_one", lambda: L.Dropout(1.5), ValueError, ["rate in [0, 1)", "1.5", "Dropout(0.5)"]),
    ("dropout_rate_negative", lambda: L.Dropout(-0.1), ValueError, ["rate in [0, 1)", "-0.1", "Dropout(0.5)"]),
    ("dropout_rate_nan", lambda: L.Dropout(float("nan")), ValueError, ["rate in [0, 1)", "nan", "Dropout(0.5)"]),
    ("dropout_rate_str", lambda: L.Dropout("0.5"), TypeError, ["rate as a real number in [0, 1)", "'0.5'", "Dropout(0.5)"]),
    # --- activation layers ---------------------------------------------------------------------
    ("activation_unknown", lambda: L.Activation("gelu"), ValueError, ["activation", "'gelu'", "LeakyReLU"]),
    ("activation_callable", lambda: L.Activation(np.tanh), TypeError, ["activation", "tanh", "LeakyReLU"]),
    ("relu_max_value_zero", lambda: L.ReLU(max_value=0), ValueError, ["max_value", "got 0", "ReLU(max_value=6.0)"]),
    ("relu_max_value_str", lambda: L.ReLU(max_value="6"), TypeError, ["max_value", "'6'", "ReLU(max_value=6.0)"]),
    ("relu_negative_slope", lambda: L.ReLU(negative_slope=-0.1), ValueError, ["negative_slope", "-0.1", "negative_slope=0.1"]),
    ("leaky_alpha_one", lambda: L.LeakyReLU(1.0), ValueError, ["alpha", "1.0", "LeakyReLU(alpha=0.1)"]),
    ("leaky_alpha_negative", lambda: L.LeakyReLU(-0.2), ValueError, ["alpha", "-0.2", "LeakyReLU(alpha=0.1)"]),
    ("leaky_alpha_str", lambda: L.LeakyReLU("0.2"), TypeError, ["alpha", "'0.2'", "LeakyReLU(alpha=0.1)"]),
    ("prelu_shared_axes_zero", lambda: L.PReLU(shared_axes=[0]), ValueError, ["shared_axes", "got 0", "shared_axes=[1, 2]"]),
    ("prelu_shared_axes_str", lambda: L.PReLU(shared_axes="hw"), TypeError, ["shared_axes", "'hw'", "shared_axes=[1, 2]"]),
    ("prelu_shared_axes_beyond", lambda: L.PReLU(shared_axes=[4]).build((None, 4, 4, 2)), ValueError,
     ["shared_axes within 1..3", "[4]", "1-based"]),
    ("prelu_initializer_unknown", lambda: L.PReLU(alpha_initializer="small"), ValueError, ["alpha_initializer", "'small'", "zeros"]),
    ("softmax_axis", lambda: L.Softmax(axis=1), ValueError, ["axis=-1", "got 1", "class axis last"]),
    # --- BatchNormalization ----------------------------------------------------------------------
    ("bn_axis", lambda: L.BatchNormalization(axis=1), ValueError, ["axis=-1", "got 1", "Move channels to the last axis"]),
    ("bn_momentum_one", lambda: L.BatchNormalization(momentum=1.0), ValueError, ["momentum in [0, 1)", "1.0", "0.99"]),
    ("bn_momentum_str", lambda: L.BatchNormalization(momentum="high"), TypeError, ["momentum", "'high'", "0.99"]),
    ("bn_epsilon_zero", lambda: L.BatchNormalization(epsilon=0), ValueError, ["epsilon > 0", "got 0", "1e-3"]),
    ("bn_epsilon_negative", lambda: L.BatchNormalization(epsilon=-1e-3), ValueError, ["epsilon > 0", "-0.001", "1e-3"]),
    ("bn_initializer_unknown", lambda: L.BatchNormalization(gamma_initializer="one"), ValueError,
     ["gamma_initializer", "'one'", "ones"]),
    # --- Reshape -------------------------------------------------------------------------------
    ("reshape_zero", lambda: L.Reshape((0, 5)), ValueError, ["target_shape", "(0, 5)", "Reshape((7, 7, 2))"]),
    ("reshape_two_unknowns", lambda: L.Reshape((-1, -1)), ValueError, ["at most one of them -1", "(-1, -1)", "Reshape("]),
    ("reshape_str", lambda: L.Reshape("7x7"), TypeError, ["target_shape", "'7x7'", "Reshape("]),
    ("reshape_size_mismatch", lambda: L.Reshape((3, -1)).build((None, 10,)), ValueError, ["10 elements", "(3, -1)"]),
    # --- arguments every layer takes ------------------------------------------------------------
    ("dtype_int", lambda: L.Dense(3, dtype="int32"), ValueError, ["dtype 'float32' or 'float64'", "'int32'", "float64"]),
    ("dtype_float16", lambda: L.Conv2D(3, 3, dtype="float16"), ValueError, ["dtype", "'float16'", "float64"]),
    ("dtype_bogus", lambda: L.Dense(3, dtype="bogus"), ValueError, ["dtype", "'bogus'", "float64"]),
    ("name_int", lambda: L.Dense(3, name=5), TypeError, ["name as a non-empty str", "5"]),
    ("name_empty", lambda: L.Dense(3, name=""), TypeError, ["name as a non-empty str", "''"]),
    ("input_shape_zero", lambda: L.Conv2D(3, 3, input_shape=(0, 28, 1)), ValueError, ["input_shape", "(0, 28, 1)", "(28, 28, 1)"]),
    ("input_shape_str", lambda: L.Dense(3, input_shape="784"), TypeError, ["input_shape", "'784'", "(28, 28, 1)"]),
    ("input_shape_empty", lambda: L.Dense(3, input_shape=()), ValueError, ["input_shape", "()", "(28, 28, 1)"]),
    # --- build: rank and kernel larger than the (padded) input ----------------------------------
    ("conv_build_rank2", lambda: L.Conv2D(2, 3).build((None, 28, 28)), ValueError, ["(N, H, W, C)", "(None, 28, 28)", "x[..., None]"]),
    ("conv_build_rank4", lambda: L.Conv2D(2, 3).build((None, 1, 28, 28, 1)), ValueError, ["(N, H, W, C)", "28, 28, 1)", "x[..., None]"]),
    ("conv_build_after_flatten", lambda: L.Conv2D(2, 3).build((None, 784)), ValueError, ["(N, H, W, C)", "(None, 784)", "Flatten"]),
    ("conv_kernel_larger_than_input", lambda: L.Conv2D(2, 5).build((None, 3, 3, 1)), ValueError,
     ["at least as large as its kernel (5, 5)", "3x3", "padding='same'"]),
    ("conv_kernel_larger_than_padded", lambda: L.Conv2D(2, (6, 2), padding=1).build((None, 3, 3, 1)), ValueError,
     ["kernel (6, 2) after padding", "5x5", "smaller kernel"]),
    ("conv_kernel_larger_one_axis", lambda: L.Conv2D(2, (1, 4)).build((None, 8, 3, 1)), ValueError, ["kernel (1, 4)", "8x3"]),
    ("pool_larger_than_input", lambda: L.MaxPooling2D(3).build((None, 2, 2, 1)), ValueError,
     ["at least as large as pool_size (3, 3)", "(2, 2, 1)", "padding='same'"]),
    ("avgpool_larger_one_axis", lambda: L.AveragePooling2D((1, 5)).build((None, 4, 4, 3)), ValueError, ["pool_size (1, 5)", "(4, 4, 3)"]),
    ("pool_build_rank", lambda: L.MaxPooling2D().build((None, 10,)), ValueError, ["(N, H, W, C)", "(None, 10)", "x[..., None]"]),
    ("gap_build_rank", lambda: L.GlobalAveragePooling2D().build((None, 4, 4)), ValueError, ["(N, H, W, C)", "(None, 4, 4)"]),
    ("gmp_build_rank", lambda: L.GlobalMaxPooling2D().build((None, 16,)), ValueError, ["(N, H, W, C)", "(None, 16)"]),
    ("zeropad_build_rank", lambda: L.ZeroPadding2D(1).build((None, 16,)), ValueError, ["(N, H, W, C)", "(None, 16)"]),
    ("dense_build_images", lambda: L.Dense(3).build((None, 4, 4, 2)), ValueError, ["(N, features)", "(None, 4, 4, 2)", "Flatten"]),
    ("dense_build_scalar", lambda: L.Dense(3).build((None,)), ValueError, ["(N, features)", "1-D", "x[None, :]"]),
    # --- forward on a layer directly --------------------------------------------------------------
    ("conv_forward_one_image", lambda: L.Conv2D(2, 3).forward(_x(5, 5, 1)), ValueError, ["(N, H, W, C)", "(5, 5, 1)", "x[None]"]),
    ("conv_forward_one_gray", lambda: L.Conv2D(2, 3).forward(_x(5, 5)), ValueError, ["(N, H, W, C)", "(5, 5)", "x[None, ..., None]"]),
    ("conv_forward_built_rank", lambda: L.Conv2D(2, 3).build((None, 5, 5, 1)).forward(_x(5, 5, 1)), ValueError,
     ["(N, H, W, C)", "(5, 5, 1)", "x[None]"]),
    ("conv_forward_built_channels", lambda: L.Conv2D(2, 3).build((None, 5, 5, 1)).forward(_x(1, 5, 5, 3)), ValueError,
     ["1 channels", "(5, 5, 3)", "new layer"]),
    ("conv_forward_built_too_small", lambda: L.Conv2D(2, 3).build((None, 5, 5, 1)).forward(_x(1, 2, 5, 1)), ValueError,
     ["kernel (3, 3)", "2x5"]),
    ("conv_forward_list", lambda: L.Conv2D(2, 3).forward([[[[0.0]]]]), TypeError, ["float NumPy array", "list", "astype"]),
    ("conv_forward_uint8_images", lambda: L.Conv2D(2, 3).forward(np.zeros((1, 5, 5, 1), np.uint8)), TypeError,
     ["float NumPy array", "uint8", "x.astype('float32') / 255"]),
    ("maxpool_same_forward_int", lambda: L.MaxPooling2D(3, 2, padding="same").forward(np.ones((1, 4, 4, 1), int)),
     TypeError, ["float NumPy array", "int64", "model.predict"]),
    ("dropout_forward_bool", lambda: L.Dropout(0.5).forward(np.ones((2, 3), bool), training=True), TypeError,
     ["float NumPy array", "bool", "astype"]),
    ("dense_forward_built_features", lambda: L.Dense(3).build((None, 4,)).forward(_x(2, 5)), ValueError,
     ["4 channels/features", "(5,)", "new layer"]),
    ("dense_forward_one_vector", lambda: L.Dense(3).build((None, 4,)).forward(_x(4)), ValueError, ["(N, features)", "1-D", "x[None, :]"]),
    ("dense_forward_images", lambda: L.Dense(3).forward(_x(2, 4, 4, 1)), ValueError, ["(N, features)", "(None, 4, 4, 1)", "Flatten"]),
    ("bn_forward_built_channels", lambda: L.BatchNormalization().build((None, 4, 4, 2)).forward(_x(1, 4, 4, 3)), ValueError,
     ["2 channels", "(4, 4, 3)"]),
    ("prelu_forward_built_shape", lambda: L.PReLU().build((None, 4, 4, 2)).forward(_x(1, 5, 4, 2)), ValueError,
     ["alpha of shape (4, 4, 2)", "(5, 4, 2)", "shared_axes=[1, 2]"]),
    ("pool_forward_built_rank", lambda: L.MaxPooling2D().build((None, 4, 4, 2)).forward(_x(4, 4, 2)), ValueError,
     ["(N, H, W, C)", "(4, 4, 2)", "x[None]"]),
    ("reshape_forward_built_size", lambda: L.Reshape((2, -1)).build((None, 4,)).forward(_x(3, 5)), ValueError,
     ["a target shape with 5 elements", "(2, -1)"]),
    # --- through a model ---------------------------------------------------------------------------
    ("model_missing_channel_axis", lambda: gn.Sequential([L.Conv2D(2, 3, input_shape=(8, 8, 1))]).predict(_x(2, 8, 8)),
     ValueError, ["(N, H, W, C)", "(2, 8, 8)", "x[..., None]"]),
    ("model_unbuilt_missing_channel_axis", lambda: gn.Sequential([L.Conv2D(2, 3)]).predict(_x(2, 8, 8)),
     ValueError, ["(N, H, W, C)", "(None, 8, 8)", "x[..., None]"]),
    ("model_channels_first", lambda: gn.Sequential([L.Conv2D(2, 3, input_shape=(8, 8, 1))]).predict(_x(2, 1, 8, 8)),
     ValueError, ["(8, 8, 1)", "(2, 1, 8, 8)", "channels-first"]),
    ("model_dense_on_images", lambda: gn.Sequential([L.Conv2D(2, 3, input_shape=(8, 8, 1)), L.Dense(3)]),
     ValueError, ["(N, features)", "(None, 6, 6, 2)", "Flatten"]),
    ("model_dense_wrong_features", lambda: gn.Sequential([L.Dense(3, input_shape=(4,))]).predict(_x(2, 5)),
     ValueError, ["(4,)", "(2, 5)"]),
    ("model_kernel_larger_after_pooling", lambda: gn.Sequential([L.Conv2D(2, 3, input_shape=(8, 8, 1)),
                                                                   L.MaxPooling2D(2), L.Conv2D(2, 5)]),
     ValueError, ["kernel (5, 5)", "3x3", "fewer pooling layers"]),
    # --- weights and configs -------------------------------------------------------------------
    ("set_weights_count", lambda: L.Dense(3).build((None, 4,)).set_weights([np.zeros((4, 3))]), ValueError,
     ["2 arrays ['kernel', 'bias']", "1 arrays", "get_weights() order"]),
    ("set_weights_shape", lambda: L.Dense(3).build((None, 4,)).set_weights([np.zeros((3, 4)), np.zeros(3)]), ValueError,
     ["'kernel' of shape (4, 3)", "(3, 4)", "[kernel, bias]"]),
    ("set_weights_conv_oihw", lambda: L.Conv2D(8, 3).build((None, 5, 5, 1)).set_weights([np.zeros((8, 1, 3, 3)), np.zeros(8)]),
     ValueError, ["(3, 3, 1, 8)", "(8, 1, 3, 3)", "HWIO"]),
    ("set_weights_nan", lambda: L.Dense(3).build((None, 4,)).set_weights([np.full((4, 3), np.nan), np.zeros(3)]), ValueError,
     ["finite numbers for 'kernel'", "(4, 3)"]),
    ("set_weights_strings", lambda: L.Dense(1).build((None, 1,)).set_weights([np.array([["a"]]), np.zeros(1)]), ValueError,
     ["finite numbers for 'kernel'", "<U1"]),
    ("set_weights_not_a_list", lambda: L.Dense(3).build((None, 4,)).set_weights(np.zeros((4, 3))), TypeError,
     ["a list of 2 arrays", "(4, 3)", "get_weights()"]),
    ("set_weights_unbuilt", lambda: L.Dense(3).set_weights([np.zeros((4, 3)), np.zeros(3)]), RuntimeError,
     ["a built layer", "unbuilt", "input_shape"]),
    ("deserialize_unknown_class", lambda: L.deserialize({"class_name": "Conv3D", "config": {}}), ValueError,
     ["a layer class among", "'Conv3D'"]),
    ("initializer_unknown", lambda: initializers.get("xavier"), ValueError, ["'xavier'", "spelling"]),
    ("initializer_bad_config", lambda: initializers.get({"class_name": "RandomNormal", "config": {"sigma": 1}}),
     ValueError, ["RandomNormal", "sigma"]),
    ("initializer_scale_zero", lambda: initializers.VarianceScaling(0.0), ValueError, ["scale > 0", "0.0", "He 2.0"]),
    ("initializer_mode", lambda: initializers.VarianceScaling(1.0, mode="fan_sum"), ValueError, ["mode", "'fan_sum'"]),
    ("initializer_distribution", lambda: initializers.VarianceScaling(1.0, distribution="normal"), ValueError,
     ["distribution", "'normal'", "truncated_normal"]),
]
CASE_IDS = [case[0] for case in CASES]
# messages written outside the layers (glassnet/validation.py) that still lack a fix sentence
NO_FIX_YET = {"model_dense_wrong_features"}


def test_case_ids_are_distinct():
    assert len(set(CASE_IDS)) == len(CASES) >= 100


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_bad_input_raises_a_clear_glassnet_error(case):
    _, call, exception, fragments = case
    with pytest.raises(exception) as info:
        call()
    assert type(info.value) is exception                      # not a subclass such as NumPy's AxisError
    text = str(info.value)
    assert re.search(r"\bexpects\b.*; got ", text), text      # what was expected; what was received
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} missing from: {text}"
    if case[0] not in NO_FIX_YET:
        assert re.search(r"; got .*\. [A-Z]", text), f"no fix suggested: {text}"      # how to fix it
    frame = info.traceback[-1]
    assert "/glassnet/" in str(frame.path) and "/numpy/" not in str(frame.path), frame.path


def test_a_failed_set_weights_leaves_the_layer_unchanged():
    layer = L.Dense(3).build((None, 4,))
    before = layer.get_weights()
    with pytest.raises(ValueError):
        layer.set_weights([np.ones((4, 3)), np.ones(4)])      # kernel fine, bias wrong
    for got, want in zip(layer.get_weights(), before):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("padding", ["SAME", "Valid", 0, (0, 2), [1, 1], ((0, 1), (2, 0)), [[1, 0], [0, 1]],
                                     np.int64(2)], ids=str)
def test_valid_padding_forms_are_accepted(padding):
    layer = L.Conv2D(1, 3, padding=padding).build((None, 6, 6, 1))
    assert layer.forward(_x(1, 6, 6, 1)).shape[1:] == layer.output_shape[1:]
