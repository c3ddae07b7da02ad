"""The worked examples of seeds 001 and 002: their inputs and the numbers they print.

Seed 002 builds its inputs with ``np.random.seed(1)`` followed by ``np.random.randn`` calls;
``numpy.random.RandomState(1)`` draws the identical stream without touching NumPy's global
state. Printed arrays carry NumPy's default 8 decimals (compare with ``decimal=8``); printed
scalars are full ``repr`` floats (17 significant digits).

Seed 001 works on one CHW image with filters stored as (C, KH, KW); :func:`seed001_nhwc`
converts everything to glassnet's NHWC inputs and HWIO kernels.
"""
import numpy as np

# ----------------------------------------------------------------------------------------
# seed 002
# ----------------------------------------------------------------------------------------
SEED002_PRINTED = {
    # zero_pad: x = randn(4, 3, 3, 2); x_pad = zero_pad(x, 2)
    "x.shape": (4, 3, 3, 2),
    "x_pad.shape": (4, 7, 7, 2),
    "x[1,1]": [[0.90085595, -0.68372786], [-0.12289023, -0.93576943], [-0.26788808, 0.53035547]],
    "x_pad[1,1]": np.zeros((7, 2)),
    # conv_single_step
    "Z": -6.999089450680221,
    # conv_forward: A_prev = randn(10, 4, 4, 3), W = randn(2, 2, 3, 8), b = randn(1, 1, 1, 8), pad 2, stride 2
    "Z's mean": 0.048995203528855794,
    "Z[3,2,1]": [-0.61490741, -6.7439236, -2.55153897, 1.75698377, 3.56208902, 0.53036437,
                 5.18531798, 8.75898442],
    "cache_conv[0][1][2][3]": [-0.20075807, 0.18656139, 0.41005165],
    # conv_backward(Z, cache_conv): dZ is Z itself
    "dA_mean": 1.4524377775388075,
    "dW_mean": 1.7269914583139097,
    "db_mean": 7.839232564616838,
    # pool_forward: A_prev = randn(2, 4, 4, 3), f 3, stride 2
    "A max": [[[[1.74481176, 0.86540763, 1.13376944]]], [[[1.13162939, 1.51981682, 2.18557541]]]],
    "A average": [[[[0.02105773, -0.20328806, -0.40389855]]], [[[-0.22154621, 0.51716526, 0.48155844]]]],
    # create_mask_from_window: x = randn(2, 3)
    "mask x": [[1.62434536, -0.61175641, -0.52817175], [-1.07296862, 0.86540763, -2.3015387]],
    "mask": [[True, False, False], [False, False, False]],
    # distribute_value(2, (2, 2))
    "distributed value": [[0.5, 0.5], [0.5, 0.5]],
    # pool_backward: A_prev = randn(5, 5, 3, 2), f 2, stride 1, dA = randn(5, 4, 2, 2)
    "mean of dA": 0.14571390272918056,
    "dA_prev[1,1] max": [[0.0, 0.0], [5.05844394, -1.68282702], [0.0, 0.0]],
    "dA_prev[1,1] average": [[0.08485462, 0.2787552], [1.26461098, -0.25749373], [1.17975636, -0.53624893]],
}


def seed002_zero_pad_input():
    """``np.random.seed(1); x = np.random.randn(4, 3, 3, 2)``."""
    return np.random.RandomState(1).randn(4, 3, 3, 2)


def seed002_conv_single_step_inputs():
    """``a_slice_prev`` (4, 4, 3), ``W`` (4, 4, 3), ``b`` (1, 1, 1), drawn in that order."""
    rs = np.random.RandomState(1)
    return rs.randn(4, 4, 3), rs.randn(4, 4, 3), rs.randn(1, 1, 1)


def seed002_conv_inputs():
    """``A_prev`` (10, 4, 4, 3), ``W`` (2, 2, 3, 8), ``b`` (1, 1, 1, 8) and ``{"pad": 2, "stride": 2}``."""
    rs = np.random.RandomState(1)
    return rs.randn(10, 4, 4, 3), rs.randn(2, 2, 3, 8), rs.randn(1, 1, 1, 8), {"pad": 2, "stride": 2}


def seed002_pool_forward_inputs():
    """``A_prev`` (2, 4, 4, 3) and ``{"stride": 2, "f": 3}``."""
    return np.random.RandomState(1).randn(2, 4, 4, 3), {"stride": 2, "f": 3}


def seed002_mask_input():
    """``x`` (2, 3)."""
    return np.random.RandomState(1).randn(2, 3)


def seed002_pool_backward_inputs():
    """``A_prev`` (5, 5, 3, 2), ``{"stride": 1, "f": 2}`` and ``dA`` (5, 4, 2, 2) from the same stream."""
    rs = np.random.RandomState(1)
    A_prev = rs.randn(5, 5, 3, 2)
    dA = rs.randn(5, 4, 2, 2)
    return A_prev, {"stride": 1, "f": 2}, dA


# ----------------------------------------------------------------------------------------
# seed 001: ConvLayer(5, 5, 3, 3, 3, 2, zero_padding=1, stride=2, IdentityActivator(), 0.001)
# ----------------------------------------------------------------------------------------
SEED001_INPUT_CHW = [
    [[0, 1, 1, 0, 2], [2, 2, 2, 2, 1], [1, 0, 0, 2, 0], [0, 1, 1, 0, 0], [1, 2, 0, 0, 2]],
    [[1, 0, 2, 2, 0], [0, 0, 0, 2, 0], [1, 2, 1, 2, 1], [1, 0, 0, 0, 0], [1, 2, 1, 1, 1]],
    [[2, 1, 2, 0, 0], [1, 0, 0, 1, 0], [0, 2, 1, 0, 1], [0, 1, 2, 2, 2], [2, 1, 0, 0, 1]],
]
#: ``b`` in ``init_test``: the sensitivity map handed to ``cl.backward``, (F, OH, OW)
SEED001_SENSITIVITY_CHW = [
    [[0, 1, 1], [2, 2, 2], [1, 0, 0]],
    [[1, 0, 2], [0, 0, 0], [1, 2, 1]],
]
#: ``cl.filters[f].weights`` as (F, C, KH, KW)
SEED001_FILTERS = [
    [[[-1, 1, 0], [0, 1, 0], [0, 1, 1]],
     [[-1, -1, 0], [0, 0, 0], [0, -1, 0]],
     [[0, 0, -1], [0, 1, 0], [1, -1, -1]]],
    [[[1, 1, -1], [-1, -1, 1], [0, -1, 1]],
     [[0, 1, 0], [-1, 0, -1], [-1, 1, 0]],
     [[-1, 0, 0], [-1, 0, 1], [-1, 0, 0]]],
]
SEED001_BIAS = [1.0, 0.0]           # filters[0].bias = 1; filters[1].bias stays 0
SEED001_PAD = 1
SEED001_STRIDE = 2
SEED001_LEARNING_RATE = 0.001

#: "前向传播结果" (forward result), (F, OH, OW)
SEED001_PRINTED_FORWARD = [
    [[6., 7., 5.], [3., -1., -1.], [2., -1., 4.]],
    [[2., -5., -8.], [1., -4., -4.], [0., -5., -5.]],
]
#: filter weights after one SGD step, (F, C, KH, KW)
SEED001_PRINTED_UPDATED_FILTERS = [
    [[[-1.008, 0.99, -0.009], [-0.005, 0.994, -0.006], [-0.006, 0.995, 0.996]],
     [[-1.004, -1.001, -0.004], [-0.01, -0.009, -0.012], [-0.002, -1.002, -0.002]],
     [[-0.002, -0.002, -1.003], [-0.005, 0.992, -0.005], [0.993, -1.008, -1.007]]],
    [[[9.98000000e-01, 9.98000000e-01, -1.00100000e+00],
      [-1.00400000e+00, -1.00700000e+00, 9.97000000e-01],
      [-4.00000000e-03, -1.00400000e+00, 9.98000000e-01]],
     [[0.00000000e+00, 9.99000000e-01, 0.00000000e+00],
      [-1.00900000e+00, -5.00000000e-03, -1.00400000e+00],
      [-1.00400000e+00, 1.00000000e+00, 0.00000000e+00]],
     [[-1.00400000e+00, -6.00000000e-03, -5.00000000e-03],
      [-1.00200000e+00, -5.00000000e-03, 9.98000000e-01],
      [-1.00200000e+00, -1.00000000e-03, 0.00000000e+00]]],
]
SEED001_PRINTED_UPDATED_BIAS = [0.99099999999999999, -0.0070000000000000001]


def chw_to_nhwc(a):
    """(C, H, W) -> (1, H, W, C)."""
    return np.asarray(a, dtype=np.float64).transpose(1, 2, 0)[None]


def filters_to_hwio(filters):
    """(F, C, KH, KW) -> (KH, KW, C, F)."""
    return np.asarray(filters, dtype=np.float64).transpose(2, 3, 1, 0)


def seed001_nhwc():
    """Seed 001's example in glassnet's layouts.

    Returns
    -------
    dict with ``x`` (1, 5, 5, 3), ``kernel`` (3, 3, 3, 2), ``bias`` (2,), ``dy`` (1, 3, 3, 2),
    ``forward`` (1, 3, 3, 2), ``updated_kernel`` (3, 3, 3, 2), ``updated_bias`` (2,),
    ``pad``, ``stride``, ``learning_rate``.
    """
    return {
        "x": chw_to_nhwc(SEED001_INPUT_CHW),
        "kernel": filters_to_hwio(SEED001_FILTERS),
        "bias": np.array(SEED001_BIAS),
        "dy": chw_to_nhwc(SEED001_SENSITIVITY_CHW),
        "forward": chw_to_nhwc(SEED001_PRINTED_FORWARD),
        "updated_kernel": filters_to_hwio(SEED001_PRINTED_UPDATED_FILTERS),
        "updated_bias": np.array(SEED001_PRINTED_UPDATED_BIAS),
        "pad": SEED001_PAD,
        "stride": SEED001_STRIDE,
        "learning_rate": SEED001_LEARNING_RATE,
    }
