"""The machinery every gradient-based explanation shares.

One function, :func:`backprop`, does the work for input gradients, saliency, SmoothGrad,
integrated gradients and the Grad-CAM family: a forward pass to the class scores (logits, or
probabilities with ``score="probability"``), one-hot seeds on the chosen targets, and a backward
pass under a ReLU rule, returning the input gradients and, when asked, the activations and
gradients at one layer, all in one forward and one backward pass per chunk of the batch.

The model is borrowed, never changed: the passes run on :mod:`glassnet.engine`'s executor, whose
state lives in the call (a tape), with the ReLU rule passed as an argument and no weight gradients
computed, so any number of threads may explain (and predict with) one shared model at once.

Batches larger than what :data:`MEMORY_BUDGET` allows are split into chunks; the estimate counts
every layer's output, its gradient and one temporary of that size (see :func:`bytes_per_example`).
A method that needs only a reduction of a chunk's tensors (a Grad-CAM map, a saliency map) passes
``reduce`` to :func:`backprop`, so only the reductions outlive the chunk: memory stays within the
budget plus the input and output arrays for any number of images.
"""
from typing import NamedTuple

import numpy as np

from glassnet import engine
from glassnet.errors import describe, message
from glassnet.layers.base import Layer
from glassnet.ops.parallel import held_blas
from glassnet.validation import check_name_choice

#: Bytes of temporaries one chunk of an explanation may use (forward caches plus backward buffers).
MEMORY_BUDGET = 256 * 2 ** 20

SCORES = ("logits", "probability")
#: backprop modifiers and the ReLU rule each sets; "relu" is keras-vis's name for the deconvnet rule
#: (seed 000 draws ``[None, 'guided', 'relu']``)
_RULE_OF_MODIFIER = {None: "vanilla", "vanilla": "vanilla", "guided": "guided", "rectified": "rectified",
                     "relu": "rectified", "deconvnet": "rectified"}


# -- argument checks -------------------------------------------------------------------------
def check_images(model, images, where):
    """Validate ``images`` against ``model`` and return them as a float array (N, ...)."""
    if not hasattr(model, "check_x") or not hasattr(model, "layers"):
        raise TypeError(message(where, "a glassnet Sequential model as the first argument", describe(model)))
    return model.check_x(images, where)


def check_score(score, where):
    """``score``: "logits" (pre-softmax, the default) or "probability" (the softmax output)."""
    return check_name_choice(score, SCORES, "score", where, "Scores are pre-softmax logits by default; pass "
                             "score='probability' for the softmax output.")


def check_modifier(modifier, where):
    """Map a backprop ``modifier`` (None, "guided", "rectified"; "relu"/"deconvnet" alias the latter)
    to its ReLU rule."""
    if modifier is None:
        return _RULE_OF_MODIFIER[None]
    modifier = check_name_choice(modifier, [m for m in _RULE_OF_MODIFIER if m is not None],
                                 "modifier (None, 'guided' or 'rectified'; alias 'relu' or 'deconvnet')", where,
                                 "'guided' is guided backprop, 'rectified' the deconvnet rule.")
    return _RULE_OF_MODIFIER[modifier]


def num_classes(model, where):
    """Number of class scores K of a model whose output is (N, K)."""
    shape = model.output_shape
    if shape is None or len(shape) != 2:
        raise ValueError(message(where, "a model whose output is a vector of class scores (N, K)",
                                 f"output shape {shape}", "End the model with Flatten/GlobalAveragePooling2D "
                                 "and Dense(K)."))
    return int(shape[-1])


def check_target(model, target, n, where):
    """Validate ``target`` (None, an int, or one int per image) and return None or an int array (n,)."""
    if target is None:
        return None
    K = num_classes(model, where)
    if isinstance(target, (bool, np.bool_)):
        raise TypeError(message(where, "target as None, an int class index or one index per image",
                                describe(target)))
    array = np.asarray(target)
    if array.dtype == object or not (np.issubdtype(array.dtype, np.integer)
                                      or (np.issubdtype(array.dtype, np.floating)
                                          and np.all(np.mod(array, 1) == 0))):
        raise TypeError(message(where, "target as None, an int class index or one index per image",
                                describe(target), "For labels one-hot encoded use y.argmax(axis=1)."))
    if array.ndim == 0:
        array = np.full(n, int(array))
    elif array.shape != (n,):
        raise ValueError(message(where, f"one target per image, shape ({n},)", f"shape {array.shape}",
                                 "Pass an int to explain the same class in every image."))
    array = array.astype(np.int64)
    bad = (array < 0) | (array >= K)
    if bad.any():
        raise ValueError(message(where, f"target class indices in [0, {K - 1}]",
                                 f"{int(array[bad][0])}", f"The model has {K} outputs."))
    return array


def check_layer(model, layer, where, rank=None):
    """Index of ``layer`` (name, index or Layer); with ``rank``, require that output rank (batch included)."""
    expected = "layer as a name, an index or a Layer of this model"
    fix = f"The layers are {[l.name for l in model.layers]}."
    if isinstance(layer, (bool, np.bool_)) or not isinstance(layer, (str, int, np.integer, Layer)):
        raise TypeError(message(where, expected, describe(layer), fix))
    try:
        index = model.layer_index(layer)
    except (ValueError, TypeError) as error:
        raise ValueError(message(where, expected, repr(layer), fix)) from error
    if rank is not None:
        found = model.layers[index]
        if found.output_shape is None or len(found.output_shape) != rank:
            layout = "(N, H, W, C)" if rank == 4 else f"rank {rank}"
            raise ValueError(message(where, f"a layer with a {layout} output", f"layer {found.name!r} with "
                                     f"output shape {found.output_shape}", "Pick a convolution, pooling or "
                                     "activation layer before the Flatten/GlobalAveragePooling2D."))
    return index


def last_spatial_layer(model, where):
    """Index of the last layer with a 4-D (N, H, W, C) output: Grad-CAM's default layer."""
    for index in range(len(model.layers) - 1, -1, -1):
        shape = model.layers[index].output_shape
        if shape is not None and len(shape) == 4:
            return index
    raise ValueError(message(where, "a model with at least one layer with a (N, H, W, C) output",
                             "none", "Grad-CAM needs a convolutional feature map; pass layer=... if needed."))


def check_baseline(baseline, x, where):
    """A baseline broadcast to x's shape: None (zeros), a scalar, one image or one per image."""
    if baseline is None:
        return np.zeros_like(x)
    array = np.asarray(baseline)
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise TypeError(message(where, "baseline as None, a number or an image array", describe(baseline)))
    if array.ndim == 0 or array.shape == x.shape[1:] or array.shape == x.shape:
        array = np.broadcast_to(array.astype(x.dtype), x.shape)
        if not np.isfinite(array).all():
            raise ValueError(message(where, "a finite baseline", "NaN or inf entries"))
        return array
    raise ValueError(message(where, f"baseline as a number, one image of shape {x.shape[1:]} or one per "
                             f"image {x.shape}", f"shape {array.shape}"))


# -- memory ----------------------------------------------------------------------------------
def bytes_per_example(model):
    """Rough bytes one example needs for a forward pass with caches plus a backward pass.

    Each layer keeps its output and, backward, gets a gradient of the same size plus about one
    temporary of that size (a convolution's im2col buffers are bounded separately by
    ``glassnet.ops``, block by block).
    """
    floats = 2 * int(np.prod(model.input_shape[1:]))
    for layer in model.layers:
        floats += 3 * int(np.prod(layer.output_shape[1:]))
    return floats * model.dtype.itemsize


def chunk_size(model, budget=None):
    """How many examples fit in one chunk under ``budget`` bytes (default :data:`MEMORY_BUDGET`)."""
    budget = MEMORY_BUDGET if budget is None else budget
    return max(1, int(budget // max(bytes_per_example(model), 1)))


def chunks(n, size):
    """Slices covering range(n) in steps of ``size``."""
    return [slice(start, min(start + size, n)) for start in range(0, n, size)]


# -- forward / backward ----------------------------------------------------------------------
def _scores_plan(model, logits, exposed=None, rule="vanilla"):
    """The execution plan whose output is the class scores (logits or probabilities), with the fused
    steps ``predict`` runs (an inference plan: BatchNormalization folded into the Conv2D before it). ``exposed``: the slots an explanation reads (captures and
    the input; None for a forward pass alone): the plan keeps each of them as a tensor and runs
    the backward pass under ``rule``."""
    return model.plan(logits=logits, fuse=True, exposed=exposed, rule=rule, inference=True)


def forward_pass(model, x, logits=True, capture=None):
    """Forward ``x`` to the scores; also return the output of layer ``capture`` (index) if given.

    Returns
    -------
    scores : ndarray (N, K)
    activation : ndarray or None
        Output of layer ``capture``, shape ``layer.output_shape``.
    """
    slots = [] if capture is None else [model.layer_slot(capture)]
    plan = _scores_plan(model, logits, exposed=slots if slots else None)
    with held_blas():
        tape = engine.run(plan, [x], keep=False, capture=slots)
    return tape.values[plan.outputs[0]], (tape.values[slots[0]] if slots else None)


def forward_to(model, x, index):
    """Output of layer ``index`` (the logits when ``index`` is the final, softmax-fused layer or the
    separate softmax after it), with the pass kept for :func:`backward_from`.

    Returns (output, tape, slot of the output).
    """
    slot = model.layer_slot(index)
    plan = _scores_plan(model, True, exposed=[slot, model.input_slots[0]])
    if slot not in plan.producer:              # the separate final softmax: its input, the logits
        slot = plan.outputs[0]
    with held_blas():
        tape = engine.run(plan, [x], targets=[slot])
    return tape.values[slot], tape, slot


def backward_from(model, tape, slot, dy):
    """dL/dx from dL/d(tensor ``slot``) of a :func:`forward_to` pass (vanilla rule, no weight gradients)."""
    source = model.input_slots[0]
    with held_blas():
        return engine.backprop(tape, {slot: dy}, wrt=[source], need_grads=False).slots[source]


def one_hot(target, K, dtype):
    seed = np.zeros((len(target), K), dtype=dtype)
    seed[np.arange(len(target)), target] = 1
    return seed


class Backprop(NamedTuple):
    """Result of :func:`backprop` (fields are None when not asked for).

    Attributes
    ----------
    input_grads : ndarray (N, H, W, C)
        d score[target] / d x.
    scores : ndarray (N, K)
        The class scores (logits or probabilities).
    targets : ndarray (N,)
        The class explained for each image.
    activations, layer_grads : ndarray, shape of the layer's output
        Output of the chosen layer and d score[target] / d output.
    reduced : ndarray
        With ``reduce``: the per-chunk reductions, concatenated (then the chunk's input gradients,
        activations and layer gradients are not kept).
    """
    input_grads: np.ndarray
    scores: np.ndarray
    targets: np.ndarray
    activations: np.ndarray = None
    layer_grads: np.ndarray = None
    reduced: np.ndarray = None


def backprop(model, x, target=None, score="logits", modifier=None, layer=None, input_grads=True,
             budget=None, reduce=None):
    """Gradients of each image's target score, for a whole batch, in chunks.

    Parameters
    ----------
    model : Sequential
    x : ndarray (N, H, W, C)
        Already validated (see :func:`check_images`).
    target : None, int or ndarray (N,)
        Class per image (already validated); None picks the highest score.
    score : {"logits", "probability"}
    modifier : None, "guided" or "rectified"
        Backward rule at every ReLU-family activation (an argument of the pass, never written
        into the layers).
    layer : int, optional
        Index of a layer whose output and gradient are returned too.
    input_grads : bool
        False stops the backward pass at ``layer`` (Grad-CAM needs nothing below it).
    budget : int, optional
        Bytes per chunk (default :data:`MEMORY_BUDGET`).
    reduce : callable, optional
        ``reduce(chunk_result) -> ndarray (n, ...)``, applied to each chunk's :class:`Backprop`;
        only its result is kept (``reduced``), which bounds memory for any N.

    Returns
    -------
    Backprop
    """
    logits = score == "logits"
    rule = _RULE_OF_MODIFIER[modifier]
    K = num_classes(model, "explain.backprop")
    if layer is not None and layer >= _head(model, logits)[0]:
        raise ValueError(message("explain.backprop", "a layer below the class scores",
                                 f"layer {model.layers[layer].name!r}, the final softmax",
                                 "Pick a layer before it, or pass score='probability'."))
    source = model.input_slots[0]
    captured = [] if layer is None else [model.layer_slot(layer)]
    wrt = captured + ([source] if input_grads or layer is None else [])
    plan = _scores_plan(model, logits, exposed=wrt, rule=rule)
    out = plan.outputs[0]
    keys = ("scores", "targets") + (("reduced",) if reduce else ("input_grads", "activations", "layer_grads"))
    parts = {key: [] for key in keys}
    for part in chunks(len(x), chunk_size(model, budget)):
        with held_blas():     # BLAS at one thread, glassnet's workers on the cores, as in a training step
            tape = engine.run(plan, [x[part]], capture=captured)
            scores = tape.values[out]
            chosen = scores.argmax(axis=1) if target is None else target[part]
            grads = engine.backprop(tape, {out: one_hot(chosen, K, scores.dtype)}, rule=rule, wrt=wrt,
                                    need_grads=False).slots
        found = Backprop(grads.get(source), scores, chosen, tape.values.get(captured[0]) if captured else None,
                         grads.get(captured[0]) if captured else None)
        del tape, grads
        if reduce is not None:
            found = found._replace(reduced=reduce(found), input_grads=None, activations=None, layer_grads=None)
        for key in keys:
            value = getattr(found, key)
            if value is not None:
                # copy: a chunk's arrays may be views of larger buffers the chunk no longer needs
                parts[key].append(np.array(value, copy=True))
        del found
    joined = {key: np.concatenate(value) if value else None for key, value in parts.items()}
    return Backprop(**{"input_grads": None, **joined})


def _head(model, logits):
    """(layers to run, whether the last one runs without its fused activation) for this score."""
    return model._head() if logits else (len(model.layers), False)


def target_scores(model, x, target=None, score="logits", budget=None):
    """Forward only: each image's score for its target, and the targets. Returns (scores (N,), targets (N,))."""
    outputs = predict_scores(model, x, score, budget)
    chosen = outputs.argmax(axis=1) if target is None else target
    return outputs[np.arange(len(x)), chosen], chosen


def predict_scores(model, x, score="logits", budget=None):
    """Class scores (N, K) computed in memory-bounded chunks, without changing the model."""
    size = chunk_size(model, budget)
    return np.concatenate([forward_pass(model, x[part], score == "logits")[0] for part in chunks(len(x), size)])
