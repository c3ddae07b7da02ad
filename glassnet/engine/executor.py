"""The executor: one forward loop (:func:`run`) and one backward loop (:func:`backprop`) over a plan.

All the state of a call lives in its :class:`Tape` (the tensors asked for, each step's cache), never
in the layers, so predict and explanations may run from many threads on one shared model. Layers
are written to only in training mode (moving statistics, Dropout's ``rng``), and a model trains
from one thread at a time.

Memory: the forward loop drops each tensor after its last reader (unless asked for), and the
backward loop drops each step's cache and output gradient once the step is done.
"""
from typing import NamedTuple

import numpy as np

from glassnet.ops.workspace import recycled_array


class Tape:
    """What one forward pass leaves for its backward pass.

    Attributes
    ----------
    plan : Plan
    training : bool
    values : dict
        {slot: array} for the slots the caller asked for (targets and captures).
    caches : list
        One entry per step: its cache, or None (not run, not kept, or already used by backprop).
    ran : list of bool
        Which steps ran.
    """

    __slots__ = ("plan", "training", "values", "caches", "ran")

    def __init__(self, plan, training):
        self.plan, self.training = plan, training
        self.values = {}
        self.caches = [None] * len(plan.steps)
        self.ran = [False] * len(plan.steps)


def run(plan, inputs, training=False, targets=None, capture=(), keep=True, observe=None):
    """Forward pass of ``plan`` on ``inputs`` (one array per input slot).

    Parameters
    ----------
    plan : Plan
    inputs : sequence of ndarray
    training : bool
        Training mode (Dropout masks, batch statistics, the convolutions keep their matrices).
    targets : sequence of int, optional
        Slots to compute (default the plan's outputs); only the steps they depend on run (``stop``).
    capture : sequence of int
        Further slots whose values the tape keeps (e.g. a layer's feature maps for Grad-CAM).
    keep : bool
        Keep each step's cache for :func:`backprop` (False: inference, nothing kept).
    observe : callable, optional
        ``observe(step, outputs)`` after each step (the NaN replay raises from it to stop).

    Returns
    -------
    Tape
        ``tape.values[slot]`` holds each target and captured slot.
    """
    targets = plan.outputs if targets is None else tuple(targets)
    wanted = set(targets) | set(capture)
    order = plan.needed(wanted)
    uses = {}
    for index in order:
        for slot in plan.steps[index].inputs:
            uses[slot] = uses.get(slot, 0) + 1
    tape = Tape(plan, training)
    values = dict(zip(plan.inputs, inputs))
    for index in order:
        step = plan.steps[index]
        outputs, cache = step.apply([values[slot] for slot in step.inputs], training)
        for slot in step.inputs:
            uses[slot] -= 1
            if not uses[slot] and slot not in wanted:
                del values[slot]                 # its last reader ran (caches keep what they need)
        values.update(zip(step.outputs, outputs))
        tape.ran[index] = True
        if keep:
            tape.caches[index] = cache
        if observe is not None:
            observe(step, outputs)
    tape.values = {slot: values[slot] for slot in wanted if slot in values}
    return tape


class Gradients(NamedTuple):
    """Result of :func:`backprop`: ``slots`` {slot: dL/d tensor} for the slots asked for, and
    ``weights`` {layer: {key: dL/d weight}} (summed over the calls of a shared layer)."""
    slots: dict
    weights: dict


def backprop(tape, seeds, rule="vanilla", wrt=(), stop=(), need_grads=True, observe=None, release=True):
    """Backward pass through the steps ``tape``'s forward pass ran.

    Parameters
    ----------
    tape : Tape
        From :func:`run` with ``keep=True``.
    seeds : dict
        {slot: dL/d tensor}, e.g. the loss gradient at the output slot.
    rule : {"vanilla", "guided", "rectified"}
        The ReLU backward rule, passed to every step (never written into layers).
    wrt : sequence of int
        Slots whose gradients to return (the input slot for an input gradient, a layer's output).
    stop : sequence of int
        Slots the pass does not go below (their producers are not run backward).
    need_grads : bool
        Compute the weight gradients of trainable layers (explanations pass False).
    observe : callable, optional
        ``observe(step, input_grads, weight_grads)`` after each step.
    release : bool
        Drop each step's cache once used, which bounds memory (the tape then serves one backprop).

    Returns
    -------
    Gradients
    """
    plan = tape.plan
    wrt, stop = set(wrt), set(stop)
    active = _active_steps(tape, wrt, stop, need_grads)
    wanted = set(wrt)
    for index in active:
        wanted.update(plan.steps[index].outputs)
    gated = set()
    grads = {}
    for slot, dy in seeds.items():
        _accumulate(grads, slot, dy)
    weights = {}
    for index in sorted(active, reverse=True):
        step = plan.steps[index]
        dys = [grads.get(slot) if slot in wrt else grads.pop(slot, None) for slot in step.outputs]
        if all(dy is None for dy in dys):
            continue
        need_dx = tuple(slot in wanted for slot in step.inputs)
        below = plan.gates_below.get(index)
        # the ReLU below, under the call's rule, applied by this step while its input gradient is in cache
        gate_input = rule if below in active and step.inputs[0] not in wrt else False
        if gate_input:
            gated.add(below)
        cache = tape.caches[index]
        if release:
            tape.caches[index] = None
        dxs, layer_grads = step.vjp(cache, dys, rule, need_dx, need_grads and step.trainable(), gate_input,
                                    index in gated)
        for slot, dx, needed in zip(step.inputs, dxs, need_dx):
            if needed and dx is not None:
                _accumulate(grads, slot, dx)
        for layer, found in layer_grads.items():
            total = weights.setdefault(layer, {})
            for key, value in found.items():
                total[key] = value if key not in total else total[key] + value
        if observe is not None:
            observe(step, dxs, layer_grads)
    return Gradients({slot: grads.get(slot) for slot in wrt}, weights)


def _accumulate(grads, slot, value):
    """Add a gradient for ``slot`` (a tensor read by several steps gets the sum; never in place, since
    a step may hand back an array it still refers to: into a recycled array instead, which nothing
    else refers to, so no fresh pages per call)."""
    if slot not in grads:
        grads[slot] = value
        return
    total = grads[slot]
    out = recycled_array("gradient_sum", np.broadcast_shapes(total.shape, value.shape), np.result_type(total, value))
    grads[slot] = np.add(total, value, out=out)


def _active_steps(tape, wrt, stop, need_grads):
    """Steps the backward pass runs: those that ran, whose outputs are not in ``stop``, and that lead
    to a slot in ``wrt`` or (with ``need_grads``) hold trainable weights."""
    plan = tape.plan
    useful = set()
    for index, step in enumerate(plan.steps):       # topological order: inputs' producers come first
        if not tape.ran[index] or any(slot in stop for slot in step.outputs):
            continue
        feeds = any(slot in wrt or plan.producer.get(slot) in useful for slot in step.inputs)
        if feeds or (need_grads and step.trainable()):
            useful.add(index)
    return useful
