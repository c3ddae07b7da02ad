"""The planning pass: a layer graph turned into explicit execution steps.

A step runs one or more layer calls with one signature: ``apply(xs, training) -> (ys, cache)`` and
``vjp(cache, dys, rule, need_dx, need_grads, gate_input, output_gated) -> (dxs, {layer: grads})``.
The speed tricks are steps chosen here, never switches in the layers:

- :class:`ConvPoolStep`: a Conv2D (ReLU or no activation) whose only reader is a tiling
  MaxPooling2D runs as one fused pass (:func:`glassnet.ops.conv2d_maxpool_forward`) without the
  convolution's full output (``fuse=True``: training, ``predict`` and the explanations; an
  explanation's plan names the slots it reads, ``exposed``, and no fusion hides one of them).
- :class:`BatchNormReLUStep` and :class:`AddReLUStep`: a BatchNormalization or an Add whose only reader is a
  plain ReLU (no slope, no cap; ``fuse=True`` only) applies ``max(y, 0)`` in its own last pass and gates the
  gradient on the way in (by ``y > 0``, under the call's rule): no ReLU output or gradient array of its own.
- ReLU gates moved between convolutions: when a convolution (or a fused pair) reads the output of a
  Conv2D with a fused ReLU and nothing else reads it, the upper step may apply that ReLU's backward
  pass to its input gradient while each block is in cache (``gate_input``: False, or the call's ReLU
  rule, so a guided or rectified explanation gates there too) and the lower one then takes its
  output gradient as gated (``output_gated``). The executor decides per call: never for a tensor
  whose gradient the caller asked for.
- :class:`ConvBatchNormStep` (inference plans only): a linear Conv2D + BatchNormalization (+ ReLU)
  as one convolution with the moving statistics folded into its kernel and bias.
- ``logits=True``: the graph's outputs stop before a final softmax (a Softmax / Activation("softmax")
  node is left out, a fused softmax or sigmoid runs with ``logits=True``), which is what the fused
  losses and the explanations work on.
"""
from typing import NamedTuple

import numpy as np

from glassnet.activations import relu_gate
from glassnet.engine.graph import Graph, Node
from glassnet.errors import message
from glassnet.ops import conv2d_backward
from glassnet.ops.parallel import over_rows
from glassnet.ops.workspace import recycled_array

#: final activations that ``logits=True`` leaves out when they are fused in a layer
LOGIT_ACTIVATIONS = ("softmax", "sigmoid")


def head_kind(layer):
    """How a graph output produced by ``layer`` reaches its logits: "drop" (a separate softmax:
    the logits are its input), "logits" (a fused softmax/sigmoid: run with ``logits=True``) or None."""
    from glassnet.layers import Activation, Softmax
    if isinstance(layer, Softmax) or (isinstance(layer, Activation) and layer.activation == "softmax"):
        return "drop"
    if getattr(layer, "activation", None) in LOGIT_ACTIVATIONS and hasattr(layer, "_activate"):
        return "logits"
    return None


class LayerStep:
    """One layer call (a merge layer takes the list of its inputs)."""

    gates_output = False            # a ReLU gate on the output that the step above may apply
    gates_input = False             # can apply the gate of the step below to its input gradient

    def __init__(self, node, logits=False):
        self.nodes = (node,)
        self.layer, self.inputs, self.outputs = node.layer, node.inputs, (node.output,)
        self.logits, self.merges = logits, node.merges

    @property
    def layers(self):
        return tuple(node.layer for node in self.nodes)

    def trainable(self):
        return any(layer.trainable and layer.params for layer in self.layers)

    def apply(self, xs, training):
        x = list(xs) if self.merges else xs[0]
        options = {"logits": True} if self.logits else {}
        y, cache = self.layer.apply(x, training=training, **options)
        return (y,), cache

    def vjp(self, cache, dys, rule, need_dx, need_grads, gate_input=False, output_gated=False):
        dx, grads = self.layer.vjp(cache, dys[0], rule=rule, need_dx=any(need_dx), need_grads=need_grads)
        return (tuple(dx) if self.merges and dx is not None else (dx,)), {self.layer: grads}

    def __repr__(self):
        return f"<{type(self).__name__} {'+'.join(layer.name for layer in self.layers)}>"


def _relu_in_blocks(dy, relu_output, rule, output_gated, deactivate):
    """``(dz, relu_output)`` for a convolution's backward pass whose output went through a ReLU fused into
    it (``relu_output`` its output, None without one): under the vanilla rule the gate runs inside the
    convolution's blocks (``relu_output`` passed on) or was applied by the step above (``output_gated``);
    otherwise ``deactivate()`` runs the activation's backward pass under the rule first."""
    fused = relu_output is not None and rule == "vanilla"
    dz = dy if fused or output_gated else deactivate()
    return dz, (relu_output if fused and not output_gated else None)


class ConvStep(LayerStep):
    """A Conv2D call that can take part in moving a ReLU gate between two convolutions."""

    gates_input = True

    def __init__(self, node, logits=False):
        super().__init__(node, logits)
        self.gates_output = node.layer.activation == "relu" and not logits

    def vjp(self, cache, dys, rule, need_dx, need_grads, gate_input=False, output_gated=False):
        layer, dy = self.layer, dys[0]
        dz, relu_output = _relu_in_blocks(dy, cache.output if layer.activation == "relu" else None, rule,
                                          output_gated, lambda: layer._deactivate(cache.output, dy, rule))
        dx, grads = layer.conv_vjp(cache.conv, dz, relu_output, gate_input, need_dx[0], need_grads)
        return (dx,), {layer: grads}


class ConvPoolStep(LayerStep):
    """A Conv2D and the MaxPooling2D that alone reads it, as one fused pass when the batch allows
    (:func:`glassnet.ops.conv_pool.fusable`), else the two calls one after the other.

    ``record``: note the pooling's winners in inference mode too (an explanation's plan: its
    backward pass follows a forward pass that is not training); training always notes them.
    ``windows``: whether the one-row-per-pooling-window strategy may run (an explanation's plan
    leaves it out, so an image's map has the same bits whatever batch it comes in).
    """

    gates_input = True

    def __init__(self, conv_node, pool_node, record=False, windows=True):
        self.nodes = (conv_node, pool_node)
        self.layer, self.pool = conv_node.layer, pool_node.layer
        self.inputs, self.outputs = conv_node.inputs, (pool_node.output,)
        self.logits, self.merges = False, False
        self.record, self.windows = record, windows
        self._split = (ConvStep(conv_node), LayerStep(pool_node))

    def apply(self, xs, training):
        from glassnet.ops import conv2d_maxpool_forward, conv_pool
        conv, x = self.layer, xs[0]
        conv.ensure_built(x)
        pads = conv._pads(x.shape[1:3])
        if not conv_pool.fusable(x, conv.params["kernel"], conv.strides, pads, self.pool.pool_size, self.windows):
            (z,), conv_cache = self._split[0].apply(xs, training)
            ys, pool_cache = self._split[1].apply((z,), training)
            return ys, (conv_cache, pool_cache)
        y, cache = conv2d_maxpool_forward(x, conv.params["kernel"], conv.params.get("bias"), conv.strides, pads,
                                          self.pool.pool_size, relu=conv.activation == "relu",
                                          record_winners=training or self.record,
                                          keep=conv._kept_matrices if training else None, windows=self.windows)
        return (y,), cache

    def vjp(self, cache, dys, rule, need_dx, need_grads, gate_input=False, output_gated=False):
        from glassnet.ops import conv2d_maxpool_backward
        if isinstance(cache, tuple) and len(cache) == 2:
            conv_cache, pool_cache = cache
            (dz,), _ = self._split[1].vjp(pool_cache, dys, rule, (True,), False)
            return self._split[0].vjp(conv_cache, (dz,), rule, need_dx, need_grads, gate_input)
        conv, dy = self.layer, dys[0]
        if cache.relu and rule != "vanilla":
            dy, cache = self._rule_at_winners(cache, dy, rule)
        dx, dkernel, dbias = conv2d_maxpool_backward(dy, cache, conv.params["kernel"], need_dx=need_dx[0],
                                                     need_bias=conv.use_bias and need_grads, gate_input=gate_input,
                                                     need_kernel=need_grads)
        return (dx,), {conv: conv.grads_dict(dkernel, dbias) if need_grads else {}, self.pool: {}}

    def _rule_at_winners(self, cache, dy, rule):
        """The ReLU's backward ``rule`` applied to the pooled gradient, and the cache without its ReLU.

        Only a window's winner gets a gradient and its ReLU output is the pooled value ``y``, so the
        guided rule ``g [y > 0] [g > 0]`` at the winners is that rule on the pooled gradient. The
        rectified rule ``max(g, 0)`` does not look at ``y``: where a window's outputs are all <= 0 the
        unfused pooling routes to the window's first pixel, the fused one to the largest
        pre-activation, so an explanation plans it unfused (:func:`make_plan` with ``rule``).
        """
        if rule == "rectified":
            raise ValueError(message(repr(self), "the vanilla or guided ReLU rule for a fused convolution and "
                                     "pooling", "rule 'rectified'", "Plan with make_plan(..., rule='rectified'), "
                                     "which leaves the pair unfused."))
        return self.layer._deactivate(cache.y, dy, rule), cache._replace(relu=False)


class _ThenReLUStep(LayerStep):
    """A layer call and the plain ReLU that alone reads its output, as one step whose output is the ReLU's."""

    def __init__(self, node, relu_node):
        self.nodes = (node, relu_node)
        self.layer, self.relu = node.layer, relu_node.layer
        self.inputs, self.outputs = node.inputs, (relu_node.output,)
        self.logits, self.merges = False, node.merges


class BatchNormReLUStep(_ThenReLUStep):
    """BatchNormalization + ReLU in the normalization's passes (:meth:`BatchNormalization.normalize`
    with ``relu=True``): no separate pass over the output forward, and the ReLU's gate (``y > 0``,
    under the call's rule) applied to the gradient on the way into the normalization's backward pass."""

    def apply(self, xs, training):
        y, cache = self.layer.normalize(xs[0], training, relu=True)
        return (y,), cache

    def vjp(self, cache, dys, rule, need_dx, need_grads, gate_input=False, output_gated=False):
        dx, grads = self.layer.vjp(cache, dys[0], rule=rule, need_dx=need_dx[0], need_grads=need_grads)
        return (dx,), {self.layer: grads, self.relu: {}}


class AddReLUStep(_ThenReLUStep):
    """Add + ReLU (a residual block's end): the ReLU in place on the sum's fresh array, and one gated
    gradient handed to every input (d(sum)/dx_i = 1)."""

    def apply(self, xs, training):
        y, _ = self.layer.apply(list(xs), training=training)
        over_rows(lambda rows: np.maximum(y[rows], 0, out=y[rows]), len(y), 2 * y.nbytes)
        return (y,), y

    def vjp(self, cache, dys, rule, need_dx, need_grads, gate_input=False, output_gated=False):
        # y > 0 exactly where the sum was > 0
        if rule == "vanilla":
            dy, dz = dys[0], recycled_array("add_relu_gradient", cache.shape, dys[0].dtype)
            over_rows(lambda rows: np.multiply(dy[rows], cache[rows] > 0, out=dz[rows]), len(dz), 3 * dz.nbytes)
        else:
            dz = relu_gate(dys[0], cache, rule)
        return tuple(dz if needed else None for needed in need_dx), {self.layer: {}, self.relu: {}}


class ConvBatchNormStep(LayerStep):
    """Inference only: a linear Conv2D whose output only a BatchNormalization reads (and the plain ReLU
    that alone reads the normalization's output, if there is one) as one convolution with the moving
    statistics folded into its kernel and bias, per filter:

        (conv(x, K) + b) * s + t = conv(x, K * s) + (b * s + t),   s = gamma / sqrt(var + eps),
                                                                   t = beta - mean * s

    No normalization pass forward or backward, and the ReLU inside the convolution's blocks. Planned only
    for calls that never train (``inference=True``: ``predict`` and the explanations), whose backward
    passes need input gradients only."""

    gates_input = True

    def __init__(self, conv_node, norm_node, relu_node=None):
        self.nodes = tuple(node for node in (conv_node, norm_node, relu_node) if node is not None)
        self.layer, self.norm, self.relu = conv_node.layer, norm_node.layer, relu_node is not None
        self.inputs, self.outputs = conv_node.inputs, (self.nodes[-1].output,)
        self.logits, self.merges = False, False
        self.gates_output = self.relu

    def apply(self, xs, training):
        if training:
            raise RuntimeError(f"{self!r} folds moving statistics: it belongs to inference plans only")
        y, (conv_cache, kernel) = self.layer.folded_apply(xs[0], *self.norm.inference_affine(xs[0].dtype),
                                                          relu=self.relu)
        return (y,), (conv_cache, kernel, y if self.relu else None)

    def vjp(self, cache, dys, rule, need_dx, need_grads, gate_input=False, output_gated=False):
        if need_grads:
            raise RuntimeError(f"{self!r} has no weight gradients: it belongs to inference plans only")
        conv_cache, kernel, y = cache
        dz, relu_output = _relu_in_blocks(dys[0], y, rule, output_gated,
                                          lambda: dys[0] if y is None else relu_gate(dys[0], y, rule))
        dx, _, _ = conv2d_backward(dz, conv_cache, kernel, need_dx=need_dx[0], need_bias=False,
                                   relu_output=relu_output, gate_input=gate_input, need_kernel=False)
        return (dx,), {layer: {} for layer in self.layers}


def _then_relu_kinds():
    from glassnet.layers import Add, BatchNormalization
    return {BatchNormalization: BatchNormReLUStep, Add: AddReLUStep}


class Plan(NamedTuple):
    """Execution steps in a runnable order over the graph's tensor slots.

    Attributes
    ----------
    steps : tuple of steps
    inputs, outputs : tuple of int
        The input slots and the output slots (the logits' slots in a ``logits=True`` plan).
    producer : dict
        {slot: index of the step that writes it}.
    readers : dict
        {slot: number of step inputs that read it}.
    gates_below : dict
        {step index: index of the step below whose ReLU gate it may apply to its input gradient}.
    """
    steps: tuple
    inputs: tuple
    outputs: tuple
    producer: dict
    readers: dict
    gates_below: dict

    def needed(self, targets):
        """Indices, in order, of the steps that the values in slots ``targets`` depend on."""
        todo, seen = [t for t in targets if t in self.producer], set()
        while todo:
            index = self.producer[todo.pop()]
            if index not in seen:
                seen.add(index)
                todo.extend(s for s in self.steps[index].inputs if s in self.producer)
        return sorted(seen)


def _logits_view(graph):
    """(nodes, outputs, {node index: runs with logits=True}) with the final softmaxes left out."""
    nodes, outputs, logit_nodes = list(graph.nodes), list(graph.outputs), set()
    producers, readers = graph.producers(), graph.consumers()
    dropped = set()
    for k, slot in enumerate(outputs):
        index = producers.get(slot)
        if index is None:
            continue
        kind = head_kind(nodes[index].layer)
        if kind == "drop" and not readers.get(slot) and graph.outputs.count(slot) == 1:
            outputs[k] = nodes[index].inputs[0]
            dropped.add(index)
        elif kind == "logits":
            logit_nodes.add(index)
    kept = [i for i in range(len(nodes)) if i not in dropped]
    return [nodes[i] for i in kept], tuple(outputs), {kept.index(i) for i in logit_nodes if i in kept}


def make_plan(graph, logits=False, fuse=False, exposed=None, rule="vanilla", inference=False):
    """Plan ``graph`` (a :class:`~glassnet.engine.graph.Graph`).

    Parameters
    ----------
    logits : bool
        Outputs stop before the final softmax / sigmoid (see the module notes).
    fuse : bool
        Run Conv2D + MaxPooling2D pairs as fused steps (training, ``predict``, explanations).
    exposed : collection of int, optional
        An explanation's plan (forward in inference mode, then backward): the slots it captures or
        differentiates, which no fusion may hide; its fused steps keep what their backward pass
        needs outside training too. None: a training / inference plan.
    rule : {"vanilla", "guided", "rectified"}
        The ReLU rule of an explanation's backward pass: "rectified" does not fuse a ReLU
        convolution with its pooling (:meth:`ConvPoolStep._rule_at_winners`).
    inference : bool
        The plan never trains (``predict``, explanations): with ``fuse``, a linear Conv2D followed by a
        BatchNormalization (and a plain ReLU) runs as one :class:`ConvBatchNormStep`.
    """
    from glassnet.layers import Conv2D
    if logits:
        nodes, outputs, logit_nodes = _logits_view(graph)
    else:
        nodes, outputs, logit_nodes = list(graph.nodes), tuple(graph.outputs), set()
    # an explanation's backward pass runs through the steps whose input depends on a slot it reads:
    # only those keep what their backward pass needs (Grad-CAM stops above them all)
    recorded = _downstream(nodes, exposed) if exposed is not None else set()
    fuse = fuse and rule != "rectified"
    # the fusion decisions treat the exposed slots as outputs: a fused pair never hides one
    view = Graph(tuple(nodes), graph.inputs, outputs + tuple(sorted(set(exposed or ()) - set(outputs))))
    readers = view.consumers()
    steps, fused_away = [], set()
    for i, node in enumerate(nodes):
        if i in fused_away:
            continue
        if isinstance(node.layer, Conv2D):
            norm_index = _norm_reader(view, node, readers) if fuse and inference and i not in logit_nodes else None
            if norm_index is not None:
                relu_index = _relu_reader(view, nodes[norm_index], readers)
                fused_away.update({norm_index, relu_index} - {None})
                steps.append(ConvBatchNormStep(node, nodes[norm_index],
                                               None if relu_index is None else nodes[relu_index]))
                continue
            pool_index = _pool_reader(view, node, readers, i in logit_nodes) if fuse else None
            if pool_index is not None:
                fused_away.add(pool_index)
                steps.append(ConvPoolStep(node, nodes[pool_index], node.inputs[0] in recorded, exposed is None))
                continue
            steps.append(ConvStep(node, i in logit_nodes))
            continue
        fused_kind = _then_relu_kinds().get(type(node.layer)) if fuse and i not in logit_nodes else None
        relu_index = _relu_reader(view, node, readers) if fused_kind is not None else None
        if relu_index is not None:
            fused_away.add(relu_index)
            steps.append(fused_kind(node, nodes[relu_index]))
        else:
            steps.append(LayerStep(node, i in logit_nodes))
    producer = {slot: i for i, step in enumerate(steps) for slot in step.outputs}
    gates_below = {}
    for i, step in enumerate(steps):
        below = producer.get(step.inputs[0]) if step.gates_input and len(step.inputs) == 1 else None
        if (below is not None and steps[below].gates_output and readers.get(step.inputs[0]) == 1
                and step.inputs[0] not in outputs):
            gates_below[i] = below
    return Plan(tuple(steps), tuple(graph.inputs), outputs, producer, readers, gates_below)


def _downstream(nodes, slots):
    """The slots ``slots`` and every slot computed from one of them (``nodes`` in topological order)."""
    reached = set(slots)
    for node in nodes:
        if any(slot in reached for slot in node.inputs):
            reached.add(node.output)
    return reached


def _plain_relu(layer):
    """Whether ``layer`` is ``max(x, 0)`` itself: a ReLU without slope or cap, or Activation("relu")."""
    from glassnet.layers import Activation, ReLU
    if type(layer) is ReLU:
        return layer.max_value is None and not layer.negative_slope
    return isinstance(layer, Activation) and layer.activation == "relu"


def _sole_reader(view, node, readers, accepts):
    """Index of the node that alone reads ``node``'s output (not a graph output or an exposed slot) when
    ``accepts(its layer)``, or None."""
    if readers.get(node.output) != 1 or node.output in view.outputs:
        return None
    for j, other in enumerate(view.nodes):
        if node.output in other.inputs and accepts(other.layer):
            return j
    return None


def _relu_reader(view, node, readers):
    """Index of the plain ReLU node that alone reads ``node``'s output (not a graph output), or None."""
    return _sole_reader(view, node, readers, _plain_relu)


def _norm_reader(view, node, readers):
    """Index of the BatchNormalization node that alone reads the output of ``node``, a linear Conv2D (not a
    graph output or an exposed slot), or None."""
    from glassnet.layers import BatchNormalization
    if node.layer.activation != "linear":
        return None
    return _sole_reader(view, node, readers, lambda layer: type(layer) is BatchNormalization)


def _pool_reader(view, node, readers, logits):
    """Index of the MaxPooling2D node that alone reads ``node``'s output and can fuse with it, or None."""
    return None if logits else _sole_reader(view, node, readers, node.layer.pools_with)
