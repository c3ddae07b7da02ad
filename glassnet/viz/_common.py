"""Shared plumbing of glassnet.viz: figures without pyplot, saving, image and label normalization.

Figures are ``matplotlib.figure.Figure`` objects attached to an Agg canvas directly, so nothing
here touches pyplot's global state or the user's backend (safe in servers, threads and tests).
"""
import io
import math

import numpy as np

from glassnet.errors import describe, message

#: PNG resolution used when a figure is saved or embedded
DPI = 100


def require_matplotlib(where):
    """Import matplotlib (an optional extra) or explain how to install it."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as error:  # pragma: no cover - the dev environment has matplotlib
        raise ImportError(message(where, "matplotlib (glassnet's viz extra)", "no matplotlib installed",
                                  'Install it with: pip install "glassnet[viz]".')) from error


def new_figure(figsize, where="glassnet.viz"):
    """A Figure on its own Agg canvas, with constrained layout so labels never overlap."""
    require_matplotlib(where)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=figsize, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def finish(figure, to_file=None, dpi=DPI):
    """Save ``figure`` to ``to_file`` when given (format from the extension) and return it."""
    if to_file is not None:
        figure.savefig(to_file, dpi=dpi, facecolor="white")
    return figure


def png_bytes(figure, dpi=DPI):
    """The figure rendered as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, facecolor="white")
    return buffer.getvalue()


def grid(count, max_cols):
    """(rows, cols) of a near-square grid holding ``count`` panels, at most ``max_cols`` wide."""
    cols = max(1, min(count, max_cols))
    return math.ceil(count / cols), cols


def panels(figure, count, max_cols):
    """``count`` axes in a grid on ``figure`` (unused cells hidden), ticks off."""
    rows, cols = grid(count, max_cols)
    axes = np.atleast_1d(figure.subplots(rows, cols, squeeze=False)).ravel()
    for index, ax in enumerate(axes):
        ax.set_xticks([])
        ax.set_yticks([])
        if index >= count:
            ax.set_visible(False)
    return axes[:count]


def as_images(x, where, name="images"):
    """Images for display: (N, H, W) grayscale or (N, H, W, 3) colour, float in [0, 1] per image.

    Accepts (H, W), (H, W, C), (N, H, W) and (N, H, W, C) with C in {1, 3}. Each image is
    min-max scaled on its own, since inputs may be 0..255, 0..1 or standardized.
    """
    array = np.asarray(x)
    if not np.issubdtype(array.dtype, np.number):
        raise TypeError(message(where, f"{name} as a numeric array", describe(x)))
    array = array.astype(np.float32)
    if array.ndim == 2:
        array = array[None]
    elif array.ndim == 3 and array.shape[-1] in (1, 3) and array.shape[0] not in (1, 3):
        array = array[None]  # a single (H, W, C) image
    if array.ndim == 4 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (3, 4) or (array.ndim == 4 and array.shape[-1] != 3):
        raise ValueError(message(where, f"{name} of shape (N, H, W), (N, H, W, 1) or (N, H, W, 3)",
                                 f"shape {np.asarray(x).shape}", "Pass images in NHWC layout."))
    axes = tuple(range(1, array.ndim))
    low = array.min(axis=axes, keepdims=True)
    span = array.max(axis=axes, keepdims=True) - low
    return (array - low) / np.where(span > 0, span, 1.0)


def as_labels(y, where, name="y"):
    """Integer class labels from labels (N,) or one-hot / probabilities (N, K)."""
    array = np.asarray(y)
    if array.ndim == 2:
        return array.argmax(axis=1)
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.number):
        raise ValueError(message(where, f"{name} as labels (N,) or one-hot/probabilities (N, K)", describe(y)))
    return array.astype(np.int64)


def class_name(class_names, index):
    """The display name of class ``index``."""
    if class_names is not None and 0 <= index < len(class_names):
        return str(class_names[index])
    return str(index)


def show_image(ax, image, **kwargs):
    """Draw one display-ready image (from :func:`as_images`) in gray or colour."""
    return ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0.0, vmax=1.0,
                     interpolation="nearest", **kwargs)
