"""The dilated convolution (glassnet.ops.conv.dilated): chosen by the plan, against PyTorch's
F.conv2d(dilation=...), over row blocks, threads and kept matrices."""
import numpy as np
import pytest

from glassnet import ops
from glassnet.ops.conv import plan as planning

torch = pytest.importorskip("torch", reason="PyTorch (the dev-only oracle) is not importable")

# (N, H, W, C, F), kernel, stride, dilation, pads
CONFIGS = [
    ((2, 9, 9, 3, 4), (3, 3), (1, 1), (2, 2), ((0, 0), (0, 0))),
    ((3, 8, 11, 1, 5), (2, 3), (1, 1), (3, 2), ((1, 2), (2, 2))),
    ((2, 10, 7, 2, 3), (3, 2), (2, 1), (2, 3), ((1, 1), (0, 1))),      # a stride too (the op allows it)
    ((1, 7, 7, 4, 2), (1, 3), (1, 1), (1, 3), ((0, 0), (3, 3))),
]


def _torch_gradients(x, kernel, bias, stride, dilation, pads, dy, relu):
    """(y, dx, dkernel, dbias) of PyTorch's convolution, NHWC in and out."""
    t = lambda a: torch.tensor(a, dtype=torch.float64, requires_grad=True)        # noqa: E731
    tx, tk, tb = t(x), t(kernel), t(bias)
    (top, bottom), (left, right) = pads
    xp = torch.nn.functional.pad(tx.permute(0, 3, 1, 2), (left, right, top, bottom))
    z = torch.nn.functional.conv2d(xp, tk.permute(3, 2, 0, 1), tb, stride=stride, dilation=dilation)
    y = (torch.relu(z) if relu else z).permute(0, 2, 3, 1)
    y.backward(torch.tensor(dy))
    return y.detach().numpy(), tx.grad.numpy(), tk.grad.numpy(), tb.grad.numpy()


def _case(config, seed=0, dtype="float64"):
    (N, H, W, C, F), kernel_hw, stride, dilation, pads = config
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, H, W, C)).astype(dtype)
    kernel = rng.standard_normal(kernel_hw + (C, F)).astype(dtype)
    return x, kernel, rng.standard_normal(F).astype(dtype), stride, dilation, pads, rng


@pytest.mark.parametrize("relu", [False, True], ids=["linear", "relu"])
@pytest.mark.parametrize("config", CONFIGS)
def test_dilated_convolution_matches_torch(config, relu):
    x, kernel, bias, stride, dilation, pads, rng = _case(config)
    y, cache = ops.conv2d_forward(x, kernel, bias, stride, pads, relu=relu, dilation=dilation)
    assert isinstance(cache.plan, planning.DilatedPlan) and cache.plan.dilation == dilation
    dy = rng.standard_normal(y.shape)
    grads = ops.conv2d_backward(dy, cache, kernel, relu_output=y if relu else None)
    expected = _torch_gradients(x, kernel, bias, stride, dilation, pads, dy, relu)
    for got, want in zip((y,) + grads, expected):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    dx, dkernel, dbias = ops.conv2d_backward(dy, cache, kernel, need_dx=False, need_bias=False,
                                             relu_output=y if relu else None)
    assert dx is None and dbias is None
    np.testing.assert_allclose(dkernel, expected[2], rtol=1e-10, atol=1e-10)


def test_the_plan_dilates_only_when_asked():
    padded = (2, 12, 12, 3)
    assert not isinstance(planning.conv_plan(padded, np.float64, (3, 3, 3, 4), (1, 1), np.float64),
                          planning.DilatedPlan)
    plan = planning.conv_plan(padded, np.float64, (3, 3, 3, 4), (1, 1), np.float64, dilation=(2, 1))
    assert isinstance(plan, planning.DilatedPlan) and plan.out_hw == (8, 10)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_dilated_blocks_threads_and_kept_matrices(monkeypatch, blocks_of_one_image, threads):
    """One image per block on several threads, then rows of one image per block (a small memory
    budget): the same results as one block, kept matrices or not, and the input gradient gated."""
    x, kernel, bias, stride, dilation, pads, rng = _case(CONFIGS[1], seed=3)
    y, cache = ops.conv2d_forward(x, kernel, bias, stride, pads, dilation=dilation)
    dy = rng.standard_normal(y.shape)
    expected = ops.conv2d_backward(dy, cache, kernel, gate_input=True)
    blocks_of_one_image(threads, 8 * 11 * 2 * 3 * 1 * 8)                # one image's im2col matrix
    for budget in (None, 2000):
        if budget is not None:
            monkeypatch.setattr(ops, "MEMORY_BUDGET_BYTES", budget)
        storage = {}
        y_blocks, cache_blocks = ops.conv2d_forward(x, kernel, bias, stride, pads, keep=storage, dilation=dilation)
        rows_per_block = {rows.stop - rows.start for _, rows in cache_blocks.plan.blocks}
        assert len(cache_blocks.plan.blocks) >= 3 and (budget is None) == (rows_per_block == {y.shape[1]})
        assert (cache_blocks.kept is None) == (budget is not None)
        np.testing.assert_allclose(y_blocks, y, rtol=1e-12, atol=1e-12)
        for got, want in zip(ops.conv2d_backward(dy, cache_blocks, kernel, gate_input=True), expected):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(expected[0] == 0, (x <= 0) | (expected[0] == 0))


def test_float32_dilated_convolution_is_close_to_float64():
    x, kernel, bias, stride, dilation, pads, rng = _case(CONFIGS[0])
    y64, cache64 = ops.conv2d_forward(x, kernel, bias, stride, pads, dilation=dilation)
    cast = [a.astype(np.float32) for a in (x, kernel, bias)]
    y32, cache32 = ops.conv2d_forward(*cast, stride, pads, dilation=dilation)
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, y64, rtol=1e-4, atol=1e-4)
    dy = rng.standard_normal(y64.shape)
    for got, want in zip(ops.conv2d_backward(dy.astype(np.float32), cache32, cast[1]),
                         ops.conv2d_backward(dy, cache64, kernel)):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)
