"""Keras Functional configurations that are graphs (branches, merges, shared layers, several inputs
and outputs) read as glassnet graph models (:class:`glassnet.Model`), and glassnet graph models
written as Keras 3 Functional configurations.

A Functional configuration lists every layer once with its ``inbound_nodes``: one entry per call
of the layer, naming the tensors the call takes as ``[layer name, node index, tensor index]``
(Keras 3 wraps each in a ``__keras_tensor__`` dict with its shape under ``keras_history``; Keras 2
writes ``[name, node, tensor, kwargs]`` lists). The node index is the position of the call among
the source layer's calls, exactly glassnet's call index, so the translation keeps the wiring as
it is and checks it first: a reference to a missing layer or call, a cycle, or a layer with code
is refused before any layer is built or any weight read.
"""
from glassnet.interop._common import refuse

_WHAT = "a Keras Functional model whose layer calls form a graph"
_FIX_DAMAGED = "The file is damaged or was edited by hand; save the model again from Keras."
#: the merge layers glassnet has, by their Keras names
MERGES = ("Add", "Subtract", "Multiply", "Average", "Maximum", "Concatenate")


class Ref(tuple):
    """One tensor a call takes: (layer name, node index, tensor index, per-example shape or None)."""

    __slots__ = ()

    def __new__(cls, name, node, tensor, shape=None):
        return super().__new__(cls, (name, node, tensor, shape))

    name = property(lambda self: self[0])
    node = property(lambda self: self[1])
    tensor = property(lambda self: self[2])
    shape = property(lambda self: self[3])


def _is_index(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _reference(value):
    """A Ref from ``[name, node, tensor, ...]``; None when malformed."""
    if isinstance(value, list) and len(value) >= 3 and isinstance(value[0], str) and \
            _is_index(value[1]) and _is_index(value[2]):
        return Ref(value[0], value[1], value[2])
    return None


def _collect(value, found):
    """Append the tensor references under ``value`` (Keras 3 dicts or Keras 2 lists) to ``found``."""
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            config = value.get("config") if isinstance(value.get("config"), dict) else {}
            ref = _reference(config.get("keras_history"))
            shape = config.get("shape")
            if ref is not None and isinstance(shape, list) and len(shape) > 1 and \
                    all(_is_index(d) and d > 0 for d in shape[1:]):
                ref = Ref(ref.name, ref.node, ref.tensor, tuple(shape[1:]))
            found.append(ref)
            return
        for item in value.values():
            _collect(item, found)
    elif isinstance(value, list):
        ref = _reference(value)
        if ref is not None:
            found.append(ref)
            return
        for item in value:
            _collect(item, found)


def inbound_calls(entry):
    """The calls of one Functional layer entry: a list (one per call) of lists of :class:`Ref`
    (None for a malformed reference). Keras 3's keyword arguments are not inputs and are skipped."""
    calls = []
    nodes = entry.get("inbound_nodes")
    for node in nodes if isinstance(nodes, list) else []:
        found = []
        _collect(node.get("args", []) if isinstance(node, dict) else node, found)
        calls.append(found)
    return calls


def endpoints(value):
    """``input_layers`` / ``output_layers``: one ``[name, node, tensor]`` or a list of them -> [Ref]
    (None entries when malformed)."""
    single = _reference(value)
    if single is not None:
        return [single]
    return [_reference(item) for item in value] if isinstance(value, list) and value else [None]


def entry_name(entry):
    config = entry.get("config") if isinstance(entry.get("config"), dict) else {}
    return entry.get("name") or config.get("name")


def is_chain(entries, config):
    """Whether a Functional model is one chain: one input, every other layer called once on the
    previous layer's only output, one output."""
    calls = {entry_name(e): inbound_calls(e) for e in entries}
    users = {}
    for name, entry_calls in calls.items():
        for ref in (entry_calls[0] if entry_calls else []):
            users[getattr(ref, "name", None)] = users.get(getattr(ref, "name", None), 0) + 1
    inputs = [e for e in entries if e.get("class_name") == "InputLayer"]
    single_calls = all(len(c) == 1 and len(c[0]) == 1 for n, c in calls.items()
                       if n not in {entry_name(e) for e in inputs})
    return (len(inputs) == 1 and single_calls and all(count == 1 for count in users.values())
            and len(endpoints(config.get("output_layers"))) == 1)


def check_wiring(entries, config, path):
    """Refuse (one ValueError) a configuration whose calls name a missing layer or call, or that
    holds a cycle; returns ({layer name: its calls}, the (layer name, call index) nodes in an order
    that has every call's inputs before it)."""
    names = [entry_name(e) for e in entries]
    if len(set(names)) != len(names) or not all(isinstance(n, str) and n for n in names):
        repeated = sorted({str(n) for n in names if names.count(n) > 1 or not n})
        raise refuse(path, _WHAT, f"layers without a name or with one name twice: {repeated}", _FIX_DAMAGED)
    calls = {name: ([] if e.get("class_name") == "InputLayer" else inbound_calls(e))
             for name, e in zip(names, entries)}
    counts = {name: max(len(c), 1) for name, c in calls.items()}
    where = [(f"call {i} of layer {name!r}", ref) for name, entry_calls in calls.items()
             for i, call in enumerate(entry_calls) for ref in call]
    where += [(f"{key} of the model", ref) for key in ("input_layers", "output_layers")
              for ref in endpoints(config.get(key))]
    for place, ref in where:
        if ref is None:
            raise refuse(path, _WHAT, f"{place} holds a malformed tensor reference", _FIX_DAMAGED)
        if ref.name not in calls or not 0 <= ref.node < counts[ref.name] or ref.tensor != 0:
            missing = (f"layer {ref.name!r}, which the model does not have" if ref.name not in calls else
                       f"output {ref.tensor} of call {ref.node} of layer {ref.name!r}, which does not exist")
            raise refuse(path, _WHAT, f"{place} takes {missing}", _FIX_DAMAGED)
    uncalled = [name for name, e in zip(names, entries) if e.get("class_name") != "InputLayer" and not calls[name]]
    if uncalled:
        raise refuse(path, _WHAT, f"layers that are never called: {uncalled[:10]}", _FIX_DAMAGED)
    empty = [f"call {i} of layer {name!r}" for name, entry_calls in calls.items() for i, call in enumerate(entry_calls)
             if not call]
    if empty:
        raise refuse(path, _WHAT, f"calls that take no tensor: {empty[:10]}", _FIX_DAMAGED)
    return calls, _call_order(calls, path)


def _call_order(calls, path):
    """The (layer, call) nodes in a dependency order, by Kahn's algorithm; what it leaves over lies
    on or after a cycle, which is refused."""
    waiting = {(name, i): {(ref.name, ref.node) for ref in call}
               for name, entry_calls in calls.items() for i, call in enumerate(entry_calls)}
    order = [(name, 0) for name, entry_calls in calls.items() if not entry_calls]
    done = set(order)
    while True:
        ready = [node for node, needs in waiting.items() if needs <= done]
        if not ready:
            break
        for node in ready:
            done.add(node)
            order.append(node)
            del waiting[node]
    if waiting:
        stuck = sorted({name for name, _ in waiting})
        raise refuse(path, _WHAT, f"a cycle: the calls of layers {stuck[:10]} wait on each other's outputs",
                     _FIX_DAMAGED)
    return order


def keras_layer_order(parents, outputs):
    """The order in which Keras 3 lists a Functional model's layers (``model.layers``), which names
    the weight groups of a ``.keras`` file: layers by decreasing depth (distance to an output),
    ties by first visit in a depth-first walk from the outputs (``keras.src.ops.function.map_graph``).

    Parameters
    ----------
    parents : dict
        ``(layer name, call index) -> [(layer name, call index), ...]`` of every call's inputs
        (an input layer's call has none).
    outputs : list
        The output calls, in order.
    """
    visited, finished, first_visit = [], set(), {}

    def visit(node):
        if node in finished:
            return
        first_visit.setdefault(node[0], len(first_visit))
        for parent in parents[node]:
            visit(parent)
        finished.add(node)
        visited.append(node)

    for node in outputs:
        visit(node)
    node_depth, layer_depth = {}, {}
    for node in reversed(visited):
        depth = max(node_depth.setdefault(node, 0), layer_depth.get(node[0], 0))
        layer_depth[node[0]] = node_depth[node] = depth
        for parent in parents[node]:
            node_depth[parent] = max(depth + 1, node_depth.get(parent, 0))
    return sorted(layer_depth, key=lambda name: (-layer_depth[name], first_visit[name]))
