"""Seed acceptance tests through the layer API, and fast path == loop reference.

Seeds 001 and 002's worked examples run through ``layers.Conv2D``, ``MaxPooling2D``,
``AveragePooling2D`` (and ``ZeroPadding2D``) in float64, with the seeds' weights converted
to HWIO and inputs to NHWC. Printed arrays are compared at their printed 8 decimals,
printed ``repr`` scalars to 1e-13 relative (the GEMM adds in another order than the seed's
loops), seed 001's small integers exactly.

Then randomized configurations compare every layer's forward and backward with
:mod:`glassnet.reference` to 1e-10.
"""
import numpy as np
import pytest

from glassnet import layers
from glassnet import reference as R
from golden.seed_examples import (SEED002_PRINTED as P, seed001_nhwc, seed002_conv_inputs,
                                  seed002_conv_single_step_inputs, seed002_mask_input,
                                  seed002_pool_backward_inputs, seed002_pool_forward_inputs,
                                  seed002_zero_pad_input)

REPR = dict(rtol=1e-13, atol=0)
TIGHT = dict(rtol=1e-10, atol=1e-10)


def built(layer, x, weights=None):
    """Build ``layer`` for ``x``'s per-example shape and load ``weights`` (Keras order)."""
    layer.build(x.shape)
    if weights is not None:
        layer.set_weights(weights)
    return layer


def forward_backward(layer, x, dy):
    """Run forward then backward; check the protocol (dtype, dy untouched) along the way."""
    y = layer.forward(x, training=False)
    assert y.dtype == np.float64
    dy_before = dy.copy()
    dx = layer.backward(dy)
    np.testing.assert_array_equal(dy, dy_before)                       # backward never mutates dy
    assert dx.shape == x.shape and dx.dtype == np.float64
    return y, dx


# ----------------------------------------------------------------------------------------
# seed 002 through the layers
# ----------------------------------------------------------------------------------------
def test_seed002_zero_pad_through_zero_padding2d():
    x = seed002_zero_pad_input()
    x_pad = built(layers.ZeroPadding2D(2, dtype="float64"), x).forward(x)
    assert x_pad.shape == P["x_pad.shape"]
    np.testing.assert_array_almost_equal(x[1, 1], P["x[1,1]"], decimal=8)
    np.testing.assert_array_equal(x_pad[1, 1], P["x_pad[1,1]"])


def test_seed002_conv_single_step_through_conv2d():
    a_slice_prev, W, b = seed002_conv_single_step_inputs()
    layer = built(layers.Conv2D(1, 4, dtype="float64"), a_slice_prev[None], [W[..., None], b.reshape(1)])
    Z = layer.forward(a_slice_prev[None])
    assert Z.shape == (1, 1, 1, 1)
    np.testing.assert_allclose(Z[0, 0, 0, 0], P["Z"], **REPR)


def seed002_conv_layer():
    A_prev, W, b, hparameters = seed002_conv_inputs()
    layer = layers.Conv2D(8, 2, strides=hparameters["stride"], padding=hparameters["pad"], dtype="float64")
    layer.build((None,) + A_prev.shape[1:])                            # the (None, H, W, C) form
    layer.set_weights([W, b.reshape(8)])
    return layer, A_prev


def test_seed002_conv_forward_through_conv2d():
    layer, A_prev = seed002_conv_layer()
    Z = layer.forward(A_prev)
    assert Z.shape == (10, 4, 4, 8) and layer.output_shape == (None, 4, 4, 8)
    np.testing.assert_allclose(np.mean(Z), P["Z's mean"], **REPR)
    np.testing.assert_array_almost_equal(Z[3, 2, 1], P["Z[3,2,1]"], decimal=8)
    np.testing.assert_array_almost_equal(A_prev[1][2][3], P["cache_conv[0][1][2][3]"], decimal=8)


def test_seed002_conv_backward_through_conv2d():
    layer, A_prev = seed002_conv_layer()
    Z = layer.forward(A_prev)
    _, dA = forward_backward(layer, A_prev, Z.copy())                  # the seed's dZ is Z
    assert layer.grads["kernel"].shape == (2, 2, 3, 8) and layer.grads["bias"].shape == (8,)
    np.testing.assert_allclose(np.mean(dA), P["dA_mean"], **REPR)
    np.testing.assert_allclose(np.mean(layer.grads["kernel"]), P["dW_mean"], **REPR)
    np.testing.assert_allclose(np.mean(layer.grads["bias"]), P["db_mean"], **REPR)


POOLS = {"max": layers.MaxPooling2D, "average": layers.AveragePooling2D}


@pytest.mark.parametrize("mode", ["max", "average"])
def test_seed002_pool_forward_through_pooling_layers(mode):
    A_prev, hparameters = seed002_pool_forward_inputs()
    layer = built(POOLS[mode](pool_size=hparameters["f"], strides=hparameters["stride"], dtype="float64"), A_prev)
    A = layer.forward(A_prev)
    assert A.shape == (2, 1, 1, 3)
    np.testing.assert_array_almost_equal(A, P[f"A {mode}"], decimal=8)


@pytest.mark.parametrize("mode", ["max", "average"])
def test_seed002_pool_backward_through_pooling_layers(mode):
    A_prev, hparameters, dA = seed002_pool_backward_inputs()
    np.testing.assert_allclose(np.mean(dA), P["mean of dA"], **REPR)
    layer = built(POOLS[mode](pool_size=hparameters["f"], strides=hparameters["stride"], dtype="float64"), A_prev)
    A, dA_prev = forward_backward(layer, A_prev, dA)
    assert A.shape == dA.shape
    np.testing.assert_array_almost_equal(dA_prev[1, 1], P[f"dA_prev[1,1] {mode}"], decimal=8)


def test_seed002_mask_through_max_pooling_backward():
    x = seed002_mask_input()[None, :, :, None]                         # one (2, 3) window
    layer = built(layers.MaxPooling2D(pool_size=(2, 3), dtype="float64"), x)
    _, dx = forward_backward(layer, x, np.ones((1, 1, 1, 1)))
    np.testing.assert_array_equal(dx[0, :, :, 0] == 1, P["mask"])
    assert dx.sum() == 1


def test_seed002_distribute_value_through_average_pooling_backward():
    x = np.zeros((1, 2, 2, 1))
    layer = built(layers.AveragePooling2D(2, dtype="float64"), x)
    _, dx = forward_backward(layer, x, np.full((1, 1, 1, 1), 2.0))
    np.testing.assert_array_equal(dx[0, :, :, 0], P["distributed value"])


# ----------------------------------------------------------------------------------------
# seed 001 through Conv2D
# ----------------------------------------------------------------------------------------
def seed001_layer(ex):
    layer = layers.Conv2D(2, 3, strides=ex["stride"], padding=ex["pad"], activation=None, dtype="float64")
    return built(layer, ex["x"], [ex["kernel"], ex["bias"]])


def test_seed001_forward_through_conv2d():
    ex = seed001_nhwc()
    y = seed001_layer(ex).forward(ex["x"])
    np.testing.assert_array_equal(y, ex["forward"])


def test_seed001_backward_and_update_through_conv2d():
    ex = seed001_nhwc()
    layer = seed001_layer(ex)
    _, dx = forward_backward(layer, ex["x"], ex["dy"])
    lr = ex["learning_rate"]
    kernel, bias = layer.get_weights()
    np.testing.assert_allclose(kernel - lr * layer.grads["kernel"], ex["updated_kernel"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(bias - lr * layer.grads["bias"], ex["updated_bias"], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(layer.grads["kernel"], np.round((ex["kernel"] - ex["updated_kernel"]) / lr))
    np.testing.assert_array_equal(layer.grads["bias"], [9.0, 7.0])
    # The seed does not print the input's sensitivity map; its algorithm (expand, pad, rotate) gives it.
    _, cache = R.conv_layer_forward(ex["x"], ex["kernel"], ex["bias"], ex["stride"], ex["pad"])
    np.testing.assert_array_equal(dx, R.conv_layer_backward(ex["dy"], cache)[0])


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
def test_seed001_activators_through_conv2d(activation):
    ex = seed001_nhwc()
    x = ex["x"] - 1.0                                                  # some negative pre-activations
    layer = built(layers.Conv2D(2, 3, strides=2, padding=1, activation=activation, dtype="float64"), x,
                  [ex["kernel"] * 0.3, ex["bias"]])
    y, dx = forward_backward(layer, x, ex["dy"])
    out, cache = R.conv_layer_forward(x, ex["kernel"] * 0.3, ex["bias"], 2, 1, activation)
    np.testing.assert_allclose(y, out, **TIGHT)
    delta = ex["dy"] * R.ACTIVATORS[activation][1](out)               # seed: sensitivity * f'(net)
    dx_ref, dkernel, dbias = R.conv_layer_backward(delta, cache)
    np.testing.assert_allclose(dx, dx_ref, **TIGHT)
    np.testing.assert_allclose(layer.grads["kernel"], dkernel, **TIGHT)
    np.testing.assert_allclose(layer.grads["bias"], dbias, **TIGHT)


# ----------------------------------------------------------------------------------------
# fast path == reference on randomized configurations
# ----------------------------------------------------------------------------------------
def random_conv_config(rng):
    KH, KW = (int(k) for k in rng.integers(1, 5, size=2))
    strides = tuple(int(s) for s in rng.integers(1, 4, size=2)) if rng.random() < 0.4 else int(rng.integers(1, 4))
    kind = rng.choice(["int", "pair", "pairs", "valid", "same"])
    padding = {"int": lambda: int(rng.integers(0, 3)),
               "pair": lambda: tuple(int(p) for p in rng.integers(0, 3, size=2)),
               "pairs": lambda: tuple(tuple(int(p) for p in rng.integers(0, 3, size=2)) for _ in range(2)),
               "valid": lambda: "valid", "same": lambda: "same"}[kind]()
    H, W = (int(n) for n in rng.integers(1, 10, size=2))
    while True:                        # grow the image until the padded input holds one window
        pads = {"valid": 0, "same": R.same_padding((H, W), (KH, KW), strides)}.get(padding, padding) \
            if isinstance(padding, str) else padding
        padded = R.zero_pad(np.zeros((1, H, W, 1)), pads).shape[1:3]
        if padded[0] >= KH and padded[1] >= KW:
            break
        H, W = H + 1, W + 1
    return dict(N=int(rng.integers(1, 4)), H=H, W=W, C=int(rng.integers(1, 4)), F=int(rng.integers(1, 5)),
                kernel_size=(KH, KW), strides=strides, padding=padding, pads=pads,
                activation=rng.choice([None, "relu", "sigmoid", "tanh"]), use_bias=bool(rng.random() < 0.8))


@pytest.mark.parametrize("index", range(40))
def test_conv2d_matches_reference_on_random_configurations(index):
    rng = np.random.default_rng(1000 + index)
    cfg = random_conv_config(rng)
    x = rng.standard_normal((cfg["N"], cfg["H"], cfg["W"], cfg["C"]))
    kernel = rng.standard_normal(cfg["kernel_size"] + (cfg["C"], cfg["F"]))
    bias = rng.standard_normal(cfg["F"]) if cfg["use_bias"] else np.zeros(cfg["F"])
    layer = layers.Conv2D(cfg["F"], cfg["kernel_size"], strides=cfg["strides"], padding=cfg["padding"],
                          activation=cfg["activation"], use_bias=cfg["use_bias"], dtype="float64")
    built(layer, x, [kernel, bias] if cfg["use_bias"] else [kernel])

    Z, cache = R.conv_forward(x, kernel, bias, {"stride": cfg["strides"], "pad": cfg["pads"]})
    activation = cfg["activation"] or "linear"
    forward, derivative = R.ACTIVATORS[activation]
    dy = rng.standard_normal(Z.shape)
    y, dx = forward_backward(layer, x, dy)
    assert y.shape == Z.shape == (cfg["N"],) + layer.output_shape[1:], cfg
    np.testing.assert_allclose(y, forward(Z), **TIGHT, err_msg=str(cfg))

    dx_ref, dkernel_ref, dbias_ref = R.conv_backward(dy * derivative(forward(Z)), cache)
    np.testing.assert_allclose(dx, dx_ref, **TIGHT, err_msg=str(cfg))
    np.testing.assert_allclose(layer.grads["kernel"], dkernel_ref, **TIGHT, err_msg=str(cfg))
    if cfg["use_bias"]:
        np.testing.assert_allclose(layer.grads["bias"], dbias_ref, **TIGHT, err_msg=str(cfg))
    else:
        assert "bias" not in layer.grads


def random_pool_config(rng):
    pool = tuple(int(p) for p in rng.integers(1, 4, size=2))
    strides = None if rng.random() < 0.3 else tuple(int(s) for s in rng.integers(1, 4, size=2))
    padding = "same" if rng.random() < 0.3 else "valid"
    H = int(rng.integers(pool[0], 10))
    W = int(rng.integers(pool[1], 10))
    return dict(N=int(rng.integers(1, 4)), H=H, W=W, C=int(rng.integers(1, 4)), pool_size=pool,
                strides=strides, padding=padding, mode=rng.choice(["max", "average"]))


def reference_pool(x, dy, cfg):
    """Reference pooling, with Keras "same" built from the valid one.

    Max: pad with -inf (a padded cell never wins). Average: Keras divides each window's sum
    by its number of *real* cells; zero padding leaves the sum unchanged, and pooling an
    image of ones gives the fraction of real cells.
    """
    strides = cfg["strides"] or cfg["pool_size"]
    hp = {"f": cfg["pool_size"], "stride": strides}
    pads = (R.same_padding((x.shape[1], x.shape[2]), cfg["pool_size"], strides) if cfg["padding"] == "same"
            else ((0, 0), (0, 0)))
    (top, _), (left, _) = pads
    crop = (slice(None), slice(top, top + x.shape[1]), slice(left, left + x.shape[2]))
    if cfg["mode"] == "max":
        xp = np.pad(x, ((0, 0),) + pads + ((0, 0),), constant_values=-np.inf)
        y, cache = R.pool_forward(xp, hp, mode="max")
        return y, R.pool_backward(dy, cache, mode="max")[crop]
    means, cache = R.pool_forward(R.zero_pad(x, pads), hp, mode="average")
    real, _ = R.pool_forward(R.zero_pad(np.ones((1,) + x.shape[1:3] + (1,)), pads), hp, mode="average")
    # means = sum / area and real = count / area, so sum / count = means / real
    return means / real, R.pool_backward(dy / real, cache, mode="average")[crop]


@pytest.mark.parametrize("index", range(40))
def test_pooling_matches_reference_on_random_configurations(index):
    rng = np.random.default_rng(2000 + index)
    cfg = random_pool_config(rng)
    x = rng.standard_normal((cfg["N"], cfg["H"], cfg["W"], cfg["C"]))
    layer = POOLS[cfg["mode"]](pool_size=cfg["pool_size"], strides=cfg["strides"], padding=cfg["padding"],
                               dtype="float64")
    built(layer, x)
    y_shape = (cfg["N"],) + layer.output_shape[1:]
    dy = rng.standard_normal(y_shape)
    y, dx = forward_backward(layer, x, dy)
    y_ref, dx_ref = reference_pool(x, dy, cfg)
    assert y.shape == y_ref.shape == y_shape, cfg
    np.testing.assert_allclose(y, y_ref, **TIGHT, err_msg=str(cfg))
    np.testing.assert_allclose(dx, dx_ref, **TIGHT, err_msg=str(cfg))


def test_max_pooling_ties_route_to_one_element_like_the_reference():
    x = np.zeros((1, 5, 5, 2))                                         # every window is a tie
    x[0, 2, 2, 1] = 1.0
    layer = built(layers.MaxPooling2D(3, strides=1, dtype="float64"), x)
    dy = np.arange(1.0, 19.0).reshape(1, 3, 3, 2)
    _, dx = forward_backward(layer, x, dy)
    y_ref, cache = R.pool_forward(x, {"f": 3, "stride": 1})
    np.testing.assert_array_equal(dx, R.pool_backward(dy, cache))
    assert dx.sum() == dy.sum()                                        # no gradient duplicated


def test_tiny_seed003_network_matches_the_layers():
    """One step of the reference's loop network equals Conv2D -> MaxPooling2D -> Flatten -> Dense."""
    rng = np.random.default_rng(3)
    params = R.init_tiny_params(seed=3, num_filters=4, input_hw=(10, 11), num_classes=5)
    params["dense_kernel"] *= 30
    image = rng.uniform(-0.5, 0.5, (10, 11))
    label = 4
    probs, _ = R.tiny_forward(params, image)
    _, _, grads = R.tiny_gradients(params, image, label)

    x = image[None, :, :, None]
    conv = built(layers.Conv2D(4, 3, use_bias=False, dtype="float64"), x, [params["conv_kernel"]])
    pool = built(layers.MaxPooling2D(2, dtype="float64"), np.zeros((1, 8, 9, 4)))
    flat = built(layers.Flatten(dtype="float64"), np.zeros((1, 4, 4, 4)))
    dense = built(layers.Dense(5, dtype="float64"), np.zeros((1, 64)),
                  [params["dense_kernel"], params["dense_bias"]])
    totals = dense.forward(flat.forward(pool.forward(conv.forward(x))))
    p = np.exp(totals - totals.max())
    p /= p.sum()
    np.testing.assert_allclose(p[0], probs, **TIGHT)
    d_totals = p - np.eye(5)[label]                                    # softmax + cross-entropy
    conv.backward(pool.backward(flat.backward(dense.backward(d_totals))))
    np.testing.assert_allclose(dense.grads["kernel"], grads["dense_kernel"], **TIGHT)
    np.testing.assert_allclose(dense.grads["bias"], grads["dense_bias"], **TIGHT)
    np.testing.assert_allclose(conv.grads["kernel"], grads["conv_kernel"], **TIGHT)
