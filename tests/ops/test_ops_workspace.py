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
