"""glassnet.ops max/avg pooling: values against a loop, gradients against central differences, routing."""
import numpy as np
import pytest

from glassnet import ops
from glassnet.testing import numerical_gradient, relative_error

# (N, H, W, C), pool, stride, pads
CONFIGS = [
    ((2, 6, 6, 2), (2, 2), (2, 2), ((0, 0), (0, 0))),     # tiles
    ((2, 7, 5, 3), (2, 2), (2, 2), ((0, 0), (0, 0))),     # does not divide
    ((2, 7, 6, 2), (3, 3), (2, 2), ((1, 1), (0, 1))),     # overlapping, "same" split
    ((1, 5, 6, 1), (3, 2), (1, 2), ((1, 1), (0, 0))),
    ((2, 4, 5, 2), (1, 1), (1, 1), ((0, 0), (0, 0))),     # 1x1
    ((2, 4, 5, 2), (4, 5), (4, 5), ((0, 0), (0, 0))),     # the whole image
    ((2, 7, 7, 1), (2, 2), (3, 3), ((0, 0), (0, 0))),     # gaps between windows
    ((1, 3, 3, 2), (5, 5), (2, 2), ((2, 2), (2, 2))),     # window larger than the input
]
IDS = [f"{shape}-p{p}-s{s}-pad{pads}" for shape, p, s, pads in CONFIGS]
KINDS = {"max": (ops.max_pool2d_forward, ops.max_pool2d_backward, np.nanmax),
         "avg": (ops.avg_pool2d_forward, ops.avg_pool2d_backward, np.nanmean)}


def _distinct(shape, seed):
    size = int(np.prod(shape))
    return (np.random.default_rng(seed).permutation(size) / size - 0.5).reshape(shape)


def _loop(x, pool, stride, pads, reduce):
    (top, bottom), (left, right) = pads
    xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=np.nan)
    OH, OW = (xp.shape[1] - pool[0]) // stride[0] + 1, (xp.shape[2] - pool[1]) // stride[1] + 1
    y = np.empty((x.shape[0], OH, OW, x.shape[3]))
    for i in range(OH):
        for j in range(OW):
            y[:, i, j] = reduce(xp[:, i * stride[0]:i * stride[0] + pool[0], j * stride[1]:j * stride[1] + pool[1]],
                                axis=(1, 2))
    return y


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("shape, pool, stride, pads", CONFIGS, ids=IDS)
def test_pooling_forward_matches_loop(kind, shape, pool, stride, pads):
    forward, _, reduce = KINDS[kind]
    x = np.random.default_rng(0).standard_normal(shape)
    x_before = x.copy()
    y, _ = forward(x, pool, stride, pads)
    np.testing.assert_allclose(y, _loop(x, pool, stride, pads, reduce), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(x, x_before)


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("shape, pool, stride, pads", CONFIGS, ids=IDS)
def test_pooling_backward_matches_central_differences(kind, shape, pool, stride, pads):
    forward, backward, _ = KINDS[kind]
    x = _distinct(shape, 1)                                  # no ties: max is differentiable
    y, cache = forward(x, pool, stride, pads)
    r = np.random.default_rng(2).standard_normal(y.shape)
    dy = r.copy()
    dy.setflags(write=False)
    dx = backward(dy, cache)
    np.testing.assert_array_equal(dy, r)
    assert dx.shape == x.shape and dx.flags.writeable and dx.flags.c_contiguous
    loss = lambda: float(np.sum(forward(x, pool, stride, pads)[0] * r))       # noqa: E731
    assert relative_error(dx, numerical_gradient(loss, x)) < 1e-8


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("shape, pool, stride, pads", CONFIGS, ids=IDS)
def test_pooling_float32_stays_float32(kind, shape, pool, stride, pads):
    forward, backward, _ = KINDS[kind]
    x = np.random.default_rng(3).standard_normal(shape).astype("float32")
    y, cache = forward(x, pool, stride, pads)
    dx = backward(np.ones(y.shape, dtype="float32"), cache)
    assert y.dtype == dx.dtype == np.float32
    dx[...] = 0                                              # a fresh, writable gradient


def test_max_pool_ties_route_to_exactly_one_element_per_window():
    x = np.zeros((1, 6, 6, 2))                               # a window of zeros, as after a ReLU
    for pool, stride, pads in [((2, 2), (2, 2), ((0, 0), (0, 0))), ((3, 3), (2, 2), ((1, 1), (1, 1))),
                               ((3, 3), (1, 1), ((0, 0), (0, 0)))]:
        y, cache = ops.max_pool2d_forward(x, pool, stride, pads)
        dx = ops.max_pool2d_backward(np.ones(y.shape), cache)
        assert dx.sum() == y.size                            # every window's gradient arrives once
        assert set(np.unique(dx)) <= set(range(0, y.size + 1))


def test_overlapping_windows_accumulate():
    x = np.zeros((1, 5, 5, 1))
    x[0, 2, 2, 0] = 1.0                                      # the winner of all four 3x3 windows (stride 2)
    y, cache = ops.max_pool2d_forward(x, (3, 3), (2, 2), ((0, 0), (0, 0)))
    dx = ops.max_pool2d_backward(np.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 2, 2, 1), cache)
    assert dx[0, 2, 2, 0] == 10.0 and np.count_nonzero(dx) == 1
    y, cache = ops.avg_pool2d_forward(x, (3, 3), (2, 2), ((0, 0), (0, 0)))
    dx = ops.avg_pool2d_backward(np.ones((1, 2, 2, 1)), cache)
    assert dx[0, 2, 2, 0] == pytest.approx(4 / 9) and dx[0, 0, 0, 0] == pytest.approx(1 / 9)


def test_same_average_excludes_padding_and_max_never_picks_it():
    x = -np.ones((1, 2, 2, 1))                               # all negative: a zero pad would win a max
    y, _ = ops.max_pool2d_forward(x, (3, 3), (1, 1), ((1, 1), (1, 1)))
    assert y.shape == (1, 2, 2, 1) and np.all(y == -1)
    y, cache = ops.avg_pool2d_forward(np.arange(1.0, 5.0).reshape(1, 2, 2, 1), (3, 3), (2, 2), ((0, 1), (0, 1)))
    assert y[0, 0, 0, 0] == pytest.approx(2.5)               # (1 + 2 + 3 + 4) / 4 real cells, not / 9
    dx = ops.avg_pool2d_backward(np.ones(y.shape), cache)
    np.testing.assert_allclose(dx, 0.25)


def test_tiled_max_pool_gradient_is_zero_in_the_rows_and_columns_no_window_covers():
    """Tiled windows overwrite their cells without zeroing the buffer first; the leftover last row
    and column (7 = 3 * 2 + 1) must still come back as zeros, whatever memory was reused."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((64, 7, 7, 16))
    y, cache = ops.max_pool2d_forward(x, (2, 2), (2, 2), ((0, 0), (0, 0)))
    for _ in range(3):
        np.full(x.shape, np.nan).sum()          # leave freed memory full of NaNs
        dx = ops.max_pool2d_backward(np.ones_like(y), cache)
        assert not dx[:, 6].any() and not dx[:, :, 6].any()
        assert dx[:, :6, :6].sum() == y.size    # every window routed its gradient once


def _first_max_routing(x, dy, pool, stride, pads):
    """Loop oracle: each window's gradient goes to its first maximum in row-major window order."""
    (top, bottom), (left, right) = pads
    xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=-np.inf)
    dxp = np.zeros_like(xp)
    N, OH, OW, C = dy.shape
    for n, oh, ow, c in np.ndindex(N, OH, OW, C):
        window = xp[n, oh * stride[0]:oh * stride[0] + pool[0], ow * stride[1]:ow * stride[1] + pool[1], c]
        i, j = np.unravel_index(np.argmax(window), window.shape)      # argmax: the first maximum
        dxp[n, oh * stride[0] + i, ow * stride[1] + j, c] += dy[n, oh, ow, c]
    return dxp[:, top:xp.shape[1] - bottom, left:xp.shape[2] - right]


@pytest.mark.parametrize("record", [True, False], ids=["recorded", "found-later"])
@pytest.mark.parametrize("pool, stride, pads", [
    ((2, 2), (2, 2), ((0, 0), (0, 0))), ((3, 3), (3, 3), ((0, 0), (0, 0))), ((2, 3), (2, 3), ((1, 0), (0, 2))),
    ((1, 2), (1, 2), ((0, 0), (0, 0))), ((3, 3), (2, 2), ((1, 1), (1, 1))), ((2, 2), (1, 1), ((0, 0), (0, 0)))])
def test_max_pool_routes_to_the_first_maximum_among_ties(record, pool, stride, pads):
    rng = np.random.default_rng(11)
    x = rng.integers(0, 3, size=(3, 7, 8, 5)).astype("float32")      # values 0..2: ties in most windows
    y, cache = ops.max_pool2d_forward(x, pool, stride, pads, record_winners=record)
    dy = rng.standard_normal(y.shape).astype("float32")
    # overlapping windows add several gradients into one cell, in another order than the loop
    np.testing.assert_allclose(ops.max_pool2d_backward(dy, cache), _first_max_routing(x, dy, pool, stride, pads),
                               rtol=1e-6, atol=1e-6)
