"""glassnet.viz: see a model — diagram, training curves, confusion, filters, feature maps, heatmaps, one HTML report.

Needs the ``viz`` extra (matplotlib, jinja2, pillow); those are imported only when a function runs.
Every plotting function returns a ``matplotlib.figure.Figure`` (drawn on an Agg canvas, never
through pyplot's global state) and saves it when given ``to_file``.

>>> import glassnet as gn
>>> gn.viz.plot_model(model, to_file="model.png")                    # doctest: +SKIP
>>> gn.viz.plot_history(history, to_file="curves.png")                # doctest: +SKIP
>>> gn.viz.plot_heatmaps(x[:8], gn.explain.grad_cam(model, x[:8]))    # doctest: +SKIP
>>> gn.viz.report(model, x_test, y_test, "runs/report", history=history)  # doctest: +SKIP
"""
from glassnet.viz.diagram import model_to_dot, plot_model
from glassnet.viz.explanations import METHODS, load_image, plot_explanation
from glassnet.viz.images import (plot_activation_maximization, plot_feature_maps, plot_filters,
                                 plot_heatmaps)
from glassnet.viz.plots import (confusion_matrix, most_confused, plot_confusion_matrix, plot_history,
                                plot_most_confused)
from glassnet.viz.report import METHOD_KEYS, report

__all__ = [
    "plot_model", "model_to_dot", "plot_history", "confusion_matrix", "plot_confusion_matrix", "most_confused",
    "plot_most_confused", "plot_filters", "plot_feature_maps", "plot_heatmaps", "plot_activation_maximization",
    "plot_explanation", "load_image", "METHODS", "report", "METHOD_KEYS",
]
