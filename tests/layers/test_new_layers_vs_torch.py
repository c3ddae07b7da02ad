"""DepthwiseConv2D, SeparableConv2D, UpSampling2D, Cropping2D and Rescaling against PyTorch (dev-only oracle).

float64, random configurations; forward output, dL/dx and every parameter gradient (L = sum(y * r)) must
agree far inside 1e-6. Depthwise convolution is PyTorch's grouped convolution (``groups=C``, weight
``(C * M, 1, KH, KW)``, output channel ``c * M + m``: Keras's order); Keras's "same" padding is applied by
hand with F.pad because it may be asymmetric.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch (the dev-only oracle) is not importable")

from glassnet import layers                                      # noqa: E402  (after the importorskip)
from test_layers_vs_torch import F, TOL, _nchw, _nhwc, _t       # noqa: E402  (the house helpers)

TORCH_ACT = {"relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "linear": lambda z: z}


def _run(layer, x, rng):
    """glassnet's forward, dx and grads for L = sum(y * r); returns them with r."""
    y = layer.forward(x, training=True)
    r = rng.standard_normal(y.shape)
    dx = layer.backward(r)
    return (y, dx, {key: layer.grads[key] for key in layer.params}), r


def _compare(ours, ty, tx, tparams):
    y, dx, grads = ours
    np.testing.assert_allclose(y, ty.detach().numpy(), **TOL, err_msg="forward")
    np.testing.assert_allclose(dx, tx.grad.numpy(), **TOL, err_msg="dx")
    assert grads.keys() == tparams.keys()
    for key, value in tparams.items():
        np.testing.assert_allclose(grads[key], value.grad.numpy(), **TOL, err_msg=key)


def _torch_depthwise(tx, kernel, layer):
    """PyTorch's grouped convolution on an NHWC tensor with a (KH, KW, C, M) kernel; NCHW result."""
    KH, KW, C, M = kernel.shape
    weight = kernel.permute(2, 3, 0, 1).reshape(C * M, 1, KH, KW)         # channel c*M + m
    (top, bottom), (left, right) = layer._pads(tuple(tx.shape[1:3]))
    padded = F.pad(_nchw(tx), (left, right, top, bottom))
    return F.conv2d(padded, weight, stride=layer.strides, dilation=layer.dilation_rate, groups=C)


def _random_geometry(rng):
    kernel = tuple(int(k) for k in rng.integers(1, 4, 2))
    strides = tuple(int(s) for s in rng.integers(1, 3, 2))
    dilation = tuple(int(d) for d in rng.integers(1, 3, 2))
    padding = ["valid", "same", int(rng.integers(0, 3)), ((1, 0), (0, 2))][int(rng.integers(4))]
    return dict(kernel_size=kernel, strides=strides, dilation_rate=dilation, padding=padding,
                depth_multiplier=int(rng.integers(1, 4)))


def _built(cls, rng, *args, **kwargs):
    """A float64 layer built for a random input it accepts, with random weights (bias too)."""
    while True:
        shape = (int(rng.integers(1, 4)), int(rng.integers(3, 9)), int(rng.integers(3, 9)), int(rng.integers(1, 4)))
        layer = cls(*args, **_random_geometry(rng), **kwargs, dtype="float64")
        try:
            layer.build(shape[1:])
        except ValueError:
            continue
        layer.set_weights([rng.standard_normal(w.shape) for w in layer.get_weights()])
        return layer, rng.standard_normal(shape)


@pytest.mark.parametrize("seed", range(24))
def test_depthwise_conv2d_matches_torch(seed):
    rng = np.random.default_rng(9000 + seed)
    activation = ["linear", "relu", "tanh", "sigmoid"][seed % 4]
    layer, x = _built(layers.DepthwiseConv2D, rng, activation=activation, use_bias=seed % 3 != 0)
    ours, r = _run(layer, x, rng)
    tx = _t(x, grad=True)
    tparams = {key: _t(value, grad=True) for key, value in layer.params.items()}
    z = _torch_depthwise(tx, tparams["kernel"], layer)
    if "bias" in tparams:
        z = z + tparams["bias"][None, :, None, None]
    ty = _nhwc(TORCH_ACT[activation](z))
    ty.backward(_t(r))
    _compare(ours, ty, tx, tparams)


@pytest.mark.parametrize("seed", range(16))
def test_separable_conv2d_matches_torch(seed):
    rng = np.random.default_rng(9100 + seed)
    activation = ["linear", "relu", "tanh", "sigmoid"][seed % 4]
    layer, x = _built(layers.SeparableConv2D, rng, int(rng.integers(1, 5)), activation=activation,
                      use_bias=seed % 3 != 0)
    ours, r = _run(layer, x, rng)
    tx = _t(x, grad=True)
    tparams = {key: _t(value, grad=True) for key, value in layer.params.items()}
    depthwise = _torch_depthwise(tx, tparams["depthwise_kernel"], layer)
    pointwise = tparams["pointwise_kernel"].permute(3, 2, 0, 1)              # (F, C*M, 1, 1)
    z = F.conv2d(depthwise, pointwise, tparams.get("bias"))
    ty = _nhwc(TORCH_ACT[activation](z))
    ty.backward(_t(r))
    _compare(ours, ty, tx, tparams)


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
@pytest.mark.parametrize("size", [(2, 2), (3, 1), (1, 4), (3, 2)])
def test_upsampling2d_matches_torch(size, interpolation):
    rng = np.random.default_rng(9200 + size[0] * 10 + size[1])
    x = rng.standard_normal((2, 4, 5, 3))
    ours, r = _run(layers.UpSampling2D(size, interpolation=interpolation, dtype="float64"), x, rng)
    tx = _t(x, grad=True)
    options = {"align_corners": False} if interpolation == "bilinear" else {}
    ty = _nhwc(F.interpolate(_nchw(tx), scale_factor=size, mode=interpolation, **options))
    ty.backward(_t(r))
    _compare(ours, ty, tx, {})


@pytest.mark.parametrize("cropping, torch_slices", [
    (1, (slice(1, -1), slice(1, -1))),
    ((2, 0), (slice(2, -2), slice(0, None))),
    (((0, 3), (1, 2)), (slice(0, -3), slice(1, -2))),
])
def test_cropping2d_matches_torch(cropping, torch_slices):
    rng = np.random.default_rng(9300)
    x = rng.standard_normal((3, 7, 6, 2))
    ours, r = _run(layers.Cropping2D(cropping, dtype="float64"), x, rng)
    tx = _t(x, grad=True)
    ty = tx[:, torch_slices[0], torch_slices[1], :]
    ty.backward(_t(r))
    _compare(ours, ty, tx, {})


@pytest.mark.parametrize("scale, offset", [(1 / 255, 0.0), (1 / 127.5, -1.0), (-2.0, 0.25)])
def test_rescaling_matches_torch(scale, offset):
    rng = np.random.default_rng(9400)
    x = rng.standard_normal((2, 3, 4, 2)) * 100
    ours, r = _run(layers.Rescaling(scale, offset=offset, dtype="float64"), x, rng)
    tx = _t(x, grad=True)
    ty = tx * scale + offset
    ty.backward(_t(r))
    _compare(ours, ty, tx, {})
