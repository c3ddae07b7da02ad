"""Occlusion sensitivity (Zeiler & Fergus, 2014): how much the score drops when a patch is hidden."""
import numpy as np

from glassnet.errors import message
from glassnet.explain.backprop import (check_baseline, check_images, check_score, check_target, chunk_size,
                                       chunks, forward_pass, target_scores)
from glassnet.explain.batching import in_batches
from glassnet.layers.base import positive_pair


def window_positions(size, window, stride):
    """Start offsets of windows along one axis: every ``stride`` pixels, plus one flush with the end
    when the stride would leave the last pixels uncovered."""
    starts = list(range(0, size - window + 1, stride))
    if starts[-1] + window < size:
        starts.append(size - window)
    return starts


def window_corners(shape, window, stride):
    """Top-left corners (P, 2) of the window positions, row-major over the positions."""
    tops = window_positions(shape[0], window[0], stride[0])
    lefts = window_positions(shape[1], window[1], stride[1])
    return np.array([(top, left) for top in tops for left in lefts], dtype=np.intp)


def corner_masks(corners, shape, window):
    """Boolean masks (B, H, W) for a few window corners, built by broadcasting row and column tests.

    Only a chunk's masks ever exist at once, so memory does not grow with (H * W) ** 2.
    """
    rows = np.arange(shape[0])
    cols = np.arange(shape[1])
    in_rows = (rows >= corners[:, :1]) & (rows < corners[:, :1] + window[0])
    in_cols = (cols >= corners[:, 1:]) & (cols < corners[:, 1:] + window[1])
    return in_rows[:, :, None] & in_cols[:, None, :]


@in_batches
def occlusion(model, images, target=None, window=4, stride=None, baseline=0.0, score="logits"):
    """Occlusion map: drop in the target score when a window is replaced by ``baseline``.

    Each pixel gets the mean drop ``S(x) - S(x with the window occluded)`` over the windows that
    cover it. All channels of a window are occluded together. Occluded copies are evaluated in
    batches bounded by :data:`glassnet.explain.backprop.MEMORY_BUDGET`.

    Parameters
    ----------
    model : Sequential
    images : array_like (N, H, W, C)
    target : None, int or array_like (N,)
        Class to explain (None: the predicted class of the unoccluded image).
    window : int or (WH, WW)
        Occluding patch size.
    stride : int or (SH, SW), optional
        Step between windows, at most ``window``; default ``window`` (non-overlapping, as in
        seed 000). A last window flush with the border is added when the stride would leave the
        last pixels uncovered.
    baseline : float, array (H, W, C) or (N, H, W, C)
        What fills an occluded window (seed 000 used grey 0.5).
    score : {"logits", "probability"}
    batch_size : int
        Images per batch, each explained alone (default 128): the result does not depend on how
        the images are split, as long as the splits are multiples of it (see :mod:`glassnet.explain.batching`).

    Returns
    -------
    ndarray (N, H, W)
        Positive where hiding the pixel lowers the score.
    """
    where = "explain.occlusion"
    x = check_images(model, images, where)
    if x.ndim != 4:
        raise ValueError(message(where, "a model on images (N, H, W, C)", f"input shape {x.shape}"))
    score = check_score(score, where)
    target = check_target(model, target, len(x), where)
    window = positive_pair(window, "window", where)
    stride = window if stride is None else positive_pair(stride, "stride", where)
    H, W = x.shape[1:3]
    if window[0] > H or window[1] > W:
        raise ValueError(message(where, f"a window no larger than the image ({H}, {W})", f"window {window}"))
    if stride[0] > window[0] or stride[1] > window[1]:
        raise ValueError(message(where, f"a stride no larger than the window {window}, so that every pixel "
                                 "is covered", f"stride {stride}"))
    base = check_baseline(baseline, x, where)
    corners = window_corners((H, W), window, stride)
    P = len(corners)
    clean, target = target_scores(model, x, target, score)
    drops = np.empty((len(x), P), dtype=np.float64)
    # the N * P occluded copies, flattened image-major, evaluated a chunk at a time
    for part in chunks(len(x) * P, chunk_size(model)):
        flat = np.arange(part.start, part.stop)
        n, p = flat // P, flat % P
        batch = np.where(corner_masks(corners[p], (H, W), window)[..., None], base[n], x[n])
        scores = forward_pass(model, batch, score == "logits")[0]
        drops[n, p] = clean[n] - scores[np.arange(len(flat)), target[n]]
    # each pixel: mean drop over the windows covering it (a loop over window positions, not pixels)
    maps = np.zeros((len(x), H, W), dtype=np.float64)
    coverage = np.zeros((H, W), dtype=np.float64)
    for p, (top, left) in enumerate(corners):
        maps[:, top:top + window[0], left:left + window[1]] += drops[:, p, None, None]
        coverage[top:top + window[0], left:left + window[1]] += 1
    return (maps / coverage).astype(x.dtype)
