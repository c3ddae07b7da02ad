"""The evidence behind a sanity-check verdict, drawn: the cascade curve against the null band."""
import numpy as np

from glassnet.errors import describe, message
from glassnet.viz._common import finish, new_figure

#: how each measure of the cascade is drawn: (label, line style, width)
MEASURE_STYLES = {"spearman": ("Spearman signed", "-o", 1.0), "spearman_abs": ("Spearman |map|", "--", 1.0),
                  "ssim": ("SSIM", ":", 1.0), "hog": ("HOG", "-.", 1.0)}


def _means(values, informative):
    """Per-row means over the informative images, NaN rows where none is."""
    if not informative.any():
        return np.full(len(values), np.nan)
    return values[:, informative].mean(axis=1)


def plot_sanity_check(result, title=None, figsize=(3.4, 2.5), to_file=None):
    """The cascading randomization curve of a :class:`glassnet.explain.SanityCheck`, as in the paper's figure.

    Similarity of the maps to the trained model's (mean over the non-blank maps) against the layers
    re-initialized so far, top layer first, one line per measure (the verdict's measure thicker; a
    star marks its mean over the independent draws of the top layer, which the verdict judges);
    the grey band is the null of the verdict's measure (the range of the pair means of
    independently initialized copies); the red dotted line is the verdict's bar on that measure
    (null + limit x (1 - null)).

    Parameters
    ----------
    result : SanityCheck
    title : str, optional
    figsize : (width, height) in inches
    to_file : str or path, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not hasattr(result, "measures") or not hasattr(result, "layers"):
        raise TypeError(message("plot_sanity_check", "the result of explain.sanity_check", describe(result)))
    figure = new_figure(figsize, "plot_sanity_check")
    ax = figure.subplots()
    informative = ~np.asarray(result.blank, dtype=bool)
    steps = np.arange(1, len(result.layers) + 1)
    null = result.null.get(result.measure) if result.null else None
    if null is not None and informative.any():
        pair_means = null[:, informative].mean(axis=1)
        ax.axhspan(pair_means.min(), pair_means.max(), color="0.8", alpha=0.7, lw=0, label="null (random copies)")
        ax.axhline(pair_means.mean(), color="0.55", lw=0.8)
    if np.isfinite(result.threshold):
        ax.axhline(result.threshold, color="#cf222e", ls=":", lw=1.2, label="pass bar")
    for name, (label, style, width) in MEASURE_STYLES.items():
        if name in result.measures:
            width = 2.0 if name == result.measure else width      # the verdict's measure stands out
            ax.plot(steps, _means(result.measures[name], informative), style, lw=width, markersize=3, label=label)
    if result.top and result.measure in result.top and informative.any():
        # the verdict averages several draws of the top layer; the cascade's first point is one of them
        ax.plot([1], [result.top[result.measure][:, informative].mean()], "*", color="black", markersize=7,
                label=f"top layer, mean of {len(result.top[result.measure])} draws")
    ax.set_xticks(steps, [f"{step}: {name}" for step, name in zip(steps, result.layers)], rotation=40, ha="right",
                  fontsize=6)
    ax.set_xlabel("layers re-initialized, top first", fontsize=7)
    ax.set_ylabel("similarity", fontsize=7)
    ax.tick_params(axis="y", labelsize=6)
    ax.set_ylim(-0.3, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=5, loc="upper right", ncol=2)
    if title:
        ax.set_title(title, fontsize=8)
    return finish(figure, to_file)


__all__ = ["plot_sanity_check"]
