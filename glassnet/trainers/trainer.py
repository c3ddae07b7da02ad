"""The training loop behind ``Model.fit`` / ``evaluate`` / ``train_on_batch`` / ``test_on_batch``.

- When an output's loss pairs with its final activation (softmax + (sparse) categorical cross-entropy,
  sigmoid + binary cross-entropy) the two are fused: the model runs to the logits and the loss
  differentiates log-softmax / log-sigmoid directly, which is exact and finite for any finite logits.
- ``fit(seed=s)`` makes the run reproducible: epoch ``e`` shuffles with, and every layer's ``rng``
  (Dropout) draws from, streams derived from ``SeedSequence([s, e])``. A run therefore resumes bit for
  bit from a checkpoint: ``load_model(path).fit(..., initial_epoch=k)`` (with ``seed=None`` the seed
  stored in the checkpoint is reused).
- A non-finite loss or gradient stops ``fit`` with a ``RuntimeError`` naming the epoch, the batch and the
  first layer where the non-finite value appeared (:mod:`glassnet.trainers.numerics`).
"""
import contextlib
import dataclasses
import functools
import math
import threading
from typing import NamedTuple

import numpy as np

from glassnet import activations
from glassnet.engine import backprop, run
from glassnet.engine.plan import head_kind
from glassnet.errors import describe, message
from glassnet.ops.parallel import held_blas
from glassnet.trainers import data, numerics
from glassnet.trainers.weighting import EpochTotals, class_weight_table
from glassnet.validation import (check_flag, check_fraction, check_int, check_optional_steps, check_seed,
                                 check_validation_freq, check_verbose)

#: {id(model): (thread ident, depth)} of the models being trained now (see :func:`training_slot`)
_TRAINING = {}
_TRAINING_LOCK = threading.Lock()


@contextlib.contextmanager
def training_slot(model, where):
    """Hold ``model`` for training by the calling thread; a second thread gets a clear error.

    Training writes into the model (weights, optimizer slots, moving statistics, Dropout's ``rng``),
    so two threads training one model at once would silently corrupt it. The same thread may nest
    (a callback calling ``train_on_batch`` inside ``fit``).
    """
    me = threading.get_ident()
    with _TRAINING_LOCK:
        owner, depth = _TRAINING.get(id(model), (me, 0))
        if owner != me:
            raise RuntimeError(message(where, "one thread at a time training this model",
                                       f"a call from thread {me} while thread {owner} is training it",
                                       "Train a model from one thread (predict and explain are safe from any "
                                       "number); for parallel training give each thread its own model."))
        _TRAINING[id(model)] = (me, depth + 1)
    try:
        yield
    finally:
        with _TRAINING_LOCK:
            if depth:
                _TRAINING[id(model)] = (me, depth)
            else:
                del _TRAINING[id(model)]


def trains_alone(method):
    """Decorator: the model method runs holding :func:`training_slot`."""
    @functools.wraps(method)
    def guarded(self, *args, **kwargs):
        with training_slot(self, f"{type(self).__name__}.{method.__name__}"):
            return method(self, *args, **kwargs)
    return guarded


# -- compiled state -------------------------------------------------------------------------------
def require_compiled(model, where):
    if not model.compiled:
        raise RuntimeError(message(where, "a compiled model", "an uncompiled one",
                                   "Call model.compile(optimizer='adam', loss='sparse_categorical_crossentropy',"
                                   " metrics=['accuracy']) first."))


def resolve_metrics(model, where):
    """Turn the compiled metric specs into Metric objects for the built model (``model.metrics``)."""
    plain, weighted = model._compiled.resolve(model.output_shapes() if model.built else None, where)
    model._metric_pairs, model._weighted_pairs = plain, weighted
    model.metrics = [metric for _, metric in plain]
    model.weighted_metrics = [metric for _, metric in weighted]


def prepare_training(model, where):
    """Resolve metrics after the model is built; return the trainable weights."""
    resolve_metrics(model, where)
    params = model.trainable_weights()
    if not params:
        raise ValueError(message(where, "a model with trainable weights", "none",
                                 "Set trainable=True on some layer, or add a Dense/Conv2D layer."))
    return params


class Fusion(NamedTuple):
    """How a training step runs the outputs (see :func:`fusion`)."""
    logits: bool            # the plan stops at the logits
    fused: list             # per output: its loss runs on logits with the final activation fused in
    activations: list       # per output: that final activation (turns logits into predictions for metrics)


def fusion(model):
    """How the outputs run: whether training runs the plan that stops at the logits, and for each output
    whether its loss runs on logits with the final activation fused in.

    An output ends in logits when its final layer's softmax/sigmoid can be left out (a fused activation,
    or a separate softmax layer that the logits view drops). The logits plan is used when every such
    output's loss fuses with that activation; otherwise all outputs run to their activations.
    """
    graph = model._graph()
    logits_plan = model.plan(logits=True, fuse=False)
    layers = model.output_layers()
    activations = [model.activation_of(layer) for layer in layers]
    ends = []
    for k, (slot, layer) in enumerate(zip(graph.outputs, layers)):
        kind = head_kind(layer)
        reaches = kind == "logits" or (kind == "drop" and logits_plan.outputs[k] != slot)
        ends.append((reaches, model._compiled.losses[k].fuses_with(activations[k])))
    if all(fuses for reaches, fuses in ends if reaches) and any(reaches for reaches, _ in ends):
        return Fusion(True, [reaches for reaches, _ in ends], activations)
    return Fusion(False, [False] * len(ends), activations)


# -- one batch ------------------------------------------------------------------------------------
def step(model, inputs, targets, weights, fused, update):
    """One batch: ``(loss values, predictions)``, plus gradients in every layer's ``grads`` when ``update``.

    The loss values are the total, then (several outputs) one unweighted loss per output; the
    predictions one array per output (the fused activation applied when metrics read them).
    """
    logits, on_logits, final = fused
    compiled = model._compiled
    plan = model.plan(logits=logits, fuse=True)
    tape = run(plan, inputs, training=update, keep=update)
    outputs = [tape.values[slot] for slot in plan.outputs]
    total, values, grads = compiled.values_and_grads(outputs, targets, weights, on_logits, update)
    if update:
        model._store_grads(backprop(tape, numerics.seeds(plan, grads)).weights)
    if model.metrics or model.weighted_metrics:
        outputs = [activations.forward(final[k], z) if on_logits[k] else z for k, z in enumerate(outputs)]
    return [total] + (values if compiled.several else []), outputs


def train_step(model, inputs, targets, weights, params, fused, check_numerics, where):
    """One gradient step on a batch: (loss values, predictions) from before the update.

    BLAS stays at one thread for the whole step (:func:`glassnet.ops.parallel.held_blas`): the
    built-in layers' products all run on glassnet's worker threads, and its many parallel calls
    then skip lowering and restoring BLAS's limit each time. (A custom layer's products should
    go through :func:`glassnet.ops.matmul` too; ``@`` would run on one thread here.)
    """
    with held_blas():
        values, outputs = step(model, inputs, targets, weights, fused, update=True)
        grads = model.gradients()
        if check_numerics and not (math.isfinite(values[0]) and numerics.finite_grads(grads)):
            numerics.raise_non_finite(model, inputs, targets, fused, where)
        model.optimizer.apply(params, grads)
    return values, outputs


def _results(model, values, return_dict):
    if return_dict:
        return dict(zip(model.metrics_names, values))
    return values if len(values) > 1 else values[0]


def _batch_results(model, values, targets, outputs, weights, return_dict):
    totals = EpochTotals(model._metric_pairs, model._weighted_pairs)
    return _results(model, totals.add(values, targets, outputs, weights), return_dict)


def _class_weights(model, class_weight, where):
    """The class-weight table for a single-output model (Keras 3 refuses it for several outputs)."""
    if class_weight is None:
        return None
    if len(model.output_names) > 1:
        raise ValueError(message(where, "class_weight only for a model with one output", f"{len(model.output_names)}"
                                 " outputs", "Pass sample_weight={output name: weights} instead, as Keras 3 asks."))
    return class_weight_table(class_weight, model.output_shapes()[0][-1], where)


def train_on_batch(model, x, y, sample_weight=None, class_weight=None, return_dict=False):
    """See :meth:`glassnet.model.Model.train_on_batch`."""
    where = f"{type(model).__name__}.train_on_batch"
    require_compiled(model, where)
    return_dict = check_flag(return_dict, "return_dict", where)
    inputs = model.check_inputs(x, where)
    targets = data.check_targets(model, y, len(inputs[0]), where)
    params = prepare_training(model, where)
    weights = data.sample_weights(model, targets, sample_weight, where, _class_weights(model, class_weight, where))
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        values, outputs = train_step(model, inputs, targets, weights, params, fusion(model), True, where)
    return _batch_results(model, values, targets, outputs, weights, return_dict)


def test_on_batch(model, x, y, sample_weight=None, return_dict=False):
    """See :meth:`glassnet.model.Model.test_on_batch`."""
    where = f"{type(model).__name__}.test_on_batch"
    require_compiled(model, where)
    return_dict = check_flag(return_dict, "return_dict", where)
    inputs = model.check_inputs(x, where)
    targets = data.check_targets(model, y, len(inputs[0]), where)
    resolve_metrics(model, where)
    weights = data.sample_weights(model, targets, sample_weight, where)
    values, outputs = step(model, inputs, targets, weights, fusion(model), update=False)
    return _batch_results(model, values, targets, outputs, weights, return_dict)


# -- evaluate -------------------------------------------------------------------------------------
def _slice(arrays, start, stop):
    return [None if a is None else a[start:stop] for a in arrays]


def evaluate_arrays(model, arrays, batch_size, fused, on_batch=None):
    """Keras's means of the losses and metrics over ``arrays`` = (inputs, targets, weights) lists
    (inference mode; see :class:`EpochTotals`)."""
    inputs, targets, weights = arrays
    totals = EpochTotals(model._metric_pairs, model._weighted_pairs)
    for batch, start in enumerate(range(0, len(inputs[0]), batch_size)):
        stop = start + batch_size
        yb, wb = _slice(targets, start, stop), _slice(weights, start, stop)
        values, outputs = step(model, _slice(inputs, start, stop), yb, wb, fused, update=False)
        totals.add(values, yb, outputs, wb)
        if on_batch is not None:
            on_batch(batch, {"batch": batch, "size": len(outputs[0])})
    return totals.means()


def evaluate(model, x=None, y=None, batch_size=32, verbose=0, steps=None, sample_weight=None, return_dict=False):
    """See :meth:`glassnet.model.Model.evaluate`."""
    from glassnet.callbacks import CallbackList, ProgbarLogger
    where = f"{type(model).__name__}.evaluate"
    require_compiled(model, where)
    batch_size = check_int(batch_size, "batch_size", where, minimum=1)
    verbose = check_verbose(verbose, where)
    steps = check_optional_steps(steps, "steps", where)
    return_dict = check_flag(return_dict, "return_dict", where)
    source = data.batch_source(model, x, y, batch_size, False, steps, where, sample_weight)
    resolve_metrics(model, where)
    arrays = source.arrays()
    progress = CallbackList([ProgbarLogger(verbose)] if verbose else [], model=model,
                            params={"steps": -(-len(arrays[0][0]) // batch_size), "verbose": verbose})
    progress.on_test_begin()
    values = evaluate_arrays(model, arrays, batch_size, fusion(model), on_batch=progress.on_test_batch_end)
    progress.on_test_end(dict(zip(model.metrics_names, values)))
    return _results(model, values, return_dict)


# -- fit ------------------------------------------------------------------------------------------
@dataclasses.dataclass
class FitRun:
    """The settings of one ``fit`` call that its epoch loop reads."""
    source: object                 # data.ArraySource or data.StreamSource
    callbacks: object              # callbacks.CallbackList
    params: list                   # the trainable weights the optimizer updates
    fused: Fusion
    base_seed: int
    initial_epoch: int
    epochs: int
    batch_size: int
    validation: tuple = None       # (inputs, targets, weights) lists, or None
    validates: object = None       # epoch (0-based) -> whether to validate after it
    check_numerics: bool = True
    where: str = "fit"


def fit_base_seed(model, seed, initial_epoch, where):
    """The seed that all of this fit's random streams derive from (see ``Model.fit``)."""
    if seed is None:
        if initial_epoch > 0 and model.fit_seed is not None:
            return model.fit_seed
        return int(np.random.SeedSequence().entropy)
    return check_seed(seed, where)


def seed_epoch(model, base_seed, epoch):
    """Fresh streams for epoch ``epoch``: the shuffle generator (returned) and each layer's ``rng``."""
    layers = model.layers
    children = np.random.SeedSequence([base_seed, epoch]).spawn(len(layers) + 1)
    for layer, child in zip(layers, children[1:]):
        layer.rng = np.random.Generator(np.random.PCG64(child))
    return np.random.Generator(np.random.PCG64(children[0]))


def _validation(model, source, validation_data, validation_split, validation_steps, where):
    if validation_data is not None:
        return data.validation_arrays(model, validation_data, validation_steps)
    if validation_split > 0:
        return source.split(validation_split, where)
    return None


def fit(model, x=None, y=None, batch_size=32, epochs=1, verbose="auto", validation_split=0.0,
        validation_data=None, shuffle=True, callbacks=None, seed=None, initial_epoch=0, steps_per_epoch=None,
        check_numerics=True, class_weight=None, sample_weight=None, validation_freq=1, validation_steps=None):
    """See :meth:`glassnet.model.Model.fit`."""
    from glassnet.callbacks import CallbackList, History, ProgbarLogger
    where = f"{type(model).__name__}.fit"
    require_compiled(model, where)
    batch_size = check_int(batch_size, "batch_size", where, minimum=1)
    epochs = check_int(epochs, "epochs", where, minimum=0)
    initial_epoch = check_int(initial_epoch, "initial_epoch", where, minimum=0)
    steps_per_epoch = check_optional_steps(steps_per_epoch, "steps_per_epoch", where)
    validation_steps = check_optional_steps(validation_steps, "validation_steps", where)
    verbose = check_verbose(verbose, where)
    validation_split = check_fraction(validation_split, "validation_split", where,
                                      fix="E.g. validation_split=0.2 keeps the last 20% for validation.")
    shuffle = check_flag(shuffle, "shuffle", where)
    check_numerics = check_flag(check_numerics, "check_numerics", where)
    validates = check_validation_freq(validation_freq, where)
    if callbacks is not None and not isinstance(callbacks, (list, tuple)):
        raise TypeError(message(where, "callbacks as a list of Callback instances", describe(callbacks),
                                "E.g. callbacks=[gn.callbacks.EarlyStopping(patience=2)]."))

    source = data.batch_source(model, x, y, batch_size, shuffle, steps_per_epoch, where, sample_weight)
    validation = _validation(model, source, validation_data, validation_split, validation_steps, where)
    source.class_weights = _class_weights(model, class_weight, where)
    params = prepare_training(model, where)
    base_seed = fit_base_seed(model, seed, initial_epoch, where)
    model.fit_seed = base_seed

    history = History()
    names = model.metrics_names
    callback_list = CallbackList(list(callbacks or []) + [history] + ([ProgbarLogger(verbose)] if verbose else []),
                                 model=model, params={
        "epochs": epochs, "steps": source.steps, "samples": source.samples, "batch_size": batch_size,
        "verbose": verbose, "initial_epoch": initial_epoch,
        "metrics": names + (["val_" + k for k in names] if validation else [])})
    model.history = history
    model.stop_training = False
    state = FitRun(source, callback_list, params, fusion(model), base_seed, initial_epoch, epochs, batch_size,
                   validation, validates, check_numerics, where)
    callback_list.on_train_begin()
    # With the guard on, fit reports NaN/inf itself (naming the layer), so NumPy's warnings are noise.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore") if check_numerics else \
            contextlib.nullcontext():
        fit_loop(model, state)
    callback_list.on_train_end()
    return history


def _train_epoch(model, state, epoch, rng):
    """The batches of one epoch; returns their :class:`EpochTotals`."""
    names, per_batch = model.metrics_names, state.callbacks.wants_batches
    totals = EpochTotals(model._metric_pairs, model._weighted_pairs)
    for batch, (inputs, targets, weights) in enumerate(state.source.batches(rng, state.where)):
        size = len(inputs[0])
        if per_batch:
            state.callbacks.on_batch_begin(batch, {"batch": batch, "size": size})
        values, outputs = train_step(model, inputs, targets, weights, state.params, state.fused, state.check_numerics,
                                     f"{state.where} (epoch {epoch + 1}, batch {batch + 1})")
        values = totals.add(values, targets, outputs, weights)
        if per_batch:
            logs = dict(zip(names, values))
            logs.update(batch=batch, size=size)
            state.callbacks.on_batch_end(batch, logs)
        if model.stop_training:
            break
    return totals


def fit_loop(model, state):
    """Epochs ``state.initial_epoch`` to ``state.epochs - 1``: train, validate, call back."""
    names = model.metrics_names
    for epoch in range(state.initial_epoch, state.epochs):
        rng = seed_epoch(model, state.base_seed, epoch)
        state.callbacks.on_epoch_begin(epoch)
        totals = _train_epoch(model, state, epoch, rng)
        if totals.samples == 0:  # an exhausted generator
            break
        logs = dict(zip(names, totals.means()))
        if state.validation is not None and state.validates(epoch):
            logs.update(("val_" + k, v) for k, v in zip(names, evaluate_arrays(
                model, state.validation, state.batch_size, state.fused)))
        model.completed_epochs = epoch + 1
        state.callbacks.on_epoch_end(epoch, logs)
        if model.stop_training or state.source.exhausted:
            break
