"""Gradient attributions: input gradients, saliency, SmoothGrad, integrated gradients.

All of them are :func:`glassnet.explain.backprop.backprop` on one batch or on perturbed copies
of it; the target class of each image is fixed on the unperturbed image first.
"""
import numpy as np

from glassnet.errors import describe, message
from glassnet.explain.backprop import (backprop, check_baseline, check_images, check_modifier,
                                       check_positive_int, check_score, check_target,
                                       chunk_size, chunks, target_scores)
from glassnet.explain.batching import in_batches, noise_source


def _prepare(model, images, target, score, where):
    """Validated (x, target array or None, score) for a public entry point."""
    x = check_images(model, images, where)
    score = check_score(score, where)
    return x, check_target(model, target, len(x), where), score


@in_batches
def input_gradients(model, images, target=None, modifier=None, score="logits"):
    """Gradient of each image's class score w.r.t. its pixels, signed.

    Parameters
    ----------
    model : Sequential
    images : array_like (N, H, W, C)
    target : None, int or array_like (N,)
        Class to explain; None takes the predicted class of each image.
    modifier : {None, "guided", "rectified"}
        Backward rule at every ReLU-family activation: None is the true gradient
        ``g * [z > 0]``; "guided" (guided backprop) ``g * [z > 0] * [g > 0]``; "rectified"
        (deconvnet) ``max(g, 0)``.
    score : {"logits", "probability"}
        Explain the pre-softmax logit (default) or the softmax probability.
    batch_size : int
        Images per batch, each explained alone (default 128): the result does not depend on how
        the images are split, as long as the splits are multiples of it (see :mod:`glassnet.explain.batching`).

    Returns
    -------
    ndarray (N, H, W, C)
        d score[target] / d images, in the model's dtype.
    """
    where = "explain.input_gradients"
    x, target, score = _prepare(model, images, target, score, where)
    check_modifier(modifier, where)
    return backprop(model, x, target, score, modifier).input_grads


@in_batches
def saliency(model, images, target=None, modifier=None, score="logits"):
    """Saliency map: the largest absolute input gradient over the channels of each pixel.

    Parameters are those of :func:`input_gradients`.

    Returns
    -------
    ndarray (N, H, W)
        ``max_c |d score[target] / d images[..., c]|``.
    """
    where = "explain.saliency"
    x, target, score = _prepare(model, images, target, score, where)
    if x.ndim != 4:
        raise ValueError(message(where, "a model on images (N, H, W, C)", f"input shape {x.shape}",
                                 "Use input_gradients for non-image inputs."))
    check_modifier(modifier, where)
    # reduced chunk by chunk: only the (N, H, W) maps outlive a chunk
    return backprop(model, x, target, score, modifier,
                    reduce=lambda chunk: np.abs(chunk.input_grads).max(axis=-1)).reduced


def _mean_gradients(model, x, target, copies, make_copies, score, modifier=None, transform=None):
    """Mean over ``copies`` perturbed versions of each image of the target score's input gradient.

    ``make_copies(rows)`` returns the inputs for images ``x[rows]`` as (len(rows) * copies, ...),
    copy-major within each image; ``transform`` (e.g. squaring) applies to each gradient before
    averaging. Images are processed a group at a time so that only one chunk's copies exist at once.
    """
    group = max(1, chunk_size(model) // copies)
    means = np.empty_like(x)
    for rows in chunks(len(x), group):
        batch = make_copies(rows)
        targets = np.repeat(target[rows], copies)
        grads = backprop(model, batch, targets, score, modifier).input_grads
        if transform is not None:
            grads = transform(grads)
        means[rows] = grads.reshape((-1, copies) + x.shape[1:]).mean(axis=1)
    return means


@in_batches
def smooth_grad(model, images, target=None, samples=50, noise=0.15, seed=None, modifier=None,
                score="logits", squared=False):
    """SmoothGrad: input gradients averaged over noisy copies of each image (Smilkov et al., 2017).

    Parameters
    ----------
    model, images, target, modifier, score, batch_size
        As in :func:`input_gradients`. The target is fixed on the clean image.
    samples : int
        Noisy copies per image.
    noise : float
        Noise level: the Gaussian's standard deviation as a fraction of each image's value range
        ``max(x) - min(x)`` (the paper's sigma / (x_max - x_min)).
    seed : int, array_like (N,) of int, numpy.random.Generator or None
        Source of the noise. An int gives each image its own stream, seeded with
        ``explain.batching.image_seeds(seed, N)[i]`` for the image at position ``i`` (so its noise
        does not depend on ``batch_size``); one int per image seeds each image directly; a Generator
        (or None: fresh entropy) is drawn from in image order.
    squared : bool
        Average the squared gradients instead ("SmoothGrad-Squared").

    Returns
    -------
    ndarray (N, H, W, C)
        Mean gradient (signed; non-negative when ``squared``).
    """
    where = "explain.smooth_grad"
    x, target, score = _prepare(model, images, target, score, where)
    check_modifier(modifier, where)
    samples = check_positive_int(samples, "samples", where)
    if isinstance(noise, (bool, np.bool_)) or not np.isscalar(noise) or not 0 <= noise < np.inf:
        raise ValueError(message(where, "noise as a float >= 0 (fraction of the image's value range)",
                                 describe(noise), "The paper's default is 0.15."))
    source = noise_source(seed, len(x), where)
    if target is None:
        target = target_scores(model, x, None, score)[1]
    axes = tuple(range(1, x.ndim))
    sigma = noise * (x.max(axis=axes) - x.min(axis=axes))

    def standard_normal(rows):
        """(images, samples, ...) draws: from each image's own seed, or from the one Generator in turn."""
        shape = (samples,) + x.shape[1:]
        if isinstance(source, np.random.Generator):
            return source.standard_normal((len(x[rows]),) + shape)
        return np.stack([np.random.default_rng(seed).standard_normal(shape) for seed in source[rows]])

    def noisy(rows):
        eps = standard_normal(rows).astype(x.dtype) * sigma[rows].reshape((-1, 1) + (1,) * len(axes))
        return (x[rows][:, None] + eps).reshape((-1,) + x.shape[1:])

    return _mean_gradients(model, x, target, samples, noisy, score, modifier,
                           transform=np.square if squared else None)


def integration_alphas(steps):
    """Midpoint rule on [0, 1]: alphas (k + 1/2) / steps with equal weights 1 / steps."""
    return (np.arange(steps) + 0.5) / steps


@in_batches
def integrated_gradients(model, images, target=None, baseline=None, steps=50, score="logits",
                         return_gap=False):
    """Integrated gradients (Sundararajan et al., 2017).

    ``IG(x) = (x - x') * integral_0^1 grad f(x' + a (x - x')) da``, the integral taken with the
    midpoint rule on ``steps`` points. Completeness: ``sum IG(x) = f(x) - f(x')`` up to the
    quadrature error, which shrinks as ``steps`` grows.

    Parameters
    ----------
    model, images, target, score, batch_size
        As in :func:`input_gradients`; the target is fixed on the image itself.
    baseline : None, float, array (H, W, C) or (N, H, W, C)
        The reference input x' (None: all zeros, a black image).
    steps : int
        Points on the straight path from x' to x.
    return_gap : bool
        Also return each image's completeness gap ``sum IG - (f(x) - f(x'))``.

    Returns
    -------
    attributions : ndarray (N, H, W, C)
    gap : ndarray (N,), only with ``return_gap``
    """
    where = "explain.integrated_gradients"
    x, target, score = _prepare(model, images, target, score, where)
    steps = check_positive_int(steps, "steps", where)
    base = check_baseline(baseline, x, where)
    f_x, target = target_scores(model, x, target, score)
    alphas = integration_alphas(steps).astype(x.dtype).reshape((1, steps) + (1,) * (x.ndim - 1))
    delta = x - base

    def path(rows):
        return (base[rows][:, None] + alphas * delta[rows][:, None]).reshape((-1,) + x.shape[1:])

    attributions = delta * _mean_gradients(model, x, target, steps, path, score)
    if not return_gap:
        return attributions
    f_base = target_scores(model, np.ascontiguousarray(base), target, score)[0]
    gap = attributions.reshape(len(x), -1).sum(axis=1, dtype=np.float64) - (f_x - f_base)
    return attributions, gap
