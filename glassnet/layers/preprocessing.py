"""Preprocessing and augmentation layers: Rescaling, RandomFlip, RandomCrop, RandomErasing (Keras's names and
arguments, NHWC).

The random layers are active only in training (``training=True``, as ``fit`` calls them) and draw from the
layer's own ``rng`` (seeded by ``seed=`` or by ``fit(seed=...)``); at inference RandomFlip is the identity and
RandomCrop takes the central window. All follow the per-call protocol (:meth:`apply` -> ``(y, cache)``,
:meth:`vjp` -> ``(dx, grads)``); the drawn transform travels in the cache, so the backward pass undoes exactly
the transform of its forward pass.
"""
import numpy as np

from glassnet.errors import message
from glassnet.layers.base import Layer, register
from glassnet.validation import check_int, check_name_choice, check_number, check_real, check_real_pair

FLIP_MODES = ("horizontal", "vertical", "horizontal_and_vertical")


@register
class Rescaling(Layer):
    """``y = x * scale + offset``, e.g. ``Rescaling(1 / 255)`` for uint8-range pixels or
    ``Rescaling(1 / 127.5, offset=-1)`` for [-1, 1]. Shapes: any, unchanged."""

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = check_number(scale, "scale", "Rescaling", lambda v: True, "as a finite real number",
                                  "For example Rescaling(1 / 255).")
        self.offset = check_number(offset, "offset", "Rescaling", lambda v: True, "as a finite real number",
                                   "For example Rescaling(1 / 127.5, offset=-1).")

    def apply(self, x, training=False):
        self.ensure_built(x)
        y = x * x.dtype.type(self.scale)
        if self.offset:
            y += x.dtype.type(self.offset)
        return y, None

    def vjp(self, cache, dy, rule="vanilla", need_dx=True, need_grads=True):
        return (dy * dy.dtype.type(self.scale) if need_dx else None), {}

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "offset": self.offset}


@register
class RandomFlip(Layer):
    """While training, flip each image left-right and/or upside down, each with probability 1/2.

    Parameters
    ----------
    mode : {"horizontal", "vertical", "horizontal_and_vertical"}
        Which flips are drawn. With "horizontal_and_vertical" the two are drawn independently per image
        (Keras 3.15 draws one coin per image for both, i.e. a 180-degree turn or nothing).
    seed : int or numpy.random.Generator, optional

    Shapes: (N, H, W, C) -> (N, H, W, C). Inference is the identity.
    """

    input_rank = 3

    def __init__(self, mode="horizontal_and_vertical", seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.mode = check_name_choice(mode, FLIP_MODES, "mode", "RandomFlip",
                                      "For example RandomFlip('horizontal') for left-right flips only.")

    def _draw(self, n):
        """Per-image flags (vertical, horizontal): which images are flipped along H and along W."""
        vertical = self.rng.random(n) < 0.5 if self.mode != "horizontal" else np.zeros(n, dtype=bool)
        horizontal = self.rng.random(n) < 0.5 if self.mode != "vertical" else np.zeros(n, dtype=bool)
        return vertical, horizontal

    @staticmethod
    def _flip(x, flips):
        vertical, horizontal = flips
        y = x.copy()
        y[vertical] = y[vertical, ::-1]
        y[horizontal] = y[horizontal, :, ::-1]
        return y

    def apply(self, x, training=False):
        self.ensure_built(x)
        if not training:
            return x, None
        flips = self._draw(len(x))
        return self._flip(x, flips), flips

    def vjp(self, cache, dy, rule="vanilla", need_dx=True, need_grads=True):
        if not need_dx:
            return None, {}
        # a flip is its own inverse, and the two flips commute
        return (dy if cache is None else self._flip(dy, cache)), {}

    def get_config(self):
        return {**super().get_config(), "mode": self.mode, "seed": self.seed}


@register
class RandomCrop(Layer):
    """While training, cut a random ``height x width`` window out of each image; at inference, the central one.

    ``ZeroPadding2D(p)`` followed by ``RandomCrop(H, W)`` is the classic random-translation augmentation
    (shifts of up to ``p`` pixels), and exactly the identity at inference.

    Parameters
    ----------
    height, width : int
        Size of the window.
    seed : int or numpy.random.Generator, optional

    Shapes: (N, H, W, C) -> (N, height, width, C); ``H >= height`` and ``W >= width``. Each image draws its
    own offsets, uniform over the ``(H - height + 1) * (W - width + 1)`` windows (Keras 3.15 draws one
    window per batch and returns the input unchanged at inference; the central window keeps the output
    shape that ``compute_output_shape`` promises).
    """

    input_rank = 3

    def __init__(self, height, width, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.height, self.width = (check_int(value, what, "RandomCrop", minimum=1,
                                             fix="For example RandomCrop(28, 28).")
                                   for value, what in ((height, "height"), (width, "width")))

    def check_input_shape(self, shape):
        super().check_input_shape(shape)
        if shape[0] < self.height or shape[1] < self.width:
            raise ValueError(message(f"RandomCrop '{self.name}'", f"images at least {self.height}x{self.width}",
                                     f"per-example shape {shape}", "Pad them first, e.g. with ZeroPadding2D, "
                                     "or crop a smaller window."))

    def compute_output_shape(self, input_shape):
        return (self.height, self.width, input_shape[-1])

    def _windows(self, x, training):
        """Row and column indices (N, height, 1) and (N, 1, width) of each image's window."""
        N, H, W = x.shape[:3]
        if training:
            tops = self.rng.integers(0, H - self.height + 1, N)
            lefts = self.rng.integers(0, W - self.width + 1, N)
        else:
            tops = np.full(N, (H - self.height) // 2)
            lefts = np.full(N, (W - self.width) // 2)
        rows = tops[:, None, None] + np.arange(self.height)[None, :, None]
        cols = lefts[:, None, None] + np.arange(self.width)[None, None, :]
        return np.arange(N)[:, None, None], rows, cols

    def apply(self, x, training=False):
        self.ensure_built(x)
        windows = self._windows(x, training)
        return x[windows], (x.shape, windows)

    def vjp(self, cache, dy, rule="vanilla", need_dx=True, need_grads=True):
        if not need_dx:
            return None, {}
        shape, windows = cache
        dx = np.zeros(shape, dtype=dy.dtype)
        dx[windows] = dy            # the windows of one image never overlap themselves: plain assignment
        return dx, {}

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width, "seed": self.seed}


@register
class RandomErasing(Layer):
    """While training, replace a random rectangle of some images by ``fill_value`` (random erasing, Zhong et al.
    2017); at inference, the identity.

    Keras 3's arguments and draws: each image draws its probability ``p`` uniformly from ``factor`` (a
    float ``f``: from ``[0, f]``) and is erased when a second uniform draw falls below ``p`` (so
    ``factor=1.0`` erases half of the images, as Keras's does). The rectangle's width and height are
    ``sqrt(u) * W`` and ``sqrt(v) * H`` for ``u`` and ``v`` drawn uniformly from ``scale``, at a uniform
    position inside the image; a pixel is erased when its index lies in ``[start, start + length)`` on both
    axes (fractional bounds, as Keras's mask).

    Parameters
    ----------
    factor : float in [0, 1] or (low, high), default 1.0
    scale : (low, high) in [0, 1], default (0.02, 0.33)
        Range of the squared side fractions (so each rectangle covers between ``low`` and ``high`` of the image
        on average).
    fill_value : float, optional
        What the rectangle holds; None (Keras's default) draws Gaussian noise times ``value_range[1]``. Clipped
        to ``value_range`` either way.
    value_range : (low, high), default (0, 255)
        The range of the images' values (``(0, 1)`` for images scaled to [0, 1]).
    seed : int or numpy.random.Generator, optional

    Shapes: (N, H, W, C) -> (N, H, W, C). The gradient is ``dy`` outside the rectangles and 0 inside.
    """

    input_rank = 3

    def __init__(self, factor=1.0, scale=(0.02, 0.33), fill_value=None, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.factor = _unit_range(factor, "factor", "For example factor=0.5 or factor=(0.5, 0.5).", single=True)
        self.scale = _unit_range(scale, "scale", "For example scale=(0.02, 0.33).")
        self.value_range = _value_range(value_range)
        self.fill_value = None if fill_value is None else check_real(
            fill_value, "fill_value", "RandomErasing", fix="For example fill_value=0.0, or None for noise.")

    def _draw(self, x):
        """The erased pixels (N, H, W, 1) as a bool mask, and the fill (x's shape, or a scalar for a constant),
        for one training call."""
        N, H, W = x.shape[:3]
        sides = np.sqrt(self.rng.uniform(*self.scale, size=(N, 2)))            # (width, height) fractions
        starts = self.rng.uniform(size=(N, 2)) * (np.array([W, H]) * (1 - sides))
        ends = starts + sides * np.array([W, H])
        chance = self.rng.uniform(*self.factor, size=N)
        erased = self.rng.uniform(size=N) < chance
        cols, rows = np.arange(W)[None, :], np.arange(H)[None, :]
        inside_w = (cols >= starts[:, :1]) & (cols < ends[:, :1])              # (N, W)
        inside_h = (rows >= starts[:, 1:]) & (rows < ends[:, 1:])              # (N, H)
        mask = inside_h[:, :, None, None] & inside_w[:, None, :, None] & erased[:, None, None, None]
        low, high = self.value_range
        if self.fill_value is None:
            return mask, np.clip(self.rng.standard_normal(x.shape) * high, low, high).astype(x.dtype, copy=False)
        return mask, x.dtype.type(min(max(self.fill_value, low), high))      # a scalar: np.where broadcasts it

    def apply(self, x, training=False):
        self.ensure_built(x)
        if not training:
            return x, None
        mask, fill = self._draw(x)
        return np.where(mask, fill, x), mask

    def vjp(self, cache, dy, rule="vanilla", need_dx=True, need_grads=True):
        if not need_dx:
            return None, {}
        return (dy if cache is None else np.where(cache, dy.dtype.type(0), dy)), {}

    def get_config(self):
        return {**super().get_config(), "factor": list(self.factor), "scale": list(self.scale),
                "fill_value": self.fill_value, "value_range": list(self.value_range), "seed": self.seed}


def _unit_range(value, name, fix, single=False):
    """A (low, high) pair inside [0, 1] from a pair (sorted, as Keras sorts it) or, with ``single``, a float
    ``f`` meaning ``(0, f)``."""
    if single and not isinstance(value, (tuple, list)):
        return (0.0, check_real(value, name, "RandomErasing", low=0, high=1, fix=fix))
    return tuple(sorted(check_real_pair(value, name, "RandomErasing", low=0, high=1, fix=fix)))


def _value_range(value):
    fix = "For example value_range=(0, 1) for images scaled to [0, 1]."
    low, high = check_real_pair(value, "value_range", "RandomErasing", fix=fix)
    if low >= high:
        raise ValueError(message("RandomErasing", "value_range with low < high", repr(value), fix))
    return (low, high)
