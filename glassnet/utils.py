"""Small helpers with Keras's names: ``to_categorical``, ``Progbar``, ``plot_model``."""
import numpy as np

from glassnet.progress import Progbar  # noqa: F401  (keras.utils.Progbar's place)
from glassnet.data.folder import (image_dataset_from_directory, img_to_array,  # noqa: F401  (Keras 3's
                                  load_img)                                     # places for them)


def to_categorical(y, num_classes=None, dtype="float32"):
    """One-hot encode integer class labels, like ``keras.utils.to_categorical``.

    Parameters
    ----------
    y : array_like of int
        Class indices in ``0..num_classes-1``, any shape. A trailing axis of size 1
        (labels shaped ``(N, 1)``) is dropped, as in Keras. Floats are accepted when
        they hold whole numbers.
    num_classes : int, optional
        Number of classes; default ``max(y) + 1``.
    dtype : str or numpy.dtype
        Output dtype (default float32).

    Returns
    -------
    ndarray of shape ``y.shape + (num_classes,)``
        ``out[..., k] == 1`` where ``y == k``, 0 elsewhere.

    Raises
    ------
    TypeError
        ``y`` is not numeric, or ``num_classes`` is not an int.
    ValueError
        Negative or fractional labels, labels ``>= num_classes``, ``num_classes < 1``,
        or empty ``y`` without ``num_classes``.

    Examples
    --------
    >>> to_categorical([0, 2, 1], 3)
    array([[1., 0., 0.],
           [0., 0., 1.],
           [0., 1., 0.]], dtype=float32)
    """
    labels = np.asarray(y)
    if not (np.issubdtype(labels.dtype, np.integer) or np.issubdtype(labels.dtype, np.floating)
            or labels.dtype == bool):
        raise TypeError(f"to_categorical expects integer class labels; got dtype {labels.dtype}. "
                        f"Map names to indices first, e.g. with np.unique(y, return_inverse=True).")
    if num_classes is not None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
            raise TypeError(f"to_categorical expects num_classes to be an int; got {num_classes!r}.")
        if num_classes < 1:
            raise ValueError(f"to_categorical expects num_classes >= 1; got {num_classes}.")
    if np.issubdtype(labels.dtype, np.floating):
        if not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)):
            bad = labels[~np.isfinite(labels) | (labels != np.round(labels))].ravel()[0]
            raise ValueError(f"to_categorical expects whole-number class labels; got {bad!r}. "
                             f"If these are probabilities, they are already categorical.")
    shape = labels.shape
    if len(shape) > 1 and shape[-1] == 1:
        shape = shape[:-1]
    labels = labels.astype(np.int64).ravel()
    if labels.size and labels.min() < 0:
        raise ValueError(f"to_categorical expects class labels >= 0; got {labels.min()}.")
    if num_classes is None:
        if labels.size == 0:
            raise ValueError("to_categorical cannot infer num_classes from empty labels; pass num_classes.")
        num_classes = int(labels.max()) + 1
    elif labels.size and labels.max() >= num_classes:
        raise ValueError(f"to_categorical expects labels in 0..{num_classes - 1} for num_classes={num_classes}; "
                         f"got {labels.max()}. Pass a larger num_classes or check the labels.")
    out = np.zeros((labels.size, num_classes), dtype=dtype)
    out[np.arange(labels.size), labels] = 1
    return out.reshape(shape + (num_classes,))


def plot_model(model, to_file="model.png", show_shapes=False, show_dtype=False, show_layer_names=False,
               rankdir="TB", expand_nested=False, dpi=200, show_layer_activations=False, show_trainable=False,
               **kwargs):
    """``keras.utils.plot_model`` with Keras 3's defaults: draw ``model`` and write ``to_file``.

    One box per layer (its type, with ``show_layer_names`` its name; with ``show_shapes`` its output
    shape); ``rankdir`` "TB" (top to bottom) or "LR". Drawn by :func:`glassnet.viz.plot_model`
    (graphviz when its ``dot`` is installed, else matplotlib; needs the ``viz`` extra). The
    activation is always shown in the box; ``show_dtype``, ``expand_nested``, ``dpi``,
    ``show_layer_activations`` and ``show_trainable`` are accepted for Keras scripts and change
    nothing (every glassnet model is one flat float32/float64 chain).

    Returns
    -------
    matplotlib.figure.Figure
        (Keras returns an IPython image; the file written is the same kind of picture.)
    """
    from glassnet.viz import plot_model as draw
    return draw(model, to_file=to_file, show_shapes=show_shapes, show_params=show_shapes, rankdir=rankdir,
                show_layer_names=show_layer_names, **kwargs)
