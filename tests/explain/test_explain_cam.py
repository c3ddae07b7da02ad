"""CAM, Grad-CAM, Grad-CAM++ and Guided Grad-CAM against answers worked by hand."""
import numpy as np
import pytest

import glassnet as gn
from glassnet import explain, layers

from explain_nets import CONV_X, conv_net, gap_net, images, small_cnn

# conv_net, class 0: A0 = relu([[1, 2], [0, -1]]) = [[1, 2], [0, 0]], A1 = relu([[1, -3], [0, -1]]) = [[1, 0], [0, 0]]
# G = CLASS0: alpha = mean(G) = [(1+2+3+4)/4, (-1+0+2+1)/4] = [2.5, 0.5]
# Grad-CAM = 2.5 A0 + 0.5 A1 = [[3, 5], [0, 0]]
GRAD_CAM_0 = np.array([[3.0, 5.0], [0.0, 0.0]])
# bilinear 2x2 -> 3x3 with half-pixel centres samples rows/cols at 0, 0.5, 1 (clamped)
GRAD_CAM_0_UP = np.array([[3.0, 4.0, 5.0], [1.5, 2.0, 2.5], [0.0, 0.0, 0.0]])


def test_grad_cam_worked_by_hand():
    model = conv_net()
    np.testing.assert_allclose(explain.grad_cam(model, CONV_X, target=0, upsample=False)[0], GRAD_CAM_0,
                               atol=1e-6)
    np.testing.assert_allclose(explain.grad_cam(model, CONV_X, target=0)[0], GRAD_CAM_0_UP, atol=1e-6)
    # class 1 weighs channel 0 by -1 and channel 1 by 0: the signed map is -A0, all clipped by the ReLU
    np.testing.assert_allclose(explain.grad_cam(model, CONV_X, target=1, relu=False, upsample=False)[0],
                               [[-1.0, -2.0], [0.0, 0.0]], atol=1e-6)
    np.testing.assert_allclose(explain.grad_cam(model, CONV_X, target=1, upsample=False)[0], 0, atol=1e-6)
    # the layer by name, index or instance; logits ignore the softmax, probabilities scale by dp/dlogit
    for layer in ("conv", 0, model.get_layer("conv")):
        np.testing.assert_allclose(explain.grad_cam(model, CONV_X, 0, layer=layer, upsample=False)[0],
                                   GRAD_CAM_0, atol=1e-6)


def test_grad_cam_on_probabilities_is_scaled_by_the_softmax_jacobian():
    model = conv_net(dtype="float64")
    logits = model.predict(CONV_X, logits=True)[0]
    p = np.exp(logits - logits.max())
    p /= p.sum()
    # dp0/dA = p0 (1 - p0) G0 - p0 p1 G1, so alpha = p0 p1 (alpha_class0 - alpha_class1)
    alpha = p[0] * p[1] * (np.array([2.5, 0.5]) - np.array([-1.0, 0.0]))
    A = np.stack([[[1.0, 2.0], [0.0, 0.0]], [[1.0, 0.0], [0.0, 0.0]]], axis=-1)
    expected = A @ alpha
    got = explain.grad_cam(model, CONV_X, target=0, score="probability", upsample=False)[0]
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_grad_cam_plus_plus_worked_by_hand():
    # alpha(G) = G^2 / (2 G^2 + S G^3), w = sum alpha * relu(G); S = sum(A) per channel = [3, 1]
    w0 = 1 / 5 * 1 + 1 / 8 * 2 + 1 / 11 * 3 + 1 / 14 * 4   # G0 = 1, 2, 3, 4
    w1 = 0 + 0 + 1 / 4 * 2 + 1 / 3 * 1                        # G1 = -1 (relu 0), 0 (skipped), 2, 1
    expected = np.array([[w0 + w1, 2 * w0], [0.0, 0.0]])
    got = explain.grad_cam_plus_plus(conv_net(dtype="float64"), CONV_X, target=0, upsample=False)[0]
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_guided_grad_cam_worked_by_hand():
    # guided input gradient [[1, 2, 0], [0, 0, 0], [0, 0, 0]] times the upsampled Grad-CAM
    got = explain.guided_grad_cam(conv_net(), CONV_X, target=0)
    assert got.shape == (1, 3, 3, 1)
    np.testing.assert_allclose(got[0, :, :, 0], [[3.0, 8.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]], atol=1e-6)


@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("upsample", [True, False])
def test_grad_cam_equals_cam_over_hw_on_a_gap_model(relu, upsample):
    model = gap_net(seed=1, dtype="float64")
    x = images(6, (10, 10, 1), seed=2, dtype="float64")
    h, w = model.layers[3].output_shape[1:3]          # the ReLU before the GAP: 4 x 4
    target = [0, 1, 2, 0, 1, 2]
    expected = explain.cam(model, x, target=target, relu=relu, upsample=upsample) / (h * w)
    got = explain.grad_cam(model, x, target=target, relu=relu, upsample=upsample)
    assert got.shape == ((6, 10, 10) if upsample else (6, h, w))
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-14)
    assert np.ptp(got) > 0


def test_cam_is_the_class_weighted_sum_of_the_last_feature_maps():
    model = gap_net(seed=2)
    x = images(3, (10, 10, 1), seed=3)
    A = explain.feature_maps(model, x, 3)                 # (3, 4, 4, 6)
    kernel = model.layers[-1].get_weights()[0]            # (6, 3)
    predicted = model.predict(x).argmax(axis=1)
    expected = np.einsum("nhwk,kn->nhw", A, kernel[:, predicted])
    np.testing.assert_allclose(explain.cam(model, x, relu=False, upsample=False), expected, rtol=1e-5,
                               atol=1e-6)


def test_cam_requires_gap_then_dense():
    with pytest.raises(ValueError, match="GlobalAveragePooling2D -> Dense"):
        explain.cam(small_cnn(), images(1, (8, 8, 2)))
    with pytest.raises(ValueError, match="grad_cam"):
        explain.cam(conv_net(), CONV_X)


def test_default_layer_is_the_last_4d_output_and_layer_checks():
    model = small_cnn(seed=1)
    x = images(2, (8, 8, 2), seed=0)
    # the last (N, h, w, C) layer of small_cnn is the Dropout (index 4)
    np.testing.assert_array_equal(explain.grad_cam(model, x, layer=4), explain.grad_cam(model, x))
    assert not np.allclose(explain.grad_cam(model, x, layer=0, relu=False),
                           explain.grad_cam(model, x, relu=False))
    with pytest.raises(ValueError, match=r"\(N, H, W, C\) output"):
        explain.grad_cam(model, x, layer=-1)
    with pytest.raises(ValueError, match="layer"):
        explain.grad_cam(model, x, layer="no_such_layer")
    with pytest.raises(ValueError, match="layer"):
        explain.grad_cam(model, x, layer=99)
    dense_only = gn.Sequential([layers.Flatten(input_shape=(4, 4, 1)), layers.Dense(2)])
    with pytest.raises(ValueError, match=r"\(N, H, W, C\) output"):
        explain.grad_cam(dense_only, images(1, (4, 4, 1)))


def test_upsample_bilinear_known_values():
    m = np.array([[[0.0, 1.0], [2.0, 3.0]]])
    # half-pixel centres: output pixels of a 2 -> 4 resize sample at -0.25 (clamped), 0.25, 0.75, 1.25 (clamped)
    expected = np.array([[0.0, 0.25, 0.75, 1.0], [0.5, 0.75, 1.25, 1.5],
                         [1.5, 1.75, 2.25, 2.5], [2.0, 2.25, 2.75, 3.0]])
    np.testing.assert_allclose(explain.upsample_bilinear(m, (4, 4))[0], expected)
    # constants stay constant, a 1x1 map fills the image, same size is the identity
    np.testing.assert_allclose(explain.upsample_bilinear(np.full((2, 3, 5), 7.0), (28, 28)), 7.0)
    np.testing.assert_allclose(explain.upsample_bilinear(np.array([[[4.0]]]), (3, 2)), np.full((1, 3, 2), 4.0))
    r = np.random.default_rng(0).standard_normal((2, 5, 6))
    np.testing.assert_allclose(explain.upsample_bilinear(r, (5, 6)), r)
    # linear ramps stay linear in the interior
    ramp = np.arange(4.0)[None, None, :].repeat(2, axis=1)
    np.testing.assert_allclose(explain.upsample_bilinear(ramp, (2, 8))[0, 0, 1:-1],
                               np.arange(1, 7) * 0.5 - 0.25)


def test_receptive_field_grid_follows_kernels_strides_and_padding():
    from glassnet import models
    keras_mnist = models.keras_mnist(seed=0)
    # two valid 3x3 convs shift by 1 pixel each, then 2x2 pooling: cell j is centred on 2 j + 0.5 + 2
    assert explain.receptive_field_grid(keras_mnist, 3) == ((2.5, 2), (2.5, 2))
    assert explain.receptive_field_grid(keras_mnist, 0) == ((1.0, 1), (1.0, 1))
    same = gn.Sequential([
        layers.Conv2D(2, 3, padding="same", input_shape=(28, 28, 1)), layers.MaxPooling2D(2),
        layers.Conv2D(2, 3, padding="same"), layers.MaxPooling2D(2), layers.ReLU(),
        layers.ZeroPadding2D(1), layers.Conv2D(2, 3),
        layers.Conv2D(2, 3, strides=2, padding="same"),
    ])
    # "same" convs keep centres; each 2x2 pool maps j to 2 j + 0.5: 4 j + 1.5 after two
    assert explain.receptive_field_grid(same, 4) == ((1.5, 4), (1.5, 4))
    # zero padding by 1 then a valid 3x3 conv: back to the same centres
    assert explain.receptive_field_grid(same, 6) == ((1.5, 4), (1.5, 4))
    # stride 2 "same" on 7 pixels pads (1, 1): j -> 2 j - 1 + 1 = 2 j
    assert explain.receptive_field_grid(same, 7) == ((1.5, 8), (1.5, 8))


def test_aligned_upsampling():
    # a 2x2 map of a valid 3x3 conv on 4x4 pixels: cells sit on pixels 1 and 2, so pixel p samples p - 1
    m = np.array([[[1.0, 2.0], [3.0, 4.0]]])
    got = explain.upsample_bilinear(m, (4, 4), grid=((1.0, 1.0), (1.0, 1.0)))
    np.testing.assert_allclose(got[0], [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]])
    # half-pixel centres would blend instead
    assert not np.allclose(explain.upsample_bilinear(m, (4, 4)), got)
    model = gn.Sequential([layers.Conv2D(2, 3, activation="relu", input_shape=(4, 4, 1)), layers.Flatten(),
                           layers.Dense(2)], seed=1)
    x = images(3, (4, 4, 1), seed=2)
    small = explain.grad_cam(model, x, upsample=False)
    np.testing.assert_allclose(explain.grad_cam(model, x, upsample="aligned"),
                               explain.upsample_bilinear(small, (4, 4), ((1.0, 1.0), (1.0, 1.0))), rtol=1e-6)
    # the default (True) places cells at their receptive fields when the geometry is known
    np.testing.assert_array_equal(explain.grad_cam(model, x), explain.grad_cam(model, x, upsample="aligned"))
    np.testing.assert_allclose(explain.grad_cam(model, x, upsample="half_pixel"),
                               explain.upsample_bilinear(small, (4, 4)), rtol=1e-6)
    assert not np.allclose(explain.grad_cam(model, x), explain.grad_cam(model, x, upsample="half_pixel"))
    # for "same" padding and pooling the two conventions agree
    net = gn.Sequential([layers.Conv2D(3, 3, padding="same", activation="relu", input_shape=(8, 8, 1)),
                         layers.MaxPooling2D(2), layers.GlobalAveragePooling2D(), layers.Dense(2)], seed=3)
    x = images(2, (8, 8, 1), seed=4)
    np.testing.assert_allclose(explain.grad_cam(net, x, upsample="half_pixel"), explain.grad_cam(net, x), rtol=1e-6)
    np.testing.assert_allclose(explain.cam(net, x, upsample="half_pixel"), explain.cam(net, x), rtol=1e-6)
    assert explain.guided_grad_cam(net, x, upsample="aligned").shape == (2, 8, 8, 1)
    with pytest.raises(ValueError, match="upsample"):
        explain.grad_cam(net, x, upsample="nearest")
    with pytest.raises(ValueError, match="upsample"):
        explain.guided_grad_cam(net, x, upsample=False)
