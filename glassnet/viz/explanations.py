"""One explanation of one image, drawn: the method registry shared by the report and the CLI.

Every method here is a thin call into :mod:`glassnet.explain` (nothing is re-implemented); the
registry only fixes how each is called for a picture: which options, which title.
"""
import os
from typing import Callable, NamedTuple

import numpy as np

from glassnet.errors import message
from glassnet.explain.similarity import blank_maps
from glassnet.validation import check_name_choice
from glassnet.viz._common import as_images, class_name, finish, new_figure, show_image
from glassnet.viz.images import _mappable, color_scale, overlay_rgb


class Method(NamedTuple):
    """An explanation method as pictured: key, heading, one-line description, how to compute it."""
    key: str
    title: str
    description: str
    compute: Callable  # (model, x, target) -> maps (N, H, W) or (N, H, W, C)


def _occlusion_window(model):
    """Occluding patch of about 1/7 of the image side (4 pixels on 28x28, as in seed 000)."""
    return max(1, round(min(model.input_shape[1:3]) / 7))


def _gradients(modifier):
    def compute(model, x, target):
        from glassnet import explain
        return explain.input_gradients(model, x, target, modifier=modifier)
    return compute


def _call(name, **options):
    def compute(model, x, target):
        from glassnet import explain
        resolved = {key: value(model) if callable(value) else value for key, value in options.items()}
        return getattr(explain, name)(model, x, target, **resolved)
    return compute


#: every pictured method, by key, in the report's column order (the first seven are its default)
METHODS = {method.key: method for method in (
    Method("saliency", "saliency (vanilla)", "gradient of the score", _gradients(None)),
    Method("guided", "saliency (guided)", "guided backprop", _gradients("guided")),
    Method("rectified", "saliency (rectified)", "deconvnet ReLU rule", _gradients("rectified")),
    Method("grad_cam", "Grad-CAM", "last conv layer", _call("grad_cam")),
    Method("guided_grad_cam", "guided Grad-CAM", "guided backprop × Grad-CAM", _call("guided_grad_cam")),
    Method("occlusion", "occlusion", "score drop when a patch is hidden", _call("occlusion", window=_occlusion_window)),
    Method("integrated_gradients", "integrated gradients", "path integral from a black image",
           _call("integrated_gradients")),
    Method("grad_cam_plus_plus", "Grad-CAM++", "second-order Grad-CAM weights", _call("grad_cam_plus_plus")),
    Method("smooth_grad", "SmoothGrad", "gradients averaged over noisy copies", _call("smooth_grad", seed=0)),
    Method("cam", "CAM", "GlobalAveragePooling2D → Dense weights", _call("cam")),
)}
#: methods that need a convolutional feature map
NEEDS_CONV = {"grad_cam", "guided_grad_cam", "grad_cam_plus_plus", "cam"}


def get_method(key, where="viz"):
    """The :class:`Method` named ``key``: TypeError for a non-string, ValueError for an unknown name."""
    return METHODS[check_name_choice(key, list(METHODS), "method", where)]


def plot_explanation(model, image, method="grad_cam", target=None, class_names=None, label=None, to_file=None,
                     on_warning=None):
    """One image and one explanation of it side by side, the map overlaid with its colorbar.

    Parameters
    ----------
    model : Sequential
    image : array (H, W, C) or (1, H, W, C)
        Preprocessed as the model expects.
    method : str
        A key of :data:`METHODS` (``"grad_cam"``, ``"saliency"``, ``"guided"``, ``"occlusion"``, ...).
    target : int, optional
        Class to explain (default: the predicted one).
    class_names : sequence of str, optional
    label : int, optional
        The true class, shown when known.
    to_file : str or path, optional
    on_warning : callable, optional
        Receives a one-line warning when the map is blank (constant, e.g. an all-zero Grad-CAM):
        such a map carries no evidence, and its panel says so instead of drawing a colorbar.

    Returns
    -------
    matplotlib.figure.Figure
    """
    chosen = get_method(method, "plot_explanation")
    x = np.asarray(image)
    x = x[None] if x.ndim == len(model.input_shape) - 1 else x
    x = model.check_x(x, "plot_explanation")
    if len(x) != 1:
        raise ValueError(message("plot_explanation", "one image", f"{len(x)} images", "Pass x[i]."))
    probs = model.predict(x)[0]
    predicted = int(probs.argmax())
    target = predicted if target is None else int(target)
    maps = np.asarray(chosen.compute(model, x, target))[0]
    maps = maps.sum(axis=-1) if maps.ndim == 3 else maps  # channels summed, sign kept
    shown = as_images(x, "plot_explanation")[0]
    figure = new_figure((6.2, 3.5), "plot_explanation")
    left, right = figure.subplots(1, 2)
    for ax in (left, right):
        ax.set_xticks([])
        ax.set_yticks([])
    show_image(left, shown)
    caption = f"predicted {class_name(class_names, predicted)} ({probs[predicted]:.0%})"
    if label is not None:
        caption = f"true {class_name(class_names, int(label))}, " + caption
    left.set_title(caption, fontsize=9)
    name, norm, signed = color_scale(maps)
    right.imshow(overlay_rgb(shown, maps, name, norm), interpolation="nearest")
    right.set_title(f"{chosen.title} for {class_name(class_names, target)}", fontsize=9)
    if blank_maps(maps[None])[0]:
        text = f"blank {chosen.title} map (every pixel {float(maps.flat[0]):.3g}): no evidence"
        right.set_xlabel(text, fontsize=8, color="firebrick")
        if on_warning is not None:
            on_warning(f"the {chosen.title} map for class {class_name(class_names, target)} is blank (every pixel "
                       f"{float(maps.flat[0]):.3g}): it carries no evidence; try another method or layer")
        return finish(figure, to_file)
    bar = figure.colorbar(_mappable(name, norm), ax=right, shrink=0.85)
    bar.set_label("lowers the score (−) / raises it (+)" if signed else "evidence for the class", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    return finish(figure, to_file)


def load_image(path, input_shape):
    """Read an image file and shape it for a model: (H, W, C) float32 in [0, 1].

    Pillow (in the viz extra) decodes it; it is converted to grayscale ("L") or RGB to match the
    model's channels and resized to (H, W) with Lanczos resampling. Like MNIST, the networks here
    expect a light object on a dark background; invert your image first if it is dark on light.

    Parameters
    ----------
    path : str or path
        PNG, JPEG, BMP, GIF, ... (anything Pillow opens).
    input_shape : tuple
        The model's per-example input shape, e.g. ``model.input_shape[1:]`` = (28, 28, 1).
    """
    where = "viz.load_image"
    shape = tuple(input_shape)
    if len(shape) != 3 or shape[-1] not in (1, 3):
        raise ValueError(message(where, "a model on images (H, W, 1) or (H, W, 3)", f"input shape {shape}"))
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError as error:
        raise ImportError(message(where, "Pillow to read image files", "no Pillow installed",
                                  'Install it with: pip install "glassnet[viz]".')) from error
    if not os.path.isfile(path):
        raise ValueError(message(where, "an existing image file", repr(os.fspath(path))))
    try:
        with Image.open(path) as opened:
            picture = opened.convert("L" if shape[-1] == 1 else "RGB")
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(message(where, "an image file Pillow can read (PNG, JPEG, BMP, GIF, ...)",
                                 f"{os.fspath(path)!r} ({type(error).__name__})")) from error
    height, width = shape[:2]
    picture = picture.resize((width, height), Image.LANCZOS)
    pixels = np.asarray(picture, dtype=np.float32) / 255.0
    return pixels.reshape(shape)


__all__ = ["METHODS", "Method", "NEEDS_CONV", "get_method", "plot_explanation", "load_image"]
