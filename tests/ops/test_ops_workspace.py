"""The workspace's kept arrays: a recycled array is reused only when nobody else refers to it; column sums by the kept ones."""
import numpy as np

from glassnet import layers
from glassnet.ops import workspace


def test_recycled_array_is_reused_once_dropped_and_never_while_held():
    first = workspace.recycled_empty("test_recycled", (4, 5), np.float32)
    address = first.ctypes.data
    del first
    again = workspace.recycled_empty("test_recycled", (4, 5), np.float32)
    assert again.ctypes.data == address                        # dropped: the same memory
    held = again
    del again
    fresh = workspace.recycled_empty("test_recycled", (4, 5), np.float32)
    assert fresh.ctypes.data != held.ctypes.data               # held: a new array
    del held
    still = workspace.recycled_empty("test_recycled", (4, 5), np.float32)
    assert still.ctypes.data != fresh.ctypes.data              # ... and that one is the cache's now
    del fresh
    view = still[1:]
    del still
    through_view = workspace.recycled_empty("test_recycled", (4, 5), np.float32)
    assert through_view.ctypes.data != view.base.ctypes.data   # only a view holds it: a new array too
    del through_view, view
    other = workspace.recycled_empty("test_recycled", (2, 5), np.float64)
    assert other.shape == (2, 5) and other.dtype == np.float64


def test_an_input_gradient_the_caller_keeps_is_not_overwritten_by_the_next_backward_pass():
    rng = np.random.default_rng(0)
    conv = layers.Conv2D(6, 3, dtype="float32")
    x = rng.standard_normal((3, 9, 9, 4)).astype("float32")
    y = conv.forward(x, training=True)
    dy = rng.standard_normal(y.shape).astype("float32")
    first = conv.backward(dy)
    kept = first.copy()
    conv.forward(x, training=True)
    second = conv.backward(2 * dy)
    np.testing.assert_array_equal(first, kept)                 # untouched by the second pass
    np.testing.assert_allclose(second, 2 * kept, rtol=1e-6)
    assert second.ctypes.data != first.ctypes.data


def test_column_sums_equal_the_sums_over_rows_whatever_length_came_before():
    rng = np.random.default_rng(0)
    for rows in (50, 7, 120):                                   # the kept vector of ones grows and is cut
        matrix = rng.standard_normal((rows, 3))
        np.testing.assert_allclose(workspace.column_sums(matrix), matrix.sum(axis=0), rtol=1e-12)
        assert workspace.column_sums(matrix.astype(np.float32)).dtype == np.float32
    transposed = rng.standard_normal((4, 30)).astype(np.float32).T  # a transposed view, as the window method passes
    np.testing.assert_allclose(workspace.column_sums(transposed, np.float64), transposed.sum(axis=0), rtol=1e-6)
    assert workspace.column_sums(transposed, np.float64).dtype == np.float64


def test_recycled_arrays_are_reused_only_once_nothing_refers_to_them(monkeypatch):
    first = workspace.recycled_array("test_kind", (3, 4), np.float32)
    first_id = id(first)
    held = workspace.recycled_array("test_kind", (3, 4), np.float32)
    assert held is not first                                      # both busy: two arrays
    del first
    again = workspace.recycled_array("test_kind", (3, 4), np.float32)
    assert id(again) == first_id and again.shape == (3, 4) and again.dtype == np.float32
    view = again.reshape(12)
    del again
    assert workspace.recycled_array("test_kind", (3, 4), np.float32) is not view.base      # a view keeps it busy
    assert id(view.base) == first_id
    assert workspace.recycled_array("test_kind", (3, 4), np.float64).dtype == np.float64
    monkeypatch.setattr(workspace, "RECYCLED_SHAPES", 2)
    for n in range(5):
        workspace.recycled_array("test_kind", (n + 1,), np.float32)
    assert len(workspace._thread_pool().arrays[("recycled_kind", "test_kind")]) == 2


def test_recycled_outputs_padded_inputs_and_sums_are_not_overwritten_while_held():
    """pad2d, the convolution's output, Add's sum and the executor's gradient sums come from recycled
    arrays: what a caller (or a later step's cache) still holds must survive the next calls."""
    from glassnet.ops import conv2d_forward, pad2d
    rng = np.random.default_rng(1)
    x1, x2 = (rng.standard_normal((2, 5, 5, 3)).astype(np.float32) for _ in range(2))
    kernel = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
    padded = pad2d(x1, ((1, 1), (2, 0)), value=-1.0)
    kept_padded = padded.copy()
    pad2d(x2, ((1, 1), (2, 0)), value=-1.0)
    np.testing.assert_array_equal(padded, kept_padded)
    assert np.all(padded[:, 0] == -1) and np.all(padded[:, :, :2] == -1)
    np.testing.assert_array_equal(padded[:, 1:-1, 2:], x1)
    y1, _ = conv2d_forward(x1, kernel, None, (1, 1), ((1, 1), (1, 1)))
    kept_y1 = y1.copy()
    y2, _ = conv2d_forward(x2, kernel, None, (1, 1), ((1, 1), (1, 1)))
    np.testing.assert_array_equal(y1, kept_y1)
    assert not np.shares_memory(y1, y2)
    add = layers.Add()
    s1, _ = add.apply([x1, x2])
    s2, _ = add.apply([x2, x2])
    np.testing.assert_array_equal(s1, x1 + x2)
    np.testing.assert_array_equal(s2, x2 + x2)
    # dropped, the memory serves the next call of that shape and kind
    address = y2.ctypes.data
    del y2
    y3, _ = conv2d_forward(x2, kernel, None, (1, 1), ((1, 1), (1, 1)))
    assert y3.ctypes.data == address



def test_clear_workspace_lets_the_recycled_arrays_go():
    first = workspace.recycled_array("test_cleared", (8, 8), np.float32)
    address = id(first)
    del first
    assert id(workspace.recycled_array("test_cleared", (8, 8), np.float32)) == address
    workspace.clear_workspace()
    assert ("recycled_kind", "test_cleared") not in workspace._thread_pool().arrays
