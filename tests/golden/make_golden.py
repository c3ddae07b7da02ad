"""Write the PyTorch golden vectors in this folder (dev-only; the tests never import torch).

Run from the repository root:  ``.venv/bin/python tests/golden/make_golden.py``

Each ``<name>.npz`` holds float64 arrays in glassnet's layouts plus a ``config`` JSON string:

* ``config``: ``{"layer": class name, "args": constructor kwargs, "weights": names in Keras
  order, "training": bool, "source": how torch computed it}``
* ``x`` (the input), one array per weight name, ``dy`` (the upstream gradient; the loss is
  ``sum(y * dy)``), and the results ``y``, ``dx``, ``d_<weight>`` (trainable weights) and, for
  batch normalization, ``<moving statistic>_after`` (after one training step).

Layout conversions: images NCHW -> NHWC, conv weights (F, C, KH, KW) -> HWIO (KH, KW, C, F),
linear weights (out, in) -> (in, out). Torch pads symmetrically, so Keras's "same" padding
with stride > 1 (extra pixel at the bottom/right) is done with an explicit ``F.pad`` first.
Inputs come from a NumPy generator, so the files do not depend on torch's RNG.
"""
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
torch.set_default_dtype(torch.float64)


def nchw(x):
    return torch.tensor(np.ascontiguousarray(x.transpose(0, 3, 1, 2)), requires_grad=True)


def nhwc(t):
    return t.detach().numpy().transpose(0, 2, 3, 1).copy()


def keras_same_pads(n, k, s):
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def save(name, config, **arrays):
    arrays = {k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()}
    np.savez_compressed(HERE / f"{name}.npz", config=np.array(json.dumps(config)), **arrays)
    size = (HERE / f"{name}.npz").stat().st_size
    assert size < 50_000, (name, size)
    return size


def conv_case(name, rng, shape, filters, kernel_size, strides, padding, activation=None):
    """Conv2D: torch conv2d (after an explicit pad for Keras "same") and its autograd."""
    N, H, W, C = shape
    KH, KW = kernel_size
    x = rng.standard_normal(shape)
    kernel = rng.standard_normal((KH, KW, C, filters)) * 0.5
    bias = rng.standard_normal(filters)
    if padding == "same":
        (top, bottom), (left, right) = (keras_same_pads(H, KH, strides[0]), keras_same_pads(W, KW, strides[1]))
    else:
        (top, bottom), (left, right) = (padding[0],) * 2, (padding[1],) * 2
    xt = nchw(x)
    wt = torch.tensor(kernel.transpose(3, 2, 0, 1).copy(), requires_grad=True)
    bt = torch.tensor(bias, requires_grad=True)
    z = F.conv2d(F.pad(xt, (left, right, top, bottom)), wt, bt, stride=strides)
    y = {None: lambda t: t, "relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}[activation](z)
    dy = rng.standard_normal(nhwc(y).shape)
    y.backward(torch.tensor(dy.transpose(0, 3, 1, 2).copy()))
    config = {"layer": "Conv2D", "weights": ["kernel", "bias"], "training": False,
              "args": {"filters": filters, "kernel_size": list(kernel_size), "strides": list(strides),
                       "padding": padding if isinstance(padding, str) else list(padding),
                       "activation": activation},
              "source": f"torch F.conv2d(F.pad(x, {(left, right, top, bottom)}), stride={strides})"}
    return save(name, config, x=x, kernel=kernel, bias=bias, dy=dy, y=nhwc(y), dx=nhwc(xt.grad),
                d_kernel=wt.grad.numpy().transpose(2, 3, 1, 0), d_bias=bt.grad.numpy())


def pool_case(name, rng, shape, layer, pool_size, strides):
    x = rng.standard_normal(shape)
    xt = nchw(x)
    pool = F.max_pool2d if layer == "MaxPooling2D" else F.avg_pool2d
    y = pool(xt, kernel_size=pool_size, stride=strides)
    dy = rng.standard_normal(nhwc(y).shape)
    y.backward(torch.tensor(dy.transpose(0, 3, 1, 2).copy()))
    config = {"layer": layer, "weights": [], "training": False,
              "args": {"pool_size": list(pool_size), "strides": list(strides), "padding": "valid"},
              "source": f"torch F.{pool.__name__}(kernel_size={pool_size}, stride={strides})"}
    return save(name, config, x=x, dy=dy, y=nhwc(y), dx=nhwc(xt.grad))


def dense_case(name, rng, batch, units_in, units, activation=None):
    x = rng.standard_normal((batch, units_in))
    kernel = rng.standard_normal((units_in, units)) * 0.5
    bias = rng.standard_normal(units)
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(kernel.T.copy(), requires_grad=True)
    bt = torch.tensor(bias, requires_grad=True)
    z = F.linear(xt, wt, bt)
    y = torch.softmax(z, dim=-1) if activation == "softmax" else z
    dy = rng.standard_normal((batch, units))
    y.backward(torch.tensor(dy))
    config = {"layer": "Dense", "weights": ["kernel", "bias"], "training": False,
              "args": {"units": units, "activation": activation},
              "source": "torch F.linear" + (" + softmax" if activation else "")}
    return save(name, config, x=x, kernel=kernel, bias=bias, dy=dy, y=y.detach().numpy(), dx=xt.grad.numpy(),
                d_kernel=wt.grad.numpy().T, d_bias=bt.grad.numpy())


def batchnorm_case(name, rng, shape):
    """Training-mode BatchNormalization (Keras defaults: momentum 0.99, epsilon 1e-3).

    torch's ``momentum=0.01`` is Keras's 0.99 (``moving = 0.99 moving + 0.01 batch``); both
    normalize with the biased batch variance and feed the unbiased one to the moving variance.
    """
    C = shape[-1]
    x = rng.standard_normal(shape) * 2.0 + 0.5
    gamma = rng.uniform(0.5, 1.5, C)
    beta = rng.standard_normal(C)
    moving_mean, moving_variance = np.zeros(C), np.ones(C)
    bn = torch.nn.BatchNorm2d(C, eps=1e-3, momentum=0.01) if len(shape) == 4 else \
        torch.nn.BatchNorm1d(C, eps=1e-3, momentum=0.01)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor(gamma))
        bn.bias.copy_(torch.tensor(beta))
    bn.train()
    xt = nchw(x) if len(shape) == 4 else torch.tensor(x, requires_grad=True)
    y = bn(xt)
    y_np = nhwc(y) if len(shape) == 4 else y.detach().numpy()
    dy = rng.standard_normal(y_np.shape)
    y.backward(torch.tensor(dy.transpose(0, 3, 1, 2).copy() if len(shape) == 4 else dy))
    dx = nhwc(xt.grad) if len(shape) == 4 else xt.grad.numpy()
    config = {"layer": "BatchNormalization", "weights": ["gamma", "beta", "moving_mean", "moving_variance"],
              "training": True, "args": {"momentum": 0.99, "epsilon": 1e-3},
              "source": f"torch nn.{type(bn).__name__}(eps=1e-3, momentum=0.01).train()"}
    return save(name, config, x=x, gamma=gamma, beta=beta, moving_mean=moving_mean,
                moving_variance=moving_variance, dy=dy, y=y_np, dx=dx,
                d_gamma=bn.weight.grad.numpy(), d_beta=bn.bias.grad.numpy(),
                moving_mean_after=bn.running_mean.numpy(), moving_variance_after=bn.running_var.numpy())


def main():
    rng = np.random.default_rng(20231204)
    sizes = {
        "conv_stride2_pad1": conv_case("conv_stride2_pad1", rng, (2, 7, 6, 3), 4, (3, 3), (2, 2), (1, 1)),
        "conv_rect_kernel": conv_case("conv_rect_kernel", rng, (2, 6, 7, 2), 3, (2, 3), (1, 2), (1, 0),
                                      activation="tanh"),
        "conv_same_stride2": conv_case("conv_same_stride2", rng, (1, 8, 7, 2), 3, (3, 3), (2, 2), "same",
                                       activation="relu"),
        "maxpool_3x3_s2": pool_case("maxpool_3x3_s2", rng, (2, 9, 8, 3), "MaxPooling2D", (3, 3), (2, 2)),
        "avgpool_2x2": pool_case("avgpool_2x2", rng, (2, 7, 6, 3), "AveragePooling2D", (2, 2), (2, 2)),
        "avgpool_3x2_s1x2": pool_case("avgpool_3x2_s1x2", rng, (1, 6, 7, 2), "AveragePooling2D", (3, 2), (1, 2)),
        "dense": dense_case("dense", rng, 4, 6, 5),
        "dense_softmax": dense_case("dense_softmax", rng, 3, 7, 4, activation="softmax"),
        "batchnorm_nhwc": batchnorm_case("batchnorm_nhwc", rng, (4, 3, 3, 5)),
        "batchnorm_dense": batchnorm_case("batchnorm_dense", rng, (8, 6)),
    }
    return sizes


if __name__ == "__main__":
    for name, size in main().items():
        print(f"{name}.npz  {size} bytes")        # a dev script, not library code
