"""``shapes``: a synthetic, MNIST-sized dataset whose ground truth is known pixel by pixel.

Each image holds one class-defining shape (square, circle, triangle, ...) of
random size, brightness and position, on a noisy background with a few small
specks ("distractors") that appear equally in every class and so carry no
class information. Alongside the images come each object's mask and bounding
box, so an explanation can be scored: does the heatmap's peak land on the
object (the pointing game)?

Everything is drawn from one seed and rendered with array operations over
the whole batch (one pass per class and per distractor, never per pixel).
A small CNN learns it to >95% in well under a minute; it is the offline
default dataset of ``make demo``.
"""
from typing import NamedTuple

import numpy as np

from glassnet.errors import message
from glassnet.validation import check_int, check_list, check_real

CLASS_NAMES = ("square", "circle", "triangle", "plus", "horizontal bar",
               "vertical bar", "ring", "corner", "x", "frame")

_CHUNK = 4096  # images rendered at once: bounds the float32 temporaries to ~13 MB at 28x28


class ShapesData(NamedTuple):
    """One split of the shapes dataset; unpacks as ``x, y, masks, boxes``.

    Attributes
    ----------
    x : uint8 ndarray (N, H, W)
        Images, 0..255, like MNIST (add a channel axis with ``x[..., None]``).
    y : uint8 ndarray (N,)
        Class indices into ``CLASS_NAMES``.
    masks : bool ndarray (N, H, W)
        True on the pixels of the class-defining object (not on distractors).
    boxes : int ndarray (N, 4)
        The mask's bounding box ``(y0, x0, y1, x1)``, ``y1``/``x1`` exclusive:
        ``masks[i, y0:y1, x0:x1]`` holds the whole object.
    """
    x: np.ndarray
    y: np.ndarray
    masks: np.ndarray
    boxes: np.ndarray


# Each shape is a predicate on offsets (dy, dx) from its centre, with r its
# half-extent and h the half-thickness of its strokes (all in pixels).
def _square(dy, dx, r, h):
    return np.maximum(abs(dy), abs(dx)) <= r


def _circle(dy, dx, r, h):
    return dy * dy + dx * dx <= r * r


def _triangle(dy, dx, r, h):
    # apex at the top (dy = -r), base of half-width r at the bottom (dy = r)
    return (abs(dy) <= r) & (abs(dx) <= (dy + r) / 2)


def _plus(dy, dx, r, h):
    return ((abs(dx) <= h) & (abs(dy) <= r)) | ((abs(dy) <= h) & (abs(dx) <= r))


def _hbar(dy, dx, r, h):
    return (abs(dy) <= h) & (abs(dx) <= r)


def _vbar(dy, dx, r, h):
    return (abs(dx) <= h) & (abs(dy) <= r)


def _ring(dy, dx, r, h):
    d2 = dy * dy + dx * dx
    return (d2 <= r * r) & (d2 > (r - 2 * h) ** 2)


def _corner(dy, dx, r, h):
    # an L: the left edge and the bottom edge of the square, strokes 2h thick
    inside = np.maximum(abs(dy), abs(dx)) <= r
    return inside & ((dx <= -r + 2 * h) | (dy >= r - 2 * h))


def _x(dy, dx, r, h):
    # distance to the diagonals y = +-x is ||dy| - |dx|| / sqrt(2)
    return (abs(abs(dy) - abs(dx)) <= h * np.sqrt(2)) & (np.maximum(abs(dy), abs(dx)) <= r)


def _frame(dy, dx, r, h):
    m = np.maximum(abs(dy), abs(dx))
    return (m <= r) & (m > r - 2 * h)


_SHAPES = (_square, _circle, _triangle, _plus, _hbar, _vbar, _ring, _corner, _x, _frame)


def _rngs(seed, n):
    """``n`` independent generators from an int seed or a Generator (so train never depends on n_test)."""
    if isinstance(seed, np.random.Generator):
        return seed.spawn(n)
    if seed is None or isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"shapes expects seed to be an int or a numpy.random.Generator; got {seed!r}. "
                        f"Pass e.g. seed=0.")
    return [np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(n)]


def _check_args(image_size, n_classes, noise, distractors, scale):
    check_int(image_size, "image_size", "shapes", minimum=12)
    check_int(distractors, "distractors", "shapes", minimum=0)
    classes = f"The classes are, in order: {', '.join(CLASS_NAMES)}."
    if check_int(n_classes, "n_classes", "shapes", minimum=2, fix=classes) > len(_SHAPES):
        raise ValueError(message("shapes", f"n_classes as an int in 2..{len(_SHAPES)}", repr(n_classes), classes))
    check_real(noise, "noise (the background noise's standard deviation, in units of full brightness)", "shapes",
               low=0)
    fix = "scale is the object half-extent as a fraction of image_size, e.g. scale=(0.15, 0.35)."
    scale = check_list(scale, "scale=(low, high)", "shapes", fix)
    lo, hi = (check_real(v, "scale entries", "shapes", low=0.05, high=0.45, fix=fix) for v in scale) \
        if len(scale) == 2 else (1.0, 0.0)
    if lo > hi:
        raise ValueError(message("shapes", "scale=(low, high) with 0.05 <= low <= high <= 0.45", repr(scale), fix))


def _discs(yy, xx, cy, cx, radius):
    """Masks (n, H, W) of discs with per-image centres and radii (n,)."""
    dy = yy - cy[:, None, None]
    dx = xx - cx[:, None, None]
    return dy * dy + dx * dx <= (radius * radius)[:, None, None]


def _render(y, params, rng, size, noise):
    """Render one chunk: objects, then distractors, then noise."""
    n = y.shape[0]
    grid = np.arange(size, dtype=np.float32)
    yy, xx = grid[None, :, None], grid[None, None, :]
    cy, cx, r, brightness, h = params["cy"], params["cx"], params["r"], params["brightness"], params["h"]
    dy = yy - cy[:, None, None]
    dx = xx - cx[:, None, None]
    masks = np.zeros((n, size, size), dtype=bool)
    for k, shape in enumerate(_SHAPES):
        idx = np.flatnonzero(y == k)
        if idx.size:
            masks[idx] = shape(dy[idx], dx[idx], r[idx, None, None], h)
    images = masks * brightness[:, None, None]
    for cy_d, cx_d, r_d, v_d in params["distractors"]:
        images = np.maximum(images, _discs(yy, xx, cy_d, cx_d, r_d) * v_d[:, None, None])
    if noise:
        images = images + rng.normal(0.0, noise, size=images.shape).astype(np.float32)
    x = np.rint(np.clip(images, 0.0, 1.0) * 255).astype(np.uint8)
    return x, masks


def _boxes(masks):
    """Bounding boxes (n, 4) as (y0, x0, y1, x1), exclusive ends, of non-empty masks."""
    rows, cols = masks.any(axis=2), masks.any(axis=1)
    H, W = masks.shape[1:]
    y0, x0 = rows.argmax(axis=1), cols.argmax(axis=1)
    y1, x1 = H - rows[:, ::-1].argmax(axis=1), W - cols[:, ::-1].argmax(axis=1)
    return np.stack([y0, x0, y1, x1], axis=1)


def generate(n, seed=0, image_size=28, n_classes=10, noise=0.1, distractors=2, scale=(0.2, 0.32)):
    """Generate ``n`` images of the shapes dataset with their ground truth.

    Parameters
    ----------
    n : int
        Number of images. Classes are balanced (counts differ by at most one) and shuffled.
    seed : int or numpy.random.Generator
        Same seed, same data.
    image_size : int
        Height and width ``S`` (>= 12).
    n_classes : int
        Use the first ``n_classes`` shapes of ``CLASS_NAMES`` (2..10).
    noise : float
        Standard deviation of the Gaussian background noise, as a fraction of full brightness.
    distractors : int
        Small specks per image, placed anywhere, present in every class alike.
    scale : (float, float)
        Range of the object's half-extent as a fraction of ``image_size``.

    Returns
    -------
    ShapesData
        ``(x, y, masks, boxes)``: uint8 (n, S, S), uint8 (n,), bool (n, S, S), int (n, 4).
    """
    check_int(n, "n", "shapes", minimum=0)
    _check_args(image_size, n_classes, noise, distractors, scale)
    rng = _rngs(seed, 1)[0] if not isinstance(seed, np.random.Generator) else seed
    S = image_size
    y = rng.permutation(np.arange(n) % n_classes).astype(np.uint8)
    r = rng.uniform(scale[0] * S, scale[1] * S, n).astype(np.float32)
    # centres keep the whole object inside the image: r <= c <= S - 1 - r
    cy = (r + rng.uniform(0, 1, n) * (S - 1 - 2 * r)).astype(np.float32)
    cx = (r + rng.uniform(0, 1, n) * (S - 1 - 2 * r)).astype(np.float32)
    brightness = rng.uniform(0.6, 1.0, n).astype(np.float32)
    specks = [(rng.uniform(0, S - 1, n).astype(np.float32), rng.uniform(0, S - 1, n).astype(np.float32),
               rng.uniform(0.6, 1.3, n).astype(np.float32), rng.uniform(0.3, 0.7, n).astype(np.float32))
              for _ in range(distractors)]
    h = max(1.0, 0.06 * S)  # stroke half-thickness: bars about 3 pixels wide at 28x28
    xs, ms = [], []
    for start in range(0, n, _CHUNK):
        part = slice(start, start + _CHUNK)
        params = {"cy": cy[part], "cx": cx[part], "r": r[part], "brightness": brightness[part], "h": h,
                  "distractors": [tuple(a[part] for a in d) for d in specks]}
        x_part, m_part = _render(y[part], params, rng, S, noise)
        xs.append(x_part)
        ms.append(m_part)
    x = np.concatenate(xs) if xs else np.zeros((0, S, S), np.uint8)
    masks = np.concatenate(ms) if ms else np.zeros((0, S, S), bool)
    return ShapesData(x, y, masks, _boxes(masks))


def load_data(n_train=6000, n_test=1000, seed=0, image_size=28, n_classes=10, noise=0.1,
              distractors=2, scale=(0.2, 0.32), return_masks=False):
    """The shapes dataset, Keras style: ``(x_train, y_train), (x_test, y_test)``.

    Parameters
    ----------
    n_train, n_test : int
        Split sizes. The train split depends only on ``seed`` and ``n_train``, not on ``n_test``.
    seed : int or numpy.random.Generator
    image_size, n_classes, noise, distractors, scale
        See :func:`generate`.
    return_masks : bool
        Also return the ground truth: each split becomes ``(x, y, masks, boxes)``
        (a :class:`ShapesData`).

    Returns
    -------
    (x_train, y_train), (x_test, y_test)
        uint8 images (N, S, S) and uint8 labels (N,); with ``return_masks`` each split is a
        :class:`ShapesData` ``(x, y, masks, boxes)`` instead.
    """
    check_int(n_train, "n_train", "shapes", minimum=0)
    check_int(n_test, "n_test", "shapes", minimum=0)
    rng_train, rng_test = _rngs(seed, 2)
    options = dict(image_size=image_size, n_classes=n_classes, noise=noise, distractors=distractors,
                   scale=scale)
    train = generate(n_train, rng_train, **options)
    test = generate(n_test, rng_test, **options)
    if return_masks:
        return train, test
    return (train.x, train.y), (test.x, test.y)
