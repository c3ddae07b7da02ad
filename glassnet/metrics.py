"""Metrics: accuracy (categorical, sparse, binary), top-k accuracy, MSE and MAE.

A metric is a callable ``metric(y_true, y_pred) -> float`` (the mean over the
batch) with a ``name``: the key it gets in ``History.history``. Like Keras 2.x,
``metrics=["accuracy"]`` picks the accuracy that fits the loss: binary accuracy
for ``binary_crossentropy`` (or a single output unit), sparse categorical
accuracy for ``sparse_categorical_crossentropy`` and categorical accuracy
otherwise; the History key stays the name the user wrote (``"accuracy"``).
"""
import numpy as np

from .errors import describe, message
from .validation import check_int


def _arrays(y_true, y_pred, where):
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    for label, array in (("y_true", y_true), ("y_pred", y_pred)):
        if array.dtype.kind not in "biuf":
            raise TypeError(message(where, f"a numeric {label}", describe(array)))
    if y_pred.ndim == 0 or y_true.ndim == 0 or y_true.shape[0] != y_pred.shape[0]:
        raise ValueError(message(where, "as many targets as predictions",
                                 f"y_true of shape {y_true.shape} and y_pred of shape "
                                 f"{y_pred.shape}"))
    return y_true, y_pred


def _class_labels(y_true, pred_shape, where):
    """Integer labels from sparse targets of shape ``pred_shape[:-1]`` or ``(..., 1)``."""
    if y_true.shape == pred_shape[:-1] + (1,):
        y_true = y_true.reshape(pred_shape[:-1])
    if y_true.shape != pred_shape[:-1]:
        raise ValueError(message(where, f"integer labels of shape {pred_shape[:-1]}",
                                 f"shape {y_true.shape}",
                                 "One-hot targets need the categorical variant."))
    if y_true.size and (y_true.min() < 0 or y_true.max() >= pred_shape[-1]):
        raise ValueError(message(where, f"labels in [0, {pred_shape[-1] - 1}]",
                                 f"labels from {y_true.min()} to {y_true.max()}"))
    return y_true.astype(np.intp, copy=False)


class Metric:
    """Base class: ``metric(y_true, y_pred)`` is the batch mean of ``per_sample``."""

    name = "metric"

    def __init__(self, name=None):
        if name is not None:
            if not isinstance(name, str) or not name:
                raise TypeError(message(f"{type(self).__name__}(name=...)",
                                        "a non-empty string", describe(name)))
            self.name = name

    def __call__(self, y_true, y_pred):
        """Mean of :meth:`per_sample` over the batch, as a Python float."""
        values = self.per_sample(y_true, y_pred)
        return float(values.mean(dtype=np.float64)) if values.size else 0.0

    def per_sample(self, y_true, y_pred):
        """One value per sample (shape ``(N,)``): lets a caller sum across batches."""
        raise NotImplementedError

    def get_config(self):
        return {"class_name": type(self).__name__, "name": self.name}

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r})"


class CategoricalAccuracy(Metric):
    """Fraction of samples whose arg-max prediction is the arg-max of the one-hot target.

    Ties go to the lowest class index (as ``np.argmax`` and ``tf.argmax``).
    """

    name = "categorical_accuracy"

    def per_sample(self, y_true, y_pred):
        y_true, y_pred = _arrays(y_true, y_pred, self.name)
        if y_true.shape != y_pred.shape:
            raise ValueError(message(self.name, f"one-hot targets of shape {y_pred.shape}",
                                     f"shape {y_true.shape}",
                                     "Integer labels need sparse_categorical_accuracy."))
        hits = y_true.argmax(axis=-1) == y_pred.argmax(axis=-1)
        return hits.reshape(len(hits), -1).mean(axis=1)


class SparseCategoricalAccuracy(Metric):
    """Fraction of samples whose arg-max prediction equals the integer label."""

    name = "sparse_categorical_accuracy"

    def per_sample(self, y_true, y_pred):
        y_true, y_pred = _arrays(y_true, y_pred, self.name)
        labels = _class_labels(y_true, y_pred.shape, self.name)
        hits = labels == y_pred.argmax(axis=-1)
        return hits.reshape(len(hits), -1).mean(axis=1)


class BinaryAccuracy(Metric):
    """Fraction of outputs where ``y_pred > threshold`` agrees with the 0/1 target.

    Keras 2.x: ``mean(equal(y_true, y_pred > 0.5), axis=-1)``.
    """

    name = "binary_accuracy"

    def __init__(self, threshold=0.5, name=None):
        super().__init__(name)
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.number)):
            raise TypeError(message("BinaryAccuracy(threshold=...)", "a number",
                                    describe(threshold)))
        self.threshold = float(threshold)

    def per_sample(self, y_true, y_pred):
        y_true, y_pred = _arrays(y_true, y_pred, self.name)
        if y_true.shape != y_pred.shape:
            if y_true.size != y_pred.size or y_true.shape[0] != y_pred.shape[0]:
                raise ValueError(message(self.name, f"targets of shape {y_pred.shape}",
                                         f"shape {y_true.shape}"))
            y_true = y_true.reshape(y_pred.shape)
        hits = y_true == (y_pred > self.threshold)
        return hits.reshape(len(hits), -1).mean(axis=1)

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold}


def _in_top_k(target_scores, y_pred, k):
    """TensorFlow's ``in_top_k``: the target is a hit when fewer than k classes score
    strictly higher (so ties at the boundary count as hits); non-finite scores miss."""
    higher = (y_pred > target_scores[..., None]).sum(axis=-1)
    return (higher < k) & np.isfinite(target_scores)


class TopKCategoricalAccuracy(Metric):
    """Fraction of samples whose target class is among the k highest predictions.

    Targets are one-hot ``(N, C)``; with ``sparse=True`` integer labels ``(N,)``.
    """

    name = "top_k_categorical_accuracy"

    def __init__(self, k=5, name=None, sparse=False):
        super().__init__(name)
        self.k = check_int(k, "k", "TopKCategoricalAccuracy(k=...)", minimum=1, fix="For example k=5.")
        self.sparse = bool(sparse)
        if sparse and name is None:
            self.name = "sparse_top_k_categorical_accuracy"

    def per_sample(self, y_true, y_pred):
        y_true, y_pred = _arrays(y_true, y_pred, self.name)
        if self.sparse:
            labels = _class_labels(y_true, y_pred.shape, self.name)
        else:
            if y_true.shape != y_pred.shape:
                raise ValueError(message(self.name, f"one-hot targets of shape "
                                         f"{y_pred.shape}", f"shape {y_true.shape}",
                                         "Integer labels need sparse_top_k_categorical_accuracy."))
            labels = y_true.argmax(axis=-1)
        target = np.take_along_axis(y_pred, labels[..., None], axis=-1)[..., 0]
        hits = _in_top_k(target, y_pred, self.k)
        return hits.reshape(len(hits), -1).mean(axis=1)

    def get_config(self):
        return {**super().get_config(), "k": self.k, "sparse": self.sparse}


def _flat_diff(where, y_true, y_pred):
    """``y_pred - y_true`` as float64, flattened per sample to ``(N, D)``."""
    y_true, y_pred = _arrays(y_true, y_pred, where)
    if y_true.size != y_pred.size:
        raise ValueError(message(where, f"targets of shape {y_pred.shape}",
                                 f"shape {y_true.shape}"))
    return (y_pred.reshape(len(y_pred), -1).astype(np.float64)
            - y_true.reshape(len(y_true), -1))


class MeanSquaredError(Metric):
    """Mean of ``(y_pred - y_true)**2`` per sample."""

    name = "mean_squared_error"

    def per_sample(self, y_true, y_pred):
        return np.square(_flat_diff(self.name, y_true, y_pred)).mean(axis=1)


class MeanAbsoluteError(Metric):
    """Mean of ``|y_pred - y_true|`` per sample."""

    name = "mean_absolute_error"

    def per_sample(self, y_true, y_pred):
        return np.abs(_flat_diff(self.name, y_true, y_pred)).mean(axis=1)


class FunctionMetric(Metric):
    """Wraps a user function ``fn(y_true, y_pred) -> float`` (named after the function)."""

    def __init__(self, fn, name=None):
        super().__init__(name or getattr(fn, "__name__", "metric"))
        self.fn = fn

    def __call__(self, y_true, y_pred):
        return float(self.fn(y_true, y_pred))

    def per_sample(self, y_true, y_pred):
        # A plain function only gives the batch mean; repeat it per sample.
        return np.full(len(np.asarray(y_pred)), self(y_true, y_pred))


# ---------------------------------------------------------------------------
# Look-up
# ---------------------------------------------------------------------------

_ACCURACY_NAMES = ("accuracy", "acc")
_BY_NAME = {
    "categorical_accuracy": CategoricalAccuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "binary_accuracy": BinaryAccuracy,
    "top_k_categorical_accuracy": TopKCategoricalAccuracy,
    "sparse_top_k_categorical_accuracy": lambda name: TopKCategoricalAccuracy(
        name=name, sparse=True),
    "mean_squared_error": MeanSquaredError,
    "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError,
    "mae": MeanAbsoluteError,
}


def _loss_name(loss):
    """Canonical name of the loss the metric goes with (None when unknown)."""
    if loss is None:
        return None
    from . import losses
    return losses.canonical_name(loss) or getattr(loss, "name", None)


def accuracy_for(loss=None, output_shape=None, name="accuracy"):
    """The accuracy variant Keras 2.x picks for ``metrics=["accuracy"]``.

    Binary accuracy when the loss is ``binary_crossentropy`` or the model has one
    output unit, sparse categorical accuracy for ``sparse_categorical_crossentropy``,
    categorical accuracy otherwise. The metric keeps ``name``.
    """
    loss_name = _loss_name(loss)
    single_unit = output_shape is not None and len(output_shape) and output_shape[-1] == 1
    if loss_name == "binary_crossentropy" or single_unit:
        return BinaryAccuracy(name=name)
    if loss_name == "sparse_categorical_crossentropy":
        return SparseCategoricalAccuracy(name=name)
    return CategoricalAccuracy(name=name)


def get(identifier, loss=None, output_shape=None):
    """Return a :class:`Metric` for a name, a Metric or a function.

    Parameters
    ----------
    identifier : str, Metric or callable
        ``"accuracy"`` / ``"acc"`` (variant chosen from ``loss``, see
        :func:`accuracy_for`), ``"categorical_accuracy"``,
        ``"sparse_categorical_accuracy"``, ``"binary_accuracy"``,
        ``"top_k_categorical_accuracy"`` (k=5; sparse labels when the loss is
        sparse), ``"sparse_top_k_categorical_accuracy"``, ``"mse"``, ``"mae"``.
    loss : str or Loss, optional
        The compiled loss (name or instance), used to pick the label format.
    output_shape : tuple, optional
        The model's output shape; a single unit means binary accuracy.

    Returns
    -------
    Metric
        Its ``name`` is the string given (the History key), e.g. ``"accuracy"``.
    """
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str):
        key = identifier.lower()
        if key in _ACCURACY_NAMES:
            return accuracy_for(loss, output_shape, name=identifier)
        if key == "top_k_categorical_accuracy" and _loss_name(loss) == (
                "sparse_categorical_crossentropy"):
            return TopKCategoricalAccuracy(name=identifier, sparse=True)
        if key in _BY_NAME:
            return _BY_NAME[key](name=identifier)
        valid = ", ".join(repr(n) for n in _ACCURACY_NAMES + tuple(_BY_NAME))
        raise ValueError(message("metrics.get", f"one of {valid}", repr(identifier),
                                 "Check the spelling of the metric name."))
    if callable(identifier):
        return FunctionMetric(identifier)
    raise TypeError(message("metrics.get", "a metric name, a Metric or a function "
                            "fn(y_true, y_pred) -> float", describe(identifier)))
