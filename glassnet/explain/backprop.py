"""The machinery every gradient-based explanation shares.

One function, :func:`backprop`, does the work for input gradients, saliency, SmoothGrad,
integrated gradients and the Grad-CAM family: a forward pass to the class scores (logits, or
probabilities with ``score="probability"``), one-hot seeds on the chosen targets, and a backward
pass under a ReLU rule, returning the input gradients and, when asked, the activations and
gradients at one layer, all in one forward and one backward pass per chunk of the batch.

The model is borrowed, never changed: :func:`preserved` saves and restores every piece of state a
backward pass touches (ReLU rules, the first layer's ``input_grad`` switch, the weight gradients).

Batches larger than what :data:`MEMORY_BUDGET` allows are split into chunks; the estimate counts
every layer's output, its gradient and one temporary of that size (see :func:`bytes_per_example`).
"""
from contextlib import contextmanager
from typing import NamedTuple

import numpy as np

from glassnet.activations import RELU_RULES
from glassnet.errors import describe, message

#: Bytes of temporaries one chunk of an explanation may use (forward caches plus backward buffers).
MEMORY_BUDGET = 256 * 2 ** 20

SCORES = ("logits", "probability")
#: backprop modifiers and the ReLU rule each sets; "relu" is keras-vis's name for the deconvnet rule
#: (seed 000 draws ``[None, 'guided', 'relu']``)
_RULE_OF_MODIFIER = {None: "vanilla", "vanilla": "vanilla", "guided": "guided", "rectified": "rectified",
                     "relu": "rectified", "deconvnet": "rectified"}


# -- model state -----------------------------------------------------------------------------
def relu_layers(model):
    """Layers whose backward pass reads a ``relu_rule`` (ReLU family, fused relu activations)."""
    return [layer for layer in model.layers if getattr(layer, "is_relu", False)]


def _restore_attribute(obj, name, had_own, value):
    """Put back an instance attribute, or remove it again when it came from the class."""
    if had_own:
        setattr(obj, name, value)
    elif name in vars(obj):
        delattr(obj, name)


@contextmanager
def relu_rules(model, rule):
    """Set every ReLU-family layer's backward ``rule`` for the ``with`` block, then restore it.

    Parameters
    ----------
    model : Sequential
    rule : {"vanilla", "guided", "rectified"}
        ``"guided"``: ``g * [z > 0] * [g > 0]``; ``"rectified"`` (deconvnet): ``max(g, 0)``.
    """
    if rule not in RELU_RULES:
        raise ValueError(message("explain.relu_rules", f"rule one of {list(RELU_RULES)}", repr(rule)))
    saved = [(layer, "relu_rule" in vars(layer), getattr(layer, "relu_rule", "vanilla"))
             for layer in relu_layers(model)]
    try:
        for layer, _, _ in saved:
            layer.relu_rule = rule
        yield model
    finally:
        for layer, had_own, value in saved:
            _restore_attribute(layer, "relu_rule", had_own, value)


@contextmanager
def preserved(model):
    """Restore, on leaving the block, all state a backward pass may change.

    That is each layer's ``relu_rule`` and ``input_grad`` switch and its ``grads`` (copied, since
    some layers write them in place). Weights are never written by explanations.
    """
    saved = []
    for layer in model.layers:
        state = {name: (name in vars(layer), getattr(layer, name))
                 for name in ("relu_rule", "input_grad") if hasattr(layer, name)}
        grads = {key: value.copy() if isinstance(value, np.ndarray) else value
                 for key, value in layer.grads.items()}
        saved.append((layer, state, grads))
    try:
        yield model
    finally:
        for layer, state, grads in saved:
            for name, (own, value) in state.items():
                _restore_attribute(layer, name, own, value)
            layer.grads.clear()
            layer.grads.update(grads)


# -- argument checks -------------------------------------------------------------------------
def check_images(model, images, where):
    """Validate ``images`` against ``model`` and return them as a float array (N, ...)."""
    if not hasattr(model, "check_x") or not hasattr(model, "layers"):
        raise TypeError(message(where, "a glassnet Sequential model as the first argument", describe(model)))
    return model.check_x(images, where)


def check_score(score, where):
    if score not in SCORES:
        raise ValueError(message(where, f"score one of {list(SCORES)}", repr(score),
                                 "Scores are pre-softmax logits by default; pass score='probability' for "
                                 "the softmax output."))
    return score


def check_modifier(modifier, where):
    """Map a backprop ``modifier`` (None, "guided", "rectified"; "relu"/"deconvnet" alias the latter)
    to its ReLU rule."""
    if not (modifier is None or isinstance(modifier, str)) or modifier not in _RULE_OF_MODIFIER:
        raise ValueError(message(where, "modifier None, 'guided' or 'rectified' (alias 'relu' or 'deconvnet')",
                                 repr(modifier), "'guided' is guided backprop, 'rectified' the deconvnet rule."))
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
    try:
        index = model.layer_index(layer)
    except (ValueError, TypeError) as error:
        raise ValueError(message(where, "layer as a name, an index or a Layer of this model", repr(layer),
                                 f"The layers are {[l.name for l in model.layers]}.")) from error
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


def check_positive_int(value, name, where, minimum=1):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(message(where, f"{name} as an int >= {minimum}", repr(value)))
    return int(value)


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
def _head(model, logits):
    """(layers to run, whether the last one runs without its fused activation) for this score."""
    return model._head() if logits else (len(model.layers), False)


def _run_layers(model, x, count, fused, capture=None):
    """Run layers [0, count) in inference mode, the last without its activation when ``fused``;
    returns (output, output of layer ``capture`` or None)."""
    activation = None
    for index, layer in enumerate(model.layers[:count]):
        if fused and index == count - 1:
            x = layer.forward(x, training=False, logits=True)
        else:
            x = layer.forward(x, training=False)
        if index == capture:
            activation = x
    return x, activation


def forward_pass(model, x, logits=True, capture=None):
    """Forward ``x`` to the scores; also return the output of layer ``capture`` (index) if given.

    Returns
    -------
    scores : ndarray (N, K)
    activation : ndarray or None
        Output of layer ``capture``, shape ``layer.output_shape``.
    """
    count, fused = _head(model, logits)
    return _run_layers(model, x, count, fused, capture)


def backward_pass(model, seed, logits=True, capture=None, to_input=True):
    """Backpropagate ``seed`` (dL/dscores) through the layers of the last :func:`forward_pass`.

    Returns
    -------
    input_grad : ndarray (N, H, W, C) or None
        dL/dx, None when ``to_input`` is False.
    layer_grad : ndarray or None
        dL/d(output of layer ``capture``).
    """
    stop = 0 if capture is None else capture + 1
    # model.backward runs from the top down to the input of layer ``stop``, which is the gradient
    # w.r.t. the output of layer ``capture``
    dy = model.backward(seed, logits=logits, stop=stop, input_grad=True)
    layer_grad = dy if capture is not None else None
    if capture is None:
        return dy, None
    if not to_input:
        return None, layer_grad
    return backward_from(model, dy, capture), layer_grad


def forward_to(model, x, index):
    """Output of layer ``index`` (the logits when ``index`` is the final, softmax-fused layer or the
    separate softmax after it). Returns (output, index of the layer it came from)."""
    count, fused = _head(model, True)
    stop = min(index + 1, count)
    return _run_layers(model, x, stop, fused and stop == count)[0], stop - 1


def backward_from(model, dy, index):
    """Backpropagate dL/d(output of layer ``index``) to the input, after :func:`forward_to` or
    :func:`forward_pass` (run inside :func:`preserved`: it switches on the first layer's input
    gradient)."""
    first = model.layers[0]
    if hasattr(first, "input_grad"):
        first.input_grad = True
    for layer in model.layers[index::-1]:
        dy = layer.backward(dy)
    return dy


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
    """
    input_grads: np.ndarray
    scores: np.ndarray
    targets: np.ndarray
    activations: np.ndarray = None
    layer_grads: np.ndarray = None


def backprop(model, x, target=None, score="logits", modifier=None, layer=None, input_grads=True,
             budget=None):
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
        Backward rule at every ReLU-family activation.
    layer : int, optional
        Index of a layer whose output and gradient are returned too.
    input_grads : bool
        False stops the backward pass at ``layer`` (Grad-CAM needs nothing below it).
    budget : int, optional
        Bytes per chunk (default :data:`MEMORY_BUDGET`).

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
    N = len(x)
    parts = {"input_grads": [], "scores": [], "targets": [], "activations": [], "layer_grads": []}
    with preserved(model), relu_rules(model, rule):
        for part in chunks(N, chunk_size(model, budget)):
            scores, activation = forward_pass(model, x[part], logits, capture=layer)
            chosen = scores.argmax(axis=1) if target is None else target[part]
            seed = one_hot(chosen, K, scores.dtype)
            grad, layer_grad = backward_pass(model, seed, logits, capture=layer,
                                             to_input=input_grads or layer is None)
            for key, value in (("input_grads", grad), ("scores", scores), ("targets", chosen),
                               ("activations", activation), ("layer_grads", layer_grad)):
                if value is not None:
                    # copy: layers may hand back views of buffers they reuse on the next chunk
                    parts[key].append(np.array(value, copy=True))
    return Backprop(**{key: np.concatenate(value) if value else None for key, value in parts.items()})


def target_scores(model, x, target=None, score="logits", budget=None):
    """Forward only: each image's score for its target, and the targets. Returns (scores (N,), targets (N,))."""
    outputs = predict_scores(model, x, score, budget)
    chosen = outputs.argmax(axis=1) if target is None else target
    return outputs[np.arange(len(x)), chosen], chosen


def predict_scores(model, x, score="logits", budget=None):
    """Class scores (N, K) computed in memory-bounded chunks, without changing the model."""
    size = chunk_size(model, budget)
    with preserved(model):
        return np.concatenate([forward_pass(model, x[part], score == "logits")[0]
                               for part in chunks(len(x), size)])
