"""Resources (issue 8, section 4): convolution and occlusion temporaries stay under a memory budget.

The im2col matrix of a convolution is KH*KW times the input; built for a whole batch (or one
large image) it would dominate memory. ``glassnet.ops.MEMORY_BUDGET_BYTES`` caps the blocks a
convolution works on, and ``glassnet.explain.backprop.MEMORY_BUDGET`` caps the chunks of occluded
copies an occlusion map evaluates. Peaks are measured with ``tracemalloc`` (NumPy reports its
allocations to it) and compared with what an unchunked implementation would need.
"""
import tracemalloc

import numpy as np
import pytest

import glassnet as gn
import glassnet.explain.backprop as explain_backprop
import glassnet.ops as ops
from glassnet import explain, layers
from glassnet.ops.conv import clear_workspace

MiB = 2 ** 20


def peak_bytes(fn):
    """(peak bytes allocated while ``fn`` runs, its result), starting from empty conv scratch space."""
    clear_workspace()
    tracemalloc.start()
    try:
        result = fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak, result


GEOMETRIES = {
    # name: (filters, kernel, per-example input shape, batch)
    "large batch": (16, 3, (28, 28, 8), 96),
    "one large image": (8, 5, (400, 400, 4), 1),
}


def conv_and_input(name):
    filters, kernel, shape, batch = GEOMETRIES[name]
    conv = layers.Conv2D(filters, kernel, seed=0)
    conv.build(shape)
    x = np.random.default_rng(0).random((batch,) + shape, dtype=np.float32)
    OH, OW = shape[0] - kernel + 1, shape[1] - kernel + 1
    unchunked = batch * OH * OW * kernel * kernel * shape[2] * 4  # the whole im2col matrix
    return conv, x, unchunked


@pytest.mark.parametrize("budget", [256 * 2 ** 10, 1 * MiB])
@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
def test_conv_forward_and_backward_stay_within_budget(monkeypatch, geometry, budget):
    monkeypatch.setattr(ops, "MEMORY_BUDGET_BYTES", budget)
    conv, x, unchunked = conv_and_input(geometry)
    forward, y = peak_bytes(lambda: conv.forward(x, training=True))
    # the output itself, plus at most a couple of budget-sized blocks and small bookkeeping
    assert forward <= y.nbytes + 2 * budget + MiB, (forward, y.nbytes, budget)
    assert forward < unchunked / 3, "the forward pass peaked near the size of the unchunked im2col matrix"
    dy = np.ones_like(y)
    backward, dx = peak_bytes(lambda: conv.backward(dy))
    assert dx.shape == x.shape
    assert backward <= dx.nbytes + dy.nbytes + 2 * budget + 2 * MiB, (backward, dx.nbytes, budget)
    assert backward < unchunked / 2


def test_blocked_convolution_equals_the_unblocked_one(monkeypatch):
    """The budget changes how the work is split, never the numbers."""
    conv, x, _ = conv_and_input("large batch")
    x = x[:32]
    y_default = conv.forward(x, training=True)
    dx_default = conv.backward(np.ones_like(y_default))
    dk_default = conv.grads["kernel"].copy()
    monkeypatch.setattr(ops, "MEMORY_BUDGET_BYTES", 8 * 2 ** 10)
    y_small = conv.forward(x, training=True)
    dx_small = conv.backward(np.ones_like(y_small))
    np.testing.assert_allclose(y_small, y_default, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dx_small, dx_default, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(conv.grads["kernel"], dk_default, rtol=1e-4, atol=1e-4)


def test_a_smaller_budget_lowers_the_peak(monkeypatch):
    conv, x, _ = conv_and_input("one large image")
    monkeypatch.setattr(ops, "MEMORY_BUDGET_BYTES", 4 * MiB)
    large, _ = peak_bytes(lambda: conv.forward(x, training=True))
    monkeypatch.setattr(ops, "MEMORY_BUDGET_BYTES", 256 * 2 ** 10)
    small, _ = peak_bytes(lambda: conv.forward(x, training=True))
    assert small < large - MiB, (small, large)


# -- occlusion ---------------------------------------------------------------------------------
def occlusion_model():
    return gn.Sequential([layers.Conv2D(8, 3, activation="relu", input_shape=(28, 28, 1), name="conv"),
                          layers.MaxPooling2D(2, name="pool"), layers.Flatten(name="flat"),
                          layers.Dense(10, name="logits")], seed=0)


def test_occlusion_copies_are_evaluated_within_budget(monkeypatch):
    """8 images x 729 window positions = 5,832 occluded copies, evaluated a budget-sized chunk at a time."""
    model = occlusion_model()
    x = np.random.default_rng(0).random((8, 28, 28, 1), dtype=np.float32)
    expected = explain.occlusion(model, x, window=2, stride=1)      # default budget
    budget = 1 * MiB
    monkeypatch.setattr(explain_backprop, "MEMORY_BUDGET", budget)
    positions, H, W = 27 * 27, 28, 28
    unbounded = len(x) * positions * explain_backprop.bytes_per_example(model)
    peak, maps = peak_bytes(lambda: explain.occlusion(model, x, window=2, stride=1))
    np.testing.assert_allclose(maps, expected, rtol=1e-5, atol=1e-6)
    # what does not depend on the budget: the window masks (bool, and a float64 copy for the final
    # average) and one score drop per copy
    fixed = positions * H * W * (1 + 8) + len(x) * positions * 8
    assert peak <= fixed + 3 * budget + MiB, (peak, fixed, budget)
    assert peak < unbounded / 10, (peak, unbounded)


def test_occlusion_peak_does_not_grow_with_the_batch(monkeypatch):
    monkeypatch.setattr(explain_backprop, "MEMORY_BUDGET", 1 * MiB)
    model = occlusion_model()
    images = np.random.default_rng(1).random((16, 28, 28, 1), dtype=np.float32)
    small, _ = peak_bytes(lambda: explain.occlusion(model, images[:4], window=2, stride=1))
    large, _ = peak_bytes(lambda: explain.occlusion(model, images, window=2, stride=1))
    per_copy_input = 28 * 28 * 4
    # 12 more images = 8,748 more occluded copies (27 MB of inputs alone if materialized at once)
    assert large - small < 12 * 729 * (8 + 8) + 2 * MiB, (small, large)
    assert large - small < 12 * 729 * per_copy_input / 8


# -- every explanation within the budget for any number of images (issue 19, item 5) -------------------
def _wide_net():
    """Its 16-channel feature maps are 16x the input per image: kept for all images, they would dominate."""
    return gn.Sequential([
        layers.Conv2D(8, 3, padding="same", activation="relu", input_shape=(8, 8, 1)),
        layers.Conv2D(16, 3, padding="same", activation="relu"),
        layers.GlobalAveragePooling2D(),
        layers.Dense(3, activation="softmax"),
    ], seed=0)


EXPLANATIONS = {
    "saliency": lambda m, x: explain.saliency(m, x),
    "input_gradients_guided": lambda m, x: explain.input_gradients(m, x, modifier="guided"),
    "smooth_grad": lambda m, x: explain.smooth_grad(m, x, samples=2, seed=0),
    "integrated_gradients": lambda m, x: explain.integrated_gradients(m, x, steps=2),
    "grad_cam": lambda m, x: explain.grad_cam(m, x),
    "grad_cam_plus_plus": lambda m, x: explain.grad_cam_plus_plus(m, x),
    "guided_grad_cam": lambda m, x: explain.guided_grad_cam(m, x),
    "cam": lambda m, x: explain.cam(m, x),
    "occlusion": lambda m, x: explain.occlusion(m, x, window=4),
    "feature_maps": lambda m, x: explain.feature_maps(m, x, 0),
}


def _explanation_peak(name, n):
    model = _wide_net()
    x = np.random.default_rng(0).random((n, 8, 8, 1), dtype=np.float32)
    peak, result = peak_bytes(lambda: EXPLANATIONS[name](model, x))
    return peak, x.nbytes + np.asarray(result).nbytes


# the sizes, 1k and 10k images, run with the slow tests; the everyday suite checks the growth
# on fewer
@pytest.mark.parametrize("sizes", [(500, 2000), pytest.param((1000, 10000), marks=pytest.mark.slow)])
@pytest.mark.parametrize("name", sorted(EXPLANATIONS))
def test_every_explanation_stays_within_the_budget_for_any_number_of_images(monkeypatch, name, sizes):
    """Peak traced memory: the budget's chunks plus a few input- and output-sized arrays, so what grows
    with N is only the arrays that have N rows anyway (the chunk's feature maps do not)."""
    budget = MiB
    monkeypatch.setattr(explain_backprop, "MEMORY_BUDGET", budget)
    (small, small_io), (large, large_io) = (_explanation_peak(name, n) for n in sizes)
    # the N-sized arrays a method may hold: input, output and a few of their size (baselines, means)
    assert small <= 3 * budget + 4 * small_io + MiB, (small, small_io)
    assert large <= 3 * budget + 4 * large_io + MiB, (large, large_io)
    assert large - small <= 4 * (large_io - small_io), (small, large, small_io, large_io)
