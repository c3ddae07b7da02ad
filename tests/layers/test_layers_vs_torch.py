"""Agreement with an independent implementation: PyTorch (dev-only oracle), float64, random configurations.

Forward output, dL/dx and every parameter gradient (L = sum(y * r)) must agree far inside 1e-6.
PyTorch is NCHW with OIHW kernels and symmetric padding only, so inputs are transposed, kernels
permuted, and Keras's "same" padding (asymmetric for stride > 1 and even kernels) is applied
by hand with F.pad before the convolution/pooling. The golden .npz tests cover the case without torch.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch (the dev-only oracle) is not importable; "
                                            "tests/test_golden.py checks committed PyTorch vectors instead")
F = torch.nn.functional

import glassnet as gn                       # noqa: E402  (after the importorskip)
from glassnet import layers                 # noqa: E402

torch.set_num_threads(1)                    # the machine is shared; these tensors are tiny
TOL = dict(rtol=1e-9, atol=1e-10)
TORCH_ACT = {"relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "linear": lambda z: z,
             "softmax": lambda z: torch.softmax(z, dim=1)}        # dim 1 = channels in NCHW


def _t(a, grad=False):
    return torch.tensor(np.ascontiguousarray(a), dtype=torch.float64, requires_grad=grad)


def _nchw(x):
    return x.permute(0, 3, 1, 2)


def _nhwc(x):
    return x.permute(0, 2, 3, 1)


def _torch_pad(pads):
    (top, bottom), (left, right) = pads
    return (left, right, top, bottom)      # F.pad order: last axis first


def _run_glassnet(layer, x, r, training=False):
    y = layer.forward(x, training=training)
    dx = layer.backward(r)
    return y, dx, {key: layer.grads[key] for key in layer.params}


def _compare(ours, theirs):
    y, dx, grads = ours
    ty, tdx, tgrads = theirs
    np.testing.assert_allclose(y, ty, **TOL, err_msg="forward")
    np.testing.assert_allclose(dx, tdx, **TOL, err_msg="dx")
    assert grads.keys() == tgrads.keys()
    for key in grads:
        np.testing.assert_allclose(grads[key], tgrads[key], **TOL, err_msg=key)


# ----------------------------------------------------------------------------------------------
# random configurations
# ----------------------------------------------------------------------------------------------
def _random_padding(rng):
    kind = rng.integers(5)
    if kind == 0:
        return "valid"
    if kind == 1:
        return "same"
    if kind == 2:
        return int(rng.integers(0, 3))
    if kind == 3:
        return tuple(int(p) for p in rng.integers(0, 3, 2))
    return tuple(tuple(int(p) for p in pair) for pair in rng.integers(0, 3, (2, 2)))


def _conv_config(seed, dilated=False):
    """A random Conv2D and input; ``dilated``: strides 1 (as Keras requires) and a dilation_rate of 1-3."""
    rng = np.random.default_rng(seed)
    while True:
        N, H, W, C = (int(v) for v in (rng.integers(1, 4), rng.integers(1, 10), rng.integers(1, 10),
                                       rng.integers(1, 4)))
        kernel = tuple(int(k) for k in rng.integers(1, 5, 2))
        strides = tuple(int(s) for s in rng.integers(1, 4, 2))
        padding = _random_padding(rng)
        strides, dilation = ((1, 1), tuple(int(d) for d in rng.integers(1, 4, 2))) if dilated else (strides, (1, 1))
        if dilated and dilation == (1, 1):
            continue
        layer = layers.Conv2D(int(rng.integers(1, 5)), kernel, strides=strides, padding=padding,
                              activation=str(rng.choice(["relu", "sigmoid", "tanh", "linear", "softmax"])),
                              use_bias=bool(rng.integers(2)), bias_initializer="normal", dtype="float64",
                              dilation_rate=dilation)
        try:
            layer.build((None, H, W, C))
        except ValueError:              # kernel larger than the padded input: draw again
            continue
        return layer, rng.standard_normal((N, H, W, C)), rng


@pytest.mark.parametrize("dilated", [False, True], ids=["", "dilated"])
@pytest.mark.parametrize("seed", range(40))
def test_conv2d_matches_torch(seed, dilated):
    layer, x, rng = _conv_config(seed, dilated)
    y = layer.forward(x)
    r = rng.standard_normal(y.shape)
    ours = _run_glassnet(layer, x, r)

    tx = _t(x, grad=True)
    kernel = _t(layer.params["kernel"], grad=True)
    bias = _t(layer.params["bias"], grad=True) if layer.use_bias else None
    xp = F.pad(_nchw(tx), _torch_pad(layer._pads(x.shape[1:3])))
    z = F.conv2d(xp, kernel.permute(3, 2, 0, 1).contiguous(), bias, stride=layer.strides,
                 dilation=layer.dilation_rate)
    ty = _nhwc(TORCH_ACT[layer.activation](z))
    ty.backward(_t(r))
    tgrads = {"kernel": kernel.grad.numpy()}
    if bias is not None:
        tgrads["bias"] = bias.grad.numpy()
    _compare(ours, (ty.detach().numpy(), tx.grad.numpy(), tgrads))


def _pool_config(seed):
    rng = np.random.default_rng(1000 + seed)
    while True:
        N, H, W, C = (int(v) for v in (rng.integers(1, 4), rng.integers(1, 10), rng.integers(1, 10),
                                       rng.integers(1, 4)))
        pool = tuple(int(k) for k in rng.integers(1, 5, 2))
        strides = None if rng.integers(3) == 0 else tuple(int(s) for s in rng.integers(1, 4, 2))
        padding = str(rng.choice(["valid", "same"]))
        cls = layers.MaxPooling2D if rng.integers(2) else layers.AveragePooling2D
        layer = cls(pool, strides, padding=padding, dtype="float64")
        try:
            layer.build((None, H, W, C))
        except ValueError:
            continue
        return layer, rng.standard_normal((N, H, W, C)), rng


@pytest.mark.parametrize("seed", range(40))
def test_pooling_matches_torch(seed):
    layer, x, rng = _pool_config(seed)
    y = layer.forward(x)
    r = rng.standard_normal(y.shape)
    ours = _run_glassnet(layer, x, r)

    tx = _t(x, grad=True)
    pads = _torch_pad(layer._pads(x.shape[1:3]))
    if isinstance(layer, layers.MaxPooling2D):
        z = F.max_pool2d(F.pad(_nchw(tx), pads, value=-np.inf), layer.pool_size, layer.strides)
    else:   # TensorFlow's "same" average divides by the real (unpadded) cells of each window
        sums = F.avg_pool2d(F.pad(_nchw(tx), pads), layer.pool_size, layer.strides)
        counts = F.avg_pool2d(F.pad(torch.ones_like(_nchw(tx)), pads), layer.pool_size, layer.strides)
        z = sums / counts
    ty = _nhwc(z)
    ty.backward(_t(r))
    _compare(ours, (ty.detach().numpy(), tx.grad.numpy(), {}))


@pytest.mark.parametrize("seed", range(12))
def test_dense_matches_torch(seed):
    rng = np.random.default_rng(2000 + seed)
    activation = ["relu", "sigmoid", "tanh", "linear", "softmax", None][seed % 6]
    layer = layers.Dense(int(rng.integers(1, 8)), activation=activation, use_bias=bool(seed % 2),
                         bias_initializer="normal", dtype="float64")
    x = rng.standard_normal((int(rng.integers(1, 5)), int(rng.integers(1, 9))))
    y = layer.forward(x)
    r = rng.standard_normal(y.shape)
    ours = _run_glassnet(layer, x, r)

    tx, kernel = _t(x, grad=True), _t(layer.params["kernel"], grad=True)
    bias = _t(layer.params["bias"], grad=True) if layer.use_bias else None
    z = F.linear(tx, kernel.T, bias)
    ty = torch.softmax(z, dim=-1) if layer.activation == "softmax" else TORCH_ACT[layer.activation](z)
    ty.backward(_t(r))
    tgrads = {"kernel": kernel.grad.numpy()}
    if bias is not None:
        tgrads["bias"] = bias.grad.numpy()
    _compare(ours, (ty.detach().numpy(), tx.grad.numpy(), tgrads))


@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
@pytest.mark.parametrize("seed", range(6))
def test_batchnorm_matches_torch(seed, training):
    rng = np.random.default_rng(3000 + seed)
    shape = [(4, 3, 3, 2), (5, 4), (2, 2, 5, 3)][seed % 3]
    momentum, epsilon = [(0.99, 1e-3), (0.9, 1e-5), (0.5, 0.1)][seed % 3]
    layer = layers.BatchNormalization(momentum=momentum, epsilon=epsilon, dtype="float64").build(shape)
    C = shape[-1]
    layer.set_weights([rng.uniform(0.5, 2, C), rng.standard_normal(C), rng.standard_normal(C), rng.uniform(0.5, 2, C)])
    x = rng.standard_normal(shape) * 2 + 1
    running_mean, running_var = (_t(w) for w in layer.get_weights()[2:])
    gamma, beta = _t(layer.params["gamma"], grad=True), _t(layer.params["beta"], grad=True)
    y = layer.forward(x, training=training)
    r = rng.standard_normal(y.shape)
    dx = layer.backward(r)

    tx = _t(x, grad=True)
    channels_first = _nchw(tx) if tx.ndim == 4 else tx
    z = F.batch_norm(channels_first, running_mean, running_var, gamma, beta, training=training,
                     momentum=1 - momentum, eps=epsilon)
    ty = _nhwc(z) if tx.ndim == 4 else z
    ty.backward(_t(r))
    _compare((y, dx, dict(layer.grads)),
             (ty.detach().numpy(), tx.grad.numpy(), {"gamma": gamma.grad.numpy(), "beta": beta.grad.numpy()}))
    moving_mean, moving_variance = layer.get_weights()[2:]
    np.testing.assert_allclose(moving_mean, running_mean.numpy(), **TOL)       # PyTorch's update rule:
    np.testing.assert_allclose(moving_variance, running_var.numpy(), **TOL)    # unbiased batch variance


@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh", "linear", "softmax"])
def test_activation_layers_match_torch(name):
    rng = np.random.default_rng(4000 + len(name))
    for shape in [(3, 7), (2, 3, 4, 5)]:
        x = rng.standard_normal(shape) * 4
        r = rng.standard_normal(shape)
        ours = _run_glassnet(layers.Activation(name, dtype="float64"), x, r)
        tx = _t(x, grad=True)
        ty = torch.softmax(tx, dim=-1) if name == "softmax" else TORCH_ACT[name](tx)
        ty.backward(_t(r))
        _compare(ours, (ty.detach().numpy(), tx.grad.numpy(), {}))


@pytest.mark.parametrize("max_value, slope", [(None, 0.0), (6.0, 0.0), (1.0, 0.1), (None, 0.3)])
def test_relu_variants_match_torch(max_value, slope):
    rng = np.random.default_rng(5000)
    x = rng.standard_normal((2, 4, 5, 3)) * 3
    r = rng.standard_normal(x.shape)
    ours = _run_glassnet(layers.ReLU(max_value=max_value, negative_slope=slope, dtype="float64"), x, r)
    tx = _t(x, grad=True)
    ty = F.leaky_relu(tx, slope)
    if max_value is not None:
        ty = torch.clamp(ty, max=max_value)
    ty.backward(_t(r))
    _compare(ours, (ty.detach().numpy(), tx.grad.numpy(), {}))
    leaky = _run_glassnet(layers.LeakyReLU(0.3, dtype="float64"), x, r)
    tx = _t(x, grad=True)
    ty = F.leaky_relu(tx, 0.3)
    ty.backward(_t(r))
    _compare(leaky, (ty.detach().numpy(), tx.grad.numpy(), {}))


@pytest.mark.parametrize("shape, shared_axes", [((2, 3, 4, 5), [1, 2]), ((2, 3, 4, 5), None), ((2, 3, 4, 5), [3]),
                                                ((3, 6), None), ((2, 3, 4, 5), [1, 2, 3])])
def test_prelu_matches_torch(shape, shared_axes):
    rng = np.random.default_rng(6000)
    layer = layers.PReLU(shared_axes=shared_axes, dtype="float64").build(shape)
    layer.set_weights([rng.uniform(-0.5, 0.5, layer.params["alpha"].shape)])
    x = rng.standard_normal(shape)
    r = rng.standard_normal(shape)
    alpha = _t(layer.params["alpha"], grad=True)
    ours = _run_glassnet(layer, x, r)
    tx = _t(x, grad=True)
    if shared_axes == [1, 2]:       # PyTorch's own PReLU: one weight per channel, NCHW
        ty = _nhwc(F.prelu(_nchw(tx), alpha.reshape(-1)))
    else:
        ty = torch.where(tx > 0, tx, alpha * tx)
    ty.backward(_t(r))
    _compare(ours, (ty.detach().numpy(), tx.grad.numpy(), {"alpha": alpha.grad.numpy()}))


def test_global_pooling_and_zero_padding_match_torch():
    rng = np.random.default_rng(7000)
    x = rng.standard_normal((3, 4, 5, 2))
    cases = [(layers.GlobalAveragePooling2D(dtype="float64"), lambda t: t.mean(dim=(1, 2))),
             (layers.GlobalMaxPooling2D(dtype="float64"), lambda t: t.amax(dim=(1, 2))),
             (layers.ZeroPadding2D(((1, 2), (3, 0)), dtype="float64"),
              lambda t: _nhwc(F.pad(_nchw(t), (3, 0, 1, 2))))]
    for layer, torch_fn in cases:
        y = layer.forward(x)
        r = rng.standard_normal(y.shape)
        ours = _run_glassnet(layer, x, r)
        tx = _t(x, grad=True)
        ty = torch_fn(tx)
        ty.backward(_t(r))
        _compare(ours, (ty.detach().numpy(), tx.grad.numpy(), {}))


@pytest.mark.parametrize("seed", range(3))
def test_small_cnn_end_to_end_matches_torch(seed):
    """Conv(same, stride 2) -> BN -> ReLU -> MaxPool(3, 2, same) -> Conv(tanh) -> Flatten -> Dense(softmax)."""
    rng = np.random.default_rng(8000 + seed)
    model = gn.Sequential([
        layers.Conv2D(4, 3, strides=2, padding="same", input_shape=(9, 8, 2), dtype="float64",
                      bias_initializer="normal"),
        layers.BatchNormalization(dtype="float64"),
        layers.ReLU(dtype="float64"),
        layers.MaxPooling2D(3, 2, padding="same", dtype="float64"),
        layers.Conv2D(3, (2, 1), activation="tanh", dtype="float64"),
        layers.Flatten(dtype="float64"),
        layers.Dense(5, activation="softmax", dtype="float64"),
    ], seed=seed)
    x = rng.standard_normal((3, 9, 8, 2))
    y = model.forward(x, training=True)
    r = rng.standard_normal(y.shape)
    dx = model.backward(r)

    conv1, bn, _, pool, conv2, _, dense = model.layers
    params = {f"{layer.name}/{k}": _t(v, grad=True) for layer in model.layers for k, v in layer.params.items()}
    p = lambda layer, key: params[f"{layer.name}/{key}"]       # noqa: E731
    tx = _t(x, grad=True)
    h = F.conv2d(F.pad(_nchw(tx), _torch_pad(conv1._pads((9, 8)))), p(conv1, "kernel").permute(3, 2, 0, 1).contiguous(),
                 p(conv1, "bias"), stride=2)
    h = F.batch_norm(h, None, None, p(bn, "gamma"), p(bn, "beta"), training=True, eps=1e-3)
    h = torch.relu(h)
    h = F.max_pool2d(F.pad(h, _torch_pad(pool._pads(h.shape[2:])), value=-np.inf), 3, 2)
    h = torch.tanh(F.conv2d(h, p(conv2, "kernel").permute(3, 2, 0, 1).contiguous(), p(conv2, "bias")))
    h = _nhwc(h).reshape(3, -1)                      # Keras flattens channels-last
    ty = torch.softmax(F.linear(h, p(dense, "kernel").T, p(dense, "bias")), dim=-1)
    ty.backward(_t(r))
    ours = {f"{layer.name}/{k}": layer.grads[k] for layer in model.layers for k in layer.params}
    _compare((y, dx, ours), (ty.detach().numpy(), tx.grad.numpy(), {k: v.grad.numpy() for k, v in params.items()}))
