"""Shared checks for the viz tests: a saved picture really shows something."""
import os

import numpy as np


def assert_png_drawn(path, min_std=0.02):
    """``path`` is a non-empty PNG whose pixels vary (not a blank canvas); returns the pixels."""
    import matplotlib.image

    assert os.path.getsize(path) > 1000, f"{path} is suspiciously small"
    with open(path, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    pixels = matplotlib.image.imread(path)
    rgb = pixels[..., :3] if pixels.ndim == 3 else pixels
    assert rgb.std() > min_std, f"{path} looks blank (pixel std {rgb.std():.4f})"
    assert (rgb < 0.5).mean() > 0.001, f"{path} has almost no dark pixels (no text or lines drawn)"
    return pixels


def figure_texts(figure):
    """Every string drawn on a figure: text artists, titles, tick labels, suptitle."""
    from matplotlib.text import Text

    return [artist.get_text() for artist in figure.findobj(Text) if artist.get_text()]


def image_axes(figure):
    """Axes that show at least one image (panels, not colorbars)."""
    return [ax for ax in figure.axes if ax.get_visible() and ax.images and not hasattr(ax, "_colorbar")]


def colorbars(figure):
    """The Colorbar objects attached to a figure's axes."""
    return [ax._colorbar for ax in figure.axes if hasattr(ax, "_colorbar")]


def rgb_in(figure, ax, y_fraction, x_fraction):
    """Mean RGB (0..1) of a small patch of ``ax`` at relative position (y from the top, x from the left)."""
    figure.canvas.draw()
    pixels = np.asarray(figure.canvas.buffer_rgba())[..., :3] / 255.0
    box = ax.get_window_extent()
    height = pixels.shape[0]
    row = int(height - (box.y1 - y_fraction * box.height))
    col = int(box.x0 + x_fraction * box.width)
    return pixels[row - 2:row + 3, col - 2:col + 3].reshape(-1, 3).mean(axis=0)
