"""One self-contained HTML page that opens a trained model up.

:func:`report` gathers the summary table, the architecture diagram, training curves, accuracy and
confusion, first-layer filters, feature maps, activation maximization per class and, for a sample of
test images side by side, every gradient/occlusion explanation with its sanity-check verdict.
Every number comes from :mod:`glassnet.explain` (nothing is re-implemented here); every picture is
a PNG embedded as a base64 data URI, so the file can be mailed or opened offline.
"""
import base64
import datetime
import io
import os
import time
from contextlib import contextmanager

import numpy as np

from glassnet.errors import describe, message
from glassnet.explain.similarity import blank_maps
from glassnet.validation import check_int
from glassnet.viz._common import DPI, as_images, as_labels, class_name, png_bytes
from glassnet.viz.diagram import plot_model
from glassnet.viz.explanations import METHODS, NEEDS_CONV, get_method
from glassnet.viz.images import (color_scale, overlay_rgb, plot_activation_maximization, plot_feature_maps,
                                 plot_filters)
from glassnet.viz.plots import confusion_matrix, history_dict, plot_confusion_matrix, plot_history, plot_most_confused


#: the explanation columns of the report, in order (``report(methods=[...])`` picks among METHODS)
METHOD_KEYS = ("saliency", "guided", "rectified", "grad_cam", "guided_grad_cam", "occlusion",
               "integrated_gradients")


# -- progress and timing ---------------------------------------------------------------------
class Progress:
    """Reports steps to a callback ``progress(stage, done, total)``, to a tqdm bar, or nowhere.

    Parameters
    ----------
    progress : bool or callable
        True: a tqdm bar on stderr when tqdm is installed (silent otherwise); False/None: silent;
        a callable receives ``(stage, done, total)`` after every step.
    total : int
        Number of steps.
    """

    def __init__(self, progress, total):
        self.total, self.done, self.callback, self.bar = total, 0, None, None
        if callable(progress):
            self.callback = progress
        elif progress:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=total, desc="glassnet report", unit="step")

    def step(self, stage):
        self.done += 1
        if self.bar is not None:
            self.bar.set_postfix_str(stage, refresh=False)
            self.bar.update(1)
        if self.callback is not None:
            self.callback(stage, self.done, self.total)

    def close(self):
        if self.bar is not None:
            self.bar.close()


class _Timer:
    """Wall-clock seconds per report stage, for the page's footer."""

    def __init__(self):
        self.stages = {}

    @contextmanager
    def __call__(self, stage):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.stages[stage] = self.stages.get(stage, 0.0) + time.perf_counter() - start


# -- embedding ---------------------------------------------------------------------------------
def data_uri(png):
    """``data:image/png;base64,...`` for PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def figure_uri(figure, dpi=DPI):
    """Render a Figure to an embeddable PNG data URI."""
    return data_uri(png_bytes(figure, dpi))


def image_uri(image, scale=4):
    """One display-ready image (from ``as_images``) as a PNG data URI, enlarged ``scale`` times, no axes."""
    import matplotlib.image

    big = np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)
    buffer = io.BytesIO()
    matplotlib.image.imsave(buffer, big, cmap="gray" if big.ndim == 2 else None, vmin=0.0, vmax=1.0, format="png")
    return data_uri(buffer.getvalue())


# -- sections ----------------------------------------------------------------------------------
def _summary(model):
    lines = []
    model.summary(print_fn=lines.append)
    total = model.count_params()
    trainable = sum(layer.count_trainable_params() for layer in model.layers)
    rows = [{"name": layer.name, "type": type(layer).__name__, "shape": str(layer.output_shape),
             "params": layer.count_params()} for layer in model.layers]
    return {"rows": rows, "total": total, "trainable": trainable, "non_trainable": total - trainable,
            "text": "\n".join(lines)}


def _final_metrics(history):
    return [(key.replace("_", " "), f"{values[-1]:.4f}") for key, values in history_dict(history).items()
            if len(values)]


def _conv_layers(model):
    return [layer for layer in model.layers if np.ndim(getattr(layer, "params", {}).get("kernel")) == 4]


def _verdict(model, x, method, seed):
    """The sanity-check verdict on ``method`` (:func:`glassnet.explain.sanity_check`) with its evidence."""
    from glassnet import explain
    from glassnet.viz.trust import plot_sanity_check

    # the independent randomization is not drawn here: skipping it saves one map per weighted layer
    result = explain.sanity_check(model, x, lambda net, images, target=None: method.compute(net, images, target),
                                  seed=seed, independent=False)
    return {"passed": result.passed, "label": "passes sanity check" if result.passed else "fails sanity check",
            "detail": result.reason, "correlations": [float(value) for value in result.mean],
            "n_blank": result.n_blank, "n_images": len(x), "score": result.score,
            "curve": figure_uri(plot_sanity_check(result))}


def _faithfulness(model, x, maps, seed):
    """Mean deletion and insertion AUCs of the maps and of a random pixel order (:func:`deletion_insertion`)."""
    from glassnet import explain

    result = explain.deletion_insertion(model, x, maps, steps=10, seed=seed)
    return {name: float(getattr(result, name).mean())
            for name in ("deletion_auc", "random_deletion_auc", "insertion_auc", "random_insertion_auc")}


def _sample(n_total, n_explain, seed):
    """Sorted indices of ``n_explain`` examples drawn without replacement."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_total, size=min(n_explain, n_total), replace=False))


def _check_inputs(model, x, y, n_explain, methods):
    if not hasattr(model, "layers") or not hasattr(model, "predict"):
        raise TypeError(message("viz.report", "a glassnet Sequential model", describe(model)))
    x = model.check_x(x, "viz.report")
    if x.ndim != 4:
        raise ValueError(message("viz.report", "a model on images (N, H, W, C)", f"input shape {x.shape}"))
    labels = as_labels(y, "viz.report", "y")
    if len(labels) != len(x):
        raise ValueError(message("viz.report", "one label per image", f"{len(x)} images and {len(labels)} labels"))
    check_int(n_explain, "n_explain", "viz.report", minimum=1)
    if methods is not None and (isinstance(methods, str) or not isinstance(methods, (list, tuple))):
        raise TypeError(message("viz.report", f"methods as a list of names among {list(METHODS)}, or None",
                                describe(methods), "For example methods=['saliency', 'grad_cam']."))
    keys = METHOD_KEYS if methods is None else tuple(get_method(key, "viz.report").key for key in methods)
    return x, labels, keys


# -- the report --------------------------------------------------------------------------------
def report(model, x, y, out_dir, history=None, n_explain=16, class_names=None, title=None, methods=None,
           sanity=True, sanity_images=4, progress=True, seed=0, filename="report.html", diagram_engine="auto",
           maximization_steps=200, on_warning=None, predict=None):
    """Write one self-contained HTML report about ``model`` on test data ``(x, y)``.

    Parameters
    ----------
    model : Sequential
        A built model on images (N, H, W, C), ending in class scores (N, K).
    x : array (N, H, W, C)
        Test images, preprocessed as the model expects (e.g. scaled to [0, 1]).
    y : array (N,) labels or (N, K) one-hot
    out_dir : str or path
        Created when missing; the report is written there as ``filename``.
    history : History, dict or str, optional
        Training history (or its JSON) for the learning curves; one of no epochs (a model saved
        before any training) leaves them out with a note.
    n_explain : int
        How many test images get every explanation.
    class_names : sequence of str, optional
    title : str, optional
    methods : sequence of str, optional
        Explanation columns, keys of :data:`glassnet.viz.explanations.METHODS` (default:
        :data:`METHOD_KEYS`: vanilla/guided/rectified saliency, Grad-CAM, guided Grad-CAM,
        occlusion, integrated gradients).
    sanity : bool
        Run :func:`glassnet.explain.sanity_check` for every method (one verdict per column).
    sanity_images : int
        How many of the explained images the sanity checks use (each check recomputes the method
        once per weighted layer, so this bounds their cost).
    progress : bool or callable
        True: a tqdm bar if tqdm is installed; a callable gets ``(stage, done, total)`` per step.
    seed : int
        Picks the explained sample.
    filename : str
    diagram_engine : {"auto", "graphviz", "matplotlib"}
    maximization_steps : int
        Gradient-ascent steps of the activation maximization.
    on_warning : callable, optional
        Receives one line per method whose maps are blank (constant) on some explained or checked
        images: those maps carry no evidence (the report shows the same counts).
    predict : callable, optional
        ``predict(x) -> probabilities (N, K)`` for the whole test set, e.g. over a Dask cluster with
        :func:`glassnet.distributed.predict` (default: ``model.predict(x, batch_size=256)``).

    Returns
    -------
    str
        Path of the HTML file.
    """
    x, labels, keys = _check_inputs(model, x, y, n_explain, methods)
    sanity = check_int(sanity_images, "sanity_images", "viz.report", minimum=1) if sanity else 0
    convs = _conv_layers(model)
    notes = []
    if not convs:
        skipped = [key for key in keys if key in NEEDS_CONV]
        keys = tuple(key for key in keys if key not in NEEDS_CONV)
        if skipped:
            notes.append(f"No convolution layer: skipped {', '.join(skipped)}, filters and feature maps.")
    if history is not None:            # parsed once: a dict from here on, None when it holds no epochs
        history = history_dict(history, "report", allow_empty=True) or None
        if history is None:
            notes.append("The training history holds no epochs: no learning curves.")
    chosen = [METHODS[key] for key in keys]
    feature_layers = convs[:3]
    total = 6 + bool(convs) + len(feature_layers) + len(chosen) * (1 + bool(sanity))
    steps, timer, started = Progress(progress, total), _Timer(), time.perf_counter()
    try:
        context = _build(model, x, labels, history, n_explain, class_names, chosen, sanity, seed, convs,
                         feature_layers, diagram_engine, maximization_steps, steps, timer, predict)
        if on_warning is not None:
            for line in _blank_warnings(context["explanations"]):
                on_warning(line)
        with timer("page"):
            context.update(title=title or f"glassnet report: {model.name}", model_name=model.name, notes=notes,
                           generated=datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
                           version=_version(), timings=list(timer.stages.items()),
                           total_seconds=time.perf_counter() - started)
            os.makedirs(out_dir, exist_ok=True)
            path = os.path.join(os.fspath(out_dir), filename)
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(render(context))
        steps.step("written")
    finally:
        steps.close()
    return path


def _blank_warnings(explanations):
    """One line per method with blank maps among the explained (or sanity-checked) images."""
    lines, shown = [], len(explanations["rows"])
    for method in explanations["methods"]:
        checked = method["verdict"]["n_blank"] if method["verdict"] else 0
        if method["n_blank"] or checked:
            lines.append(f"{method['name']}: {method['n_blank']} of {shown} explained maps are blank (constant), "
                         f"{checked} of the sanity-checked ones: a blank map carries no evidence and never passes")
    return lines


def _version():
    import glassnet
    return glassnet.__version__


def render(context):
    """The HTML text of the report template filled with ``context`` (autoescaped Jinja2)."""
    try:
        import jinja2
    except ImportError as error:  # pragma: no cover - the dev environment has jinja2
        raise ImportError(message("viz.report", "jinja2 (glassnet's viz extra)", "no jinja2 installed",
                                  'Install it with: pip install "glassnet[viz]".')) from error
    folder = os.path.join(os.path.dirname(__file__), "templates")
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(folder), autoescape=True,
                                     undefined=jinja2.StrictUndefined)
    return environment.get_template("report.html").render(**context)


def _build(model, x, labels, history, n_explain, class_names, methods, sanity, seed, convs, feature_layers,
           diagram_engine, maximization_steps, steps, timer, predict=None):
    """Compute every section; returns the template context (without page metadata)."""
    context = {"n_examples": len(x), "curves": None, "final_metrics": [], "filters": None, "feature_maps": [],
               "feature_maps_index": None, "activation_maximization": None}
    with timer("summary and diagram"):
        context["summary"] = _summary(model)
        diagram = plot_model(model, engine=diagram_engine)
        context["diagram"] = {"uri": figure_uri(diagram, dpi=110),
                              "engine": "graphviz" if hasattr(diagram, "dot_source") else "matplotlib"}
    steps.step("diagram")
    with timer("training curves"):
        if history is not None:
            context["curves"] = figure_uri(plot_history(history))
            context["final_metrics"] = _final_metrics(history)
    steps.step("curves")
    with timer("predictions"):
        probs = np.asarray(predict(x)) if predict is not None else model.predict(x, batch_size=256)
        predicted = probs.argmax(axis=1)
    steps.step("predictions")
    with timer("accuracy and confusion"):
        counts = confusion_matrix(labels, predicted, probs.shape[1])
        context.update(accuracy=float(np.mean(predicted == labels)), n_wrong=int(np.sum(predicted != labels)),
                       per_class=[{"name": class_name(class_names, k), "count": int(counts[k].sum()),
                                   "recall": counts[k, k] / max(counts[k].sum(), 1)} for k in range(len(counts))],
                       confusion=figure_uri(plot_confusion_matrix(labels, predicted, class_names)),
                       confused=figure_uri(plot_most_confused(x, labels, probs, class_names, n=16)))
    steps.step("confusion")
    sample = _sample(len(x), n_explain, seed)
    with timer("filters and feature maps"):
        if convs:
            context["filters"] = figure_uri(plot_filters(model, convs[0]))
            steps.step("filters")
        context["feature_maps_index"] = int(sample[0])
        for layer in feature_layers:
            figure = plot_feature_maps(model, x[sample[0]], layer, max_maps=16, max_cols=9)
            context["feature_maps"].append({"layer": layer.name, "uri": figure_uri(figure)})
            steps.step(f"feature maps {layer.name}")
    with timer("activation maximization"):
        context["activation_maximization"] = _activation_maximization(model, class_names, seed,
                                                                   maximization_steps)
    steps.step("activation maximization")
    context["explanations"] = _explanations(model, x[sample], labels[sample], probs[sample], sample, class_names,
                                            methods, sanity, seed, steps, timer)
    return context


def _activation_maximization(model, class_names, seed, steps):
    """Per-class synthesized inputs (one explain call for all classes) drawn as one figure."""
    K = int(model.output_shape[-1])
    figure = plot_activation_maximization(model, -1, range(K), class_names=class_names, max_cols=min(K, 10),
                                          seed=seed, steps=steps)
    return figure_uri(figure)


def gradient_css(cmap, stops=11):
    """A CSS ``linear-gradient`` reproducing a matplotlib colormap, left (low) to right (high)."""
    from matplotlib import colormaps

    colours = colormaps[cmap](np.linspace(0.0, 1.0, stops))[:, :3]
    parts = [f"rgb({r * 255:.0f},{g * 255:.0f},{b * 255:.0f}) {100 * i / (stops - 1):.0f}%"
             for i, (r, g, b) in enumerate(colours)]
    return "linear-gradient(to right, " + ", ".join(parts) + ")"


def _heatmap_cell(image, heatmap, signed):
    """One table cell: the overlay as a PNG and the numbers at the ends and middle of its colorbar.

    The colorbar itself is drawn by the page (a CSS gradient of the same colormap under every cell
    of the column), which keeps the report quick to build: no matplotlib figure per cell.
    """
    name, norm, _ = color_scale(heatmap, signed)
    return {"uri": image_uri(overlay_rgb(image, heatmap, name, norm)),
            "ticks": [f"{value:.2g}" for value in (norm.vmin, (norm.vmin + norm.vmax) / 2, norm.vmax)]}


def _explanations(model, x, labels, probs, indices, class_names, methods, sanity, seed, steps, timer):
    """Columns (method, verdict, colormap) and rows (input + one heatmap cell per method)."""
    shown = as_images(x, "viz.report", "x")
    predicted = probs.argmax(axis=1)
    columns, cells = [], []
    for method in methods:
        with timer(method.title):
            maps = np.asarray(method.compute(model, x, None))
        steps.step(method.title)
        verdict = None
        if sanity:
            with timer("sanity checks"):
                verdict = _verdict(model, x[:sanity], method, seed)
            steps.step(f"sanity check {method.title}")
        maps = maps.sum(axis=-1) if maps.ndim == 4 else maps  # channels summed, sign kept
        with timer("deletion and insertion"):
            faithfulness = _faithfulness(model, x, maps, seed)
        with timer("drawing heatmaps"):
            cmap, _, signed = color_scale(maps)  # one colour scheme per column: signed if any map is
            cells.append([_heatmap_cell(shown[i], maps[i], signed) for i in range(len(x))])
        columns.append({"key": method.key, "name": method.title, "description": method.description,
                        "verdict": verdict, "gradient": gradient_css(cmap), "signed": signed,
                        "faithfulness": faithfulness, "n_blank": int(blank_maps(maps).sum())})
    rows = [{"index": int(index), "true": class_name(class_names, int(labels[row])),
             "pred": class_name(class_names, int(predicted[row])), "prob": float(probs[row, predicted[row]]),
             "correct": bool(predicted[row] == labels[row]), "input": image_uri(shown[row]),
             "cells": [column[row] for column in cells]} for row, index in enumerate(indices)]
    return {"methods": columns, "rows": rows, "sanity_images": min(sanity, len(x))}
