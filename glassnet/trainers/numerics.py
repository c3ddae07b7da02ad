"""Numeric checks of a training step: a cheap finiteness test, and the replay that names the first layer
where a NaN or inf appeared (``fit(check_numerics=True)``, the default)."""
import math

import numpy as np

from glassnet.engine import backprop, run
from glassnet.errors import message


class _Found(Exception):
    """Raised inside the NaN replay to stop at the first non-finite value (its message says where)."""


def finite_grads(grads):
    """Cheap test: one sum per gradient; an exact check only when a sum is not finite."""
    total = 0.0
    for grad in grads:
        total += float(grad.sum())
    return math.isfinite(total) or all(np.isfinite(grad).all() for grad in grads)


def raise_non_finite(model, inputs, targets, fusion, where):
    """Find where a NaN/inf first appeared in this batch and raise a RuntimeError saying so.

    Replays the batch layer by layer (forward in order, then backward from the top), restoring every
    layer's random state and moving statistics afterwards, so nothing changes.

    Parameters
    ----------
    model : Model
    inputs, targets : list of ndarray
        The batch, one array per model input and per output.
    fusion : glassnet.trainers.trainer.Fusion
        Whether the plan stops at the logits, and which outputs' losses run on logits.
    where : str
    """
    found = locate_non_finite(model, inputs, targets, fusion)
    raise RuntimeError(message(
        where, "a finite loss and finite gradients", found,
        "The weights are left as they were before this batch. Lower the learning rate, scale the "
        "inputs (e.g. x / 255), or clip gradients (optimizer clipnorm=1.0); pass check_numerics=False "
        "to train on regardless (callbacks.TerminateOnNaN() then stops at the first NaN loss)."))


def locate_non_finite(model, inputs, targets, fusion):
    """Where the first non-finite value of the batch is, in words (the model is left as it was)."""
    if not all(np.isfinite(x).all() for x in inputs):
        return "NaN or inf in the input batch"
    layers = model.layers
    for layer in layers:
        for key, weight in list(layer.params.items()) + list(layer.non_trainable.items()):
            if not np.isfinite(weight).all():
                return f"non-finite weights '{key}' in layer '{layer.name}' ({type(layer).__name__})"
    saved = [(layer.rng.bit_generator.state, {k: v.copy() for k, v in layer.non_trainable.items()})
             for layer in layers]
    try:
        return _replay(model, inputs, targets, fusion)
    finally:
        for layer, (state, stats) in zip(layers, saved):
            layer.rng.bit_generator.state = state
            for key, value in stats.items():
                layer.non_trainable[key][...] = value


def _replay(model, inputs, targets, fusion):
    """Run the batch again step by step on the unfused plan, naming the first non-finite value."""
    logits, fused = fusion.logits, fusion.fused
    plan = model.plan(logits=logits, fuse=False)
    layers = model.layers

    def forward_check(step, outputs):
        if not all(np.isfinite(y).all() for y in outputs):
            raise _Found(f"a non-finite output (NaN or inf) first in layer '{step.layer.name}' "
                         f"({type(step.layer).__name__}, layer {layers.index(step.layer)} in forward order)")

    def backward_check(step, input_grads, weight_grads):
        finite = all(np.isfinite(g).all() for grads in weight_grads.values() for g in grads.values())
        if not finite or not all(dx is None or np.isfinite(dx).all() for dx in input_grads):
            raise _Found(f"a non-finite gradient (NaN or inf) first in layer '{step.layer.name}' "
                         f"({type(step.layer).__name__}, layer {layers.index(step.layer)}) during the "
                         "backward pass")

    with np.errstate(all="ignore"):
        try:
            tape = run(plan, inputs, training=True, observe=forward_check)
            outputs = [tape.values[slot] for slot in plan.outputs]
            loss, _, grads = model._compiled.values_and_grads(outputs, targets, [None] * len(outputs), fused, True)
            if not (math.isfinite(loss) and all(np.isfinite(g).all() for g in grads)):
                return f"a non-finite loss ({loss}) from finite model outputs: check the targets and the loss"
            backprop(tape, seeds(plan, grads), observe=backward_check)
        except _Found as found:
            return str(found)
    return "a non-finite loss or gradient that did not reappear when the batch was replayed"


def seeds(plan, grads):
    """The backward pass's seeds ``{output slot: gradient}`` (two outputs on one slot add up)."""
    found = {}
    for slot, grad in zip(plan.outputs, grads):
        found[slot] = found[slot] + grad if slot in found else grad
    return found
