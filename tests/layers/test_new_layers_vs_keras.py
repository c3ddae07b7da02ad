"""The new layers against real Keras 3 (KERAS_BACKEND=torch, a dev-only oracle): the same arguments, the weights
Keras's get_weights() returns loaded with set_weights(), the same outputs; our config keys are Keras's."""
import numpy as np
import pytest

from glassnet import layers

CASES = [
    ("DepthwiseConv2D", dict(kernel_size=3, padding="same", depth_multiplier=2, activation="relu"), (9, 8, 3)),
    ("DepthwiseConv2D", dict(kernel_size=(2, 3), strides=2, use_bias=False), (9, 8, 2)),
    ("DepthwiseConv2D", dict(kernel_size=3, dilation_rate=2, padding="same", activation="tanh"), (9, 8, 2)),
    ("SeparableConv2D", dict(filters=5, kernel_size=3, depth_multiplier=2, activation="sigmoid"), (9, 8, 3)),
    ("SeparableConv2D", dict(filters=4, kernel_size=(3, 2), strides=(2, 1), padding="same"), (9, 8, 2)),
    ("UpSampling2D", dict(size=(2, 3)), (4, 5, 2)),
    ("UpSampling2D", dict(size=2, interpolation="bilinear"), (4, 5, 2)),
    ("UpSampling2D", dict(size=(3, 2), interpolation="bilinear"), (3, 4, 1)),
    ("Cropping2D", dict(cropping=((1, 2), (0, 3))), (6, 7, 2)),
    ("Cropping2D", dict(cropping=2), (6, 7, 2)),
    ("Rescaling", dict(scale=1 / 127.5, offset=-1.0), (4, 4, 3)),
]


@pytest.mark.parametrize("name, kwargs, shape", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_same_outputs_as_keras_with_keras_weights(keras, name, kwargs, shape):
    rng = np.random.default_rng(len(CASES) + len(kwargs))
    x = rng.standard_normal((2,) + shape).astype("float32")
    theirs = getattr(keras.layers, name)(**kwargs)
    theirs.build((None,) + shape)
    weights = [rng.standard_normal(w.shape).astype("float32") for w in theirs.get_weights()]
    theirs.set_weights(weights)
    ours = getattr(layers, name)(**kwargs).build(shape)
    ours.set_weights(weights)                          # Keras's shapes and order, unchanged
    expected = keras.ops.convert_to_numpy(theirs(x))
    np.testing.assert_allclose(ours.forward(x), expected, rtol=2e-5, atol=2e-5)
    assert ours.output_shape == tuple(theirs.compute_output_shape((None,) + shape))
    assert set(ours.get_config()) - {"input_shape", "seed"} <= set(theirs.get_config())


@pytest.mark.parametrize("name, kwargs", [("RandomFlip", dict(mode="horizontal")), ("RandomCrop", dict(height=3,
                                                                                                      width=4))])
def test_augmentation_layers_take_keras_arguments(keras, name, kwargs):
    """Inference: RandomFlip is the identity in both; RandomCrop of an image of the window's size too."""
    x = np.random.default_rng(1).standard_normal((2, 3, 4, 1)).astype("float32")
    theirs = getattr(keras.layers, name)(**kwargs, seed=0)
    ours = getattr(layers, name)(**kwargs, seed=0)
    np.testing.assert_array_equal(ours.forward(x), keras.ops.convert_to_numpy(theirs(x, training=False)))
    assert set(ours.get_config()) - {"input_shape"} <= set(theirs.get_config())
