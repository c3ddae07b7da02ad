"""Can a map be trusted? Model-randomization sanity checks and deletion/insertion curves.

- :func:`sanity_check` (Adebayo et al., 2018): randomize the weights layer by layer from the top
  (on a copy of the model) and measure how much the maps change; a method whose maps survive the
  randomization explains the image, not the model.
- :func:`deletion_insertion` (Petsiuk et al., 2018): delete the most important pixels first and
  watch the score fall, or insert them into a blank image and watch it rise; compare with a
  random ordering of the pixels.
"""
import inspect
from typing import NamedTuple

import numpy as np

from glassnet.errors import describe, message
from glassnet.explain.backprop import (check_baseline, check_images, check_positive_int, check_score,
                                       check_target, chunk_size, chunks, forward_pass, target_scores)
from glassnet.explain.cam import cam, grad_cam, grad_cam_plus_plus, guided_grad_cam
from glassnet.explain.gradients import input_gradients, integrated_gradients, saliency, smooth_grad
from glassnet.explain.occlusion import occlusion
from glassnet.validation import as_generator, check_real

#: Methods :func:`sanity_check` accepts by name, each a function ``(model, images, target=..., **kwargs)``.
METHODS = {
    "input_gradients": input_gradients, "saliency": saliency, "smooth_grad": smooth_grad,
    "integrated_gradients": integrated_gradients, "grad_cam": grad_cam, "guided_grad_cam": guided_grad_cam,
    "grad_cam_plus_plus": grad_cam_plus_plus, "cam": cam, "occlusion": occlusion,
}


def rank(values):
    """Ranks along the last axis, ties sharing their average rank (0-based)."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, axis=-1, kind="stable")
    sorted_values = np.take_along_axis(values, order, axis=-1)
    flat = sorted_values.reshape(-1, values.shape[-1])
    ranks = np.empty_like(flat)
    for row, line in enumerate(flat):
        # each run of equal values [start, end) gets the mean of positions start..end-1
        starts = np.flatnonzero(np.r_[True, line[1:] != line[:-1]])
        ends = np.r_[starts[1:], len(line)]
        ranks[row] = np.repeat((starts + ends - 1) / 2.0, ends - starts)
    result = np.empty_like(values)
    np.put_along_axis(result, order, ranks.reshape(values.shape), axis=-1)
    return result


def rank_correlation(a, b):
    """Spearman's rank correlation of each row of a and b (flattened after the first axis).

    Parameters
    ----------
    a, b : array_like (N, ...)

    Returns
    -------
    ndarray (N,)
        Pearson correlation of the (tie-averaged) ranks; 0 where either map is constant, since a
        constant map carries no ordering.
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim < 1:
        raise ValueError(message("explain.rank_correlation", "two arrays of the same shape (N, ...)",
                                 f"shapes {a.shape} and {b.shape}"))
    ra = rank(a.reshape(len(a), -1))
    rb = rank(b.reshape(len(b), -1))
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    norm = np.sqrt((ra * ra).sum(axis=1) * (rb * rb).sum(axis=1))
    return np.where(norm > 0, (ra * rb).sum(axis=1) / np.where(norm > 0, norm, 1), 0.0)


def _method(method, where):
    if callable(method):
        return method
    if isinstance(method, str) and method in METHODS:
        return METHODS[method]
    raise ValueError(message(where, f"method as a name among {sorted(METHODS)} or a callable "
                             "(model, images, target=..., **kwargs) -> maps", repr(method)))


def copy_model(model):
    """An independent copy of ``model`` (same architecture, names and weights)."""
    clone = type(model).from_config(model.get_config())
    clone.set_weights(model.get_weights())
    return clone


class SanityCheck(NamedTuple):
    """Result of :func:`sanity_check`.

    Attributes
    ----------
    layers : list of str
        Layer randomized at each step; step ``j`` has layers ``layers[:j + 1]`` randomized.
    correlations : ndarray (steps, N)
        Rank correlation of each image's map with its map from the trained model.
    mean : ndarray (steps,)
        Mean over images.
    passed : bool
        True when the maps change: mean correlation with every layer randomized below ``threshold``.
    threshold : float
    """
    layers: list
    correlations: np.ndarray
    mean: np.ndarray
    passed: bool
    threshold: float


def sanity_check(model, images, method="grad_cam", target=None, threshold=0.5, seed=0, absolute=True,
                 **kwargs):
    """Cascading model-parameter randomization test (Adebayo et al., 2018).

    On a copy of ``model`` (the model itself is never touched), re-initialize the weights of one
    more layer at each step, from the output down, with fresh draws from each layer's own
    initializer, and compare each image's map with the trained model's map by Spearman rank
    correlation. A trustworthy method's maps must change once the weights they claim to explain
    are gone.

    Parameters
    ----------
    model : Sequential
    images : array_like (N, H, W, C)
    method : str or callable
        A name among :data:`METHODS` or ``f(model, images, target=..., **kwargs)`` returning maps (N, ...).
    target : None, int or array_like (N,)
        Fixed on the trained model (None: its predicted classes), then used at every step.
    threshold : float
        The method passes when the mean correlation of the fully randomized model is below it.
    seed : int or numpy.random.Generator
        Source of the random weights (and of the method's own noise, when it takes a ``seed``).
    absolute : bool
        Compare ``|map|`` (signs of gradients are not comparable across models).
    **kwargs
        Passed to the method (e.g. ``layer=...`` for Grad-CAM).

    Returns
    -------
    SanityCheck
    """
    where = "explain.sanity_check"
    x = check_images(model, images, where)
    explain = _method(method, where)
    target = check_target(model, target, len(x), where)
    threshold = check_real(threshold, "threshold (a rank correlation)", where, low=-1, high=1)
    rng = as_generator(seed, where)
    if target is None:
        target = target_scores(model, x, None)[1]
    try:
        parameters = inspect.signature(explain).parameters
    except (TypeError, ValueError):      # some callables (builtins, C functions) have no signature
        parameters = {}
    if "seed" in parameters and "seed" not in kwargs:
        kwargs["seed"] = int(rng.integers(2 ** 31))  # the same noise before and after randomizing

    def maps_of(net):
        maps = np.asarray(explain(net, x, target=target, **kwargs), dtype=np.float64)
        return np.abs(maps) if absolute else maps

    trained = copy_model(model)
    reference = maps_of(trained)
    config = model.get_config()
    config["seed"] = int(rng.integers(2 ** 31))
    fresh = type(model).from_config(config)  # freshly initialized weights, layer by layer
    names, correlations = [], []
    for index in range(len(model.layers) - 1, -1, -1):
        if not trained.layers[index].weights:
            continue
        trained.layers[index].set_weights(fresh.layers[index].get_weights())
        names.append(trained.layers[index].name)
        correlations.append(rank_correlation(reference, maps_of(trained)))
    if not names:
        raise ValueError(message(where, "a model with weights to randomize", "no layer with weights"))
    correlations = np.array(correlations)
    mean = correlations.mean(axis=1)
    return SanityCheck(names, correlations, mean, bool(mean[-1] < threshold), float(threshold))


class DeletionInsertion(NamedTuple):
    """Result of :func:`deletion_insertion`.

    Attributes
    ----------
    fractions : ndarray (steps + 1,)
        Fraction of pixels deleted (or inserted) at each point of the curves.
    deletion, insertion : ndarray (N, steps + 1)
        Target score along the curves for the given maps.
    random_deletion, random_insertion : ndarray (N, steps + 1)
        The same for a random pixel order.
    deletion_auc, insertion_auc, random_deletion_auc, random_insertion_auc : ndarray (N,)
        Areas under the curves (trapezoid rule over the fraction). A good map has
        ``deletion_auc < random_deletion_auc`` and ``insertion_auc > random_insertion_auc``.
    """
    fractions: np.ndarray
    deletion: np.ndarray
    insertion: np.ndarray
    random_deletion: np.ndarray
    random_insertion: np.ndarray
    deletion_auc: np.ndarray
    insertion_auc: np.ndarray
    random_deletion_auc: np.ndarray
    random_insertion_auc: np.ndarray


def _check_maps(maps, x, where):
    """Pixel importance (N, H * W) from maps (N, H, W) or (N, H, W, C) (channels summed)."""
    array = np.asarray(maps)
    if array.dtype == object or not np.issubdtype(array.dtype, np.number):
        raise TypeError(message(where, "maps as a numeric array", describe(maps)))
    if array.shape == x.shape:
        array = array.sum(axis=-1)
    if array.shape != x.shape[:3]:
        raise ValueError(message(where, f"maps of shape {x.shape[:3]} or {x.shape}", f"shape {array.shape}",
                                 "Pass one map per image, at the input's resolution (upsample=True)."))
    if not np.isfinite(array).all():
        raise ValueError(message(where, "finite maps", "NaN or inf entries"))
    return array.reshape(len(x), -1).astype(np.float64)


def _orders_to_ranks(order):
    """ranks[n, pixel] = position of the pixel in image n's order."""
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(order.shape[1])[None, :], axis=1)
    return ranks


def _auc(curves):
    """Trapezoid area under curves sampled at equally spaced fractions in [0, 1]."""
    steps = curves.shape[1] - 1
    return (curves.sum(axis=1) - (curves[:, 0] + curves[:, -1]) / 2) / steps


def deletion_insertion(model, images, maps, target=None, steps=20, baseline=0.0, score="probability", seed=0):
    """Deletion and insertion curves and their AUCs, for the maps and for a random pixel order.

    Pixels are taken in decreasing order of importance (ties in raster order); at point ``k`` the
    first ``round(k / steps * H * W)`` of them are set to ``baseline`` (deletion) or copied from
    the image into an all-``baseline`` canvas (insertion), every channel of a pixel together.

    Parameters
    ----------
    model : Sequential
    images : array_like (N, H, W, C)
    maps : array_like (N, H, W) or (N, H, W, C)
        Importance of each pixel (channels are summed).
    target : None, int or array_like (N,)
        None: the predicted class of each image.
    steps : int
        Points on each curve after the start.
    baseline : float, array (H, W, C) or (N, H, W, C)
        Value of a deleted pixel.
    score : {"probability", "logits"}
        The metric is defined on probabilities (bounded, comparable across images), so that is
        the default here, unlike the attribution methods.
    seed : int or numpy.random.Generator
        Source of the random order.

    Returns
    -------
    DeletionInsertion
    """
    where = "explain.deletion_insertion"
    x = check_images(model, images, where)
    if x.ndim != 4:
        raise ValueError(message(where, "a model on images (N, H, W, C)", f"input shape {x.shape}"))
    importance = _check_maps(maps, x, where)
    target = check_target(model, target, len(x), where)
    steps = check_positive_int(steps, "steps", where)
    score = check_score(score, where)
    base = check_baseline(baseline, x, where)
    rng = as_generator(seed, where)
    N, H, W, C = x.shape
    target = target_scores(model, x, target, score)[1]
    counts = np.rint(np.linspace(0, H * W, steps + 1)).astype(np.int64)
    ranks = np.stack([_orders_to_ranks(np.argsort(-importance, axis=1, kind="stable")),
                      _orders_to_ranks(np.argsort(rng.random((N, H * W)), axis=1))])  # (2, N, HW)
    # curve c of image n at point k: c = 2 * order + kind (kind 0 deletion, 1 insertion)
    total = N * 4 * (steps + 1)
    scores = np.empty(total)
    for part in chunks(total, chunk_size(model)):
        flat = np.arange(part.start, part.stop)
        n, rest = flat // (4 * (steps + 1)), flat % (4 * (steps + 1))
        curve, k = rest // (steps + 1), rest % (steps + 1)
        order, insertion = curve // 2, curve % 2
        taken = (ranks[order, n] < counts[k][:, None]).reshape(-1, H, W, 1)
        # deletion: taken pixels become baseline; insertion: only taken pixels come from the image
        batch = np.where(taken != insertion[:, None, None, None].astype(bool), base[n], x[n])
        out = forward_pass(model, batch, score == "logits")[0]
        scores[flat] = out[np.arange(len(flat)), target[n]]
    curves = scores.reshape(N, 2, 2, steps + 1)
    fractions = counts / (H * W)
    return DeletionInsertion(fractions, curves[:, 0, 0], curves[:, 0, 1], curves[:, 1, 0], curves[:, 1, 1],
                             _auc(curves[:, 0, 0]), _auc(curves[:, 0, 1]), _auc(curves[:, 1, 0]),
                             _auc(curves[:, 1, 1]))
