"""``ImageDataGenerator``: Keras's real-time augmentation and normalization, batched.

Per batch, in Keras's order:

1. a random affine transform per image (rotation, shift, shear, zoom), all
   images of the batch resampled in one ``scipy.ndimage.map_coordinates`` call
   per channel (bilinear; SciPy is imported only when a geometric option is on);
2. random horizontal / vertical flips (exact: pure index reversal);
3. ``standardize``: ``rescale``, samplewise centering / scaling, featurewise
   centering / scaling with the statistics of :meth:`ImageDataGenerator.fit`,
   ZCA whitening.

Randomness comes from one ``numpy.random.Generator`` per iterator, seeded by
``flow(..., seed=...)``, so a seed reproduces every batch (order and transforms).
Images are channels-last, ``(N, H, W, C)``; an array that looks channels-first is refused.
"""
import math
import numbers
import warnings

import numpy as np

from glassnet.errors import describe, message
from glassnet.ops.parallel import matmul
from glassnet.validation import as_generator, check_int, check_name_choice, check_number, check_real

_FILL_MODES = {"constant": "constant", "nearest": "nearest", "reflect": "reflect",
               # SciPy's plain "wrap" is not periodic at the edge; "grid-wrap" is Keras's abcd|abcd
               "wrap": "grid-wrap"}
_WHERE = "ImageDataGenerator"
_STD_EPS = 1e-6  # added to standard deviations before dividing, as in Keras


def _check_images(x, where):
    """Validate an NHWC batch; returns it as an array (no copy)."""
    x = np.asarray(x)
    if x.ndim != 4:
        fix = (" For grayscale images of shape (N, H, W) use x[..., None]." if x.ndim == 3
               else " Stack the images into one array of shape (N, H, W, C).")
        raise ValueError(f"{where} expects images of shape (N, H, W, C) (rank 4, channels last); "
                         f"got shape {x.shape} (rank {x.ndim}).{fix}")
    if x.shape[-1] > 4 and x.shape[1] in (1, 3, 4):  # (N, 1, 28, 28), (N, 3, 32, 32), ...
        raise ValueError(f"{where} expects channels-last images (N, H, W, C); got shape {x.shape}, which "
                         f"looks channels-first (C = {x.shape[1]} in front). Use x.transpose(0, 2, 3, 1).")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise TypeError(f"{where} expects numeric images; got dtype {x.dtype}.")
    return x


def _check_shift(name, value):
    """A shift range: a number >= 0 (a fraction of the size if < 1, pixels if >= 1) or a 1-D list of
    choices. TypeError for anything else, ValueError for a negative number or an empty or nested list."""
    if not isinstance(value, (list, tuple, np.ndarray)):
        check_real(value, name, _WHERE, low=0, fix="A fraction of the size if < 1, pixels if >= 1, "
                   "or a list of choices.")
        return value                  # an int stays an int: whole-pixel shifts (see _shift)
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(message(_WHERE, f"{name} as a number or a 1-D list of numbers", describe(value))) from None
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(message(_WHERE, f"{name} as a number or a non-empty 1-D list of choices", repr(value)))
    return arr


def _check_zoom(value):
    """``zoom_range`` as ``(low, high)``: a float z in [0, 1) means ``(1 - z, 1 + z)``."""
    expected = "zoom_range as a float z in [0, 1) (meaning [1 - z, 1 + z]) or a pair (low, high) with 0 < low <= high"
    if not isinstance(value, (list, tuple, np.ndarray)):
        z = check_real(value, "zoom_range", _WHERE, low=0, high=1, high_open=True, fix=expected + ".")
        return (1.0 - z, 1.0 + z)
    if len(value) != 2:
        raise ValueError(message(_WHERE, expected, repr(value)))
    low, high = (check_real(v, "each zoom_range bound", _WHERE, fix=expected + ".") for v in value)
    if not 0 < low <= high:
        raise ValueError(message(_WHERE, expected, repr(value)))
    return (low, high)


def _check_nonneg(name, value):
    return check_number(value, name, _WHERE, lambda v: v >= 0, ">= 0")


class ImageDataGenerator:
    """Real-time data augmentation and normalization with Keras's options and semantics.

    Parameters
    ----------
    featurewise_center : bool
        Subtract the per-channel mean of the ``fit`` data.
    samplewise_center : bool
        Subtract each image's own mean (over H, W and C).
    featurewise_std_normalization : bool
        Divide by the per-channel standard deviation of the ``fit`` data (implies featurewise_center).
    samplewise_std_normalization : bool
        Divide each image by its own standard deviation (implies samplewise_center).
    zca_whitening : bool
        Multiply each flattened image by the ZCA matrix of the ``fit`` data
        (implies featurewise_center and replaces featurewise_std_normalization, as in Keras).
    zca_epsilon : float
        Added to the covariance's eigenvalues before the inverse square root.
    rotation_range : float
        Degrees; the angle is uniform in ``[-rotation_range, rotation_range]``.
    width_shift_range, height_shift_range : float, int or 1-D sequence
        float < 1: fraction of the width/height; float >= 1: pixels (uniform in
        ``[-r, r]``); int: whole pixels in ``(-r, r)``; sequence: a random element, random sign.
    shear_range : float
        Shear angle in degrees, uniform in ``[-shear_range, shear_range]``.
    zoom_range : float or (float, float)
        ``z`` means factors in ``[1 - z, 1 + z]``, drawn independently for both axes. As in Keras
        the factor scales the sampling grid, so a factor above 1 shrinks the content.
    horizontal_flip, vertical_flip : bool
        Flip each image with probability 1/2.
    fill_mode : {"nearest", "constant", "reflect", "wrap"}
        How points outside the image are filled by the affine transform.
    cval : float
        Fill value for ``fill_mode="constant"`` (in input units, before ``rescale``).
    rescale : float, optional
        Multiply the data by this factor (e.g. ``1/255``) before any other normalization.
    interpolation_order : int
        Spline order of the resampling (1 = bilinear, Keras's default; 0 = nearest).
    dtype : str
        Output dtype, ``"float32"`` (default) or ``"float64"``.

    Examples
    --------
    >>> datagen = ImageDataGenerator(featurewise_center=True, featurewise_std_normalization=True,
    ...                              rotation_range=20, width_shift_range=0.2,
    ...                              height_shift_range=0.2, horizontal_flip=True)
    >>> datagen.fit(x_train)                                  # doctest: +SKIP
    >>> for x_batch, y_batch in datagen.flow(x_train, y_train, batch_size=100, seed=0):
    ...     ...                                               # doctest: +SKIP
    """

    def __init__(self, featurewise_center=False, samplewise_center=False,
                 featurewise_std_normalization=False, samplewise_std_normalization=False,
                 zca_whitening=False, zca_epsilon=1e-6, rotation_range=0.0, width_shift_range=0.0,
                 height_shift_range=0.0, shear_range=0.0, zoom_range=0.0, horizontal_flip=False,
                 vertical_flip=False, fill_mode="nearest", cval=0.0, rescale=None,
                 interpolation_order=1, dtype="float32"):
        fill_mode = check_name_choice(fill_mode, sorted(_FILL_MODES), "fill_mode", _WHERE)
        if np.dtype(dtype) not in (np.float32, np.float64):
            raise ValueError(f"ImageDataGenerator expects dtype 'float32' or 'float64'; got {dtype!r}.")
        if check_int(interpolation_order, "interpolation_order (a spline order in 0..5)", _WHERE, minimum=0) > 5:
            raise ValueError(message(_WHERE, "interpolation_order in 0..5", repr(interpolation_order)))
        if rescale is not None:
            check_real(rescale, "rescale", _WHERE, fix="For example rescale=1/255, or None.")
        self.featurewise_center = bool(featurewise_center)
        self.samplewise_center = bool(samplewise_center)
        self.featurewise_std_normalization = bool(featurewise_std_normalization)
        self.samplewise_std_normalization = bool(samplewise_std_normalization)
        self.zca_whitening = bool(zca_whitening)
        self.zca_epsilon = _check_nonneg("zca_epsilon", zca_epsilon)
        self.rotation_range = _check_nonneg("rotation_range", rotation_range)
        self.width_shift_range = _check_shift("width_shift_range", width_shift_range)
        self.height_shift_range = _check_shift("height_shift_range", height_shift_range)
        self.shear_range = _check_nonneg("shear_range", shear_range)
        self.zoom_range = _check_zoom(zoom_range)
        self.horizontal_flip = bool(horizontal_flip)
        self.vertical_flip = bool(vertical_flip)
        self.fill_mode = fill_mode
        self.cval = float(cval)
        self.rescale = rescale
        self.interpolation_order = int(interpolation_order)
        self.dtype = np.dtype(dtype)
        self.mean = None                 # (1, 1, C), set by fit
        self.std = None                  # (1, 1, C)
        self.principal_components = None  # (H*W*C, H*W*C) ZCA matrix
        self._resolve_implied_options()

    def _resolve_implied_options(self):
        # The same overrides as Keras, with the same warnings.
        if self.zca_whitening:
            if not self.featurewise_center:
                self.featurewise_center = True
                warnings.warn("ImageDataGenerator: zca_whitening implies featurewise_center=True.")
            if self.featurewise_std_normalization:
                self.featurewise_std_normalization = False
                warnings.warn("ImageDataGenerator: zca_whitening replaces featurewise_std_normalization, "
                              "which is turned off.")
        if self.featurewise_std_normalization and not self.featurewise_center:
            self.featurewise_center = True
            warnings.warn("ImageDataGenerator: featurewise_std_normalization implies featurewise_center=True.")
        if self.samplewise_std_normalization and not self.samplewise_center:
            self.samplewise_center = True
            warnings.warn("ImageDataGenerator: samplewise_std_normalization implies samplewise_center=True.")

    # ------------------------------------------------------------------ statistics
    def _samplewise(self, x):
        """rescale and samplewise steps, in place on a float batch."""
        if self.rescale:
            x *= self.rescale
        if self.samplewise_center:
            x -= x.mean(axis=(1, 2, 3), keepdims=True)
        if self.samplewise_std_normalization:
            x /= x.std(axis=(1, 2, 3), keepdims=True) + _STD_EPS
        return x

    def fit(self, x, augment=False, rounds=1, seed=None):
        """Compute the featurewise statistics (mean, std, ZCA matrix) of ``x``.

        The statistics are taken after ``rescale`` and the samplewise steps, exactly as
        :meth:`standardize` will see the data, so ``standardize(x)`` is centered / scaled /
        whitened. (Keras skips the samplewise steps here; that only matters when both kinds are on.)

        Parameters
        ----------
        x : array_like (N, H, W, C)
        augment : bool
            Fit on ``rounds`` randomly transformed copies of ``x`` instead.
        rounds : int
        seed : int or numpy.random.Generator, optional
            Randomness of ``augment``.

        Returns
        -------
        self
        """
        x = np.array(_check_images(x, "ImageDataGenerator.fit"), dtype=self.dtype)  # a copy we may modify
        check_int(rounds, "rounds", "ImageDataGenerator.fit", minimum=1)
        if augment:
            rng = as_generator(seed, "ImageDataGenerator.fit")
            x = np.concatenate([self._augment(x.copy(), rng) for _ in range(rounds)])
        x = self._samplewise(x)
        if self.featurewise_center:
            self.mean = x.mean(axis=(0, 1, 2), dtype=np.float64).reshape(1, 1, -1).astype(self.dtype)
            x -= self.mean
        if self.featurewise_std_normalization:
            self.std = x.std(axis=(0, 1, 2), dtype=np.float64).reshape(1, 1, -1).astype(self.dtype)
            x /= self.std + _STD_EPS
        if self.zca_whitening:
            self.principal_components = self._zca_matrix(x.reshape(x.shape[0], -1))
        return self

    def _zca_matrix(self, flat):
        """ZCA whitening matrix ``U diag(1/sqrt(s + eps)) U^T`` of the second-moment matrix of ``flat``."""
        flat = flat.astype(np.float64)
        sigma = matmul(flat.T, flat) / flat.shape[0]
        s, u = np.linalg.eigh(sigma)  # symmetric: eigh is SVD's answer, faster and exactly symmetric
        s = np.clip(s, 0.0, None)
        return matmul(u / np.sqrt(s + self.zca_epsilon), u.T).astype(self.dtype)

    def standardize(self, x):
        """Apply the normalization steps to one image (H, W, C) or a batch (N, H, W, C).

        Returns a new ``dtype`` array; ``x`` is not modified.

        Raises
        ------
        RuntimeError
            If a featurewise option is on but :meth:`fit` was not called.
        """
        x = np.asarray(x)
        single = x.ndim == 3
        x = np.array(x[None] if single else x, dtype=self.dtype)
        _check_images(x, "ImageDataGenerator.standardize")
        x = self._standardize_batch(x)
        return x[0] if single else x

    def _standardize_batch(self, x):
        """``standardize`` of a float batch of our dtype; may work in place."""
        x = self._samplewise(x)
        needs = [(self.featurewise_center, self.mean, "featurewise_center"),
                 (self.featurewise_std_normalization, self.std, "featurewise_std_normalization"),
                 (self.zca_whitening, self.principal_components, "zca_whitening")]
        for enabled, stat, name in needs:
            if enabled and stat is None:
                raise RuntimeError(f"ImageDataGenerator has {name}=True but no statistics: "
                                   f"call datagen.fit(x_train) before flow() or standardize().")
        if self.featurewise_center:
            if x.shape[-1] != self.mean.shape[-1]:
                raise ValueError(f"ImageDataGenerator was fit on images with {self.mean.shape[-1]} channel(s); "
                                 f"got images with {x.shape[-1]}.")
            x -= self.mean
        if self.featurewise_std_normalization:
            x /= self.std + _STD_EPS
        if self.zca_whitening:
            flat = x.reshape(x.shape[0], -1)
            if flat.shape[1] != self.principal_components.shape[0]:
                raise ValueError(f"ImageDataGenerator was fit on images of {self.principal_components.shape[0]} "
                                 f"values (H*W*C) for ZCA; got images of shape {x.shape[1:]}.")
            # ops.matmul: the same bits whatever thread runs this, also while glassnet trains elsewhere
            x = matmul(flat, self.principal_components).reshape(x.shape)
        return x

    # ------------------------------------------------------------------ random transforms
    def _shift(self, value, n, size, rng):
        """Per-image shift in pixels, Keras's rules for float / int / list ranges."""
        if isinstance(value, np.ndarray):
            shift = rng.choice(value, n) * rng.choice([-1.0, 1.0], n)
            return shift * size if value.max() < 1 else shift
        if not value:
            return np.zeros(n)
        if isinstance(value, numbers.Integral):
            return rng.integers(-(value - 1), value, n, endpoint=False).astype(float) if value > 1 \
                else np.zeros(n)
        shift = rng.uniform(-value, value, n)
        return shift * size if value < 1 else shift

    def _has_affine(self):
        shifts = [self.width_shift_range, self.height_shift_range]
        return bool(self.rotation_range or self.shear_range or self.zoom_range != (1.0, 1.0)
                    or any(np.any(np.asarray(s) != 0) for s in shifts))

    def _affine_coordinates(self, n, H, W, rng):
        """Source coordinates (2, n, H, W) of every output pixel: Keras's rotation . shift . shear . zoom
        about the image centre."""
        theta = np.deg2rad(rng.uniform(-self.rotation_range, self.rotation_range, n))
        tx = self._shift(self.height_shift_range, n, H, rng)   # rows
        ty = self._shift(self.width_shift_range, n, W, rng)    # columns
        shear = np.deg2rad(rng.uniform(-self.shear_range, self.shear_range, n))
        zx, zy = rng.uniform(*self.zoom_range, (2, n)) if self.zoom_range != (1.0, 1.0) else np.ones((2, n))
        zeros, ones = np.zeros(n), np.ones(n)
        rotation = np.stack([np.stack([np.cos(theta), -np.sin(theta)], -1),
                             np.stack([np.sin(theta), np.cos(theta)], -1)], 1)
        shearing = np.stack([np.stack([ones, -np.sin(shear)], -1), np.stack([zeros, np.cos(shear)], -1)], 1)
        zoom = np.stack([np.stack([zx, zeros], -1), np.stack([zeros, zy], -1)], 1)
        linear = rotation @ shearing @ zoom                                       # (n, 2, 2)
        offset = (rotation @ np.stack([tx, ty], -1)[..., None])[..., 0]            # (n, 2)
        centre = np.array([(H - 1) / 2, (W - 1) / 2])
        grid = np.stack(np.meshgrid(np.arange(H), np.arange(W), indexing="ij")).reshape(2, -1) - centre[:, None]
        source = linear @ grid + (offset + centre)[:, :, None]                     # (n, 2, H*W)
        return source.transpose(1, 0, 2).reshape(2, n, H, W)

    def _apply_affine(self, x, rng):
        try:
            from scipy import ndimage  # lazily: only the geometric options need SciPy
        except ImportError as error:
            raise ImportError(message(
                "ImageDataGenerator", "SciPy (glassnet's data extra) for rotation, shifts, shear and zoom",
                f"SciPy could not be imported ({error})",
                'Install it with: pip install "glassnet[data]", or leave those options at 0.')) from error
        n, H, W, C = x.shape
        rows, cols = self._affine_coordinates(n, H, W, rng)
        index = np.broadcast_to(np.arange(n, dtype=float)[:, None, None], rows.shape)
        coords = np.stack([index, rows, cols])
        out = np.empty_like(x)
        options = dict(order=self.interpolation_order, mode=_FILL_MODES[self.fill_mode], cval=self.cval)
        for c in range(C):
            if self.interpolation_order <= 1:
                # One resampling of the whole batch per channel: the batch coordinate is an exact
                # integer, and linear weights at an integer are (1, 0), so images never mix.
                ndimage.map_coordinates(x[..., c], coords, output=out[..., c], **options)
            else:
                # Higher-order splines prefilter along every axis, which would mix images: go one by one.
                for i in range(n):
                    ndimage.map_coordinates(x[i, :, :, c], coords[1:, i], output=out[i, :, :, c], **options)
        return out

    def _augment(self, x, rng):
        """Random affine transform and flips of a float batch (N, H, W, C)."""
        if self._has_affine():
            x = self._apply_affine(x, rng)
        if self.horizontal_flip:
            flip = rng.random(x.shape[0]) < 0.5
            x[flip] = x[flip, :, ::-1]
        if self.vertical_flip:
            flip = rng.random(x.shape[0]) < 0.5
            x[flip] = x[flip, ::-1]
        return x

    def random_transform(self, x, seed=None):
        """Randomly transform one image (H, W, C) or a batch (N, H, W, C); no normalization.

        Parameters
        ----------
        x : array_like
        seed : int or numpy.random.Generator, optional

        Returns
        -------
        ndarray of ``dtype``, same shape as ``x``.
        """
        x = np.asarray(x)
        single = x.ndim == 3
        x = np.array(x[None] if single else x, dtype=self.dtype)
        _check_images(x, "ImageDataGenerator.random_transform")
        x = self._augment(x, as_generator(seed, "ImageDataGenerator.random_transform"))
        return x[0] if single else x

    # ------------------------------------------------------------------ iteration
    def flow(self, x, y=None, batch_size=32, shuffle=True, seed=None, sample_weight=None):
        """Iterate over augmented, normalized batches of ``(x, y)`` forever, like Keras.

        Parameters
        ----------
        x : array_like (N, H, W, C)
            Any numeric dtype (uint8 is fine); batches come out as ``dtype``.
        y : array_like (N, ...), optional
            Labels, passed through unchanged. Without ``y`` the iterator yields only ``x`` batches.
        batch_size : int
        shuffle : bool
            Reshuffle at the start of every epoch.
        seed : int or numpy.random.Generator, optional
            Seeds the shuffling and the random transforms; the same seed gives the same batches.
        sample_weight : array_like (N,), optional
            Yielded as a third element.

        Returns
        -------
        NumpyArrayIterator
            ``len()`` is the number of batches per epoch, ``ceil(N / batch_size)``; ``next()``
            gives ``(x_batch, y_batch)`` (or ``x_batch``, or ``(x, y, w)``).
        """
        return NumpyArrayIterator(self, x, y, batch_size=batch_size, shuffle=shuffle, seed=seed,
                                  sample_weight=sample_weight)


class NumpyArrayIterator:
    """Endless iterator of batches from arrays, produced by :meth:`ImageDataGenerator.flow`.

    Attributes
    ----------
    n : int
        Number of samples.
    batch_size : int
    batch_index : int
        Index of the next batch within the current epoch.
    """

    def __init__(self, generator, x, y=None, batch_size=32, shuffle=True, seed=None, sample_weight=None):
        x = _check_images(x, "ImageDataGenerator.flow")
        if x.shape[0] == 0:
            raise ValueError("ImageDataGenerator.flow expects at least one image; got 0.")
        check_int(batch_size, "batch_size", "ImageDataGenerator.flow", minimum=1)
        for name, extra in (("y", y), ("sample_weight", sample_weight)):
            if extra is not None and len(extra) != x.shape[0]:
                raise ValueError(f"ImageDataGenerator.flow expects {name} with one entry per image "
                                 f"({x.shape[0]}); got {len(extra)}.")
        self.generator = generator
        self.x = x
        self.y = None if y is None else np.asarray(y)
        self.sample_weight = None if sample_weight is None else np.asarray(sample_weight)
        self.n = x.shape[0]
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self._rng = as_generator(seed, "ImageDataGenerator.flow")
        self._order = None
        self.batch_index = 0

    def __len__(self):
        return math.ceil(self.n / self.batch_size)

    def __iter__(self):
        return self

    def reset(self):
        """Start a new epoch at the next batch."""
        self.batch_index = 0

    def __next__(self):
        if self.batch_index == 0 or self._order is None:
            self._order = self._rng.permutation(self.n) if self.shuffle else np.arange(self.n)
        start = self.batch_index * self.batch_size
        index = self._order[start:start + self.batch_size]
        self.batch_index = (self.batch_index + 1) % len(self)
        return self._batch(index)

    next = __next__

    def _batch(self, index):
        gen = self.generator
        x = self.x[index].astype(gen.dtype)  # fancy indexing: a fresh array, safe to modify in place
        x = gen._standardize_batch(gen._augment(x, self._rng))
        if self.y is None:
            return x
        if self.sample_weight is None:
            return x, self.y[index]
        return x, self.y[index], self.sample_weight[index]
