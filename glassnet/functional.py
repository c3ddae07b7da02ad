"""The Functional API as Keras spells it: ``gn.Input``, layers called on symbolic tensors, and the
tracing that turns ``Model(inputs, outputs)`` into a :class:`glassnet.engine.Graph`.

A :class:`KerasTensor` holds no data: a per-example shape, a dtype and the layer call that made it
(its ``history``). Calling a layer on one builds the layer for that shape (checking it, so a wrong
rank fails at the call) and returns the output tensor; calling it on a NumPy array still runs it.
A layer called twice is one layer (shared weights) with two calls.
"""
import itertools
from typing import NamedTuple

import numpy as np

from glassnet.errors import describe, message
from glassnet.layers.base import unique_name
from glassnet.layers.input import InputLayer
from glassnet.validation import check_shape

_TENSOR_IDS = itertools.count()


class Call(NamedTuple):
    """One call of ``layer`` (its ``index``-th) on ``inputs`` (KerasTensors) giving ``output``."""
    layer: object
    inputs: tuple
    index: int


class KerasTensor:
    """A symbolic tensor: ``shape`` (batch axis None first), ``dtype``, ``name``, and ``history``
    (the :class:`Call` that produced it, None for an ``Input``)."""

    def __init__(self, shape, dtype, name, history=None):
        self.shape, self.dtype, self.name, self.history = tuple(shape), np.dtype(dtype), name, history
        self.id = next(_TENSOR_IDS)

    @property
    def ndim(self):
        return len(self.shape)

    def __repr__(self):
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}, name={self.name}>"


def Input(shape=None, name=None, dtype="float32", *, batch_size=None, batch_shape=None):
    """A symbolic input of per-example ``shape`` (no batch axis), e.g. ``gn.Input((28, 28, 1))``:
    the output tensor of a new :class:`~glassnet.layers.InputLayer`, as ``keras.Input`` is.

    Parameters
    ----------
    shape : int or tuple of int
        Per-example shape (a leading None, the batch axis, is dropped).
    name, dtype, batch_size, batch_shape
        As :class:`~glassnet.layers.InputLayer` takes them (give ``batch_shape`` instead of ``shape``).

    Returns
    -------
    KerasTensor
        Of shape ``(None,) + shape``.
    """
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (int(shape),)
    if shape is not None:
        shape = check_shape(shape, "Input", "shape")
        shape = tuple(shape[1:]) if shape[0] is None else tuple(shape)
    layer = InputLayer(shape=shape, batch_size=batch_size, batch_shape=batch_shape, dtype=dtype,
                       name=name or unique_name("input_layer"))
    tensor = KerasTensor((None,) + layer.shape, layer.dtype, layer.name, Call(layer, (), 0))
    layer.output_tensor = tensor
    return tensor


def is_symbolic(x):
    """Whether ``x`` is a KerasTensor, or a list/tuple/dict holding one."""
    if isinstance(x, KerasTensor):
        return True
    if isinstance(x, dict):
        x = list(x.values())
    return isinstance(x, (list, tuple)) and any(isinstance(item, KerasTensor) for item in x)


def call_symbolic(layer, x):
    """``layer(x)`` on KerasTensors: build or check the layer for their shapes; return the output tensor."""
    where = f"{type(layer).__name__} '{layer.name}'"
    merges = getattr(layer, "takes_list", False)
    inputs = list(x.values()) if isinstance(x, dict) else (list(x) if isinstance(x, (list, tuple)) else [x])
    if not all(isinstance(t, KerasTensor) for t in inputs):
        raise TypeError(message(where, "symbolic tensors (from gn.Input or another layer's call) only",
                                f"{[describe(t) for t in inputs]}", "Do not mix NumPy arrays with symbolic tensors."))
    if not merges and len(inputs) != 1:
        raise TypeError(message(where, "one tensor", f"a list of {len(inputs)} tensors",
                                "Merge them first, e.g. layers.Concatenate()([a, b]) or layers.Add()([a, b])."))
    if merges and not isinstance(x, (list, tuple, dict)):
        raise TypeError(message(where, "a list of tensors", repr(x), "For example layers.Add()([a, b])."))
    shapes = [t.shape[1:] for t in inputs]
    out_shape = _checked_output_shape(layer, shapes if merges else shapes[0])
    index = getattr(layer, "calls", 0)
    layer.calls = index + 1
    name = layer.name if index == 0 else f"{layer.name}_{index}"
    return KerasTensor((None,) + tuple(out_shape), layer.dtype, name, Call(layer, tuple(inputs), index))


def _checked_output_shape(layer, shape):
    """Build ``layer`` for per-example ``shape`` (a list for a merge), or check that the built layer
    takes it; returns the per-example output shape."""
    if getattr(layer, "takes_list", False):
        if not layer.built:
            layer.build([(None,) + tuple(s) for s in shape])
            return layer.output_shape[1:]
        shapes = layer._shapes([(None,) + tuple(s) for s in shape])
        layer.check_input_shapes(shapes)
        return tuple(layer.compute_output_shape(shapes))
    shape = tuple(shape)
    if not layer.built:
        layer.build((None,) + shape)            # Keras's build takes the batch axis first
        return layer.output_shape[1:]
    if layer.input_rank is not None and len(shape) != layer.input_rank:
        raise ValueError(layer._rank_error(shape))
    layer.check_input_shape(shape)
    layer.check_weights_fit(shape)
    return tuple(layer.compute_output_shape(shape))


# -- tracing -------------------------------------------------------------------------------------
class Traced(NamedTuple):
    """What ``Model(inputs, outputs)`` is made of: the engine graph and how to read it back."""
    graph: object               # glassnet.engine.Graph
    layers: list                # every layer once, InputLayers first, then in call order
    calls: list                 # the Calls of the graph's nodes, aligned with graph.nodes
    tensors: list               # the KerasTensors the nodes produce, aligned with graph.nodes
    input_tensors: list
    output_tensors: list
    structure: str              # "single", "list" or "dict" (how outputs are returned)
    output_names: list


def _flatten(value, what, where):
    """(list of KerasTensors, structure, names) from a tensor, a list/tuple or a dict of them."""
    if isinstance(value, KerasTensor):
        items, structure, names = [value], "single", None
    elif isinstance(value, dict) and value:
        items, structure, names = list(value.values()), "dict", [str(k) for k in value]
    elif isinstance(value, (list, tuple)) and value:
        items, structure, names = list(value), "list", None
    else:
        items, structure, names = None, None, None
    if items is None or not all(isinstance(t, KerasTensor) for t in items):
        bad = value if items is None else next(t for t in items if not isinstance(t, KerasTensor))
        raise TypeError(message(where, f"{what} as a symbolic tensor (gn.Input or a layer's output), or a list or "
                                "dict of them", describe(bad), "Build the graph first: x = gn.Input((28, 28, 1)); "
                                "y = layers.Dense(10)(layers.Flatten()(x)); gn.Model(x, y)."))
    return items, structure, names


def trace(inputs, outputs, where="Model"):
    """Check and trace a graph from ``inputs`` to ``outputs``; raises before anything is kept.

    Raises
    ------
    TypeError
        Inputs or outputs that are not symbolic tensors.
    ValueError
        An input that is not a ``gn.Input`` tensor, an output that depends on a tensor outside
        ``inputs`` (disconnected, or from another graph), an input that no output uses, or two
        layers with one name.
    """
    from glassnet.engine import Graph, Node
    input_tensors, _, _ = _flatten(inputs, "inputs", where)
    output_tensors, structure, names = _flatten(outputs, "outputs", where)
    for tensor in input_tensors:
        if not isinstance(tensor.history.layer, InputLayer):
            raise ValueError(message(where, "inputs made by gn.Input(...)", f"{tensor.name!r}, the output of "
                                     f"layer '{tensor.history.layer.name}'", "Pass the gn.Input tensors the "
                                     "graph starts from; to reuse part of a model, build a new Input."))
    if len({t.id for t in input_tensors}) != len(input_tensors):
        raise ValueError(message(where, "each input once", f"{[t.name for t in input_tensors]}"))
    slots = {t.id: i for i, t in enumerate(input_tensors)}
    order, visiting = [], set()
    done = set(slots)

    def visit(tensor, path):
        if tensor.id in done:
            return
        call = tensor.history
        if isinstance(call.layer, InputLayer):
            raise ValueError(message(where, f"outputs computed from the inputs {[t.name for t in input_tensors]}",
                                     f"a path from input {tensor.name!r} (not among them: disconnected, or from "
                                     f"another graph) through {' -> '.join(reversed(path)) or 'nothing'}",
                                     f"Add {tensor.name!r} to inputs, or build that branch from one of the inputs."))
        if tensor.id in visiting:
            raise ValueError(message(where, "an acyclic graph", f"a cycle through layer '{call.layer.name}'"))
        visiting.add(tensor.id)
        for source in call.inputs:
            visit(source, path + [f"'{call.layer.name}'"])
        visiting.discard(tensor.id)
        done.add(tensor.id)
        order.append(tensor)

    for tensor in output_tensors:
        visit(tensor, [])
    used = {source.id for tensor in order for source in tensor.history.inputs} | {t.id for t in output_tensors}
    unused = [t.name for t in input_tensors if t.id not in used]
    if unused:
        raise ValueError(message(where, "every input used by some output", f"inputs {unused} that nothing uses",
                                 "Drop them from inputs, or connect them to the outputs."))
    for tensor in order:
        slots[tensor.id] = len(slots)
    nodes = tuple(Node(t.history.layer, tuple(slots[s.id] for s in t.history.inputs), slots[t.id]) for t in order)
    layers = [t.history.layer for t in input_tensors]
    for tensor in order:
        if tensor.history.layer not in layers:
            layers.append(tensor.history.layer)
    by_name = {}
    for layer in layers:
        if by_name.setdefault(layer.name, layer) is not layer:
            raise ValueError(message(where, "unique layer names", f"two layers named {layer.name!r}",
                                     "Pass a different name=... to one of them."))
    graph = Graph(nodes, tuple(range(len(input_tensors))), tuple(slots[t.id] for t in output_tensors))
    return Traced(graph, layers, [t.history for t in order], order, input_tensors, output_tensors, structure,
                  names or [t.name for t in output_tensors])


def replay(config, record=None):
    """(inputs, outputs) rebuilt from a ``Model.get_config()``: layers deserialized, then called in an
    order that has every call's inputs ready (a shared layer's calls in their order).

    With ``record`` (a dict), no weight is allocated: ``record[layer name]`` receives the shapes of the
    weights each layer would create (to check a file's configuration before building it).
    """
    from glassnet.layers import deserialize
    where = "Model.from_config"
    entries = config["layers"]
    layers = {entry["name"]: deserialize(entry) for entry in entries}
    if record is not None:
        for name, layer in layers.items():
            shapes = record.setdefault(name, [])
            layer.add_weight = lambda key, shape, *args, _out=shapes, **kwargs: _out.append(
                tuple(int(d) for d in shape))
    produced = {}                          # (layer name, call index) -> KerasTensor
    for entry in entries:
        layer = layers[entry["name"]]
        if isinstance(layer, InputLayer):
            tensor = KerasTensor((None,) + layer.input_shape_arg, layer.dtype, layer.name, Call(layer, (), 0))
            produced[(layer.name, 0)] = tensor
    pending = [(entry["name"], index, inbound) for entry in entries
               for index, inbound in enumerate(entry.get("inbound_nodes") or [])]
    while pending:
        ready = [item for item in pending if all((src, call) in produced for src, call, _ in item[2])]
        if not ready:
            raise ValueError(message(where, "layer calls whose inputs exist", f"unresolved calls of "
                                     f"{sorted({name for name, _, _ in pending})}"))
        name, index, inbound = ready[0]
        if index != getattr(layers[name], "calls", 0):
            ready = [item for item in ready if item[1] == getattr(layers[item[0]], "calls", 0)]
            if not ready:
                raise ValueError(message(where, "each layer's calls in order", f"call {index} of {name!r}"))
            name, index, inbound = ready[0]
        sources = [produced[(src, call)] for src, call, _ in inbound]
        layer = layers[name]
        produced[(name, index)] = layer(sources if getattr(layer, "takes_list", False) else sources[0])
        pending.remove((name, index, inbound))

    def ends(key):
        return [produced[(name, call)] for name, call, _ in config[key]]
    inputs, outputs = ends("input_layers"), ends("output_layers")
    if config.get("output_structure") == "dict":
        outputs = dict(zip(config["output_names"], outputs))
    elif config.get("output_structure") == "single":
        outputs = outputs[0]
    return (inputs[0] if len(inputs) == 1 else inputs), outputs


def planned_weight_shapes(config):
    """The weight shapes (in ``get_weights`` order) a graph model's configuration would create,
    worked out without allocating them (see :func:`glassnet.validation.planned_weight_shapes`)."""
    record = {}
    replay(config, record)
    return [shape for entry in config["layers"] for shape in record.get(entry["name"], [])]
