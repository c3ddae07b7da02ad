"""gn.utils.to_categorical: Keras's shapes and values, and clear errors."""
import numpy as np
import pytest

import glassnet as gn

to_categorical = gn.utils.to_categorical


def test_one_hot_values_and_dtype():
    out = to_categorical([0, 2, 1, 2], 4)
    expected = np.zeros((4, 4), np.float32)
    expected[np.arange(4), [0, 2, 1, 2]] = 1
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, expected)


def test_num_classes_inferred_from_max():
    assert to_categorical(np.array([3, 0], np.uint8)).shape == (2, 4)


@pytest.mark.parametrize("shape, out_shape", [((6,), (6, 5)), ((6, 1), (6, 5)), ((2, 3), (2, 3, 5)),
                                              ((2, 3, 1), (2, 3, 5)), ((), (5,))])
def test_shapes_follow_keras(shape, out_shape):
    y = np.arange(int(np.prod(shape))).reshape(shape) % 5
    out = to_categorical(y, 5)
    assert out.shape == out_shape
    np.testing.assert_array_equal(out.argmax(-1), y.reshape(out_shape[:-1]))
    np.testing.assert_array_equal(out.sum(-1), 1)


def test_whole_number_floats_and_dtype_option():
    out = to_categorical(np.array([1.0, 0.0]), 2, dtype="float64")
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [[0, 1], [1, 0]])


def test_matches_manual_encoding_of_real_labels():
    y = gn.datasets.mnist.load_t10k()[1][:500]
    out = to_categorical(y, 10)
    np.testing.assert_array_equal(out, np.eye(10, dtype=np.float32)[y])


def test_empty_with_num_classes():
    assert to_categorical(np.array([], dtype=int), 3).shape == (0, 3)


@pytest.mark.parametrize("y, num_classes, error, pattern", [
    ([0, 3], 3, ValueError, r"labels in 0..2.*got 3"),
    ([-1, 0], None, ValueError, ">= 0"),
    ([0.5, 1], None, ValueError, "whole-number"),
    ([np.nan], 2, ValueError, "whole-number"),
    (["cat", "dog"], None, TypeError, "integer class labels"),
    ([], None, ValueError, "empty"),
    ([0, 1], 0, ValueError, "num_classes >= 1"),
    ([0, 1], 2.0, TypeError, "num_classes to be an int"),
])
def test_errors_are_explained(y, num_classes, error, pattern):
    with pytest.raises(error, match=pattern):
        to_categorical(y, num_classes)
