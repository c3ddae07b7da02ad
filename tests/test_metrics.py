"""Metrics: hand-computed accuracies (categorical, sparse, binary, top-k), the Keras rule
that picks the accuracy variant from the loss, names, and validation."""
import numpy as np
import pytest

from glassnet import losses, metrics

# Four samples, three classes. Arg-max per row: 1, 0, 2, 0 (row 3 is a 0/2 tie -> 0).
PRED = np.array([[0.1, 0.7, 0.2],
                 [0.5, 0.3, 0.2],
                 [0.2, 0.2, 0.6],
                 [0.4, 0.2, 0.4]])
LABELS = np.array([1, 1, 2, 2])
ONEHOT = np.eye(3)[LABELS]


def test_categorical_accuracy_by_hand():
    acc = metrics.CategoricalAccuracy()
    assert acc(ONEHOT, PRED) == 0.5          # rows 0 and 2 right; the tie in row 3 goes to 0
    np.testing.assert_array_equal(acc.per_sample(ONEHOT, PRED), [1, 0, 1, 0])
    assert acc(ONEHOT, ONEHOT) == 1.0


def test_sparse_accuracy_by_hand_and_label_shapes():
    acc = metrics.SparseCategoricalAccuracy()
    assert acc(LABELS, PRED) == 0.5
    assert acc(LABELS[:, None], PRED) == 0.5
    assert acc(LABELS.astype(np.float32), PRED) == 0.5
    assert acc(np.array([1, 0, 2, 0]), PRED) == 1.0


def test_binary_accuracy_threshold():
    y = np.array([[1.0], [0.0], [1.0], [0.0], [1.0]])
    p = np.array([[0.9], [0.2], [0.5], [0.51], [0.500001]])
    # 0.5 is not above the threshold -> predicted 0 (Keras rounds 0.5 down too).
    assert metrics.BinaryAccuracy()(y, p) == pytest.approx(3 / 5)
    assert metrics.BinaryAccuracy(threshold=0.95)(y, p) == pytest.approx(2 / 5)
    assert metrics.BinaryAccuracy()(y[:, 0], p) == pytest.approx(3 / 5)
    # several outputs per sample: mean over the outputs, then over samples
    per_sample = metrics.BinaryAccuracy().per_sample(np.array([[1, 0], [1, 1]]),
                                                     np.array([[0.8, 0.7], [0.9, 0.6]]))
    np.testing.assert_array_equal(per_sample, [0.5, 1.0])


def test_top_k_by_hand():
    top1 = metrics.TopKCategoricalAccuracy(k=1)
    # Unlike arg-max accuracy (0.5), row 3's tie at the top counts as a hit (TF's in_top_k).
    assert top1(ONEHOT, PRED) == 0.75
    top2 = metrics.TopKCategoricalAccuracy(k=2)
    # row 0: label 1 best; row 1: label 1 second; row 2: label 2 best; row 3: label 2 tied first
    assert top2(ONEHOT, PRED) == 1.0
    # labels 0, 2, 2, 1: only row 2 has its label in the top two
    assert metrics.TopKCategoricalAccuracy(k=2)(np.eye(3)[[0, 2, 2, 1]], PRED) == 0.25
    assert metrics.TopKCategoricalAccuracy()(ONEHOT, PRED) == 1.0        # k=5 >= 3 classes
    assert metrics.TopKCategoricalAccuracy().k == 5
    sparse = metrics.TopKCategoricalAccuracy(k=2, sparse=True)
    assert sparse.name == "sparse_top_k_categorical_accuracy"
    assert sparse(np.array([0, 2, 2, 1]), PRED) == 0.25


def test_top_k_ties_at_the_boundary_count_as_hits_like_tf_in_top_k():
    pred = np.array([[0.3, 0.3, 0.3, 0.1]])
    assert metrics.TopKCategoricalAccuracy(k=1, sparse=True)(np.array([2]), pred) == 1.0
    assert metrics.TopKCategoricalAccuracy(k=1, sparse=True)(np.array([3]), pred) == 0.0
    nan_pred = np.array([[np.nan, 0.1, 0.2]])
    assert metrics.TopKCategoricalAccuracy(k=3, sparse=True)(np.array([0]), nan_pred) == 0.0


def test_accuracy_variant_follows_the_loss_and_keeps_its_name():
    cases = {
        "categorical_crossentropy": (metrics.CategoricalAccuracy, ONEHOT),
        "sparse_categorical_crossentropy": (metrics.SparseCategoricalAccuracy, LABELS),
        "mse": (metrics.CategoricalAccuracy, ONEHOT),
    }
    for loss_name, (cls, y) in cases.items():
        for loss in (loss_name, losses.get(loss_name)):
            metric = metrics.get("accuracy", loss)
            assert type(metric) is cls and metric.name == "accuracy"
            assert metric(y, PRED) == 0.5
    binary = metrics.get("accuracy", "binary_crossentropy")
    assert isinstance(binary, metrics.BinaryAccuracy) and binary.name == "accuracy"
    single_unit = metrics.get("accuracy", "mse", output_shape=(None, 1))
    assert isinstance(single_unit, metrics.BinaryAccuracy)
    assert metrics.get("acc", "categorical_crossentropy").name == "acc"
    assert type(metrics.get("accuracy")) is metrics.CategoricalAccuracy


def test_named_metrics_and_top_k_with_sparse_loss():
    assert isinstance(metrics.get("categorical_accuracy"), metrics.CategoricalAccuracy)
    assert isinstance(metrics.get("sparse_categorical_accuracy"),
                      metrics.SparseCategoricalAccuracy)
    top = metrics.get("top_k_categorical_accuracy", "sparse_categorical_crossentropy")
    assert top.sparse and top.name == "top_k_categorical_accuracy" and top.k == 5
    assert top(LABELS, PRED) == 1.0
    assert not metrics.get("top_k_categorical_accuracy", "categorical_crossentropy").sparse
    instance = metrics.TopKCategoricalAccuracy(k=3)
    assert metrics.get(instance) is instance


def test_regression_metrics():
    y = np.array([[1.0, 2.0], [0.0, 0.0]])
    p = np.array([[2.0, 2.0], [-1.0, 3.0]])
    assert metrics.get("mse")(y, p) == pytest.approx((0.5 + 5.0) / 2)
    assert metrics.get("mae")(y, p) == pytest.approx((0.5 + 2.0) / 2)
    assert metrics.get("mae").name == "mae"


def test_function_metric():
    def always_half(y_true, y_pred):
        return 0.5
    metric = metrics.get(always_half)
    assert metric.name == "always_half" and metric(LABELS, PRED) == 0.5
    np.testing.assert_array_equal(metric.per_sample(LABELS, PRED), [0.5] * 4)


def test_errors():
    with pytest.raises(ValueError, match="accuracy"):
        metrics.get("acuracy")
    with pytest.raises(TypeError):
        metrics.get(3)
    with pytest.raises(ValueError, match="sparse"):
        metrics.CategoricalAccuracy()(LABELS, PRED)
    with pytest.raises(ValueError, match="categorical"):
        metrics.SparseCategoricalAccuracy()(ONEHOT, PRED)
    with pytest.raises(ValueError, match="targets"):
        metrics.CategoricalAccuracy()(ONEHOT[:3], PRED)
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        metrics.SparseCategoricalAccuracy()(np.array([0, 1, 2, 3]), PRED)
    with pytest.raises(ValueError, match="k as a positive int"):
        metrics.TopKCategoricalAccuracy(k=0)
    with pytest.raises(TypeError, match="k as a positive int"):
        metrics.TopKCategoricalAccuracy(k=2.0)
    with pytest.raises(TypeError, match="numeric"):
        metrics.CategoricalAccuracy()(np.array(["a"] * 4), PRED)
