"""Sample weights, class weights and the epoch means that ``fit`` and ``evaluate`` report, as in Keras 3.

- The loss of a batch is ``sum_i w_i loss_i / n`` (see :func:`glassnet.losses.check_sample_weight`);
  the epoch loss is the mean of the batch losses weighted by batch size.
- ``metrics=[...]`` are *not* weighted (Keras 3 passes no sample weight to them); their epoch value
  is the mean over all samples.
- ``weighted_metrics=[...]`` are: ``sum_i w_i m_i / sum_i w_i`` over the whole epoch.
- ``class_weight={class: weight}`` turns into one weight per sample, ``class_weight[label]`` (1 for
  classes it leaves out), the label being the integer target, the arg-max of a one-hot row, or
  the rounded value of a single binary output. Keras refuses it together with ``sample_weight``.
"""
import numbers

import numpy as np

from glassnet.errors import describe, message
from glassnet.losses import check_sample_weight
from glassnet.validation import check_real


def class_weight_table(class_weight, num_outputs, where):
    """``class_weight`` ({int class: weight}) as an array indexed by class.

    ``num_outputs`` is the model's last axis (1 for a single sigmoid unit: classes 0 and 1).
    Classes the dict leaves out weigh 1, as in Keras.
    """
    if not isinstance(class_weight, dict):
        raise TypeError(message(where, "class_weight as a dict {class index: weight}", describe(class_weight),
                                "E.g. class_weight={0: 1.0, 1: 5.0} to weigh class 1 five times."))
    classes = max(int(num_outputs), 2)
    table = np.ones(classes, dtype=np.float64)
    for key, weight in class_weight.items():
        if isinstance(key, bool) or not isinstance(key, numbers.Integral):
            raise TypeError(message(where, "class_weight keys as int class indices", describe(key)))
        if not 0 <= key < classes:
            raise ValueError(message(where, f"class_weight keys in [0, {classes - 1}] (the model's classes)",
                                     repr(key), "Check the class indices."))
        table[int(key)] = check_real(weight, f"class_weight[{key}]", where, low=0)
    return table


def _labels(y, table_size, where):
    """The integer class of every sample's target (see the module notes)."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        return y.argmax(axis=1)
    if y.ndim == 2:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(message(where, "one class per sample (targets (N,), (N, 1) or one-hot (N, C)) "
                                 "with class_weight", f"targets of shape {y.shape}",
                                 "Pass sample_weight=... instead."))
    labels = np.rint(y).astype(np.intp)
    return np.clip(labels, 0, table_size - 1)


def weights_for_batch(y, sample_weight, table, where):
    """The weights of one batch: its ``sample_weight``, or the class weights of its targets, or None."""
    if table is None:
        return None if sample_weight is None else check_sample_weight(sample_weight, len(y), where)
    if sample_weight is not None:
        raise ValueError(message(where, "class_weight or sample weights, not both", "both",
                                 "Multiply them into one sample_weight array, as Keras asks."))
    return table[_labels(y, len(table), where)]


class EpochTotals:
    """Running sums over the batches of an epoch (or an evaluation), giving Keras's reported values.

    Parameters
    ----------
    metrics : list of (int, glassnet.metrics.Metric)
        Unweighted, each with the index of the output it reads: each batch counts with its size.
    weighted_metrics : list of (int, glassnet.metrics.Metric)
        Each sample counts with its weight for that output (1 without weights).
    """

    def __init__(self, metrics, weighted_metrics=()):
        self.metrics, self.weighted_metrics = list(metrics), list(weighted_metrics)
        self.sums, self.counts = [], []
        self.samples = 0

    def add(self, losses, y_true, y_pred, weights):
        """Add one batch; return its own values ``[*losses, *metrics, *weighted_metrics]``.

        ``losses`` are the batch's loss values (the total, then one per output for several outputs);
        ``y_true``, ``y_pred`` and ``weights`` (arrays or None) are lists with one entry per output.
        """
        size = len(y_pred[0])
        values = list(losses) + [metric(y_true[k], y_pred[k]) for k, metric in self.metrics]
        counts = [float(size)] * len(values)
        totals = [value * size for value in values]
        for k, metric in self.weighted_metrics:
            per_sample = metric.per_sample(y_true[k], y_pred[k])
            if weights[k] is None:
                total, count = float(per_sample.sum(dtype=np.float64)), float(size)
            else:
                total, count = float(np.dot(per_sample, weights[k])), float(weights[k].sum())
            totals.append(total)
            counts.append(count)
            values.append(total / count if count else 0.0)
        if not self.sums:
            self.sums, self.counts = [0.0] * len(values), [0.0] * len(values)
        for i, (total, count) in enumerate(zip(totals, counts)):
            self.sums[i] += total
            self.counts[i] += count
        self.samples += size
        return values

    def means(self):
        """Epoch values in the order of :meth:`add`'s (0 for a metric whose weights were all 0)."""
        return [total / count if count else 0.0 for total, count in zip(self.sums, self.counts)]
