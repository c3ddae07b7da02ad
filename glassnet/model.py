"""Sequential: a stack of layers with Keras's API.

The forward pass threads ``x`` through the layers; the backward pass threads ``dy`` back and
each layer fills its own ``grads``. ``logits=True`` stops before the final softmax (fused in a
Dense or a separate Softmax/Activation layer), which is what losses and explanations work on.

Training (``compile`` / ``fit`` / ``evaluate`` / ``train_on_batch``) follows Keras 2:

- When the loss pairs with the model's last activation (softmax + (sparse) categorical
  cross-entropy, sigmoid + binary cross-entropy) the two are fused: the model runs with
  ``logits=True`` and the loss differentiates log-softmax / log-sigmoid directly, which is exact
  and finite for any finite logits.
- ``fit(seed=s)`` makes the run reproducible: epoch ``e`` shuffles with, and every layer's
  ``rng`` (Dropout) draws from, streams derived from ``SeedSequence([s, e])``. A run therefore
  resumes bit for bit from a checkpoint: ``load_model(path).fit(..., initial_epoch=k)``
  (with ``seed=None`` the seed stored in the checkpoint is reused).
- A non-finite loss or gradient stops ``fit`` with a ``RuntimeError`` naming the epoch, the
  batch and the first layer where the non-finite value appeared; the weights are left as they
  were before that batch. ``fit(check_numerics=False)`` opts out (Keras's behaviour; combine it
  with ``callbacks.TerminateOnNaN()`` to stop at the first NaN loss instead).
"""
import contextlib
import functools
import math
import numbers
import threading
import warnings

import numpy as np

from glassnet import activations
from glassnet.engine import Graph, backprop, make_plan, run
from glassnet.engine.plan import head_kind
from glassnet.errors import describe, message
from glassnet.layers import Layer, Softmax
from glassnet.layers.input import InputLayer
from glassnet.layers.base import unique_name
from glassnet.ops.parallel import held_blas
from glassnet.trainers.weighting import EpochTotals, class_weight_table, weights_for_batch
from glassnet.validation import as_float_array, check_input_shape, check_int, check_seed, check_shape


#: {id(model): (thread ident, depth)} of the models being trained now (see :func:`_trains_alone`)
_TRAINING = {}
_TRAINING_LOCK = threading.Lock()


@contextlib.contextmanager
def _training_slot(model, where):
    """Hold ``model`` for training by the calling thread; a second thread gets a clear error.

    Training writes into the model (weights, optimizer slots, moving statistics, Dropout's ``rng``),
    so two threads training one model at once would silently corrupt it. The same thread may nest
    (a callback calling ``train_on_batch`` inside ``fit``).
    """
    me = threading.get_ident()
    with _TRAINING_LOCK:
        owner, depth = _TRAINING.get(id(model), (me, 0))
        if owner != me:
            raise RuntimeError(message(where, "one thread at a time training this model",
                                       f"a call from thread {me} while thread {owner} is training it",
                                       "Train a model from one thread (predict and explain are safe from any "
                                       "number); for parallel training give each thread its own model."))
        _TRAINING[id(model)] = (me, depth + 1)
    try:
        yield
    finally:
        with _TRAINING_LOCK:
            if depth:
                _TRAINING[id(model)] = (me, depth)
            else:
                del _TRAINING[id(model)]


def _trains_alone(method):
    """Decorator: the method runs holding :func:`_training_slot`."""
    @functools.wraps(method)
    def guarded(self, *args, **kwargs):
        with _training_slot(self, f"{type(self).__name__}.{method.__name__}"):
            return method(self, *args, **kwargs)
    return guarded


class _Found(Exception):
    """Raised inside the NaN replay to stop at the first non-finite value (its message says where)."""


class Model:
    """A graph of layers with Keras's API: ``gn.Model(inputs, outputs)`` (the Functional API).

    ``Sequential`` is the one-chain case of this class: both run on one executor
    (:mod:`glassnet.engine`), so fit, evaluate, predict, saving, the summary and every explanation
    work the same on both.

    Parameters
    ----------
    inputs : KerasTensor, or list / dict of them
        The ``gn.Input(...)`` tensors the graph starts from.
    outputs : KerasTensor, or list / dict of them
        Tensors computed from ``inputs`` by calling layers on them.
    name : str, optional

    Raises
    ------
    TypeError, ValueError
        A graph mistake (non-tensors, a disconnected output, an unused input, a tensor from another
        graph, two layers with one name), before anything is kept.
    """

    def __init__(self, inputs=None, outputs=None, name=None):
        from glassnet.functional import trace
        if inputs is None or outputs is None:
            raise TypeError(message("Model", "Model(inputs, outputs) with symbolic tensors", "inputs="
                                    f"{describe(inputs)}, outputs={describe(outputs)}",
                                    "x = gn.Input((28, 28, 1)); y = layers.Dense(10)(layers.Flatten()(x)); "
                                    "model = gn.Model(x, y); or use gn.Sequential([...])."))
        traced = trace(inputs, outputs, "Model")           # every check runs before any state is kept
        self._init_state(name or unique_name("functional"), None)
        self._traced = traced
        self._layers = list(traced.layers)
        self._slot_of = {}
        for node in traced.graph.nodes:
            self._slot_of.setdefault(id(node.layer), node.output)
        for slot, tensor in enumerate(traced.input_tensors):
            self._slot_of[id(tensor.history.layer)] = slot
        shapes = [tensor.shape for tensor in traced.input_tensors]
        self.input_shape = shapes[0] if len(shapes) == 1 else shapes
        self.built = True

    def _init_state(self, name, seed):
        self.name = name
        self.seed = seed
        self._layers = []
        self._plans = {}
        self.built = False
        self.input_shape = None
        self.optimizer = None
        self.loss = None
        self.compiled = False
        self.metrics = []
        self.weighted_metrics = []
        self._metric_specs = []
        self._weighted_specs = []
        self.stop_training = False
        self.history = None
        #: Epochs trained so far (saved with the model; ``fit(initial_epoch=...)`` resumes from it).
        self.completed_epochs = 0
        #: Base seed of the last ``fit`` (saved, so ``initial_epoch=k`` resumes with the same streams).
        self.fit_seed = None
        #: Free-form JSON-able information saved with the model (dataset, class names, scaling).
        self.metadata = {}

    # -- structure -----------------------------------------------------------------------
    @property
    def layers(self):
        return list(self._layers)

    def build(self, input_shape=None):
        """Graph models are built when constructed; this exists for Keras's API and returns the model."""
        return self

    @property
    def output_shape(self):
        """The output shape ``(None, ...)``, or a list of them for several outputs."""
        shapes = [tensor.shape for tensor in self._traced.output_tensors]
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def dtype(self):
        return self._output_layer().dtype

    @property
    def inputs(self):
        """The model's input tensors (a list, as Keras's ``model.inputs``)."""
        return list(self._traced.input_tensors)

    @property
    def outputs(self):
        """The model's output tensors (a list, as Keras's ``model.outputs``)."""
        return list(self._traced.output_tensors)

    def _output_layer(self):
        """The layer that computes the (first) output."""
        node = next(n for n in self._graph().nodes if n.output == self._graph().outputs[0])
        return node.layer

    def get_layer(self, name=None, index=None):
        """A layer by name, by index (negative counts from the end), or the Layer itself."""
        key = index if name is None else name
        if isinstance(key, Layer) and key in self._layers:
            return key
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            if -len(self._layers) <= key < len(self._layers):
                return self._layers[key]
        elif isinstance(key, str):
            for layer in self._layers:
                if layer.name == key:
                    return layer
        raise ValueError(message("Sequential.get_layer", f"a layer name among {[l.name for l in self._layers]} "
                                 f"or an index in [-{len(self._layers)}, {len(self._layers) - 1}]", repr(key)))

    def layer_index(self, layer):
        """Index of a layer given by name, index or instance."""
        return self._layers.index(self.get_layer(layer))

    def count_params(self):
        return int(sum(layer.count_params() for layer in self._layers))

    def trainable_layers(self):
        return [layer for layer in self._layers if layer.trainable and layer.params]

    def trainable_weights(self):
        """Trainable arrays in a fixed order (layer by layer, Keras's weight order)."""
        return [w for layer in self.trainable_layers() for w in layer.params.values()]

    def gradients(self):
        """Gradients aligned with :meth:`trainable_weights` (valid after a backward pass)."""
        return [layer.grads[key] for layer in self.trainable_layers() for key in layer.params]

    def get_weights(self):
        return [w for layer in self._layers for w in layer.get_weights()]

    def set_weights(self, weights):
        weights = list(weights)
        expected = sum(len(layer.weights) for layer in self._layers)
        if len(weights) != expected:
            raise ValueError(message("Sequential.set_weights", f"{expected} arrays", f"{len(weights)} arrays"))
        for layer in self._layers:
            count = len(layer.weights)
            layer.set_weights(weights[:count])
            weights = weights[count:]

    # -- computation ---------------------------------------------------------------------
    def _head(self):
        """(number of layers to run, whether the last one runs without its softmax) for logits."""
        last = self._output_layer()
        kind = head_kind(last)
        return (self._layers.index(last), False) if kind == "drop" else (len(self._layers), kind == "logits")

    @property
    def output_activation(self):
        """The final activation ("softmax", "sigmoid", "linear", ...) that ``logits=True`` removes."""
        last = self._output_layer()
        if isinstance(last, Softmax):
            return "softmax"
        return getattr(last, "activation", "linear") if isinstance(getattr(last, "activation", None), str) else "linear"

    def _graph(self):
        return self._traced.graph

    def layer_slot(self, layer):
        """The tensor slot (in :meth:`plan`) holding the output of ``layer`` (name, index or Layer);
        for a layer called several times, its first call."""
        return self._slot_of[id(self.get_layer(layer))]

    @property
    def input_slots(self):
        return self._graph().inputs

    def plan(self, logits=False, fuse=False, exposed=None, rule="vanilla"):
        """The execution plan (:func:`glassnet.engine.make_plan`) of this model, made once per kind.

        ``logits=True`` stops at the logits; ``fuse=True`` runs Conv2D + MaxPooling2D pairs as one
        fused step (training, ``predict``, explanations). An explanation passes the slots it reads
        (``exposed``: no fusion hides them) and its ReLU ``rule``.
        """
        exposed = None if exposed is None else frozenset(exposed)
        key = (bool(logits), bool(fuse), len(self._layers), exposed, None if exposed is None else rule)
        plan = self._plans.get(key)
        if plan is None:
            plan = make_plan(self._graph(), logits=logits, fuse=fuse, exposed=exposed, rule=rule)
            self._plans[key] = plan       # one dict store: threads racing here build equal plans
        return plan

    def forward(self, x, training=False, logits=False, stop=None, fuse=None):
        """Run layers ``[0, stop)`` (all by default) on an already validated batch, keeping the pass
        for :meth:`backward` (the stateful API; ``predict``, ``fit`` and ``explain`` keep their
        passes in the call instead).

        With ``logits=True`` the final softmax/sigmoid is left out. ``fuse`` (default: ``training``)
        runs each Conv2D (ReLU or no activation) + MaxPooling2D pair that allows it as one fused step.
        """
        fuse = training if fuse is None else fuse
        if stop is None or stop == len(self._layers):
            plan = self.plan(logits, fuse)
            target = plan.outputs[0]
        else:
            plan, target = self.plan(False, fuse), stop
            if target not in plan.producer and target not in plan.inputs:
                plan = self.plan(False, False)          # a stop inside a fused pair: the unfused view
        self._tape = run(plan, [x], training=training, targets=[target])
        self._tape_output = target
        return self._tape.values[target]

    def backward(self, dy, logits=False, stop=0, input_grad=True):
        """Backpropagate ``dy`` (w.r.t. the output of the last :meth:`forward`, the logits when it ran
        with ``logits=True``) down to the input of layer ``stop``.

        Returns dL/d(input of layer ``stop``) (None for ``stop=0, input_grad=False``); every layer
        passed fills its ``grads``.
        """
        tape = getattr(self, "_tape", None)
        if tape is None:
            raise RuntimeError(message("Sequential.backward", "a forward pass first", "no forward pass",
                                       "Call model.forward(x, training=True) before model.backward(dy)."))
        plan = tape.plan
        if stop and stop not in plan.producer:
            raise RuntimeError(message("Sequential.backward", "a stop between two execution steps",
                                       f"stop={stop}, inside the fused pair {plan.steps[plan.producer[stop + 1]]}"
                                       if stop + 1 in plan.producer else f"stop={stop}",
                                       "Run the forward pass with training=False to stop between them."))
        wrt = (stop,) if stop or input_grad else ()
        result = backprop(tape, {self._tape_output: dy}, wrt=wrt, stop=(stop,) if stop else (), release=False)
        self._store_grads(result.weights)
        return result.slots.get(stop) if wrt else None

    @staticmethod
    def _store_grads(weights):
        """Put a backward pass's weight gradients into each layer's ``grads`` (what the optimizer reads)."""
        for layer, found in weights.items():
            layer.grads.update(found)

    def check_x(self, x, where):
        """Validate a batch of inputs against the model (building it from ``x`` when needed)."""
        array = as_float_array(x, where, dtype=self.dtype)
        if not self._layers:
            raise RuntimeError(message(where, "a model with layers", "an empty Sequential", "Add layers first."))
        if not self.built:
            if array.ndim < 2:
                raise ValueError(message(where, "a batch of inputs (N, ...)", f"shape {array.shape}"))
            self.build((None,) + array.shape[1:])
        return check_input_shape(array, self.input_shape[1:], where)

    def check_inputs(self, x, where):
        """A model's inputs as a list of validated arrays, one per input: ``x`` an array for a model with
        one input; a list (in ``model.inputs`` order) or a dict by input name for several."""
        if len(self.input_slots) == 1:
            return [self.check_x(x, where)]
        tensors = self._traced.input_tensors
        if isinstance(x, dict):
            missing = [t.name for t in tensors if t.name not in x]
            if missing or len(x) != len(tensors):
                raise ValueError(message(where, f"one array per input, keyed {[t.name for t in tensors]}",
                                         f"keys {sorted(map(str, x))}"))
            x = [x[t.name] for t in tensors]
        if not isinstance(x, (list, tuple)) or len(x) != len(tensors):
            raise ValueError(message(where, f"a list of {len(tensors)} arrays (inputs {[t.name for t in tensors]})",
                                     describe(x), "Pass one array per gn.Input, in model.inputs order, or a dict."))
        arrays = [check_input_shape(as_float_array(a, where, name=t.name, dtype=self.dtype), t.shape[1:], where,
                                    name=t.name) for a, t in zip(x, tensors)]
        if len({len(a) for a in arrays}) != 1:
            raise ValueError(message(where, "inputs with one number of samples", f"{[len(a) for a in arrays]}"))
        return arrays

    def predict(self, x, batch_size=32, verbose=0, logits=False, steps=None):
        """Outputs for ``x`` computed in batches: (N, ...) -> (N, *output_shape); a list (or dict, as the
        model's outputs were given) of arrays for a model with several outputs.

        ``x`` may also be a generator or dataset of batches (``x``, ``(x, y)`` or ``(x, y, w)``; the
        targets are ignored, as in Keras), e.g. from ``image_dataset_from_directory``; ``steps``
        batches are taken from a generator without ``len()``.
        """
        where = f"{type(self).__name__}.predict"
        if _is_batch_stream(x):
            x = _stream_inputs(x, steps, where)
        xs = self.check_inputs(x, where)
        if not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
            raise ValueError(message(where, "batch_size as a positive int", repr(batch_size)))
        plan = self.plan(logits, fuse=True)
        parts = [run(plan, [a[start:start + batch_size] for a in xs], keep=False).values
                 for start in range(0, len(xs[0]), batch_size)]
        outputs = [np.concatenate([values[slot] for values in parts], axis=0) for slot in plan.outputs]
        return self._structured(outputs)

    def _structured(self, outputs):
        """A list of per-output arrays in the structure the outputs were given (one array, list, dict)."""
        traced = getattr(self, "_traced", None)
        if traced is None or traced.structure == "single":
            return outputs[0]
        return dict(zip(traced.output_names, outputs)) if traced.structure == "dict" else outputs

    def predict_on_batch(self, x):
        return self.predict(x, batch_size=max(len(self.check_inputs(x, "predict_on_batch")[0]), 1))

    def __call__(self, x, training=False):
        return self.forward(x, training=training)

    # -- training ------------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, weighted_metrics=None, run_eagerly=None,
                steps_per_execution=1, jit_compile="auto"):
        """Configure training: an optimizer, a loss and optional metrics.

        Parameters
        ----------
        optimizer : str or glassnet.optimizers.Optimizer
            ``"sgd"``, ``"adam"``, ... (Keras's defaults) or an instance.
        loss : str or glassnet.losses.Loss
            ``"categorical_crossentropy"``, ``"sparse_categorical_crossentropy"``,
            ``"binary_crossentropy"``, ``"mse"`` or an instance.
        metrics : list of str, optional
            E.g. ``["accuracy"]`` (the variant is chosen from the loss, as Keras does). Keras 3
            does not weigh them by ``sample_weight`` / ``class_weight``.
        weighted_metrics : list of str, optional
            Metrics weighted by the sample (or class) weights, as Keras's; one whose name is
            also in ``metrics`` is reported as ``"weighted_<name>"``.
        run_eagerly, steps_per_execution
            Accepted for Keras scripts: glassnet always runs eagerly, one batch per step.
        jit_compile : "auto", False or None
            Accepted for Keras scripts; glassnet runs NumPy directly and has no compiler to switch on.
        """
        from glassnet import losses, optimizers
        where = "Sequential.compile"
        if loss is None:
            raise ValueError(message(where, "a loss", "loss=None",
                                     "E.g. model.compile('adam', loss='sparse_categorical_crossentropy', "
                                     "metrics=['accuracy'])."))
        _check_jit_compile(jit_compile, where)
        _positive_int(steps_per_execution, "steps_per_execution", where)
        specs = _metric_list(metrics, "metrics", where)
        weighted_specs = _metric_list(weighted_metrics, "weighted_metrics", where)
        self.optimizer = optimizers.get(optimizer)
        self.loss = losses.get(loss)
        self._metric_specs, self._weighted_specs = specs, weighted_specs
        self._resolve_metrics(check_only=not self.built)
        self.compiled = True
        self.stop_training = False
        return self

    def _resolve_metrics(self, check_only=False):
        """Turn the metric names into Metric objects; the variant depends on the output shape.

        Sets (unless ``check_only``) and returns ``metrics``; ``weighted_metrics`` are set with them.
        """
        from glassnet import metrics as metrics_module
        shape = self.output_shape[1:] if self.built else None
        resolved = [metrics_module.get(spec, loss=self.loss, output_shape=shape) for spec in self._metric_specs]
        weighted = [metrics_module.get(spec, loss=self.loss, output_shape=shape)
                    for spec in getattr(self, "_weighted_specs", [])]
        plain_names = {m.name for m in resolved}
        weighted = [_renamed(metric, "weighted_" + metric.name) if metric.name in plain_names else metric
                    for metric in weighted]     # Keras 3 tells the two apart this way
        names = [m.name for m in resolved + weighted]
        if len(set(names)) != len(names) or "loss" in names:
            raise ValueError(message("Sequential.compile", "distinct metric names other than 'loss'", repr(names)))
        if not check_only:
            self.metrics, self.weighted_metrics = resolved, weighted
        return resolved

    @property
    def metrics_names(self):
        """Keys of ``evaluate``'s list and of the History: ``["loss", "accuracy", ...]`` (then the
        weighted metrics)."""
        return ["loss"] + [m.name for m in self.metrics + getattr(self, "weighted_metrics", [])]

    def _require_compiled(self, where):
        if not self.compiled:
            raise RuntimeError(message(where, "a compiled model", "an uncompiled one",
                                       "Call model.compile(optimizer='adam', loss='sparse_categorical_crossentropy',"
                                       " metrics=['accuracy']) first."))

    def check_y(self, y, n, where):
        """Validate targets for ``n`` inputs against the compiled loss; return them ready to use.

        Returns float targets in the model's dtype, or (sparse loss) integer class indices.
        """
        if y is None:
            raise ValueError(message(where, "targets y", "None",
                                     "Pass y=..., or a generator yielding (x, y) batches as x."))
        if isinstance(y, (str, bytes)):
            raise TypeError(message(where, "y as a numeric array", describe(y)))
        try:
            array = np.asarray(y)
        except (ValueError, TypeError) as error:
            raise TypeError(message(where, "y as a numeric array", f"{type(y).__name__} ({error})",
                                    "Make every target the same shape.")) from None
        if array.dtype == object or array.dtype.kind not in "biuf":
            raise TypeError(message(where, "y as a numeric array (class indices or one-hot rows)", describe(array),
                                    "Convert it first, e.g. np.asarray(y, dtype='int64') or "
                                    "gn.utils.to_categorical(y, num_classes)."))
        if array.size == 0:
            raise ValueError(message(where, "a non-empty y", describe(array)))
        if array.ndim == 0 or len(array) != n:
            got = "a scalar" if array.ndim == 0 else f"{len(array)} targets (shape {array.shape})"
            raise ValueError(message(where, f"one target per input ({n}, as x has {n} samples)", got,
                                     "x and y must have the same length; check how they were sliced."))
        try:
            targets = self.loss.check_targets(array, (n,) + tuple(self.output_shape[1:]))
        except (ValueError, TypeError) as error:
            raise type(error)(f"{where}: {error}") from None
        if targets.dtype.kind == "f" or targets.shape != (n,) + tuple(self.output_shape[1:])[:-1]:
            targets = np.asarray(targets, dtype=self.dtype)
        return targets

    def _fusable(self):
        """Whether training can run on logits with the loss's fused activation + cross-entropy."""
        if not self.loss.fuses_with(self.output_activation):
            return False
        count, head_logits = self._head()
        return head_logits or count == len(self._layers) - 1

    def _outputs(self, z, fused):
        """Predictions from what the forward pass returned (the activation applied when fused)."""
        return activations.forward(self.output_activation, z) if fused else z

    def _step(self, xb, yb, fused, update, sample_weight=None):
        """One batch: loss and predictions, plus gradients in every layer's ``grads`` when ``update``.

        ``sample_weight`` (one weight per sample, or None) weighs the loss as Keras 3 does.
        """
        plan = self.plan(logits=fused, fuse=True)
        out = plan.outputs[0]
        tape = run(plan, [xb], training=update, keep=update)
        z = tape.values[out]
        if fused or update:
            loss, dz = (self.loss.value_and_grad_logits(yb, z, sample_weight) if fused
                        else self.loss.value_and_grad(yb, z, sample_weight))
        else:
            loss = self.loss(yb, z, sample_weight)
        if update:
            self._store_grads(backprop(tape, {out: dz}).weights)
        if fused:
            return loss, (self._outputs(z, True) if self.metrics or self.weighted_metrics else z)
        return loss, z

    def _train_step(self, xb, yb, params, fused, check_numerics, where, sample_weight=None):
        """One gradient step on a batch: (loss, predictions) from before the update.

        BLAS stays at one thread for the whole step (:func:`glassnet.ops.parallel.held_blas`): the
        built-in layers' products all run on glassnet's worker threads, and its many parallel calls
        then skip lowering and restoring BLAS's limit each time. (A custom layer's products should
        go through :func:`glassnet.ops.matmul` too; ``@`` would run on one thread here.)
        """
        with held_blas():
            loss, y_pred = self._step(xb, yb, fused, update=True, sample_weight=sample_weight)
            grads = self.gradients()
            if check_numerics and not (math.isfinite(loss) and self._finite_grads(grads)):
                self._raise_non_finite(xb, yb, fused, where)
            self.optimizer.apply(params, grads)
        return loss, y_pred

    @staticmethod
    def _finite_grads(grads):
        """Cheap test: one sum per gradient; an exact check only when a sum is not finite."""
        total = 0.0
        for grad in grads:
            total += float(grad.sum())
        return math.isfinite(total) or all(np.isfinite(grad).all() for grad in grads)

    def _prepare_training(self, where):
        """Resolve metrics after the model is built; return the trainable weights."""
        self.metrics = self._resolve_metrics()
        params = self.trainable_weights()
        if not params:
            raise ValueError(message(where, "a model with trainable weights", "none",
                                     "Set trainable=True on some layer, or add a Dense/Conv2D layer."))
        return params

    @_trains_alone
    def fit(self, x=None, y=None, batch_size=32, epochs=1, verbose="auto", validation_split=0.0,
            validation_data=None, shuffle=True, callbacks=None, seed=None, initial_epoch=0, steps_per_epoch=None,
            check_numerics=True, class_weight=None, sample_weight=None, validation_freq=1, validation_steps=None):
        """Train for ``epochs - initial_epoch`` epochs; returns a :class:`~glassnet.callbacks.History`.

        Parameters
        ----------
        x : array (N, ...) or iterator of batches
            Inputs (converted once to the model's dtype), or a generator / iterator / Keras-style
            Sequence of ``(x, y)`` or ``(x, y, sample_weight)`` batches, e.g.
            ``ImageDataGenerator().flow(x, y, sample_weight=w)``; then ``y`` is None.
        y : array
            Targets: one-hot ``(N, C)`` or class indices ``(N,)`` as the loss requires.
        batch_size : int
        epochs : int
            Index of the last epoch (Keras's meaning: with ``initial_epoch=2, epochs=5`` three run).
        verbose : {"auto", 0, 1, 2}
            0 silent, 1 (and "auto") a live bar per epoch (tqdm), 2 one line per epoch.
        validation_split : float in [0, 1)
            Fraction of the data held out for validation: the *last* samples, taken before shuffling
            (their sample weights go with them).
        validation_data : (x_val, y_val), (x_val, y_val, val_sample_weight) or a generator, optional
            Overrides ``validation_split``. A generator or dataset of batches (e.g. the validation
            subset of ``image_dataset_from_directory``) is read once, at the start.
        shuffle : bool
            Shuffle the training samples every epoch.
        callbacks : list of Callback, optional
        seed : int or numpy.random.Generator, optional
            Makes the run reproducible: shuffling and every layer's ``rng`` (Dropout) use streams
            derived from ``(seed, epoch)``. With None a fresh seed is drawn, except when resuming
            (``initial_epoch > 0``) a model that remembers one (``model.fit_seed``, saved in checkpoints).
        initial_epoch : int
            Epoch to start from (to resume: ``load_model(ckpt).fit(..., initial_epoch=ckpt_epochs)``).
        steps_per_epoch : int, optional
            Batches per epoch; for iterators defaults to ``len(x)``; for arrays caps the epoch.
        check_numerics : bool
            Stop with a RuntimeError naming the first layer where a NaN/inf appeared when the loss or a
            gradient is not finite (the weights keep their values from before that batch). False opts
            out, as Keras does (use ``callbacks.TerminateOnNaN()`` to stop at the first NaN loss).
        class_weight : dict {class index: weight}, optional
            Weighs each training sample by the weight of its class (classes left out weigh 1); not
            with ``sample_weight``, as in Keras. Validation data is not class-weighted.
        sample_weight : array (N,), optional
            One weight per training sample: the batch loss is ``sum(w * loss) / batch size``, as in
            Keras 3 (see :mod:`glassnet.trainers.weighting`).
        validation_freq : int or list of int
            Validate after every ``k``-th epoch (counted from 1), or after the epochs listed.
        validation_steps : int, optional
            Batches to take from a validation generator (default: its ``len()``).

        Returns
        -------
        History
            ``history.history`` maps ``loss``, each metric, and ``val_*`` to per-epoch lists (the
            ``val_*`` lists hold only the epochs that were validated).
        """
        from glassnet.callbacks import CallbackList, History, ProgbarLogger
        where = "Sequential.fit"
        self._require_compiled(where)
        batch_size = _positive_int(batch_size, "batch_size", where)
        epochs = _non_negative_int(epochs, "epochs", where)
        initial_epoch = _non_negative_int(initial_epoch, "initial_epoch", where)
        if steps_per_epoch is not None:
            steps_per_epoch = _positive_int(steps_per_epoch, "steps_per_epoch", where)
        verbose = _verbosity(verbose, where)
        if (isinstance(validation_split, bool) or not isinstance(validation_split, numbers.Real)
                or not 0 <= validation_split < 1):
            raise ValueError(message(where, "validation_split as a float in [0, 1)", repr(validation_split),
                                     "E.g. validation_split=0.2 keeps the last 20% for validation."))
        if not isinstance(shuffle, (bool, np.bool_)):
            raise TypeError(message(where, "shuffle as True or False", describe(shuffle)))
        validates = _validation_epochs(validation_freq, where)

        source = _batch_source(self, x, y, batch_size, shuffle, steps_per_epoch, where, sample_weight)
        if validation_data is not None:
            validation = self._validation_arrays(validation_data, validation_steps)
        elif validation_split > 0:
            validation = source.split(validation_split)
        else:
            validation = None
        if class_weight is not None:
            source.class_weights = class_weight_table(class_weight, self.output_shape[-1], where)
        params = self._prepare_training(where)
        fused = self._fusable()
        base_seed = self._fit_base_seed(seed, initial_epoch, where)
        self.fit_seed = base_seed

        history = History()
        extra = [ProgbarLogger(verbose)] if verbose else []
        callback_list = CallbackList(list(callbacks or []) + [history] + extra, model=self, params={
            "epochs": epochs, "steps": source.steps, "samples": source.samples, "batch_size": batch_size,
            "verbose": verbose, "initial_epoch": initial_epoch,
            "metrics": self.metrics_names + (["val_" + k for k in self.metrics_names] if validation else [])})
        self.history = history
        self.stop_training = False
        callback_list.on_train_begin()
        # With the guard on, fit reports NaN/inf itself (naming the layer), so NumPy's warnings are noise.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore") if check_numerics else _no_context():
            self._fit_loop(source, callback_list, params, fused, base_seed, initial_epoch, epochs, batch_size,
                           validation if validation else None, check_numerics, where, validates)
        callback_list.on_train_end()
        return history

    def _fit_loop(self, source, callback_list, params, fused, base_seed, initial_epoch, epochs, batch_size,
                  validation, check_numerics, where, validates=None):
        names = self.metrics_names
        per_batch = callback_list.wants_batches
        for epoch in range(initial_epoch, epochs):
            rng = self._seed_epoch(base_seed, epoch)
            callback_list.on_epoch_begin(epoch)
            totals = EpochTotals(self.metrics, self.weighted_metrics)
            for batch, (xb, yb, wb) in enumerate(source.batches(rng)):
                size = len(xb)
                if per_batch:
                    callback_list.on_batch_begin(batch, {"batch": batch, "size": size})
                loss, y_pred = self._train_step(xb, yb, params, fused, check_numerics,
                                                f"{where} (epoch {epoch + 1}, batch {batch + 1})", wb)
                values = totals.add(loss, yb, y_pred, wb)
                if per_batch:
                    logs = dict(zip(names, values))
                    logs.update(batch=batch, size=size)
                    callback_list.on_batch_end(batch, logs)
                if self.stop_training:
                    break
            if totals.samples == 0:  # an exhausted generator
                break
            logs = dict(zip(names, totals.means()))
            if validation is not None and (validates is None or validates(epoch)):
                logs.update(("val_" + k, v) for k, v in zip(names, self._evaluate_arrays(
                    *validation[:2], batch_size, fused, sample_weight=validation[2])))
            self.completed_epochs = epoch + 1
            callback_list.on_epoch_end(epoch, logs)
            if self.stop_training or source.exhausted:
                break

    def _validation_arrays(self, validation_data, steps=None):
        """``(x_val, y_val, weights or None)`` from a pair, a triple or a generator of batches, checked."""
        where = "Sequential.fit(validation_data=...)"
        if _is_batch_stream(validation_data):
            return _StreamSource(self, validation_data, steps, where).arrays()
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError(message(where, "a pair (x_val, y_val) or a triple (x_val, y_val, val_sample_weight)",
                                     describe(validation_data) if not isinstance(validation_data, (tuple, list))
                                     else f"a sequence of {len(validation_data)} items"))
        x_val = self.check_x(validation_data[0], where)
        y_val = self.check_y(validation_data[1], len(x_val), where)
        weights = validation_data[2] if len(validation_data) == 3 else None
        return x_val, y_val, weights_for_batch(y_val, weights, None, where)

    def _fit_base_seed(self, seed, initial_epoch, where):
        """The seed that all of this fit's random streams derive from (see :meth:`fit`)."""
        if seed is None:
            if initial_epoch > 0 and self.fit_seed is not None:
                return self.fit_seed
            return int(np.random.SeedSequence().entropy)
        return check_seed(seed, where)

    def _seed_epoch(self, base_seed, epoch):
        """Fresh streams for epoch ``epoch``: the shuffle generator (returned) and each layer's ``rng``."""
        children = np.random.SeedSequence([base_seed, epoch]).spawn(len(self._layers) + 1)
        for layer, child in zip(self._layers, children[1:]):
            layer.rng = np.random.Generator(np.random.PCG64(child))
        return np.random.Generator(np.random.PCG64(children[0]))

    def _evaluate_arrays(self, x, y, batch_size, fused, on_batch=None, sample_weight=None):
        """Keras's means of the loss and metrics over ``x`` (inference mode; see :class:`EpochTotals`)."""
        totals = EpochTotals(self.metrics, self.weighted_metrics)
        for batch, start in enumerate(range(0, len(x), batch_size)):
            xb, yb = x[start:start + batch_size], y[start:start + batch_size]
            wb = None if sample_weight is None else sample_weight[start:start + batch_size]
            loss, y_pred = self._step(xb, yb, fused, update=False, sample_weight=wb)
            totals.add(loss, yb, y_pred, wb)
            if on_batch is not None:
                on_batch(batch, {"batch": batch, "size": len(xb)})
        return totals.means()

    def evaluate(self, x=None, y=None, batch_size=32, verbose=0, steps=None, sample_weight=None,
                 return_dict=False):
        """Loss and metrics on ``(x, y)`` in inference mode.

        ``x`` may be a generator of ``(x, y)`` or ``(x, y, sample_weight)`` batches (``y`` None).
        ``sample_weight`` weighs the loss and the weighted metrics as in :meth:`fit`; ``verbose``
        takes "auto" (a progress bar) as in Keras.

        Returns
        -------
        float, list of float or dict
            ``[loss, *metrics]`` (order of :attr:`metrics_names`), or the loss alone without metrics;
            with ``return_dict=True`` a dict ``{"loss": ..., "accuracy": ...}``.
        """
        from glassnet.callbacks import CallbackList, ProgbarLogger
        where = "Sequential.evaluate"
        self._require_compiled(where)
        batch_size = _positive_int(batch_size, "batch_size", where)
        verbose = _verbosity(verbose, where)
        source = _batch_source(self, x, y, batch_size, False, steps, where, sample_weight)
        self.metrics = self._resolve_metrics()
        x, y, sample_weight = source.arrays()
        progress = CallbackList([ProgbarLogger(verbose)] if verbose else [], model=self,
                                params={"steps": -(-len(x) // batch_size), "verbose": verbose})
        progress.on_test_begin()
        values = self._evaluate_arrays(x, y, batch_size, self._fusable(), on_batch=progress.on_test_batch_end,
                                       sample_weight=sample_weight)
        results = dict(zip(self.metrics_names, values))
        progress.on_test_end(results)
        if return_dict:
            return results
        return values if len(values) > 1 else values[0]

    @_trains_alone
    def train_on_batch(self, x, y, sample_weight=None, class_weight=None, return_dict=False):
        """One gradient step on one batch; returns ``[loss, *metrics]`` (or the loss, or a dict with
        ``return_dict=True``) from before the update. Weights as in :meth:`fit`."""
        where = "Sequential.train_on_batch"
        self._require_compiled(where)
        x = self.check_x(x, where)
        y = self.check_y(y, len(x), where)
        params = self._prepare_training(where)
        table = None if class_weight is None else class_weight_table(class_weight, self.output_shape[-1], where)
        weights = weights_for_batch(y, sample_weight, table, where)
        fused = self._fusable()
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            loss, y_pred = self._train_step(x, y, params, fused, True, where, weights)
        return self._batch_results(loss, y, y_pred, weights, return_dict)

    def test_on_batch(self, x, y, sample_weight=None, return_dict=False):
        """Loss and metrics on one batch in inference mode (no update)."""
        where = "Sequential.test_on_batch"
        self._require_compiled(where)
        x = self.check_x(x, where)
        y = self.check_y(y, len(x), where)
        self.metrics = self._resolve_metrics()
        weights = weights_for_batch(y, sample_weight, None, where)
        loss, y_pred = self._step(x, y, self._fusable(), update=False, sample_weight=weights)
        return self._batch_results(loss, y, y_pred, weights, return_dict)

    def _batch_results(self, loss, y, y_pred, weights, return_dict):
        values = EpochTotals(self.metrics, self.weighted_metrics).add(loss, y, y_pred, weights)
        if return_dict:
            return dict(zip(self.metrics_names, values))
        return values if len(values) > 1 else values[0]

    # -- numerical faults ----------------------------------------------------------------
    def _raise_non_finite(self, xb, yb, fused, where):
        """Find where a NaN/inf first appeared in this batch and raise a RuntimeError saying so.

        Replays the batch layer by layer (forward in order, then backward from the top), restoring
        every layer's random state and moving statistics afterwards, so nothing changes.
        """
        found = self._locate_non_finite(xb, yb, fused)
        raise RuntimeError(message(
            where, "a finite loss and finite gradients", found,
            "The weights are left as they were before this batch. Lower the learning rate, scale the "
            "inputs (e.g. x / 255), or clip gradients (optimizer clipnorm=1.0); pass check_numerics=False "
            "to train on regardless (callbacks.TerminateOnNaN() then stops at the first NaN loss)."))

    def _locate_non_finite(self, xb, yb, fused):
        if not np.isfinite(xb).all():
            return "NaN or inf in the input batch"
        for layer in self._layers:
            for key, weight in list(layer.params.items()) + list(layer.non_trainable.items()):
                if not np.isfinite(weight).all():
                    return f"non-finite weights '{key}' in layer '{layer.name}' ({type(layer).__name__})"
        saved = [(layer.rng.bit_generator.state, {k: v.copy() for k, v in layer.non_trainable.items()})
                 for layer in self._layers]
        try:
            return self._replay(xb, yb, fused)
        finally:
            for layer, (state, stats) in zip(self._layers, saved):
                layer.rng.bit_generator.state = state
                for key, value in stats.items():
                    layer.non_trainable[key][...] = value

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r} layers={len(self._layers)} params={self.count_params():,}>"

    def _replay(self, xb, yb, fused):
        """Run the batch again step by step on the unfused plan, naming the first non-finite value."""
        plan = self.plan(logits=fused, fuse=False)

        def forward_check(step, outputs):
            if not all(np.isfinite(y).all() for y in outputs):
                raise _Found(f"a non-finite output (NaN or inf) first in layer '{step.layer.name}' "
                             f"({type(step.layer).__name__}, layer {self._layers.index(step.layer)} in forward order)")

        def backward_check(step, input_grads, weight_grads):
            finite = all(np.isfinite(g).all() for grads in weight_grads.values() for g in grads.values())
            if not finite or not all(dx is None or np.isfinite(dx).all() for dx in input_grads):
                raise _Found(f"a non-finite gradient (NaN or inf) first in layer '{step.layer.name}' "
                             f"({type(step.layer).__name__}, layer {self._layers.index(step.layer)}) during the "
                             "backward pass")

        with np.errstate(all="ignore"):
            try:
                tape = run(plan, [xb], training=True, observe=forward_check)
                a = tape.values[plan.outputs[0]]
                loss, dy = (self.loss.value_and_grad_logits(yb, a) if fused else self.loss.value_and_grad(yb, a))
                if not (math.isfinite(loss) and np.isfinite(dy).all()):
                    return f"a non-finite loss ({loss}) from finite model outputs: check the targets and the loss"
                backprop(tape, {plan.outputs[0]: dy}, observe=backward_check)
            except _Found as found:
                return str(found)
        return "a non-finite loss or gradient that did not reappear when the batch was replayed"

    # -- saving ----------------------------------------------------------------------------
    def save(self, path, include_optimizer=True):
        """Write the whole model to one ``.npz`` file (atomically); see :mod:`glassnet.saving`."""
        from glassnet.saving import save_model
        save_model(self, path, include_optimizer=include_optimizer)

    def save_weights(self, path):
        """Write only the weights (atomically) to a ``.npz`` file."""
        from glassnet.saving import save_weights
        save_weights(self, path)

    def load_weights(self, path):
        """Load weights written by :meth:`save_weights` or :meth:`save` (names and shapes must match)."""
        from glassnet.saving import load_weights
        load_weights(self, path)

    # -- description ---------------------------------------------------------------------
    def summary(self, line_length=None, print_fn=None):
        """Print (or pass to ``print_fn``, line by line) Keras's summary table, with Keras 2's
        "Connected to" column for a graph model (``layer_name[call][0]`` of each input).

        Returns None like Keras; for the text collect the lines: ``model.summary(print_fn=lines.append)``.
        """
        columns = ["Layer (type)", "Output Shape", "Param #", "Connected to"]
        rows = []
        for layer in self._layers:
            calls = [call for call in self._traced.calls if call.layer is layer] or [None]
            shapes = [self._call_shape(layer, call) for call in calls]
            sources = [f"{t.history.layer.name}[{self._call_number(t.history)}][0]" for call in calls if call is not None
                       for t in call.inputs]
            rows.append([[f"{layer.name} ({type(layer).__name__})", str(shapes[0] if len(shapes) == 1 else shapes),
                          layer.count_params(), sources[0] if sources else ""]]
                        + [["", "", "", source] for source in sources[1:]])
        _print_table(self, columns, (0.33, 0.55, 0.67, 1.0), 98, rows, line_length, print_fn)

    def _call_shape(self, layer, call):
        """Output shape of one call of ``layer`` (an InputLayer: its input shape)."""
        if call is None:
            return layer.output_shape
        return next(t.shape for t, c in zip(self._traced.tensors, self._traced.calls) if c is call)

    def _call_number(self, call):
        """The position of ``call`` among its layer's calls in this model (a layer may have been called
        in other graphs too, so its own call counter is not it)."""
        if isinstance(call.layer, InputLayer):
            return 0
        return [c for c in self._traced.calls if c.layer is call.layer].index(call)

    def _slot_shapes(self):
        """{slot: (None, ...) shape} of every tensor of the graph."""
        shapes = {slot: tensor.shape for slot, tensor in enumerate(self._traced.input_tensors)}
        shapes.update((node.output, tensor.shape) for node, tensor in zip(self._graph().nodes, self._traced.tensors))
        return shapes

    def get_config(self):
        """Keras's Functional config: every layer with its ``inbound_nodes`` (``[[layer, call, 0], ...]``
        per call), ``input_layers`` and ``output_layers``; no code, only names and numbers."""
        from glassnet.layers import serialize
        entries = []
        for layer in self._layers:
            calls = [call for call in self._traced.calls if call.layer is layer]
            entries.append({**serialize(layer), "name": layer.name, "inbound_nodes": [
                [[t.history.layer.name, self._call_number(t.history), 0] for t in call.inputs] for call in calls]})
        ends = {"input_layers": self._traced.input_tensors, "output_layers": self._traced.output_tensors}
        config = {"name": self.name, "layers": entries, "output_structure": self._traced.structure,
                  "output_names": list(self._traced.output_names)}
        for key, tensors in ends.items():
            config[key] = [[t.history.layer.name, self._call_number(t.history), 0] for t in tensors]
        return config

    @classmethod
    def from_config(cls, config):
        """Rebuild a graph model from :meth:`get_config` by replaying its layer calls."""
        from glassnet.functional import replay
        inputs, outputs = replay(config)
        return cls(inputs, outputs, name=config.get("name"))


def _print_table(model, columns, fractions, default_length, rows, line_length, print_fn):
    """Keras 2's ``print_summary`` table: columns cut at ``fractions`` of ``line_length``; ``rows`` is one
    list of lines per layer."""
    where = f"{type(model).__name__}.summary"
    line_length = check_int(default_length if line_length is None else line_length, "line_length", where,
                            minimum=40, fix=f"The default, {default_length}, matches Keras.")
    if print_fn is not None and not callable(print_fn):
        raise TypeError(message(where, "print_fn as a callable taking one line (or None to print)",
                                describe(print_fn), "For example print_fn=lines.append."))
    positions = [int(line_length * p) for p in fractions]

    def row(fields):
        line = ""
        for i, field in enumerate(fields):
            if i > 0:
                line = line[:-1] + " "
            line = (line + str(field))[:positions[i]]
            line += " " * (positions[i] - len(line))
        return line

    lines = [f'Model: "{model.name}"', "_" * line_length, row(columns), "=" * line_length]
    for i, layer_rows in enumerate(rows):
        lines += [row(fields) for fields in layer_rows]
        lines.append("=" * line_length if i == len(rows) - 1 else "_" * line_length)
    total = model.count_params()
    trainable = sum(layer.count_trainable_params() for layer in model._layers)
    lines += [f"Total params: {total:,}", f"Trainable params: {trainable:,}",
              f"Non-trainable params: {total - trainable:,}", "_" * line_length]
    emit = print if print_fn is None else print_fn
    for line in lines:
        emit(line)


class Sequential(Model):
    """A linear stack of layers: the one-chain case of :class:`Model`.

    Parameters
    ----------
    layers : list of Layer, optional
    name : str, optional
    seed : int or numpy.random.Generator, optional
        Seeds weight initialization (layer ``i`` draws from ``default_rng([seed, i])``; a Generator
        gives the int seed, drawn once). Without it the weights differ from run to run, as in
        Keras and PyTorch: ``fit(seed=...)`` then makes the training reproducible from those
        weights, and the two seeds together the whole run.
    """

    def __init__(self, layers=None, name=None, seed=None):
        self._init_state(name or unique_name("sequential"), check_seed(seed, "Sequential"))
        #: The shape a leading ``layers.InputLayer`` declared (Keras keeps it, not the layer).
        self._declared_input_shape = None
        for layer in layers or []:
            self.add(layer)

    def add(self, layer):
        """Append a layer; builds it at once when the model's input shape is known.

        A first ``layers.InputLayer(shape=...)`` or ``gn.Input(shape)`` only gives the input shape,
        as in Keras 3's ``Sequential([keras.Input(shape), ...])``.
        """
        from glassnet.functional import KerasTensor
        if isinstance(layer, (InputLayer, KerasTensor)):
            return self._declare_input(layer)
        if not isinstance(layer, Layer):
            raise TypeError(message("Sequential.add", "a glassnet Layer instance", describe(layer),
                                    "Create it first, e.g. model.add(layers.Dense(10))."))
        if any(existing.name == layer.name for existing in self._layers):
            raise ValueError(message("Sequential.add", "unique layer names", f"a second layer named {layer.name!r}",
                                     "Pass a different name=... to one of them."))
        self._layers.append(layer)
        first_shape = self._declared_input_shape or layer.input_shape_arg
        if len(self._layers) == 1 and first_shape is not None:
            self.build((None,) + first_shape)
        elif self.built:
            self._build_layer(len(self._layers) - 1, self._layers[-2].output_shape[1:])

    def _declare_input(self, entry):
        """Keras's ``InputLayer`` / ``Input`` as the first entry: keep its shape; build once a layer follows."""
        if self._layers or self._declared_input_shape is not None:
            raise ValueError(message("Sequential.add", "an InputLayer (or gn.Input) only as the first entry",
                                     f"{entry!r} after {len(self._layers)} layer(s)",
                                     "Put layers.InputLayer(shape=...) first, or leave it out."))
        self._declared_input_shape = tuple(entry.shape if isinstance(entry, InputLayer) else entry.shape[1:])

    def _build_layer(self, index, shape):
        layer = self._layers[index]
        if self.seed is not None and not layer.built:
            layer.rng = np.random.default_rng([self.seed, index])
        if not layer.built or layer.input_shape[1:] != tuple(shape):
            layer.build((None,) + tuple(shape))
        return layer.output_shape[1:]

    def build(self, input_shape=None):
        """Build every layer for a Keras ``input_shape`` (its leading batch entry, None, may be left out)."""
        if input_shape is None:
            first = self._declared_input_shape or (self._layers[0].input_shape_arg if self._layers else None)
            if first is None:
                raise ValueError(message("Sequential.build", "an input_shape (or a first layer with input_shape)",
                                         "neither", "Call model.build((None, 28, 28, 1))."))
            input_shape = first
        shape = check_shape(input_shape, "Sequential.build")
        if shape and shape[0] is None:
            shape = shape[1:]
        self.input_shape = (None,) + tuple(int(d) for d in shape)
        shape = self.input_shape[1:]
        for index in range(len(self._layers)):
            shape = self._build_layer(index, shape)
        self.built = True
        return self

    @property
    def output_shape(self):
        return self._layers[-1].output_shape if self.built else None

    @property
    def dtype(self):
        return self._layers[0].dtype if self._layers else np.dtype("float32")

    def _output_layer(self):
        return self._layers[-1]

    def _slot_shapes(self):
        return {0: self.input_shape, **{i + 1: layer.output_shape for i, layer in enumerate(self._layers)}}

    def _graph(self):
        return Graph.chain(self._layers)

    def layer_slot(self, layer):
        """The tensor slot (in :meth:`plan`) holding the output of ``layer`` (name, index or Layer)."""
        return self.layer_index(layer) + 1

    # -- description ---------------------------------------------------------------------
    def summary(self, line_length=None, print_fn=None):
        """Print (or pass to ``print_fn``, line by line) Keras's summary table.

        Columns are cut like Keras 2's ``print_summary`` so the table matches Keras's output. Like
        Keras it returns None, so a notebook or an interactive prompt shows the table once; for the
        text, collect the lines: ``lines = []; model.summary(print_fn=lines.append)``.
        """
        if not self.built:
            raise RuntimeError(message("Sequential.summary", "a built model", "an unbuilt one",
                                       "Give the first layer input_shape=... or call model.build(input_shape)."))
        rows = [[[f"{layer.name} ({type(layer).__name__})", str(layer.output_shape), layer.count_params()]]
                for layer in self._layers]
        _print_table(self, ["Layer (type)", "Output Shape", "Param #"], (0.45, 0.85, 1.0), 65, rows, line_length,
                     print_fn)

    def to_json(self, **kwargs):
        """Keras's ``model.to_json()``: the architecture (no weights) as a JSON string that
        :func:`glassnet.models.model_from_json` reads back; ``kwargs`` go to ``json.dumps``."""
        import json
        from glassnet import __version__
        return json.dumps({"class_name": type(self).__name__, "config": self.get_config(),
                           "glassnet_version": __version__}, **kwargs)

    def get_config(self):
        from glassnet.layers import serialize
        return {"name": self.name, "seed": self.seed,
                "input_shape": list(self.input_shape[1:]) if self.built else None,
                "layers": [serialize(layer) for layer in self._layers]}

    @classmethod
    def from_config(cls, config):
        from glassnet.layers import deserialize
        model = cls([deserialize(layer) for layer in config["layers"]], name=config.get("name"),
                    seed=config.get("seed"))
        if not model.built and config.get("input_shape"):
            model.build((None,) + tuple(config["input_shape"]))
        return model


# -- helpers for compile, fit and evaluate -------------------------------------------------------
def _metric_list(metrics, name, where):
    """``metrics`` / ``weighted_metrics`` as a list of specs (a single name or function is one spec)."""
    if metrics is None:
        return []
    if isinstance(metrics, (list, tuple)):
        return list(metrics)
    if isinstance(metrics, str) or callable(metrics):
        return [metrics]
    raise TypeError(message(where, f"{name} as a list such as ['accuracy']", describe(metrics)))


def _renamed(metric, name):
    import copy
    metric = copy.copy(metric)
    metric.name = name
    return metric


def _check_jit_compile(jit_compile, where):
    # Keras compiles its step with XLA on request; glassnet's step is NumPy, run as written.
    if jit_compile not in ("auto", False, None):
        raise ValueError(message(where, "jit_compile='auto' or False", repr(jit_compile),
                                 "glassnet has no XLA (or other) compiler: its layers run NumPy directly and "
                                 "are already vectorized. Remove jit_compile=... from compile()."))


def _verbosity(verbose, where):
    """Keras's ``verbose``: 0, 1, 2, or "auto" (1, a progress bar)."""
    if verbose == "auto" and isinstance(verbose, str):
        return 1
    if verbose not in (0, 1, 2) or isinstance(verbose, bool):
        raise ValueError(message(where, "verbose 'auto', 0 (silent), 1 (progress bar) or 2 (one line per epoch)",
                                 repr(verbose)))
    return int(verbose)


def _validation_epochs(validation_freq, where):
    """A test ``epoch -> bool`` (0-based) for Keras's validation_freq: an int k (every k-th epoch, counted
    from 1) or a collection of 1-based epoch numbers (Keras 2's form)."""
    if isinstance(validation_freq, numbers.Integral) and not isinstance(validation_freq, bool):
        every = _positive_int(validation_freq, "validation_freq", where)
        return lambda epoch: (epoch + 1) % every == 0
    if isinstance(validation_freq, (list, tuple, set, frozenset, range)):
        chosen = {_positive_int(e, "validation_freq epochs", where) for e in validation_freq}
        return lambda epoch: epoch + 1 in chosen
    raise TypeError(message(where, "validation_freq as an int (every k-th epoch) or a list of epoch numbers",
                            describe(validation_freq), "E.g. validation_freq=2 validates after epochs 2, 4, ..."))


def _no_context():
    import contextlib
    return contextlib.nullcontext()


def _positive_int(value, name, where):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(message(where, f"{name} as a positive int", repr(value)))
    return int(value)


def _non_negative_int(value, name, where):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(message(where, f"{name} as an int >= 0", repr(value)))
    return int(value)


def _is_batch_stream(x):
    """True for generators, iterators and Keras-style Sequences of (x, y) batches (not arrays)."""
    if x is None or isinstance(x, (np.ndarray, list, tuple, str, bytes, dict)) or hasattr(x, "__array__"):
        return False
    return hasattr(x, "__next__") or hasattr(x, "__iter__") or (hasattr(x, "__getitem__") and hasattr(x, "__len__"))


def _stream_inputs(data, steps, where):
    """The inputs of the batches of a generator or Keras-style Sequence, joined (targets are ignored)."""
    import itertools
    if steps is None and not hasattr(data, "__len__"):
        raise ValueError(message(where, "steps=... for a generator without len()", "steps=None"))
    count = len(data) if steps is None else _positive_int(steps, "steps", where)
    inputs = [item[0] if isinstance(item, (tuple, list)) else item for item in itertools.islice(iter(data), count)]
    if not inputs:
        raise ValueError(message(where, "a generator with at least one batch", "none"))
    for batch in inputs:
        if np.ndim(batch) == 0:
            raise TypeError(message(where, "a generator of numeric input batches (N, ...)", describe(batch)))
    return np.concatenate([np.asarray(batch) for batch in inputs])


def _batch_source(model, x, y, batch_size, shuffle, steps, where, sample_weight=None):
    if _is_batch_stream(x):
        for name, value in (("y", y), ("sample_weight", sample_weight)):
            if value is not None:
                raise ValueError(message(where, f"{name}=None when x is a generator of (x, y) batches",
                                         describe(value), "The generator yields the targets (and weights) itself."))
        return _StreamSource(model, x, steps, where)
    if x is None:
        raise ValueError(message(where, "inputs x (an array (N, ...) or a generator of batches)", "None"))
    x = model.check_x(x, where)
    y = model.check_y(y, len(x), where)
    return _ArraySource(x, y, weights_for_batch(y, sample_weight, None, where), batch_size, shuffle, steps)


class _ArraySource:
    """Batches ``(x, y, weights or None)`` of in-memory arrays: one permutation per epoch, gathered
    into reused buffers. ``class_weights`` (a table by class, set by ``fit``) weighs the samples."""

    exhausted = False

    def __init__(self, x, y, weights, batch_size, shuffle, steps):
        self.x, self.y, self.weights = x, y, weights
        self.batch_size, self.shuffle, self.max_steps = batch_size, shuffle, steps
        self.class_weights = None

    @property
    def samples(self):
        return len(self.x)

    @property
    def steps(self):
        full = -(-len(self.x) // self.batch_size)
        return full if self.max_steps is None else min(full, self.max_steps)

    def arrays(self):
        return self.x, self.y, self.weights

    def split(self, fraction):
        """Keras's validation_split: hold out the last ``fraction`` of the samples (before shuffling);
        returns ``(x_val, y_val, weights_val or None)``."""
        at = int(len(self.x) * (1.0 - fraction))
        if at == 0 or at == len(self.x):
            raise ValueError(message("Sequential.fit", f"validation_split={fraction} to leave samples on both "
                                     "sides", f"{len(self.x)} samples -> {at} for training and "
                                     f"{len(self.x) - at} for validation", "Use more data or another fraction."))
        held = self.x[at:], self.y[at:], None if self.weights is None else self.weights[at:]
        self.x, self.y = self.x[:at], self.y[:at]
        self.weights = None if self.weights is None else self.weights[:at]
        return held

    def _training_weights(self):
        if self.class_weights is None:
            return self.weights
        return weights_for_batch(self.y, self.weights, self.class_weights, "Sequential.fit")

    def batches(self, rng):
        n, size = len(self.x), self.batch_size
        weights = self._training_weights()
        if not self.shuffle:
            for start in range(0, n, size)[:self.steps]:
                yield (self.x[start:start + size], self.y[start:start + size],
                       None if weights is None else weights[start:start + size])
            return
        order = rng.permutation(n)
        x_buffer = np.empty((min(size, n),) + self.x.shape[1:], dtype=self.x.dtype)
        y_buffer = np.empty((min(size, n),) + self.y.shape[1:], dtype=self.y.dtype)
        for start in range(0, n, size)[:self.steps]:
            index = order[start:start + size]
            m = len(index)
            yield (np.take(self.x, index, axis=0, out=x_buffer[:m]),
                   np.take(self.y, index, axis=0, out=y_buffer[:m]),
                   None if weights is None else weights[index])


class _StreamSource:
    """Batches from a generator, an iterator or a Keras-style Sequence (``seq[i]``, ``len(seq)``)
    yielding ``(x, y)`` or ``(x, y, sample_weight)``.

    Each batch is validated (augmentation already costs far more than the checks).
    """

    def __init__(self, model, data, steps, where):
        self.model, self.data, self.where = model, data, where
        self.exhausted = False
        self.class_weights = None
        self._index = hasattr(data, "__getitem__") and hasattr(data, "__len__") and not hasattr(data, "__next__")
        if steps is None:
            if not hasattr(data, "__len__"):
                raise ValueError(message(where, "steps_per_epoch for a generator without len()", "None",
                                         "Pass steps_per_epoch = ceil(samples / batch_size)."))
            steps = len(data)
            if steps < 1:
                raise ValueError(message(where, "a generator with at least one batch", f"len() == {steps}"))
        self.steps = steps
        self.samples = None
        self._iterator = None if self._index else (data if hasattr(data, "__next__") else iter(data))
        self._pending = self._next(0)          # builds the model from the first batch

    def split(self, fraction):
        raise ValueError(message(self.where, "validation_data=(x_val, y_val) with a generator",
                                 f"validation_split={fraction}", "A generator cannot be split: pass validation_data."))

    def _next(self, step):
        try:
            item = self.data[step % len(self.data)] if self._index else next(self._iterator)
        except StopIteration:
            self.exhausted = True
            warnings.warn(f"{self.where}: the generator ran out of batches (after {step} in this epoch); training "
                          "stops here. Pass an endless generator, or steps_per_epoch no larger than its length.",
                          RuntimeWarning, stacklevel=4)
            return None
        if not isinstance(item, (tuple, list)) or len(item) not in (2, 3):
            raise ValueError(message(self.where, "a generator yielding (x_batch, y_batch) pairs or (x_batch, y_batch, "
                                     "sample_weight_batch) triples", describe(item)
                                     if not isinstance(item, (tuple, list)) else f"{len(item)} items per batch"))
        x = self.model.check_x(item[0], self.where)
        y = self.model.check_y(item[1], len(x), self.where)
        return x, y, weights_for_batch(y, item[2] if len(item) == 3 else None, None, self.where)

    def batches(self, rng):
        for step in range(self.steps):
            batch, self._pending = (self._pending, None) if self._pending is not None else (self._next(step), None)
            if batch is None:
                return
            xb, yb, wb = batch
            if self.class_weights is not None:
                wb = weights_for_batch(yb, wb, self.class_weights, self.where)
            yield xb, yb, wb
        if self._index and hasattr(self.data, "on_epoch_end"):
            self.data.on_epoch_end()

    def arrays(self):
        """All batches of one pass joined: ``(x, y, weights or None)`` (for ``evaluate``)."""
        batches = list(self.batches(None))
        if not batches:
            raise ValueError(message(self.where, "a generator with at least one batch", "none"))
        weighted = [b[2] is not None for b in batches]
        if any(weighted) and not all(weighted):
            raise ValueError(message(self.where, "every batch with sample weights, or none", "a mix"))
        return tuple(None if column[0] is None else np.concatenate(column) for column in zip(*batches))
