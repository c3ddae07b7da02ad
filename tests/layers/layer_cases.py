"""Shared helpers for the layer tests: kink-free inputs and a catalog of one layer of every kind.

Central differences are only valid where the function is smooth within +-eps of the point, so
inputs are built away from the kinks of relu (0), ReLU's cap (max_value) and max pooling (ties).
"""
import numpy as np

from glassnet import initializers, layers

EPS = 1e-6          # step of the central differences (glassnet.testing's default)
MARGIN = 1e-3       # distance kept from every kink: 1000 x EPS


def distinct(shape, rng, low=-2.0, high=2.0):
    """Values spread evenly over (low, high) in random order: all distinct (no max-pool ties, gaps of
    (high - low) / size >> EPS) and at least a quarter gap away from 0 (the relu kink)."""
    size = int(np.prod(shape))
    step = (high - low) / size
    x = low + step * (rng.permutation(size) + 0.5)
    if np.abs(x).min() < step / 4:
        x += step / 2
    return x.reshape(shape)


def away_from(x, points, margin=MARGIN):
    """Move every entry of ``x`` that lies within ``margin`` of one of ``points`` to ``margin`` beyond it."""
    x = np.array(x, dtype=np.float64)
    for p in points:
        near = np.abs(x - p) < margin
        x[near] = p + np.where(x[near] >= p, margin, -margin) * 2
    return x


def smooth_conv_input(layer, shape, rng, tries=200):
    """A float64 input for ``layer`` (Conv2D or Dense with a fused relu) whose pre-activations all stay
    ``MARGIN`` away from 0, so relu's kink is never crossed by a perturbation of size EPS."""
    for _ in range(tries):
        x = rng.standard_normal(shape)
        z = layer.forward(x, logits=True)
        if layer.activation != "relu" or np.abs(z).min() > MARGIN:
            return x
    raise RuntimeError("could not draw a kink-free input")      # pragma: no cover (probability ~0)


def reseed(seed):
    """A ``prepare`` hook for check_layer_gradients: the same Dropout mask on every forward pass."""
    def prepare(layer):
        layer.rng = np.random.default_rng(seed)
    return prepare


# One representative of every layer and option family: (id, factory(dtype) -> Layer, per-example input shape)
CATALOG = [
    ("conv_valid", lambda d: layers.Conv2D(3, 3, dtype=d), (6, 5, 2)),
    ("conv_same_s2", lambda d: layers.Conv2D(4, (3, 2), strides=2, padding="same", dtype=d), (7, 6, 3)),
    ("conv_pad_tblr_relu", lambda d: layers.Conv2D(2, 2, strides=(1, 2), padding=((1, 0), (2, 1)),
                                                   activation="relu", dtype=d), (5, 5, 1)),
    ("conv_nobias_sigmoid", lambda d: layers.Conv2D(2, 3, padding=1, use_bias=False, activation="sigmoid",
                                                    dtype=d), (4, 4, 2)),
    ("conv_softmax", lambda d: layers.Conv2D(3, 1, activation="softmax", dtype=d), (3, 3, 2)),
    ("conv_tanh_pad_pair", lambda d: layers.Conv2D(2, 3, padding=(2, 1), activation="tanh", dtype=d), (3, 4, 2)),
    ("zeropad", lambda d: layers.ZeroPadding2D(((1, 2), (0, 3)), dtype=d), (3, 4, 2)),
    ("maxpool", lambda d: layers.MaxPooling2D(2, dtype=d), (6, 6, 2)),
    ("maxpool_same_overlap", lambda d: layers.MaxPooling2D(3, 2, padding="same", dtype=d), (7, 6, 2)),
    ("avgpool", lambda d: layers.AveragePooling2D(2, dtype=d), (6, 6, 2)),
    ("avgpool_whole", lambda d: layers.AveragePooling2D((3, 4), dtype=d), (3, 4, 2)),
    ("avgpool_1x1", lambda d: layers.AveragePooling2D(1, dtype=d), (3, 4, 2)),
    ("avgpool_same_overlap", lambda d: layers.AveragePooling2D(3, 2, padding="same", dtype=d), (7, 6, 2)),
    ("gap", lambda d: layers.GlobalAveragePooling2D(dtype=d), (3, 4, 2)),
    ("gmp", lambda d: layers.GlobalMaxPooling2D(dtype=d), (3, 4, 2)),
    ("dense", lambda d: layers.Dense(4, dtype=d), (5,)),
    ("dense_softmax_nobias", lambda d: layers.Dense(3, activation="softmax", use_bias=False, dtype=d), (5,)),
    ("dense_relu", lambda d: layers.Dense(3, activation="relu", dtype=d), (5,)),
    ("flatten", lambda d: layers.Flatten(dtype=d), (3, 4, 2)),
    ("reshape", lambda d: layers.Reshape((4, -1), dtype=d), (3, 4, 2)),
    ("dropout", lambda d: layers.Dropout(0.4, seed=1, dtype=d), (3, 4, 2)),
    ("activation_relu", lambda d: layers.Activation("relu", dtype=d), (3, 4, 2)),
    ("activation_sigmoid", lambda d: layers.Activation("sigmoid", dtype=d), (5,)),
    ("activation_tanh", lambda d: layers.Activation("tanh", dtype=d), (5,)),
    ("activation_linear", lambda d: layers.Activation("linear", dtype=d), (5,)),
    ("activation_softmax", lambda d: layers.Activation("softmax", dtype=d), (5,)),
    ("relu_capped_leaky", lambda d: layers.ReLU(max_value=1.0, negative_slope=0.1, dtype=d), (3, 4, 2)),
    ("leaky_relu", lambda d: layers.LeakyReLU(0.2, dtype=d), (3, 4, 2)),
    ("prelu_shared", lambda d: layers.PReLU(alpha_initializer="uniform", shared_axes=[1, 2], dtype=d), (3, 4, 2)),
    ("prelu", lambda d: layers.PReLU(alpha_initializer="uniform", dtype=d), (5,)),
    ("softmax", lambda d: layers.Softmax(dtype=d), (5,)),
    ("batchnorm_4d", lambda d: layers.BatchNormalization(dtype=d), (3, 4, 2)),
    ("batchnorm_2d_noscale", lambda d: layers.BatchNormalization(scale=False, dtype=d), (5,)),
    ("depthwise", lambda d: layers.DepthwiseConv2D(3, dtype=d), (5, 6, 2)),
    ("depthwise_same_s2_m2_relu", lambda d: layers.DepthwiseConv2D((3, 2), strides=2, padding="same",
                                                                   depth_multiplier=2, activation="relu",
                                                                   dtype=d), (7, 6, 3)),
    ("depthwise_dilated_nobias", lambda d: layers.DepthwiseConv2D(2, dilation_rate=(2, 1), padding=((1, 0), (0, 1)),
                                                                  use_bias=False, activation="tanh", dtype=d),
     (5, 4, 2)),
    ("separable", lambda d: layers.SeparableConv2D(4, 3, padding="same", depth_multiplier=2, dtype=d), (5, 5, 3)),
    ("separable_s2_sigmoid_nobias", lambda d: layers.SeparableConv2D(3, 2, strides=(2, 1), activation="sigmoid",
                                                                     use_bias=False, dtype=d), (6, 5, 2)),
    ("upsampling_nearest", lambda d: layers.UpSampling2D((2, 3), dtype=d), (3, 4, 2)),
    ("upsampling_bilinear", lambda d: layers.UpSampling2D(2, interpolation="bilinear", dtype=d), (3, 4, 2)),
    ("cropping", lambda d: layers.Cropping2D(((1, 0), (2, 1)), dtype=d), (4, 5, 2)),
    ("rescaling", lambda d: layers.Rescaling(1 / 255, offset=-0.5, dtype=d), (3, 4, 2)),
    ("random_flip", lambda d: layers.RandomFlip(seed=3, dtype=d), (3, 4, 2)),
    ("random_crop", lambda d: layers.RandomCrop(3, 2, seed=4, dtype=d), (5, 4, 2)),
    ("random_erasing", lambda d: layers.RandomErasing(0.8, scale=(0.1, 0.5), fill_value=0.25, value_range=(0, 1),
                                                      seed=5, dtype=d), (5, 4, 2)),
    # initializers given as objects rather than names (their configs must still be JSON)
    ("conv_initializer_objects", lambda d: layers.Conv2D(2, 2, kernel_initializer=initializers.HeNormal(),
                                                         bias_initializer=initializers.Constant(0.1), dtype=d),
     (4, 4, 1)),
    ("dense_initializer_objects", lambda d: layers.Dense(2, kernel_initializer=initializers.RandomNormal(0, 1),
                                                         dtype=d), (3,)),
    ("prelu_initializer_object", lambda d: layers.PReLU(alpha_initializer=initializers.Constant(0.25), dtype=d),
     (4,)),
    ("batchnorm_initializer_object", lambda d: layers.BatchNormalization(
        gamma_initializer=initializers.RandomUniform(0.5, 1.5), dtype=d), (2, 2, 3)),
]
CATALOG_IDS = [case[0] for case in CATALOG]
