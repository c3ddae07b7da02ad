"""Architecture diagram of a model (a Sequential chain or a graph model's DAG), like Keras's ``plot_model``.

Graphviz draws it when its ``dot`` program is on PATH; otherwise (or on request) a matplotlib
drawing of the same boxes and arrows stands in, so the diagram never needs a system package.
"""
import html
import os
import shutil
import subprocess
import tempfile

from glassnet.errors import message
from glassnet.viz._common import finish, new_figure

#: box fill per layer family (matplotlib and graphviz both take these hex colours)
_COLORS = {
    "Conv2D": "#cfe2f3", "ZeroPadding2D": "#e8eef5", "MaxPooling2D": "#d9ead3", "AveragePooling2D": "#d9ead3",
    "GlobalAveragePooling2D": "#d9ead3", "GlobalMaxPooling2D": "#d9ead3", "Dense": "#fce5cd",
    "Dropout": "#eeeeee", "Flatten": "#fff2cc", "Reshape": "#fff2cc", "BatchNormalization": "#ead1dc",
}
_ACTIVATION_COLOR = "#f4cccc"
_INPUT_COLOR = "#ffffff"
_ENGINES = ("auto", "graphviz", "matplotlib")


def _shape(shape):
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def _details(layer):
    """A short description of a layer's hyperparameters, e.g. ``32 filters 3x3, relu``."""
    parts = []
    if hasattr(layer, "filters") and hasattr(layer, "kernel_size"):
        parts.append(f"{layer.filters} filters {layer.kernel_size[0]}x{layer.kernel_size[1]}")
        if tuple(getattr(layer, "strides", (1, 1))) != (1, 1):
            parts.append(f"stride {layer.strides[0]}x{layer.strides[1]}")
    elif hasattr(layer, "units"):
        parts.append(f"{layer.units} units")
    elif hasattr(layer, "pool_size"):
        parts.append(f"pool {layer.pool_size[0]}x{layer.pool_size[1]}")
    elif hasattr(layer, "rate"):
        parts.append(f"rate {layer.rate:g}")
    activation = getattr(layer, "activation", None)
    if isinstance(activation, str) and activation != "linear":
        parts.append(activation)
    return ", ".join(parts)


def _is_graph(model):
    return getattr(model, "_traced", None) is not None


def layer_rows(model, show_shapes=True, show_params=True):
    """One dict per box, inputs first: ``title``, ``details``, ``shape``, ``params``, ``color``.

    A Sequential gets an "input" box; a graph model's inputs are its InputLayers."""
    if not model.built:
        raise RuntimeError(message("plot_model", "a built model", "an unbuilt one",
                                   "Give the first layer input_shape=... or call model.build(input_shape)."))
    rows = [] if _is_graph(model) else [{"title": "input", "details": "",
                                          "shape": _shape(model.input_shape) if show_shapes else "",
                                          "params": "", "color": _INPUT_COLOR}]
    for layer in model.layers:
        kind = type(layer).__name__
        color = _INPUT_COLOR if kind == "InputLayer" else _COLORS.get(kind, _ACTIVATION_COLOR)
        rows.append({"title": f"{layer.name} ({kind})", "details": _details(layer),
                     "shape": _shape(layer.output_shape) if show_shapes else "",
                     "params": f"{layer.count_params():,} params" if show_params else "", "color": color})
    return rows


def layer_edges(model):
    """Arrows between the boxes of :func:`layer_rows`, as (from, to) row indices: a chain for a
    Sequential, every layer call's inputs for a graph model (a DAG)."""
    if not _is_graph(model):
        return [(index - 1, index) for index in range(1, len(model.layers) + 1)]
    row = {id(layer): index for index, layer in enumerate(model.layers)}
    edges = []
    for call in model._traced.calls:
        for tensor in call.inputs:
            edge = (row[id(tensor.history.layer)], row[id(call.layer)])
            if edge not in edges:
                edges.append(edge)
    return edges


def _levels(count, edges):
    """Each box's level: the longest path to it from a box without inputs (rows are in call order)."""
    level = [0] * count
    for source, target in sorted(edges, key=lambda edge: edge[1]):
        level[target] = max(level[target], level[source] + 1)
    return level


def model_to_dot(model, show_shapes=True, show_params=True, rankdir="TB"):
    """Graphviz DOT source of the diagram (every layer a node with its type, output shape and params)."""
    if rankdir not in ("TB", "LR"):
        raise ValueError(message("model_to_dot", "rankdir 'TB' or 'LR'", repr(rankdir)))
    lines = [f'digraph "{html.escape(model.name)}" {{', f"  rankdir={rankdir}; ranksep=0.3;",
             '  node [shape=plaintext, fontname="Helvetica", fontsize=11];',
             '  edge [color="#555555", arrowsize=0.7];']
    for index, row in enumerate(layer_rows(model, show_shapes, show_params)):
        cells = [f"<b>{html.escape(row['title'])}</b>"]
        cells += [html.escape(row[key]) for key in ("details", "shape", "params") if row[key]]
        body = "".join(f"<tr><td>{cell}</td></tr>" for cell in cells)
        lines.append(f'  n{index} [label=<<table border="1" cellborder="0" cellspacing="0" cellpadding="3" '
                     f'bgcolor="{row["color"]}" style="rounded">{body}</table>>];')
    lines += [f"  n{source} -> n{target};" for source, target in layer_edges(model)]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _run_dot(source, fmt):
    """Render DOT ``source`` with graphviz to bytes of format ``fmt`` (png, svg, pdf, ...)."""
    result = subprocess.run([shutil.which("dot"), f"-T{fmt}", "-Gdpi=110"], input=source.encode("utf-8"),
                            capture_output=True, timeout=60, check=False)
    if result.returncode != 0:
        raise RuntimeError(message("plot_model", "graphviz's dot to render the diagram",
                                   f"exit status {result.returncode}: {result.stderr.decode(errors='replace')}",
                                   'Use engine="matplotlib".'))
    return result.stdout


def _graphviz_figure(model, to_file, show_shapes, show_params, rankdir):
    """Render with dot; the returned Figure shows dot's PNG, ``to_file`` gets dot's own output."""
    import matplotlib.image

    source = model_to_dot(model, show_shapes, show_params, rankdir)
    png = _run_dot(source, "png")
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "diagram.png")
        with open(path, "wb") as handle:
            handle.write(png)
        image = matplotlib.image.imread(path)
    height, width = image.shape[:2]
    figure = new_figure((width / 110, height / 110), "plot_model")
    figure.set_layout_engine("none")
    ax = figure.add_axes((0, 0, 1, 1))
    ax.imshow(image, interpolation="lanczos")
    ax.set_axis_off()
    figure.dot_source = source  # what was drawn, for tests and for users who want the DOT text
    if to_file is not None:
        extension = os.path.splitext(str(to_file))[1].lstrip(".").lower() or "png"
        with open(to_file, "w" if extension in ("dot", "gv") else "wb") as handle:
            handle.write(source if extension in ("dot", "gv") else _run_dot(source, extension))
    return figure


def _matplotlib_figure(model, to_file, show_shapes, show_params):
    """The same diagram drawn with matplotlib boxes and arrows (top to bottom)."""
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    rows = layer_rows(model, show_shapes, show_params)
    edges = layer_edges(model)
    level = _levels(len(rows), edges)
    # boxes of one level side by side (a graph's branches), levels top to bottom
    column = {}
    for index in range(len(rows)):
        column[index] = sum(1 for other in range(index) if level[other] == level[index])
    columns = max(column.values()) + 1
    box_h, gap, width, spacing = 0.95, 0.45, 4.2, 0.4
    height = (max(level) + 1) * (box_h + gap)
    total = columns * width + (columns - 1) * spacing
    figure = new_figure((total + 0.4, 0.55 * height + 0.2), "plot_model")
    figure.set_layout_engine("none")
    ax = figure.add_axes((0, 0, 1, 1))
    ax.set_xlim(-0.2, total + 0.2)
    ax.set_ylim(height, -gap / 2)
    ax.set_axis_off()

    def corner(index):
        return column[index] * (width + spacing), level[index] * (box_h + gap)

    for index, row in enumerate(rows):
        left, top = corner(index)
        ax.add_patch(FancyBboxPatch((left, top), width, box_h, boxstyle="round,pad=0,rounding_size=0.12",
                                    facecolor=row["color"], edgecolor="#444444", linewidth=1))
        ax.text(left + width / 2, top + 0.27, row["title"], ha="center", va="center", fontsize=9, fontweight="bold")
        extra = "   ".join(part for part in (row["details"], row["shape"], row["params"]) if part)
        ax.text(left + width / 2, top + 0.66, extra, ha="center", va="center", fontsize=7.5, color="#222222")
    for source, target in edges:
        (x0, y0), (x1, y1) = corner(source), corner(target)
        ax.add_patch(FancyArrowPatch((x0 + width / 2, y0 + box_h), (x1 + width / 2, y1), arrowstyle="-|>",
                                     mutation_scale=10, color="#555555", linewidth=1))
    return finish(figure, to_file)


def plot_model(model, to_file=None, show_shapes=True, show_params=True, engine="auto", rankdir="TB"):
    """Draw the architecture: one box per layer with its type, output shape and parameter count.

    Parameters
    ----------
    model : Sequential
        A built model.
    to_file : str or path, optional
        Where to write the diagram; the extension picks the format (``.png``, ``.svg``, ``.pdf``,
        and with graphviz also ``.dot``).
    show_shapes, show_params : bool
        Include output shapes / parameter counts in each box.
    engine : {"auto", "graphviz", "matplotlib"}
        "auto" uses graphviz when its ``dot`` program is on PATH and matplotlib otherwise.
    rankdir : {"TB", "LR"}
        Graphviz layout direction (top-bottom or left-right).

    Returns
    -------
    matplotlib.figure.Figure
        With graphviz it shows dot's rendering and carries the DOT text as ``figure.dot_source``.
    """
    if engine not in _ENGINES:
        raise ValueError(message("plot_model", f"engine among {_ENGINES}", repr(engine)))
    has_dot = shutil.which("dot") is not None
    if engine == "graphviz" and not has_dot:
        raise RuntimeError(message("plot_model", "graphviz's `dot` program on PATH for engine='graphviz'",
                                   "no `dot` found", "Install graphviz (apt install graphviz) or use "
                                   "engine='auto' / 'matplotlib'."))
    if engine == "graphviz" or (engine == "auto" and has_dot):
        return _graphviz_figure(model, to_file, show_shapes, show_params, rankdir)
    return _matplotlib_figure(model, to_file, show_shapes, show_params)


__all__ = ["plot_model", "model_to_dot", "layer_rows", "layer_edges"]
