"""glassnet.ops.depthwise and glassnet.ops.resize: the pure functions under DepthwiseConv2D, SeparableConv2D
and UpSampling2D (their layers are checked against loops and PyTorch in tests/layers)."""
import numpy as np
import pytest

from glassnet import ops
from glassnet.ops.depthwise import (depthwise_conv2d_backward, depthwise_conv2d_forward, depthwise_output_hw,
                                    dilated_kernel_size)
from glassnet.ops.resize import bilinear_matrix, bilinear_resize, nearest_upsample, nearest_upsample_backward


def test_dilated_kernel_size_and_output_size():
    assert dilated_kernel_size((3, 2), (2, 3)) == (5, 4)
    assert depthwise_output_hw((9, 8), (3, 2), (2, 1), ((0, 0), (1, 1)), (2, 3)) == (3, 7)


def test_depthwise_dtype_and_flags():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 5, 3)).astype("float32")
    kernel = rng.standard_normal((3, 3, 3, 2)).astype("float32")
    y, cache = depthwise_conv2d_forward(x, kernel, None, (1, 1), ((1, 1), (1, 1)))
    assert y.shape == (2, 6, 5, 6) and y.dtype == np.float32
    dy = rng.standard_normal(y.shape).astype("float32")
    dx, dkernel, dbias = depthwise_conv2d_backward(dy, cache, kernel, need_dx=True, need_bias=True)
    assert dx.dtype == dkernel.dtype == dbias.dtype == np.float32 and dx.shape == x.shape
    none_dx, same_dkernel, no_bias = depthwise_conv2d_backward(dy, cache, kernel, need_dx=False, need_bias=False)
    assert none_dx is None and no_bias is None
    np.testing.assert_array_equal(same_dkernel, dkernel)


def test_depthwise_with_one_channel_and_multiplier_is_a_plain_correlation():
    """C = M = 1: the ordinary 2-D cross-correlation, checked against sliding windows."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 7, 6, 1))
    kernel = rng.standard_normal((3, 2, 1, 1))
    y, _ = depthwise_conv2d_forward(x, kernel, np.array([0.5]), (1, 1), ((0, 0), (0, 0)))
    windows = np.lib.stride_tricks.sliding_window_view(x[0, :, :, 0], (3, 2))
    np.testing.assert_allclose(y[0, :, :, 0], np.einsum("ijab,ab->ij", windows, kernel[:, :, 0, 0]) + 0.5)


def _random_case(rng, dtype="float64"):
    """A random geometry the op accepts: strides 1-3, dilation 1-2, asymmetric pads, multiplier 1-3."""
    while True:
        N, H, W, C, M = (int(v) for v in rng.integers(1, [4, 10, 10, 4, 4]))
        kernel_hw, strides, dilation = (tuple(int(v) for v in rng.integers(1, top, 2)) for top in (4, 4, 3))
        pads = tuple(tuple(int(v) for v in rng.integers(0, 3, 2)) for _ in range(2))
        extent = dilated_kernel_size(kernel_hw, dilation)
        if H + sum(pads[0]) >= extent[0] and W + sum(pads[1]) >= extent[1]:
            break
    x = rng.standard_normal((N, H, W, C)).astype(dtype)
    kernel = rng.standard_normal(kernel_hw + (C, M)).astype(dtype)
    return x, kernel, rng.standard_normal(C * M).astype(dtype), strides, pads, dilation


def _torch_reference(x, kernel, bias, strides, pads, dilation, dy):
    """PyTorch's grouped convolution (groups=C, output channel c*M + m) of the padded input; y, dx, dkernel, dbias."""
    torch = pytest.importorskip("torch", reason="PyTorch (the dev-only oracle) is not importable")
    KH, KW, C, M = kernel.shape
    (top, bottom), (left, right) = pads
    tx = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)
    weight = torch.tensor(kernel.transpose(2, 3, 0, 1).reshape(C * M, 1, KH, KW), requires_grad=True)
    tb = torch.tensor(bias, requires_grad=True)
    padded = torch.nn.functional.pad(tx, (left, right, top, bottom))
    ty = torch.nn.functional.conv2d(padded, weight, tb, stride=strides, dilation=dilation, groups=C)
    ty.backward(torch.tensor(dy.transpose(0, 3, 1, 2)))
    dkernel = weight.grad.numpy().reshape(C, M, KH, KW).transpose(2, 3, 0, 1)
    return ty.detach().numpy().transpose(0, 2, 3, 1), tx.grad.numpy().transpose(0, 2, 3, 1), dkernel, tb.grad.numpy()


def _assert_matches_torch(rng, x, kernel, bias, strides, pads, dilation):
    """The op's forward and backward (for a random dy) equal PyTorch's; returns (dy, cache, dx)."""
    y, cache = depthwise_conv2d_forward(x, kernel, bias, strides, pads, dilation)
    dy = rng.standard_normal(y.shape)
    ours = (y,) + depthwise_conv2d_backward(dy, cache, kernel)
    for name, got, expected in zip(("y", "dx", "dkernel", "dbias"), ours,
                                   _torch_reference(x, kernel, bias, strides, pads, dilation, dy)):
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10, err_msg=name)
    return dy, cache, ours[1]


@pytest.mark.parametrize("seed", range(12))
def test_depthwise_matches_torch_on_random_geometries(seed):
    """Every stride phase layout (strides up to 3 with dilation), asymmetric padding and multipliers."""
    rng = np.random.default_rng(100 + seed)
    x, kernel, bias, strides, pads, dilation = _random_case(rng)
    _assert_matches_torch(rng, x, kernel, bias, strides, pads, dilation)


@pytest.mark.parametrize("kernel_hw, strides, pads, dilation, multiplier, gathered", [
    ((3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), 1, True),        # "same": dx as a correlation of dy
    ((5, 3), (1, 1), ((0, 4), (2, 0)), (1, 2), 1, True),        # asymmetric pads, dilated columns
    ((1, 1), (1, 1), ((2, 0), (0, 1)), (1, 1), 1, False),       # padding wider than the kernel: scatter
    ((3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), 2, False),       # a multiplier: scatter, copies summed
    ((3, 3), (2, 1), ((1, 1), (1, 1)), (1, 1), 1, False),       # a stride: scatter into phases
])
def test_both_input_gradient_paths_match_torch(kernel_hw, strides, pads, dilation, multiplier, gathered):
    from glassnet.ops.depthwise import _transposed_pads
    rng = np.random.default_rng(21)
    x = rng.standard_normal((2, 7, 6, 3))
    kernel = rng.standard_normal(kernel_hw + (3, multiplier))
    bias = rng.standard_normal(3 * multiplier)
    assert (_transposed_pads(kernel.shape, strides, pads, dilation) is not None) == gathered
    dy, cache, dx = _assert_matches_torch(rng, x, kernel, bias, strides, pads, dilation)
    dx_alone, none_kernel, none_bias = depthwise_conv2d_backward(dy, cache, kernel, need_kernel=False,
                                                                 need_bias=False)
    assert none_kernel is None and none_bias is None
    np.testing.assert_array_equal(dx_alone, dx)


@pytest.fixture
def depthwise_blocks_of_one_image(monkeypatch):
    """``setup(threads)``: the depthwise op runs one image per block on ``threads`` workers, however small."""
    def setup(threads):
        monkeypatch.setattr(ops, "NUM_THREADS", threads)
        monkeypatch.setattr("glassnet.ops.depthwise.BLOCK_BYTES", 1)
        monkeypatch.setattr("glassnet.ops.parallel.MIN_PARALLEL_BYTES", 0)
    return setup


def _all_results(seed, dtype):
    x, kernel, bias, strides, pads, dilation = _random_case(np.random.default_rng(seed), dtype)
    y, cache = depthwise_conv2d_forward(x, kernel, bias, strides, pads, dilation)
    dy = np.random.default_rng(seed + 1).standard_normal(y.shape).astype(dtype)
    return [y.copy()] + list(depthwise_conv2d_backward(dy, cache, kernel))


@pytest.mark.parametrize("seed", [3, 7, 8])
def test_depthwise_blocks_and_threads_give_the_same_result(seed, depthwise_blocks_of_one_image):
    """One block of all images on one thread, blocks of one image on one and on two threads: the same
    arrays (the kernel and bias gradients summed over blocks in another order: equal to rounding)."""
    whole = _all_results(seed, "float32")
    for threads in (1, 2):
        depthwise_blocks_of_one_image(threads)
        blocks = _all_results(seed, "float32")
        for name, got, expected in zip(("y", "dx", "dkernel", "dbias"), blocks, whole):
            assert got.dtype == np.float32, name
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5, err_msg=name)
        np.testing.assert_array_equal(blocks[0], whole[0])
        np.testing.assert_array_equal(blocks[1], whole[1])


def test_depthwise_outputs_held_by_the_caller_are_never_reused():
    """The op recycles its output arrays: one the caller still holds must not be written by the next call."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 5, 5, 3)).astype("float32")
    kernel = rng.standard_normal((3, 3, 3, 1)).astype("float32")
    first, cache = depthwise_conv2d_forward(x, kernel, None, (1, 1), ((1, 1), (1, 1)))
    kept, dx_first = first.copy(), depthwise_conv2d_backward(np.ones_like(first), cache, kernel)[0]
    kept_dx = dx_first.copy()
    second, cache = depthwise_conv2d_forward(-x, kernel, None, (1, 1), ((1, 1), (1, 1)))
    dx_second = depthwise_conv2d_backward(-np.ones_like(first), cache, kernel)[0]
    np.testing.assert_array_equal(first, kept)
    np.testing.assert_array_equal(dx_first, kept_dx)
    np.testing.assert_array_equal(second, -kept)
    np.testing.assert_array_equal(dx_second, -kept_dx)


@pytest.mark.parametrize("in_size, out_size", [(4, 8), (3, 9), (1, 5), (8, 3), (5, 5)])
def test_bilinear_matrix_rows_are_convex_weights(in_size, out_size):
    matrix = bilinear_matrix(in_size, out_size)
    assert matrix.shape == (out_size, in_size)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0)
    assert matrix.min() >= 0 and np.count_nonzero(matrix, axis=1).max() <= 2


def test_bilinear_resize_matches_torch_for_any_size():
    torch = pytest.importorskip("torch", reason="PyTorch (the dev-only oracle) is not importable")
    x = np.random.default_rng(2).standard_normal((2, 5, 7, 3))
    for out_hw in [(10, 14), (3, 4), (5, 9)]:
        y, _ = bilinear_resize(x, out_hw)
        expected = torch.nn.functional.interpolate(torch.tensor(x).permute(0, 3, 1, 2), size=out_hw,
                                                   mode="bilinear", align_corners=False).permute(0, 2, 3, 1)
        np.testing.assert_allclose(y, expected.numpy(), rtol=1e-12, atol=1e-12)


def test_nearest_upsample_and_its_transpose():
    x = np.arange(12.0).reshape(1, 2, 3, 2)
    y = nearest_upsample(x, (2, 3))
    np.testing.assert_array_equal(y, x.repeat(2, axis=1).repeat(3, axis=2))
    dy = np.random.default_rng(3).standard_normal(y.shape)
    np.testing.assert_allclose(np.vdot(dy, y), np.vdot(nearest_upsample_backward(dy, (2, 3)), x))
