"""Where the batches of ``fit`` / ``evaluate`` come from: arrays in memory, or a generator, an iterator or
a Keras-style Sequence of batches.

A batch is three lists, each in the model's order: the input arrays (one per ``gn.Input``), the target
arrays (one per output) and the sample weights (one per output, None when unweighted). A model with one
input and one output has lists of one, so one code path serves every model.
"""
import itertools
import warnings

import numpy as np

from glassnet.errors import describe, message
from glassnet.trainers.compile_utils import per_output
from glassnet.trainers.weighting import weights_for_batch
from glassnet.validation import check_int


def is_batch_stream(x):
    """True for generators, iterators and Keras-style Sequences of (x, y) batches (not arrays)."""
    if x is None or isinstance(x, (np.ndarray, list, tuple, str, bytes, dict)) or hasattr(x, "__array__"):
        return False
    return hasattr(x, "__next__") or hasattr(x, "__iter__") or (hasattr(x, "__getitem__") and hasattr(x, "__len__"))


def _join(parts):
    """Batches of inputs joined along the samples: arrays, or lists / dicts of arrays (several inputs)."""
    first = parts[0]
    if isinstance(first, dict):
        return {key: np.concatenate([np.asarray(part[key]) for part in parts]) for key in first}
    if isinstance(first, (list, tuple)):
        return [np.concatenate([np.asarray(part[i]) for part in parts]) for i in range(len(first))]
    return np.concatenate([np.asarray(part) for part in parts])


def stream_inputs(data, steps, where):
    """The inputs of the batches of a generator or Keras-style Sequence, joined (targets are ignored).

    A batch is ``x`` alone or a tuple ``(x, y)`` / ``(x, y, w)`` whose ``x`` may itself be a list, tuple or
    dict of arrays (a model with several inputs)."""
    if steps is None and not hasattr(data, "__len__"):
        raise ValueError(message(where, "steps=... for a generator without len()", "steps=None"))
    count = len(data) if steps is None else check_int(steps, "steps", where, minimum=1)
    inputs = [item[0] if isinstance(item, (tuple, list)) else item for item in itertools.islice(iter(data), count)]
    if not inputs:
        raise ValueError(message(where, "a generator with at least one batch", "none"))
    for batch in inputs:
        if not isinstance(batch, (dict, list, tuple)) and np.ndim(batch) == 0:
            raise TypeError(message(where, "a generator of numeric input batches (N, ...)", describe(batch)))
    return _join(inputs)


def check_targets(model, y, n, where):
    """Targets as a list of validated arrays, one per output: ``y`` an array for one output; a list (in
    ``model.output_names`` order) or a dict by output name for several (see :meth:`Model.check_y`)."""
    names = model.output_names
    if len(names) == 1:
        return [model.check_y(y, n, where)]
    if y is None:
        raise ValueError(message(where, f"targets y for the outputs {names}", "None",
                                 "Pass y=[y_1, y_2, ...] or y={name: array}, or a generator of (x, y) batches."))
    return [model.check_y(target, n, f"{where} (output '{name}')", output=k)
            for k, (name, target) in enumerate(zip(names, per_output(y, names, "y", where, broadcast=False)))]


def sample_weights(model, targets, sample_weight, where, class_weights=None):
    """One weight array (or None) per output: ``sample_weight`` an array for one output (or for all of
    them, as Keras 3 broadcasts it), a list or a dict by output name; ``class_weights`` (a table by class)
    weighs the samples of a single-output model."""
    names = model.output_names
    if len(names) == 1 or sample_weight is None or not isinstance(sample_weight, (list, tuple, dict)):
        given = [sample_weight] * len(names)
    else:
        given = per_output(sample_weight, names, "sample_weight", where, broadcast=False)
    return [weights_for_batch(target, weight, class_weights, where) for target, weight in zip(targets, given)]


def batch_source(model, x, y, batch_size, shuffle, steps, where, sample_weight=None):
    """An :class:`ArraySource` for arrays, a :class:`StreamSource` for a generator of batches."""
    if is_batch_stream(x):
        for name, value in (("y", y), ("sample_weight", sample_weight)):
            if value is not None:
                raise ValueError(message(where, f"{name}=None when x is a generator of (x, y) batches",
                                         describe(value), "The generator yields the targets (and weights) itself."))
        return StreamSource(model, x, steps, where)
    if x is None:
        raise ValueError(message(where, "inputs x (an array (N, ...) or a generator of batches)", "None"))
    inputs = model.check_inputs(x, where)
    targets = check_targets(model, y, len(inputs[0]), where)
    return ArraySource(inputs, targets, sample_weights(model, targets, sample_weight, where), batch_size, shuffle,
                       steps)


def validation_arrays(model, validation_data, steps=None):
    """``(inputs, targets, weights)`` lists from a pair, a triple or a generator of batches, checked."""
    where = f"{type(model).__name__}.fit(validation_data=...)"
    if is_batch_stream(validation_data):
        return StreamSource(model, validation_data, steps, where).arrays()
    expected = "a pair (x_val, y_val) or a triple (x_val, y_val, val_sample_weight)"
    if not isinstance(validation_data, (tuple, list)):
        raise TypeError(message(where, expected, describe(validation_data)))
    if len(validation_data) not in (2, 3):
        raise ValueError(message(where, expected, f"a sequence of {len(validation_data)} items"))
    inputs = model.check_inputs(validation_data[0], where)
    targets = check_targets(model, validation_data[1], len(inputs[0]), where)
    weights = validation_data[2] if len(validation_data) == 3 else None
    return inputs, targets, sample_weights(model, targets, weights, where)


def _take(arrays, index):
    return [None if a is None else a[index] for a in arrays]


class ArraySource:
    """Batches ``(inputs, targets, weights)`` of in-memory arrays: one permutation per epoch, gathered
    into reused buffers. ``class_weights`` (a table by class, set by ``fit``) weighs the samples."""

    exhausted = False

    def __init__(self, inputs, targets, weights, batch_size, shuffle, steps):
        self.inputs, self.targets, self.weights = list(inputs), list(targets), list(weights)
        self.batch_size, self.shuffle, self.max_steps = batch_size, shuffle, steps
        self.class_weights = None

    @property
    def samples(self):
        return len(self.inputs[0])

    @property
    def steps(self):
        full = -(-self.samples // self.batch_size)
        return full if self.max_steps is None else min(full, self.max_steps)

    def arrays(self):
        return self.inputs, self.targets, self.weights

    def split(self, fraction, where):
        """Keras's validation_split: hold out the last ``fraction`` of the samples (before shuffling);
        returns ``(inputs, targets, weights)`` of the held-out part."""
        n = self.samples
        at = int(n * (1.0 - fraction))
        if at == 0 or at == n:
            raise ValueError(message(where, f"validation_split={fraction} to leave samples on both sides",
                                     f"{n} samples -> {at} for training and {n - at} for validation",
                                     "Use more data or another fraction."))
        held = tuple(_take(part, slice(at, None)) for part in (self.inputs, self.targets, self.weights))
        self.inputs, self.targets, self.weights = (_take(part, slice(None, at))
                                                   for part in (self.inputs, self.targets, self.weights))
        return held

    def _training_weights(self, where):
        if self.class_weights is None:
            return self.weights
        return [weights_for_batch(target, weight, self.class_weights, where)
                for target, weight in zip(self.targets, self.weights)]

    def batches(self, rng, where="fit"):
        n, size = self.samples, self.batch_size
        weights = self._training_weights(where)
        starts = range(0, n, size)[:self.steps]
        if not self.shuffle:
            for start in starts:
                part = slice(start, start + size)
                yield _take(self.inputs, part), _take(self.targets, part), _take(weights, part)
            return
        order = rng.permutation(n)
        buffers = [np.empty((min(size, n),) + a.shape[1:], dtype=a.dtype) for a in self.inputs + self.targets]
        arrays = self.inputs + self.targets
        for start in starts:
            index = order[start:start + size]
            m = len(index)
            gathered = [np.take(a, index, axis=0, out=b[:m]) for a, b in zip(arrays, buffers)]
            yield gathered[:len(self.inputs)], gathered[len(self.inputs):], _take(weights, index)


class StreamSource:
    """Batches from a generator, an iterator or a Keras-style Sequence (``seq[i]``, ``len(seq)``)
    yielding ``(x, y)`` or ``(x, y, sample_weight)``; for several inputs ``x`` is a list, tuple or dict of
    arrays, for several outputs ``y`` (and ``sample_weight``) a list or dict.

    Each batch is validated (augmentation already costs far more than the checks).
    """

    def __init__(self, model, data, steps, where):
        self.model, self.data, self.where = model, data, where
        self.exhausted = False
        self.class_weights = None
        self._index = hasattr(data, "__getitem__") and hasattr(data, "__len__") and not hasattr(data, "__next__")
        if steps is None:
            if not hasattr(data, "__len__"):
                raise ValueError(message(where, "steps_per_epoch for a generator without len()", "None",
                                         "Pass steps_per_epoch = ceil(samples / batch_size)."))
            steps = len(data)
            if steps < 1:
                raise ValueError(message(where, "a generator with at least one batch", f"len() == {steps}"))
        self.steps = steps
        self.samples = None
        self._iterator = None if self._index else (data if hasattr(data, "__next__") else iter(data))
        self._pending = self._next(0)          # builds the model from the first batch

    def split(self, fraction, where):
        raise ValueError(message(where, "validation_data=(x_val, y_val) with a generator",
                                 f"validation_split={fraction}", "A generator cannot be split: pass validation_data."))

    def _next(self, step):
        try:
            item = self.data[step % len(self.data)] if self._index else next(self._iterator)
        except StopIteration:
            self.exhausted = True
            warnings.warn(f"{self.where}: the generator ran out of batches (after {step} in this epoch); training "
                          "stops here. Pass an endless generator, or steps_per_epoch no larger than its length.",
                          RuntimeWarning, stacklevel=4)
            return None
        expected = "a generator yielding (x_batch, y_batch) pairs or (x_batch, y_batch, sample_weight_batch) triples"
        if not isinstance(item, (tuple, list)):
            raise TypeError(message(self.where, expected, describe(item)))
        if len(item) not in (2, 3):
            raise ValueError(message(self.where, expected, f"{len(item)} items per batch"))
        inputs = self.model.check_inputs(item[0], self.where)
        targets = check_targets(self.model, item[1], len(inputs[0]), self.where)
        return inputs, targets, sample_weights(self.model, targets, item[2] if len(item) == 3 else None, self.where)

    def batches(self, rng, where=None):
        for step in range(self.steps):
            batch, self._pending = (self._pending, None) if self._pending is not None else (self._next(step), None)
            if batch is None:
                return
            inputs, targets, weights = batch
            if self.class_weights is not None:
                weights = [weights_for_batch(t, w, self.class_weights, self.where) for t, w in zip(targets, weights)]
            yield inputs, targets, weights
        if self._index and hasattr(self.data, "on_epoch_end"):
            self.data.on_epoch_end()

    def arrays(self):
        """All batches of one pass joined: ``(inputs, targets, weights)`` lists (for ``evaluate``)."""
        batches = list(self.batches(None))
        if not batches:
            raise ValueError(message(self.where, "a generator with at least one batch", "none"))
        joined = []
        for column in zip(*batches):                 # inputs, then targets, then weights
            parts = []
            for entries in zip(*column):             # one array (or None) per batch for one input / output
                weighted = [entry is not None for entry in entries]
                if any(weighted) and not all(weighted):
                    raise ValueError(message(self.where, "every batch with sample weights, or none", "a mix"))
                parts.append(None if entries[0] is None else np.concatenate(entries))
            joined.append(parts)
        return tuple(joined)
