"""Losses with exact gradients: cross-entropies (categorical, sparse, binary) and mean squared error.

Every loss follows Keras's argument order ``loss(y_true, y_pred)`` and returns the
mean over the batch as a Python float. Class (or output) values live on the last
axis; everything before it counts as "samples" for the mean, so ``(N, C)`` outputs
average over N.

Two gradient paths
------------------
``value_and_grad(y_true, y_pred)``
    Gradient of the batch-mean loss with respect to the *probabilities* the model
    produced. It reproduces Keras 2.x (``keras.backend`` with TensorFlow) exactly,
    including its guard against ``log(0)``: probabilities are clipped to
    ``[eps, 1 - eps]`` with ``eps = 1e-7`` (and, for the categorical losses,
    first renormalized to sum to one). Where a probability was clipped its
    gradient is zero, as for ``tf.clip_by_value``.
``value_and_grad_logits(y_true, logits)`` (cross-entropies only)
    The fused "activation + cross-entropy" path the model uses when its last
    activation is :attr:`Loss.logits_activation` (softmax for the categorical
    losses, sigmoid for the binary one). It works on the pre-activation logits
    with log-sum-exp, so it is exact and finite for any finite logits (even
    +-1000) with no clipping fudge, and its gradient is the textbook one:
    ``(softmax(z) - y) / N`` and ``(sigmoid(z) - y) / (N * D)``.

Use :func:`get` to turn a name into a loss instance.
"""
import numpy as np

from .activations import log_softmax, sigmoid
from .errors import describe, message
from .validation import check_real

#: Keras's fuzz factor (``keras.backend.epsilon()``) used to clip probabilities.
EPSILON = 1e-7


# ---------------------------------------------------------------------------
# Shared numerics
# ---------------------------------------------------------------------------

def _float_array(values, where):
    """``values`` as a floating NumPy array (integers become float64)."""
    array = np.asarray(values)
    if array.dtype.kind == "f":
        return array
    if array.dtype.kind in "biu":
        return array.astype(np.float64)
    raise TypeError(message(where, "a numeric array", describe(array),
                            "Convert predictions with np.asarray(y, dtype='float32')."))


def check_sample_weight(sample_weight, n, where):
    """``sample_weight`` as a float64 array of shape ``(n,)``: finite, >= 0 (``(n, 1)`` is accepted).

    Raises TypeError for non-numbers and ValueError for a wrong length or bad values.
    """
    weight = np.asarray(sample_weight)
    if weight.dtype.kind not in "biuf":
        raise TypeError(message(where, "sample_weight as a numeric array of shape (N,)", describe(weight),
                                "Pass one number per sample, e.g. np.ones(len(x))."))
    if weight.ndim == 2 and weight.shape[1] == 1:
        weight = weight[:, 0]
    if weight.shape != (n,):
        raise ValueError(message(where, f"sample_weight of shape ({n},), one weight per sample",
                                 f"shape {weight.shape}", "x, y and sample_weight must have the same length."))
    weight = weight.astype(np.float64, copy=False)
    if not np.isfinite(weight).all() or (weight < 0).any():
        bad = weight[~np.isfinite(weight) | (weight < 0)][0]
        raise ValueError(message(where, "finite sample weights >= 0", f"a weight of {bad!r}",
                                 "Weights scale each sample's loss; use 0 to leave a sample out."))
    return weight


def _reduce(terms_and_grad, pred_shape, sample_weight, where):
    """Keras's "sum_over_batch_size" reduction of a loss's terms and their gradient.

    ``terms`` are the per-row (cross-entropy) or per-element (binary, MSE) losses and ``grad``
    the gradient of ``terms.sum()``; the loss is ``sum(w * terms) / terms.size`` with ``w``
    (one weight per sample, broadcast over the other axes; 1 when None).
    """
    terms, grad = terms_and_grad
    count = max(terms.size, 1)
    if sample_weight is not None:
        weight = check_sample_weight(sample_weight, pred_shape[0], where)
        terms = terms * weight.reshape((-1,) + (1,) * (terms.ndim - 1))
        grad = grad * weight.astype(grad.dtype).reshape((-1,) + (1,) * (grad.ndim - 1))
    return terms.sum(dtype=np.float64) / count, grad / count


# ---------------------------------------------------------------------------
# Base class
# ---------------------------------------------------------------------------

class Loss:
    """Base class: a batch-mean loss with its exact gradient.

    Subclasses implement ``_targets`` (validation), ``_value_and_grad`` and, for
    cross-entropies, ``_value_and_grad_logits``; the last two return the loss's terms
    (per row, or per element) and the gradient of their sum, which :func:`_reduce` weights
    and averages.

    Attributes
    ----------
    name : str
        Canonical Keras name, e.g. ``"categorical_crossentropy"``.
    supports_logits : bool
        True when :meth:`value_and_grad_logits` exists.
    logits_activation : str or None
        Activation the fused path replaces (``"softmax"`` or ``"sigmoid"``).
    from_logits : bool
        When True, ``__call__`` and :meth:`value_and_grad` treat ``y_pred`` as
        logits (like ``tf.keras``'s ``from_logits=True``), so the model must not
        fuse an activation into it; see :meth:`fuses_with`.
    """

    name = "loss"
    supports_logits = False
    logits_activation = None

    def __init__(self, from_logits=False):
        if not isinstance(from_logits, (bool, np.bool_)):
            raise TypeError(message(f"{type(self).__name__}(from_logits=...)", "a bool",
                                    describe(from_logits)))
        if from_logits and not self.supports_logits:
            raise ValueError(message(f"{type(self).__name__}", "from_logits=False",
                                     "from_logits=True",
                                     "Only the cross-entropy losses work on logits."))
        self.from_logits = bool(from_logits)

    # -- public API ----------------------------------------------------------
    def __call__(self, y_true, y_pred, sample_weight=None):
        """Batch-mean loss as a Python float (Keras order: targets first)."""
        return self.value_and_grad(y_true, y_pred, sample_weight)[0]

    def value_and_grad(self, y_true, y_pred, sample_weight=None):
        """Batch-mean loss and its gradient with respect to ``y_pred``.

        Parameters
        ----------
        y_true : array_like
            Targets; the accepted shapes depend on the loss (see :meth:`check_targets`).
        y_pred : ndarray, shape (N, ..., C)
            Model outputs (probabilities, or logits when ``from_logits``).
        sample_weight : array_like of shape (N,), optional
            Keras 3's weighting: ``sum_i w_i * loss_i / N`` (the divisor stays the number of
            samples, as Keras's "sum_over_batch_size" reduction; it is not ``sum(w)``).

        Returns
        -------
        value : float
        dy_pred : ndarray, same shape and float dtype as ``y_pred``
        """
        y_pred = _float_array(y_pred, f"{self.name} y_pred")
        targets = self.check_targets(y_true, y_pred.shape)
        terms = (self._value_and_grad_logits(targets, y_pred) if self.from_logits
                 else self._value_and_grad(targets, y_pred))
        value, grad = _reduce(terms, y_pred.shape, sample_weight, self.name)
        return float(value), grad.astype(y_pred.dtype, copy=False)

    def value_and_grad_logits(self, y_true, logits, sample_weight=None):
        """Fused activation + loss on pre-activation ``logits`` (stable, exact).

        Returns the batch-mean loss of ``activation(logits)`` and its gradient with
        respect to ``logits`` (same shape and float dtype); ``sample_weight`` as in
        :meth:`value_and_grad`.
        """
        if not self.supports_logits:
            raise TypeError(message(f"{self.name}.value_and_grad_logits",
                                    "a cross-entropy loss", f"{self.name}",
                                    "Call value_and_grad(y_true, y_pred) instead."))
        logits = _float_array(logits, f"{self.name} logits")
        targets = self.check_targets(y_true, logits.shape)
        value, grad = _reduce(self._value_and_grad_logits(targets, logits), logits.shape, sample_weight,
                              self.name)
        return float(value), grad.astype(logits.dtype, copy=False)

    def fuses_with(self, activation):
        """True when the model may replace ``activation`` + this loss by the fused path."""
        return (self.supports_logits and not self.from_logits
                and activation == self.logits_activation)

    def check_targets(self, y_true, y_pred_shape):
        """Validate ``y_true`` against the prediction shape; return it in canonical form.

        Parameters
        ----------
        y_true : array_like
        y_pred_shape : tuple of int
            Shape of the model's output for the same samples, ``(N, ..., C)``.

        Returns
        -------
        ndarray
            Float targets shaped like the predictions, or (sparse loss) integer
            class indices of shape ``y_pred_shape[:-1]``.

        Raises
        ------
        TypeError
            Non-numeric targets.
        ValueError
            Wrong sample count, wrong width, NaN, labels out of range, ...
        """
        y_pred_shape = tuple(int(d) for d in y_pred_shape)
        where = f"Loss '{self.name}'"
        y = np.asarray(y_true)
        if y.dtype.kind not in "biuf":
            raise TypeError(message(where, "numeric targets", describe(y),
                                    "Pass labels as a NumPy array of numbers."))
        if len(y_pred_shape) < self._min_pred_ndim:
            raise ValueError(message(where, f"predictions with at least {self._min_pred_ndim} "
                                     "dimensions (N, ..., C)", f"shape {y_pred_shape}"))
        if y.ndim == 0 or y.shape[0] != y_pred_shape[0]:
            got = "a scalar" if y.ndim == 0 else f"{y.shape[0]} targets (shape {y.shape})"
            raise ValueError(message(where, f"one target per prediction ({y_pred_shape[0]} "
                                     f"predictions of shape {y_pred_shape})", got,
                                     "x and y must have the same number of samples."))
        if y.dtype.kind == "f" and not np.isfinite(y).all():
            raise ValueError(message(where, "finite targets", "NaN or infinity in y_true",
                                     "Clean the labels before training."))
        return self._targets(y, y_pred_shape, where)

    def get_config(self):
        """JSON-able description; :func:`get` accepts it back."""
        return {"class_name": type(self).__name__, "name": self.name,
                "from_logits": self.from_logits}

    def __repr__(self):
        return f"{type(self).__name__}(from_logits={self.from_logits})"

    # -- to implement ---------------------------------------------------------
    _min_pred_ndim = 1

    def _targets(self, y, y_pred_shape, where):
        raise NotImplementedError

    def _value_and_grad(self, targets, y_pred):
        raise NotImplementedError

    def _value_and_grad_logits(self, targets, logits):
        raise NotImplementedError


def _same_shape_targets(y, y_pred_shape, where):
    """Targets shaped like the predictions; ``(N,)`` is accepted for ``(N, 1)`` outputs."""
    if y.shape == y_pred_shape:
        return y
    if y.shape == y_pred_shape[:-1] and y_pred_shape[-1] == 1:
        return y.reshape(y_pred_shape)
    raise ValueError(message(where, f"targets of shape {y_pred_shape} (like the model's "
                             "output)", f"shape {y.shape}",
                             "Reshape y to match the last layer's output."))


# ---------------------------------------------------------------------------
# Cross-entropies
# ---------------------------------------------------------------------------

class _Crossentropy(Loss):
    """A cross-entropy: works on probabilities or (fused) logits, and may smooth its targets.

    ``label_smoothing = s`` replaces the targets ``y`` by ``y (1 - s) + s / K``, with ``K`` the number of
    classes (2 for the binary loss, so ``y (1 - s) + s / 2``): Keras's definition (Szegedy et al. 2016). The
    value and the gradient are those of the cross-entropy against the smoothed targets.
    """

    supports_logits = True
    _classes = None             # K for the smoothing; None: the predictions' last axis

    def __init__(self, from_logits=False, label_smoothing=0.0):
        super().__init__(from_logits)
        self.label_smoothing = check_real(label_smoothing, "label_smoothing",
                                          f"{type(self).__name__}(label_smoothing=...)", low=0, high=1,
                                          fix="0 keeps the targets; 0.1 is a common choice.")

    def _smooth(self, targets, like):
        """Float targets of ``like``'s dtype, smoothed towards the uniform distribution over the classes."""
        targets = targets.astype(like.dtype, copy=False)
        if not self.label_smoothing:
            return targets
        classes = self._classes or like.shape[-1]
        return targets * (1.0 - self.label_smoothing) + self.label_smoothing / classes

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}

    def __repr__(self):
        return (f"{type(self).__name__}(from_logits={self.from_logits}, "
                f"label_smoothing={self.label_smoothing})")


def _categorical_from_probabilities(onehot, y_pred):
    """Keras 2.x categorical cross-entropy on probabilities, with its exact gradient.

    q = p / sum_c p_c;  q~ = clip(q, eps, 1 - eps);  L = -sum_c y_c log q~_c.
    With g_c = dL/dq_c = -y_c / q~_c where q was not clipped (0 elsewhere), the
    normalization's Jacobian dq_c/dp_j = (delta_cj - q_c) / S gives
    dL/dp_j = (g_j - sum_c g_c q_c) / S.
    """
    total = y_pred.sum(axis=-1, keepdims=True)
    q = y_pred / total
    clipped = np.clip(q, EPSILON, 1.0 - EPSILON)
    per_row = -(onehot * np.log(clipped)).sum(axis=-1)
    inside = (q >= EPSILON) & (q <= 1.0 - EPSILON)
    g = np.where(inside, -onehot / clipped, 0.0)
    return per_row, (g - (g * q).sum(axis=-1, keepdims=True)) / total


def _categorical_from_logits(onehot, logits):
    """Softmax + categorical cross-entropy on logits.

    L = -sum_c y_c log softmax(z)_c;  dL/dz = softmax(z) * sum_c y_c - y
    (= softmax(z) - y for labels that sum to one).
    """
    log_probs = log_softmax(logits)      # max-shifted log-sum-exp: finite for any logits
    probs = np.exp(log_probs)
    per_row = -(onehot * log_probs).sum(axis=-1)
    return per_row, probs * onehot.sum(axis=-1, keepdims=True) - onehot


class CategoricalCrossentropy(_Crossentropy):
    """Cross-entropy between one-hot (or soft) targets and class probabilities.

    Targets have the predictions' shape ``(N, ..., C)``. Pairs with a softmax output.
    ``label_smoothing`` as Keras's (see :class:`_Crossentropy`).
    """

    name = "categorical_crossentropy"
    logits_activation = "softmax"
    _min_pred_ndim = 2

    def _targets(self, y, y_pred_shape, where):
        classes = y_pred_shape[-1]
        if y.shape == y_pred_shape:
            return y
        if classes > 1 and y.shape in (y_pred_shape[:-1], y_pred_shape[:-1] + (1,)):
            raise ValueError(message(
                where, f"one-hot targets of shape {y_pred_shape}",
                f"class indices of shape {y.shape}",
                f"Use loss='sparse_categorical_crossentropy', or one-hot encode with "
                f"gn.utils.to_categorical(y, {classes})."))
        if y.shape[:-1] == y_pred_shape[:-1]:
            raise ValueError(message(
                where, f"targets {classes} wide (one column per class the model outputs)",
                f"targets {y.shape[-1]} wide (shape {y.shape})",
                "Make the last Dense layer's units equal the number of classes."))
        raise ValueError(message(where, f"targets of shape {y_pred_shape}",
                                 f"shape {y.shape}"))

    def _value_and_grad(self, targets, y_pred):
        return _categorical_from_probabilities(self._smooth(targets, y_pred), y_pred)

    def _value_and_grad_logits(self, targets, logits):
        return _categorical_from_logits(self._smooth(targets, logits), logits)


class SparseCategoricalCrossentropy(_Crossentropy):
    """Cross-entropy with integer class labels: shape ``(N,)`` or ``(N, 1)``.

    Same value and gradient as :class:`CategoricalCrossentropy` on the one-hot
    encoding of the labels. Pairs with a softmax output. ``label_smoothing`` smooths that
    encoding as :class:`CategoricalCrossentropy` does (Keras 3's sparse loss has no such argument;
    PyTorch's ``CrossEntropyLoss(label_smoothing=...)`` on class indices is the same loss).
    """

    name = "sparse_categorical_crossentropy"
    logits_activation = "softmax"
    _min_pred_ndim = 2

    def _targets(self, y, y_pred_shape, where):
        classes = y_pred_shape[-1]
        if y.shape == y_pred_shape[:-1] + (1,) and classes != 1:
            y = y.reshape(y_pred_shape[:-1])
        if y.shape != y_pred_shape[:-1]:
            fix = ("These look one-hot: use loss='categorical_crossentropy' or pass "
                   "y.argmax(-1)." if y.shape == y_pred_shape else None)
            raise ValueError(message(where, f"integer class labels of shape "
                                     f"{y_pred_shape[:-1]} or {y_pred_shape[:-1] + (1,)}",
                                     f"shape {y.shape}", fix))
        if y.dtype.kind == "f":
            if y.size and not (y == np.round(y)).all():
                raise ValueError(message(where, "integer class labels",
                                         "non-integer values such as "
                                         f"{y[y != np.round(y)].flat[0]!r}",
                                         "Sparse labels are class indices 0..C-1."))
        if y.size and (y.min() < 0 or y.max() >= classes):
            raise ValueError(message(where, f"labels in [0, {classes - 1}] for {classes} "
                                     "classes", f"labels from {y.min()} to {y.max()}",
                                     "Check the number of units of the last layer."))
        return y.astype(np.intp, copy=False)

    @staticmethod
    def _onehot(labels, like):
        onehot = np.zeros(like.shape, dtype=like.dtype)
        np.put_along_axis(onehot, labels[..., None], 1.0, axis=-1)
        return onehot

    def _value_and_grad(self, targets, y_pred):
        return _categorical_from_probabilities(self._smooth(self._onehot(targets, y_pred), y_pred), y_pred)

    def _value_and_grad_logits(self, targets, logits):
        return _categorical_from_logits(self._smooth(self._onehot(targets, logits), logits), logits)


class BinaryCrossentropy(_Crossentropy):
    """Element-wise binary cross-entropy, averaged over the last axis then the batch.

    Targets in [0, 1], shaped like the predictions (``(N,)`` accepted for ``(N, 1)``).
    Pairs with a sigmoid output. ``label_smoothing = s`` uses ``y (1 - s) + s / 2``, as Keras.
    """

    name = "binary_crossentropy"
    _classes = 2
    logits_activation = "sigmoid"

    def _targets(self, y, y_pred_shape, where):
        y = _same_shape_targets(y, y_pred_shape, where)
        if y.size and (y.min() < 0 or y.max() > 1):
            raise ValueError(message(where, "targets in [0, 1]",
                                     f"values from {y.min()} to {y.max()}",
                                     "Binary labels are 0/1 (or probabilities)."))
        return y

    def _value_and_grad(self, targets, y_pred):
        """Keras 2.x: p~ = clip(p, eps, 1-eps); L = -y log p~ - (1-y) log(1-p~).

        dL/dp = (p~ - y) / (p~ (1 - p~)) where p was not clipped, 0 elsewhere.
        """
        y = self._smooth(targets, y_pred)
        clipped = np.clip(y_pred, EPSILON, 1.0 - EPSILON)
        elementwise = -(y * np.log(clipped) + (1.0 - y) * np.log1p(-clipped))
        inside = (y_pred >= EPSILON) & (y_pred <= 1.0 - EPSILON)
        return elementwise, np.where(inside, (clipped - y) / (clipped * (1.0 - clipped)), 0.0)

    def _value_and_grad_logits(self, targets, logits):
        """Sigmoid + binary cross-entropy: L = max(z, 0) - z y + log(1 + e^-|z|).

        dL/dz = sigmoid(z) - y.
        """
        y = self._smooth(targets, logits)
        elementwise = np.maximum(logits, 0) - logits * y + np.log1p(np.exp(-np.abs(logits)))
        return elementwise, sigmoid(logits) - y


# ---------------------------------------------------------------------------
# Regression
# ---------------------------------------------------------------------------

class MeanSquaredError(Loss):
    """Mean of ``(y_pred - y_true)**2`` over the last axis, then over the batch.

    dL/dp = 2 (p - y) / (number of elements).
    """

    name = "mean_squared_error"

    def _targets(self, y, y_pred_shape, where):
        return _same_shape_targets(y, y_pred_shape, where)

    def _value_and_grad(self, targets, y_pred):
        diff = y_pred - targets.astype(y_pred.dtype, copy=False)
        return np.square(diff), 2.0 * diff


# ---------------------------------------------------------------------------
# Look-up
# ---------------------------------------------------------------------------

_CLASSES = (CategoricalCrossentropy, SparseCategoricalCrossentropy,
            BinaryCrossentropy, MeanSquaredError)

#: Accepted names (case-insensitive) -> loss class.
ALIASES = {
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
    "mean_squared_error": MeanSquaredError,
    "mse": MeanSquaredError,
}
ALIASES.update({cls.__name__.lower(): cls for cls in _CLASSES})


def canonical_name(identifier):
    """Canonical Keras name of a loss given as a name or instance, or None if unknown."""
    if isinstance(identifier, Loss):
        return identifier.name
    if isinstance(identifier, str):
        cls = ALIASES.get(identifier.lower())
        return cls.name if cls is not None else None
    return None


def get(identifier):
    """Return a :class:`Loss` for a name, a config dict or an instance.

    Parameters
    ----------
    identifier : str, dict or Loss
        ``"categorical_crossentropy"``, ``"sparse_categorical_crossentropy"``,
        ``"binary_crossentropy"``, ``"mse"`` / ``"mean_squared_error"`` (or the
        class names, any case), a dict from :meth:`Loss.get_config`, or a Loss.

    Raises
    ------
    ValueError
        Unknown name.
    TypeError
        Anything else (plain functions have no gradient: subclass Loss instead).
    """
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, dict):
        return from_config(identifier)
    valid = ", ".join(repr(name) for name in ALIASES if name == name.lower() and "_" in name
                      or name == "mse")
    if isinstance(identifier, str):
        cls = ALIASES.get(identifier.lower())
        if cls is None:
            raise ValueError(message("losses.get", f"one of {valid}", repr(identifier),
                                     "Check the spelling of the loss name."))
        return cls()
    raise TypeError(message("losses.get", f"a loss name ({valid}) or a glassnet Loss",
                            describe(identifier),
                            "For a custom loss subclass glassnet.losses.Loss and implement "
                            "its value and gradient."))


def from_config(config):
    """Rebuild a loss from :meth:`Loss.get_config`'s dict."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(message("losses.from_config", "a dict with a 'class_name' key",
                                 describe(config)))
    cls = ALIASES.get(str(config["class_name"]).lower())
    if cls is None:
        raise ValueError(message("losses.from_config", "a known loss class",
                                 repr(config["class_name"])))
    kwargs = {"from_logits": bool(config.get("from_logits", False))}
    smoothing = config.get("label_smoothing", 0.0)
    if issubclass(cls, _Crossentropy):
        kwargs["label_smoothing"] = smoothing
    elif smoothing:
        raise ValueError(message("losses.from_config", "label_smoothing only for a cross-entropy",
                                 f"label_smoothing={smoothing!r} for {config['class_name']}"))
    return cls(**kwargs)
