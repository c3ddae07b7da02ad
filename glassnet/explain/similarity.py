"""How alike two saliency maps are: the measures of Adebayo et al. (2018), "Sanity Checks for Saliency Maps".

Every function compares maps image by image: ``a`` and ``b`` are (N, H, W) arrays (one 2-D map
per image) and the result is one number per image (N,).

- :func:`rank_correlation`: Spearman's rank correlation (the paper's main measure, taken both on
  the absolute values and on the signed maps).
- :func:`ssim`: the structural similarity index (Wang et al., 2004) of the maps scaled to [0, 1].
- :func:`hog_similarity`: the Pearson correlation of the maps' histograms of oriented gradients
  (Dalal & Triggs, 2005), which compares where the edges are and which way they run.
- :func:`blank_maps`: maps that hold no evidence at all (constant, e.g. an all-zero Grad-CAM).

:func:`similarities` computes all four measures at once, as :func:`glassnet.explain.sanity_check`
reports them.
"""
import numpy as np

from glassnet.errors import describe, message

#: the measures :func:`similarities` returns, in the paper's order
MEASURES = ("spearman_abs", "spearman", "ssim", "hog")


def _pair(a, b, where, rank=None):
    """a and b as float64 arrays of one shape (N, ...), ``rank`` dimensions when given."""
    a, b = np.asarray(a), np.asarray(b)
    for array in (a, b):
        if array.dtype == object or not np.issubdtype(array.dtype, np.number):
            raise TypeError(message(where, "maps as numeric arrays", describe(array)))
    expected = "two arrays of the same shape (N, ...)" if rank is None else "two arrays of the same shape (N, H, W)"
    if a.shape != b.shape or a.ndim < 1 or (rank is not None and a.ndim != rank):
        raise ValueError(message(where, expected, f"shapes {a.shape} and {b.shape}",
                                 "Compare one 2-D map per image (sum the channels first)."))
    return a.astype(np.float64), b.astype(np.float64)


def blank_maps(maps):
    """Which maps are blank: constant over the whole map (all zero included) or not finite.

    A constant map ranks every pixel equally: it carries no evidence about the model, so no
    similarity measure can say whether it changed.

    Parameters
    ----------
    maps : array_like (N, ...)

    Returns
    -------
    ndarray of bool (N,)
    """
    flat = np.asarray(maps, dtype=np.float64)
    flat = flat.reshape(len(flat), -1)
    finite = np.isfinite(flat).all(axis=1)
    safe = np.where(np.isfinite(flat), flat, 0.0)
    spread = safe.max(axis=1) - safe.min(axis=1)
    # relative to the map's magnitude: rounding noise on a constant map is still a constant map
    scale = np.abs(safe).max(axis=1)
    return ~finite | (spread <= 64 * np.finfo(np.float64).eps * scale)


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


def _pearson_rows(a, b):
    """Pearson correlation of each row pair; 0 where a row is constant (no ordering to compare)."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    norm = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    return np.where(norm > 0, (a * b).sum(axis=1) / np.where(norm > 0, norm, 1), 0.0)


def rank_correlation(a, b):
    """Spearman's rank correlation of each row of a and b (flattened after the first axis).

    Parameters
    ----------
    a, b : array_like (N, ...)

    Returns
    -------
    ndarray (N,)
        Pearson correlation of the (tie-averaged) ranks; 0 where either map is constant, since a
        constant map carries no ordering (:func:`blank_maps` finds those maps).
    """
    a, b = _pair(a, b, "explain.rank_correlation")
    return _pearson_rows(rank(a.reshape(len(a), -1)), rank(b.reshape(len(b), -1)))


def scale_to_unit(maps):
    """Each map min-max scaled to [0, 1] (a constant map becomes all zeros)."""
    maps = np.asarray(maps, dtype=np.float64)
    axes = tuple(range(1, maps.ndim))
    low = maps.min(axis=axes, keepdims=True)
    span = maps.max(axis=axes, keepdims=True) - low
    return (maps - low) / np.where(span > 0, span, 1.0)


def box_mean(maps, size):
    """Mean over every ``size`` x ``size`` window that fits inside each map (N, H, W) -> (N, H-s+1, W-s+1)."""
    # integral image: S[i, j] = sum of maps[:i, :j]; a window's sum is four lookups
    padded = np.zeros((maps.shape[0], maps.shape[1] + 1, maps.shape[2] + 1))
    padded[:, 1:, 1:] = maps.cumsum(axis=1).cumsum(axis=2)
    s = size
    sums = padded[:, s:, s:] - padded[:, :-s, s:] - padded[:, s:, :-s] + padded[:, :-s, :-s]
    return sums / (s * s)


def ssim(a, b, window=7):
    """Mean structural similarity of each pair of maps, both scaled to [0, 1] first.

    ``SSIM = (2 mu_a mu_b + C1)(2 s_ab + C2) / ((mu_a^2 + mu_b^2 + C1)(s_a^2 + s_b^2 + C2))`` in
    every ``window`` x ``window`` patch that fits in the map (uniform weights, sample
    covariances, ``C1 = 0.01^2``, ``C2 = 0.03^2`` for a data range of 1), averaged over the
    patches: scikit-image's ``structural_similarity(data_range=1)`` on the interior patches.

    Parameters
    ----------
    a, b : array_like (N, H, W)
    window : int
        Side of the square patch (odd; smaller maps use their smaller side).

    Returns
    -------
    ndarray (N,)
        1 for identical maps; near 0 for unrelated ones.
    """
    a, b = _pair(a, b, "explain.ssim", rank=3)
    a, b = scale_to_unit(a), scale_to_unit(b)
    size = max(1, min(int(window), a.shape[1], a.shape[2]))
    count = size * size
    correction = count / (count - 1) if count > 1 else 1.0     # sample (n - 1) covariances
    mu_a, mu_b = box_mean(a, size), box_mean(b, size)
    var_a = (box_mean(a * a, size) - mu_a * mu_a) * correction
    var_b = (box_mean(b * b, size) - mu_b * mu_b) * correction
    cov = (box_mean(a * b, size) - mu_a * mu_b) * correction
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    index = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return index.mean(axis=(1, 2))


def hog_features(maps, orientations=9, cell=None, block=2):
    """Histograms of oriented gradients of maps (N, H, W), one flat feature vector per map.

    Gradients by central differences (zero on the border rows and columns), unsigned orientation
    in [0, 180) degrees split into ``orientations`` equal bins; each ``cell`` x ``cell`` cell sums
    the gradient magnitudes per bin, divided by the cell's area; every ``block`` x ``block`` group
    of neighbouring cells (stride one cell) is L2-normalized. This is scikit-image's
    ``hog(..., block_norm="L2")``.

    Parameters
    ----------
    maps : array_like (N, H, W)
    orientations : int
    cell : int, optional
        Cell side in pixels; default a seventh of the shorter side (4 on 28 x 28), at least 2.
    block : int
        Cells per block side.

    Returns
    -------
    ndarray (N, features)
    """
    maps = np.asarray(maps, dtype=np.float64)
    N, H, W = maps.shape
    cell = max(2, min(H, W) // 7) if cell is None else int(cell)
    rows, cols = H // cell, W // cell
    block = max(1, min(block, rows, cols))
    g_row = np.zeros_like(maps)
    g_col = np.zeros_like(maps)
    g_row[:, 1:-1] = maps[:, 2:] - maps[:, :-2]
    g_col[:, :, 1:-1] = maps[:, :, 2:] - maps[:, :, :-2]
    magnitude = np.hypot(g_row, g_col)
    angle = np.rad2deg(np.arctan2(g_row, g_col)) % 180
    bins = np.minimum((angle / (180 / orientations)).astype(np.int64), orientations - 1)
    # cell histograms: magnitudes summed per (cell row, cell col, bin)
    used = (slice(None), slice(0, rows * cell), slice(0, cols * cell))
    cell_of = (np.arange(rows * cell) // cell)[:, None] * cols + (np.arange(cols * cell) // cell)[None, :]
    keys = (np.arange(N)[:, None, None] * rows * cols + cell_of[None]) * orientations + bins[used]
    histograms = np.bincount(keys.ravel(), weights=magnitude[used].ravel(), minlength=N * rows * cols * orientations)
    histograms = histograms.reshape(N, rows, cols, orientations) / (cell * cell)
    blocks = np.stack([histograms[:, i:i + rows - block + 1, j:j + cols - block + 1]
                       for i in range(block) for j in range(block)], axis=3)      # (N, br, bc, block^2, bins)
    blocks = blocks.reshape(N, rows - block + 1, cols - block + 1, -1)
    norms = np.sqrt((blocks * blocks).sum(axis=-1, keepdims=True) + 1e-10)     # eps = 1e-5, squared
    return (blocks / norms).reshape(N, -1)


def hog_similarity(a, b, orientations=9, cell=None):
    """Pearson correlation of the HOG features (:func:`hog_features`) of each pair of maps.

    Parameters
    ----------
    a, b : array_like (N, H, W)
    orientations, cell
        As in :func:`hog_features`.

    Returns
    -------
    ndarray (N,)
        0 where a map has no gradient at all.
    """
    a, b = _pair(a, b, "explain.hog_similarity", rank=3)
    return _pearson_rows(hog_features(a, orientations, cell), hog_features(b, orientations, cell))


def similarities(reference, maps):
    """The four measures of each map against its reference, as :data:`MEASURES` names them.

    Parameters
    ----------
    reference, maps : array_like (N, H, W)
        Signed 2-D maps (channels already summed).

    Returns
    -------
    dict of str -> ndarray (N,)
        ``spearman_abs`` (on absolute values), ``spearman`` (signed), ``ssim`` and ``hog`` (both
        on absolute values, scaled to [0, 1]).
    """
    reference, maps = _pair(reference, maps, "explain.similarities", rank=3)
    absolute_reference, absolute_maps = np.abs(reference), np.abs(maps)
    return {"spearman_abs": rank_correlation(absolute_reference, absolute_maps),
            "spearman": rank_correlation(reference, maps),
            "ssim": ssim(absolute_reference, absolute_maps),
            "hog": hog_similarity(absolute_reference, absolute_maps)}
