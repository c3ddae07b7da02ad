"""Pictures of what a network computes: filters, feature maps, heatmap overlays, activation maximization.

Signed quantities (weights, gradients, attributions) are drawn with a diverging colormap centred on
zero, so red means "raises the score" and blue "lowers it"; non-negative ones (Grad-CAM, ReLU
activations) with a sequential map starting at zero. Every panel that shows values gets a colorbar.

The functions take either a model (and then call :mod:`glassnet.explain` for the numbers) or the
arrays themselves, so a report can compute once and draw many times.
"""
import numpy as np

from glassnet.errors import describe, message
from glassnet.validation import check_int
from glassnet.viz._common import as_images, class_name, finish, grid, new_figure, panels, show_image

#: colormaps: signed maps (diverging, white at 0) and non-negative ones (sequential, pale at 0)
SIGNED_CMAP = "RdBu_r"
UNSIGNED_CMAP = "YlOrRd"


def _is_model(value):
    return hasattr(value, "layers") and hasattr(value, "forward")


def _explain():
    from glassnet import explain
    return explain


def color_scale(values, signed=None, cmap=None):
    """(colormap name, matplotlib Normalize, signed) for drawing ``values``.

    ``signed=None`` decides from the data: any value below zero (beyond rounding) makes the map
    signed. Signed maps get limits ``[-m, m]`` with ``m = max |values|`` so zero stays white.
    """
    from matplotlib.colors import Normalize

    values = np.asarray(values, dtype=np.float64)
    peak = float(np.max(np.abs(values))) if values.size else 0.0
    if signed is None:
        signed = bool(values.size) and float(values.min()) < -1e-6 * max(peak, 1e-30)
    peak = peak if peak > 0 else 1.0
    if signed:
        return cmap or SIGNED_CMAP, Normalize(-peak, peak), True
    return cmap or UNSIGNED_CMAP, Normalize(min(0.0, float(values.min(initial=0.0))), peak), False


def _as_maps(heatmaps, where):
    """Heatmaps as (N, h, w): channels of (N, H, W, C) are summed (signed), a single (h, w) gets N=1."""
    array = np.asarray(heatmaps, dtype=np.float64)
    if array.ndim == 2:
        array = array[None]
    elif array.ndim == 4:
        array = array.sum(axis=-1)
    if array.ndim != 3:
        raise ValueError(message(where, "heatmaps of shape (N, H, W), (N, H, W, C) or (H, W)", describe(heatmaps)))
    return array


def _resize_nearest(array, shape):
    """Stretch a (h, w) map over (H, W) by nearest neighbour (a coarse map covers the whole image)."""
    h, w = array.shape
    H, W = shape
    if (h, w) == (H, W):
        return array
    return array[(np.arange(H) * h) // H][:, (np.arange(W) * w) // W]


def overlay_rgb(image, heatmap, cmap, norm, alpha=0.85):
    """Composite ``heatmap`` over a display-ready ``image`` (from ``as_images``): (H, W, 3) in [0, 1].

    The image is shown in dimmed gray (dark pixels lifted, bright ones lowered) so colour shows on
    both; the heatmap's
    opacity grows with its distance from zero (or from ``norm.vmin`` when unsigned), so a zero
    value leaves the image visible and the sign shows as colour.
    """
    from matplotlib import colormaps

    gray = image if image.ndim == 2 else image.mean(axis=-1)
    heatmap = _resize_nearest(np.asarray(heatmap, dtype=np.float64), gray.shape)
    low, high = norm.vmin, norm.vmax
    centre = 0.0 if low < 0 < high else low
    strength = np.clip(np.abs(heatmap - centre) / max(high - centre, centre - low, 1e-30), 0.0, 1.0)
    # signed maps (gradients) are sparse and spiky: gamma < 1 keeps weak evidence visible; smooth
    # non-negative ones (Grad-CAM) stay linear so their low plateau does not tint the whole image
    opacity = (alpha * strength ** (0.7 if centre == 0.0 and low < 0 else 1.0))[..., None]
    colour = colormaps[cmap](np.clip(norm(heatmap), 0.0, 1.0))[..., :3]
    base = (0.12 + 0.6 * gray)[..., None]
    return (1 - opacity) * base + opacity * colour


def _mappable(cmap, norm):
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    return ScalarMappable(norm=norm, cmap=colormaps[cmap])


def plot_heatmaps(images, heatmaps, titles=None, signed=None, cmap=None, alpha=0.85, overlay=True,
                  max_cols=8, panel_size=1.9, suptitle=None, to_file=None):
    """Heatmaps over their images, each panel with its own colorbar.

    Parameters
    ----------
    images : array (N, H, W[, C]) or (H, W[, C])
        The inputs the heatmaps explain (any scale).
    heatmaps : array (N, h, w), (N, h, w, C) or (h, w)
        One map per image, e.g. from :func:`glassnet.explain.grad_cam`; channels are summed, keeping
        the sign. A coarser map is stretched over the image.
    titles : list of str, optional
    signed : bool, optional
        Force a diverging (True) or sequential (False) colormap; by default signed maps (with values
        below zero) get the diverging one, centred at zero.
    cmap : str, optional
        A matplotlib colormap name overriding the default.
    alpha : float
        Opacity of the strongest heatmap value over the image.
    overlay : bool
        Draw the map over the image (True) or alone (False).
    max_cols : int
    panel_size : float
        Width of one panel in inches.
    suptitle : str, optional
    to_file : str or path, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    maps = _as_maps(heatmaps, "plot_heatmaps")
    shown = as_images(images, "plot_heatmaps", "images")
    if len(shown) != len(maps):
        raise ValueError(message("plot_heatmaps", "one heatmap per image", f"{len(shown)} images and "
                                 f"{len(maps)} heatmaps"))
    if titles is not None and len(titles) != len(maps):
        raise ValueError(message("plot_heatmaps", f"{len(maps)} titles", f"{len(titles)}"))
    rows, cols = grid(len(maps), max_cols)
    figure = new_figure((panel_size * cols, (panel_size * 1.22 + (0.2 if titles else 0)) * rows
                         + (0.3 if suptitle else 0)), "plot_heatmaps")
    for index, ax in enumerate(panels(figure, len(maps), max_cols)):
        name, norm, _ = color_scale(maps[index], signed, cmap)
        if overlay:
            ax.imshow(overlay_rgb(shown[index], maps[index], name, norm, alpha), interpolation="nearest")
        else:
            ax.imshow(maps[index], cmap=name, norm=norm, interpolation="nearest")
        mappable = _mappable(name, norm)
        bar = figure.colorbar(mappable, ax=ax, orientation="horizontal", fraction=0.07, pad=0.03, aspect=14)
        bar.ax.tick_params(labelsize=6)
        bar.ax.xaxis.get_offset_text().set_fontsize(6)
        if titles is not None:
            ax.set_title(titles[index], fontsize=8)
    if suptitle:
        figure.suptitle(suptitle, fontsize="medium")
    return finish(figure, to_file)


def _default_conv_layer(model, where):
    """The first layer with a 4-D kernel (Conv2D)."""
    for layer in model.layers:
        kernel = getattr(layer, "params", {}).get("kernel")
        if kernel is not None and np.ndim(kernel) == 4:
            return layer
    raise ValueError(message(where, "a model with a Conv2D layer (or an explicit layer=...)",
                             f"layers {[type(layer).__name__ for layer in model.layers]}"))


def _value_grid(figure, arrays, titles, max_cols, signed=None, label=None, lead_image=None, sequential=None):
    """Many (h, w) or (h, w, 3) arrays on one shared colour scale with one colorbar.

    ``lead_image`` (display-ready, from :func:`as_images`) takes the first cell, titled "input".
    ``sequential`` overrides the colormap used when the values are non-negative.
    """
    axes = panels(figure, len(arrays) + (lead_image is not None), max_cols)
    if lead_image is not None:
        show_image(axes[0], lead_image)
        axes[0].set_title("input", fontsize=7, fontweight="bold")
    gray = [array for array in arrays if array.ndim == 2]
    name, norm, is_signed = color_scale(np.stack(gray) if gray else np.zeros(1), signed)
    name = sequential if sequential and not is_signed else name
    mappable = None
    for ax, array, title in zip(axes[lead_image is not None:], arrays, titles):
        if array.ndim == 3:  # RGB filters: min-max scaled colour
            show_image(ax, as_images(array[None], "plot_filters")[0])
        else:
            mappable = ax.imshow(array, cmap=name, norm=norm, interpolation="nearest")
        ax.set_title(title, fontsize=7)
    if mappable is not None:
        bar = figure.colorbar(mappable, ax=list(axes), shrink=0.8, aspect=30, label=label)
        bar.ax.tick_params(labelsize=7)
    return figure


def plot_filters(model, layer=None, channel=None, max_filters=64, max_cols=8, to_file=None):
    """Convolution kernels as small images on one zero-centred colour scale.

    Parameters
    ----------
    model : Sequential or array (F, KH, KW, C)
        A model (its filters come from :func:`glassnet.explain.filters`) or filters arranged like
        that function returns them, filter first.
    layer : str, int or Layer, optional
        The Conv2D layer (default: the first one).
    channel : int, optional
        Which input channel to show for filters with C not in (1, 3); default: the mean over
        input channels. Three input channels are drawn as colour.
    max_filters, max_cols : int
    to_file : str or path, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    title = "filters"
    if _is_model(model):
        layer = _default_conv_layer(model, "plot_filters") if layer is None else model.get_layer(layer)
        kernels = np.asarray(_explain().filters(model, layer))
        title = f"filters of {layer.name}"
    else:
        kernels = np.asarray(model)
    if kernels.ndim != 4:
        raise ValueError(message("plot_filters", "filters of shape (F, KH, KW, C) as explain.filters returns",
                                 describe(kernels), "For a Keras-order kernel (KH, KW, C, F) pass "
                                 "kernel.transpose(3, 0, 1, 2)."))
    F, KH, KW, C = kernels.shape
    count = min(F, max_filters)
    if C == 3 and channel is None:
        arrays = list(kernels[:count])
    elif channel is not None:
        if check_int(channel, "channel", "plot_filters", minimum=0) >= C:
            raise ValueError(message("plot_filters", f"channel in [0, {C - 1}]", repr(channel)))
        arrays, title = list(kernels[:count, :, :, channel]), f"{title}, input channel {channel}"
    else:
        arrays = list(kernels[:count].mean(axis=-1))
        if C > 1:
            title += f", mean over {C} input channels"
    rows, cols = grid(count, max_cols)
    figure = new_figure((1.0 * cols + 1.0, 1.05 * rows + 0.5), "plot_filters")
    _value_grid(figure, arrays, [str(f) for f in range(count)], max_cols, signed=True, label="weight")
    figure.suptitle(f"{title} ({KH}x{KW}, {F} filters)", fontsize="medium")
    return finish(figure, to_file)


def plot_feature_maps(model, x=None, layer=None, max_maps=32, max_cols=8, to_file=None):
    """The channels a layer outputs for one image, on a shared colour scale, after the input itself.

    Parameters
    ----------
    model : Sequential or array (OH, OW, C)
        A model (maps come from :func:`glassnet.explain.feature_maps`) or the maps of one image.
    x : array (H, W, C) or (1, H, W, C)
        The image (required with a model).
    layer : str, int or Layer, optional
        Default: the first Conv2D layer.
    max_maps, max_cols : int
    to_file : str or path, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    title, image = "feature maps", None
    if _is_model(model):
        if x is None:
            raise ValueError(message("plot_feature_maps", "an image x with a model", "x=None",
                                     "Pass one image, e.g. x_test[0]."))
        x = np.asarray(x)
        batch = x if x.ndim == 4 else x[None]
        layer = _default_conv_layer(model, "plot_feature_maps") if layer is None else model.get_layer(layer)
        maps = np.asarray(_explain().feature_maps(model, batch[:1], layer))[0]
        image, title = as_images(batch[:1], "plot_feature_maps", "x")[0], f"feature maps of {layer.name}"
    else:
        maps = np.asarray(model)
        maps = maps[0] if maps.ndim == 4 and maps.shape[0] == 1 else maps
    if maps.ndim != 3:
        raise ValueError(message("plot_feature_maps", "maps of shape (OH, OW, C) for one image", describe(maps)))
    count = min(maps.shape[-1], max_maps)
    arrays, titles = [maps[..., c] for c in range(count)], [str(c) for c in range(count)]
    rows, cols = grid(count + (image is not None), max_cols)
    figure = new_figure((1.1 * cols + 1.0, 1.15 * rows + 0.5), "plot_feature_maps")
    _value_grid(figure, arrays, titles, max_cols, label="activation", lead_image=image, sequential="viridis")
    figure.suptitle(f"{title} ({maps.shape[0]}x{maps.shape[1]}, showing {count} of {maps.shape[-1]})",
                    fontsize="medium")
    return finish(figure, to_file)


def plot_activation_maximization(model, layer=-1, indices=None, class_names=None, max_cols=10, to_file=None,
                                 **kwargs):
    """Inputs synthesized to maximize each class (or unit): "what the network thinks a 3 looks like".

    Parameters
    ----------
    model : Sequential or array (K, H, W[, C])
        A model (images come from :func:`glassnet.explain.activation_maximization`, all indices in
        one call, ``**kwargs`` such as ``steps`` and ``seed`` passed on) or the images themselves.
    layer : str, int or Layer
        The layer whose unit is maximized (default: the output layer).
    indices : sequence of int, optional
        Units/classes to show (default: every output unit of ``layer``).
    class_names : sequence of str, optional
    max_cols : int
    to_file : str or path, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    if _is_model(model):
        target = model.get_layer(layer)
        if indices is None:
            indices = range(target.output_shape[-1])
        indices = [int(i) for i in indices]
        images = _explain().activation_maximization(model, target, indices, **{**kwargs, "return_trajectory": False})
    else:
        images = np.asarray(model)
        indices = range(len(images)) if indices is None else indices
    indices = [int(i) for i in indices]
    if len(indices) != len(images):
        raise ValueError(message("plot_activation_maximization", f"{len(images)} indices", f"{len(indices)}"))
    shown = as_images(images, "plot_activation_maximization")
    rows, cols = grid(len(shown), max_cols)
    figure = new_figure((1.3 * cols, 1.45 * rows + 0.4), "plot_activation_maximization")
    for ax, image, index in zip(panels(figure, len(shown), max_cols), shown, indices):
        show_image(ax, image)
        ax.set_title(class_name(class_names, index), fontsize=8)
    figure.suptitle("activation maximization: the input each class responds to most", fontsize="medium")
    return finish(figure, to_file)
