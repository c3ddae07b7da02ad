"""Fixed batches of images: an image's explanation depends on its batch, never on how a caller
splits the data.

Why
---
A float32 matrix product gives results that depend, in the last bits, on the shape of the product:
BLAS picks its kernels and blocking by size (and a single row may take a matrix-vector path). So a
forward pass over 100 images and two passes over 50 give maps that differ by ~1e-7. Every map
method of :mod:`glassnet.explain` (``explain.METHODS``) therefore runs over its images in fixed
batches of ``batch_size`` images (the last one ragged) and each batch alone, with its own forward
and backward passes and, inside it, the memory-bounded chunks of
:data:`glassnet.explain.backprop.MEMORY_BUDGET` (a function of the batch and the model only).

The rule
--------
With the same model, arguments, ``batch_size`` and number of BLAS threads, explaining ``x`` equals,
bit for bit, concatenating the explanations of ``x[i:i + k]`` for every ``k`` that is a multiple of
``batch_size``; :mod:`glassnet.distributed` cuts its chunks that way.

Arguments given per image (a ``target`` per image, a ``baseline`` per image, ``seed`` for SmoothGrad)
are cut with the batches. An int ``seed`` gives the image at position ``i`` of the call its own
noise stream, seeded with ``image_seeds(seed, N)[i]``, so its noise does not depend on the batch;
one seed per image (``image_seeds(seed, N)[a:b]`` for ``images[a:b]``) reproduces part of a call.
"""
import functools
import inspect

import numpy as np

from glassnet.errors import describe, message
from glassnet.explain.backprop import check_baseline, check_images, check_target
from glassnet.validation import as_generator, check_int

#: Images per batch of an explanation (a chunk of ``glassnet.distributed.explain`` is a multiple of it).
DEFAULT_BATCH = 128


def image_seeds(seed, n):
    """The int seed of each of ``n`` images of a call seeded with ``seed``.

    Image ``i`` gets ``SeedSequence(seed).spawn(n)[i]``, reduced to an int >= 0: it depends on
    ``seed`` and ``i`` only (not on ``n``), so the seeds of ``images[a:b]`` are ``image_seeds(seed, N)[a:b]``.

    Returns
    -------
    ndarray (n,) of int64
    """
    children = np.random.SeedSequence(int(seed)).spawn(n)
    return np.array([child.generate_state(2, np.uint64)[0] >> np.uint64(1) for child in children], dtype=np.int64)


def noise_source(seed, n, where):
    """What SmoothGrad draws its noise from: ``(n,)`` per-image int seeds (from an int ``seed`` or
    given one per image), or one Generator for all images (a Generator as it is; None: fresh entropy)."""
    if isinstance(seed, np.random.Generator) or seed is None:
        return as_generator(seed, where)
    if np.ndim(seed) == 0:
        return image_seeds(check_int(seed, "seed", where, minimum=0), n)
    seeds = np.asarray(seed)
    expected = f"seed as an int >= 0, one int >= 0 per image ({n},), a numpy.random.Generator or None"
    if not np.issubdtype(seeds.dtype, np.integer):
        raise TypeError(message(where, expected, describe(seed), "For example seed=0."))
    if seeds.shape != (n,) or (seeds < 0).any():
        raise ValueError(message(where, expected, f"an array of shape {seeds.shape}, min {seeds.min(initial=0)}",
                                 "For example seed=0."))
    return seeds.astype(np.int64)


def _per_image(model, x, name, value, where):
    """``value`` of argument ``name`` made one entry per image when it is a per-image argument."""
    if name == "target":
        return check_target(model, value, len(x), where)
    if name == "baseline" and value is not None:
        return check_baseline(value, x, where)
    if name == "seed":
        return noise_source(value, len(x), where)
    return value


#: Arguments that may hold one entry per image, cut with the batches.
PER_IMAGE = ("target", "baseline", "seed")


def _cut(name, value, rows, n):
    """``value[rows]`` for a per-image argument with one entry per image; anything else as it is."""
    if name in PER_IMAGE and isinstance(value, np.ndarray) and value.ndim >= 1 and len(value) == n:
        return value[rows]
    return value


def _fill(outputs, rows, result, n):
    """Copy one batch's ``result`` (an array or a tuple of arrays) into ``outputs``, created at the first batch."""
    parts = result if isinstance(result, tuple) else (result,)
    if outputs is None:
        outputs = tuple(np.empty((n,) + np.shape(part)[1:], np.asarray(part).dtype) for part in parts)
    for output, part in zip(outputs, parts):
        output[rows] = part
    return outputs


def in_batches(function):
    """Decorate an explanation ``function(model, images, ...)``: it runs on fixed batches of
    ``batch_size`` images (a keyword argument added to its signature, default :data:`DEFAULT_BATCH`),
    its per-image arguments cut with them, and the batches' results concatenated."""
    signature = inspect.signature(function)
    where = f"explain.{function.__name__}"

    @functools.wraps(function)
    def batched(model, images, *args, batch_size=DEFAULT_BATCH, **kwargs):
        batch_size = check_int(batch_size, "batch_size", where, minimum=1)
        try:
            bound = signature.bind(model, images, *args, **kwargs)
        except TypeError as error:
            raise TypeError(f"{where}(): {error}") from None
        x = check_images(model, images, where)
        n = len(x)
        arguments = {name: _per_image(model, x, name, value, where)
                     for name, value in bound.arguments.items() if name not in ("model", "images")}
        outputs = None
        for start in range(0, n, batch_size):
            rows = slice(start, min(start + batch_size, n))
            result = function(model, x[rows], **{name: _cut(name, value, rows, n) for name, value in arguments.items()})
            outputs = _fill(outputs, rows, result, n)
        if outputs is None:                  # no images: the function says what it makes of that
            return function(model, x, **arguments)
        return outputs if isinstance(result, tuple) else outputs[0]

    parameters = list(signature.parameters.values())
    batched.__signature__ = signature.replace(parameters=parameters + [
        inspect.Parameter("batch_size", inspect.Parameter.KEYWORD_ONLY, default=DEFAULT_BATCH)])
    return batched


__all__ = ["in_batches", "image_seeds", "noise_source", "DEFAULT_BATCH", "PER_IMAGE"]
