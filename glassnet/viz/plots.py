"""Training and evaluation plots: learning curves, confusion matrix, most-confused examples."""
import json
import os

import numpy as np

from glassnet.errors import describe, message
from glassnet.viz._common import (as_images, as_labels, class_name, finish, new_figure, panels,
                                  show_image)


def history_dict(history, where="plot_history", allow_empty=False):
    """``{metric: [value per epoch]}`` from a History, its ``.history`` dict, a JSON string or a JSON
    file; ``{}`` for a history of no epochs when ``allow_empty``, else an error."""
    if hasattr(history, "history"):
        history = history.history
    if isinstance(history, (str, os.PathLike)):
        text = str(history)
        if os.path.exists(text):
            with open(text, encoding="utf-8") as handle:
                text = handle.read()
        try:
            history = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(message(where, "a History, a dict, JSON text or the path of a JSON file",
                                     repr(str(history))[:120], "Pass history.history or the saved JSON.")) from error
        if isinstance(history, dict) and isinstance(history.get("history"), dict):
            history = history["history"]  # a saved {"history": {...}, "params": ...} record
    if isinstance(history, dict) and allow_empty and not any(len(values) for values in history.values()):
        return {}
    if not isinstance(history, dict) or not history:
        raise TypeError(message(where, "a non-empty {metric: [values per epoch]} mapping", describe(history)))
    return {str(key): np.asarray(values, dtype=np.float64).ravel() for key, values in history.items()}


def plot_history(history, metrics=None, to_file=None):
    """Learning curves, one panel per metric, training and validation together.

    Parameters
    ----------
    history : History, dict or str
        ``model.fit``'s History, its ``.history`` dict (``{"loss": [...], "val_loss": [...]}``),
        JSON text or the path of a JSON file holding that dict.
    metrics : list of str, optional
        Base metric names to draw (default: every key without a ``val_`` prefix).
    to_file : str or path, optional
        Save the figure there (format from the extension).

    Returns
    -------
    matplotlib.figure.Figure
    """
    curves = history_dict(history)
    names = metrics or [key for key in curves if not key.startswith("val_")] or list(curves)
    missing = [name for name in names if name not in curves and f"val_{name}" not in curves]
    if missing:
        raise ValueError(message("plot_history", f"metrics among {sorted(curves)}", repr(missing)))
    figure = new_figure((4.2 * len(names), 3.2), "plot_history")
    from matplotlib.ticker import MaxNLocator
    axes = np.atleast_1d(figure.subplots(1, len(names), squeeze=False)).ravel()
    for ax, name in zip(axes, names):
        for key, label, style in ((name, "training", "-o"), (f"val_{name}", "validation", "--s")):
            if key in curves:
                epochs = np.arange(1, len(curves[key]) + 1)
                ax.plot(epochs, curves[key], style, markersize=3, label=label)
        ax.set_title(name.replace("_", " "))
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return finish(figure, to_file)


def confusion_matrix(y_true, y_pred, num_classes=None):
    """Counts ``C[i, j]`` of examples of true class i predicted as j.

    ``y_true`` / ``y_pred`` are labels (N,) or one-hot / probabilities (N, K).
    """
    true = as_labels(y_true, "confusion_matrix", "y_true")
    pred = as_labels(y_pred, "confusion_matrix", "y_pred")
    if true.shape != pred.shape:
        raise ValueError(message("confusion_matrix", "y_true and y_pred with the same number of examples",
                                 f"{true.shape[0]} and {pred.shape[0]}"))
    if num_classes is None:
        num_classes = int(max(true.max(initial=-1), pred.max(initial=-1)) + 1)
        for y in (y_pred, y_true):
            if np.ndim(y) == 2:
                num_classes = max(num_classes, np.shape(y)[1])
    counts = np.bincount(true * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def plot_confusion_matrix(y_true, y_pred, class_names=None, normalize=False, to_file=None):
    """Confusion matrix heatmap with the count (or row fraction) written in every cell.

    Parameters
    ----------
    y_true, y_pred : array (N,) labels or (N, K) one-hot / probabilities
    class_names : sequence of str, optional
    normalize : bool
        Show each row as fractions of that true class (recall on the diagonal).
    to_file : str or path, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    counts = confusion_matrix(y_true, y_pred, None if class_names is None else len(class_names))
    K = counts.shape[0]
    values = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1) if normalize else counts
    size = 2.5 + 0.45 * K
    figure = new_figure((size + 1.0, size), "plot_confusion_matrix")
    ax = figure.subplots()
    image = ax.imshow(values, cmap="Blues", vmin=0)
    bar = figure.colorbar(image, ax=ax, shrink=0.8, label="fraction of true class" if normalize else "count")
    if not normalize:
        from matplotlib.ticker import MaxNLocator
        bar.locator = MaxNLocator(integer=True)
        bar.update_ticks()
    labels = [class_name(class_names, k) for k in range(K)]
    ax.set_xticks(range(K), labels, rotation=45 if class_names is not None else 0, ha="right"
                  if class_names is not None else "center", fontsize="small")
    ax.set_yticks(range(K), labels, fontsize="small")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    accuracy = np.trace(counts) / max(counts.sum(), 1)
    ax.set_title(f"confusion matrix (accuracy {accuracy:.1%}, {counts.sum():,} examples)", fontsize="medium")
    threshold = values.max() / 2 if values.size else 0
    font = max(6, 12 - K // 3)
    for i in range(K):
        for j in range(K):
            text = f"{values[i, j]:.2f}" if normalize else f"{values[i, j]:d}"
            ax.text(j, i, text, ha="center", va="center", fontsize=font,
                    color="white" if values[i, j] > threshold else "black")
    return finish(figure, to_file)


def most_confused(y_true, probs, n=16):
    """Indices of the ``n`` wrongly classified examples with the most confident wrong prediction."""
    true = as_labels(y_true, "most_confused", "y_true")
    probs = np.asarray(probs)
    if probs.ndim != 2 or probs.shape[0] != true.shape[0]:
        raise ValueError(message("most_confused", f"probs of shape ({true.shape[0]}, K)", describe(probs),
                                 "Pass model.predict(x)."))
    pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(pred != true)
    order = np.argsort(-probs[wrong, pred[wrong]], kind="stable")
    return wrong[order[:n]]


def plot_most_confused(x, y_true, probs, class_names=None, n=16, max_cols=8, to_file=None):
    """The test images the model got wrong most confidently, titled ``true -> predicted (p)``.

    Parameters
    ----------
    x : array (N, H, W[, C])
        Images (any scale; each is min-max scaled for display).
    y_true : array (N,) labels or (N, K) one-hot
    probs : array (N, K)
        Predicted probabilities, e.g. ``model.predict(x)``.
    class_names : sequence of str, optional
    n : int
        How many examples at most.
    to_file : str or path, optional

    Returns
    -------
    matplotlib.figure.Figure
        When nothing is misclassified the figure says so.
    """
    indices = most_confused(y_true, probs, n)
    true = as_labels(y_true, "plot_most_confused", "y_true")
    probs = np.asarray(probs)
    if len(indices) == 0:
        figure = new_figure((4, 1.2), "plot_most_confused")
        figure.text(0.5, 0.5, "no misclassified examples", ha="center", va="center")
        return finish(figure, to_file)
    images = as_images(np.asarray(x)[indices], "plot_most_confused", "x")
    cols = min(len(indices), max_cols)
    rows = -(-len(indices) // cols)
    figure = new_figure((1.45 * cols, 1.65 * rows + 0.3), "plot_most_confused")
    for ax, index, image in zip(panels(figure, len(indices), max_cols), indices, images):
        show_image(ax, image)
        pred = int(probs[index].argmax())
        ax.set_title(f"#{index}: {class_name(class_names, true[index])}\n→ {class_name(class_names, pred)} "
                     f"({probs[index, pred]:.0%})", fontsize=7, color="firebrick")
    figure.suptitle("most confidently misclassified (true → predicted)", fontsize="medium")
    return finish(figure, to_file)
