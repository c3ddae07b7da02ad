"""Model and Sequential: layers as a graph, with Keras's API.

This module holds the model itself: its structure (layers, weights, the graph and its execution plans),
``predict``, the stateful ``forward`` / ``backward``, the summary and the config. Training
(``compile`` / ``fit`` / ``evaluate`` / ``train_on_batch``) is done by :mod:`glassnet.trainers`: the
methods here check nothing more than the trainer does and call it.
"""
import numpy as np

from glassnet.engine import Graph, backprop, make_plan, run
from glassnet.engine.plan import head_kind
from glassnet.errors import describe, message
from glassnet.layers import Layer, Softmax
from glassnet.layers.input import InputLayer
from glassnet.layers.base import unique_name
from glassnet.trainers import data, trainer
from glassnet.trainers.compile_utils import CompiledOutputs, compile_arguments
from glassnet.trainers.trainer import trains_alone
from glassnet.validation import (as_float_array, as_label_array, check_flag, check_input_shape, check_int,
                                 check_jit_compile, check_seed, check_shape, check_verbose)


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
        #: What compile set up per output (:class:`glassnet.trainers.compile_utils.CompiledOutputs`).
        self._compiled = None
        self._metric_pairs, self._weighted_pairs = [], []
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
        return self.activation_of(self._output_layer())

    def _graph(self):
        return self._traced.graph

    def layer_slot(self, layer):
        """The tensor slot (in :meth:`plan`) holding the output of ``layer`` (name, index or Layer);
        for a layer called several times, its first call."""
        return self._slot_of[id(self.get_layer(layer))]

    @property
    def input_slots(self):
        return self._graph().inputs

    def plan(self, logits=False, fuse=False, exposed=None, rule="vanilla", inference=False):
        """The execution plan (:func:`glassnet.engine.make_plan`) of this model, made once per kind.

        ``logits=True`` stops at the logits; ``fuse=True`` runs Conv2D + MaxPooling2D pairs as one
        fused step (training, ``predict``, explanations). An explanation passes the slots it reads
        (``exposed``: no fusion hides them) and its ReLU ``rule``. ``inference=True`` (a plan that never
        trains: ``predict``, explanations) also folds BatchNormalization into the Conv2D before it.
        """
        exposed = None if exposed is None else frozenset(exposed)
        key = (bool(logits), bool(fuse), len(self._layers), exposed, None if exposed is None else rule,
               bool(inference))
        plan = self._plans.get(key)
        if plan is None:
            plan = make_plan(self._graph(), logits=logits, fuse=fuse, exposed=exposed, rule=rule,
                             inference=inference)
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
        expected = f"a list of {len(tensors)} arrays (inputs {[t.name for t in tensors]})"
        fix = "Pass one array per gn.Input, in model.inputs order, or a dict."
        if not isinstance(x, (list, tuple)):
            raise TypeError(message(where, expected, describe(x), fix))
        if len(x) != len(tensors):
            raise ValueError(message(where, expected, f"a list of {len(x)}", fix))
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
        if data.is_batch_stream(x):
            x = data.stream_inputs(x, steps, where)
        xs = self.check_inputs(x, where)
        batch_size = check_int(batch_size, "batch_size", where, minimum=1)
        check_verbose(verbose, where)
        check_flag(logits, "logits", where)
        plan = self.plan(logits, fuse=True, inference=True)
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

    # -- training (the work is done in glassnet.trainers) -----------------------------------
    @property
    def output_names(self):
        """The outputs' names (Keras's ``model.output_names``): the output layers' names, or the keys
        of a dict of outputs. Losses, metrics, targets and History keys are matched by them."""
        traced = getattr(self, "_traced", None)
        return list(traced.output_names) if traced is not None else [self._output_layer().name]

    def output_shapes(self):
        """One ``(None, ...)`` shape per output, in :attr:`output_names` order."""
        shapes = self.output_shape
        return list(shapes) if len(self.output_names) > 1 else [shapes]

    def output_layers(self):
        """The layer computing each output, in :attr:`output_names` order."""
        producer = {node.output: node.layer for node in self._graph().nodes}
        return [producer[slot] for slot in self._graph().outputs]

    @staticmethod
    def activation_of(layer):
        """The final activation of ``layer`` ("softmax", "sigmoid", "linear", ...) as an output."""
        if isinstance(layer, Softmax):
            return "softmax"
        activation = getattr(layer, "activation", None)
        return activation if isinstance(activation, str) else "linear"

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, weighted_metrics=None, run_eagerly=None,
                steps_per_execution=1, jit_compile="auto", loss_weights=None):
        """Configure training: an optimizer, a loss and optional metrics (Keras 3's arguments).

        Parameters
        ----------
        optimizer : str or glassnet.optimizers.Optimizer
            ``"sgd"``, ``"adam"``, ... (Keras's defaults) or an instance.
        loss : str, glassnet.losses.Loss, or a list / dict of them
            ``"categorical_crossentropy"``, ``"sparse_categorical_crossentropy"``,
            ``"binary_crossentropy"``, ``"mse"`` or an instance. For several outputs: one loss for
            all, a list (``model.output_names`` order) or a dict by output name.
        metrics : list, or (several outputs) a list of lists or a dict by output name, optional
            E.g. ``["accuracy"]`` (the variant is chosen from the loss, as Keras does). Keras 3
            does not weigh them by ``sample_weight`` / ``class_weight``. With several outputs they are
            reported as ``<output>_<metric>``.
        weighted_metrics : same forms as ``metrics``, optional
            Metrics weighted by the sample (or class) weights, as Keras's; one whose name is
            also in ``metrics`` is reported as ``"weighted_<name>"``.
        run_eagerly, steps_per_execution
            Accepted for Keras scripts: glassnet always runs eagerly, one batch per step.
        jit_compile : "auto", False or None
            Accepted for Keras scripts; glassnet runs NumPy directly and has no compiler to switch on.
        loss_weights : list or dict of float (a float for one output), optional
            Training minimizes ``sum_k loss_weights[k] * loss_k`` (default: all 1). Keyword-only in
            practice: it comes last so that glassnet's positional ``compile(opt, loss, metrics)`` stays.
        """
        from glassnet import optimizers
        where = f"{type(self).__name__}.compile"
        check_jit_compile(jit_compile, where)
        check_int(steps_per_execution, "steps_per_execution", where, minimum=1)
        if run_eagerly is not None:
            check_flag(run_eagerly, "run_eagerly", where)
        compiled = CompiledOutputs(self.output_names if self.built or self._layers else ["output"], loss,
                                   loss_weights, metrics, weighted_metrics, where)
        plain, weighted = compiled.resolve(self.output_shapes() if self.built else None, where)  # checks them
        self.optimizer = optimizers.get(optimizer)
        self._compiled, self.loss = compiled, compiled.loss
        self._metric_pairs, self._weighted_pairs = plain, weighted
        self.metrics, self.weighted_metrics = [m for _, m in plain], [m for _, m in weighted]
        self.compiled = True
        self.stop_training = False
        return self

    def get_compile_config(self):
        """Keras 3's compile config: the optimizer's, the losses' and the metrics' configs (JSON-able;
        None for an uncompiled model). :meth:`compile_from_config` compiles a model from it."""
        if not self.compiled:
            return None
        return self._compiled.get_config(self.optimizer)

    def compile_from_config(self, config):
        """Compile from :meth:`get_compile_config`'s dict (a fresh optimizer with the saved settings)."""
        return self.compile(**compile_arguments(config))

    @property
    def metrics_names(self):
        """Keys of ``evaluate``'s list and of the History: ``["loss", "accuracy", ...]``; for several
        outputs ``["loss", "<output>_loss", ..., "<output>_<metric>", ...]`` (then the weighted metrics)."""
        losses = self._compiled.loss_names if self._compiled is not None else ["loss"]
        return losses + [m.name for m in self.metrics + self.weighted_metrics]

    def check_y(self, y, n, where, output=0):
        """Validate targets of output ``output`` for ``n`` inputs against its compiled loss; return them
        ready to use: float targets in the model's dtype, or (sparse loss) integer class indices."""
        if y is None:
            raise ValueError(message(where, "targets y", "None",
                                     "Pass y=..., or a generator yielding (x, y) batches as x."))
        array = as_label_array(y, where)
        shape = tuple(self.output_shapes()[output][1:])
        if array.ndim == 0 or len(array) != n:
            got = "a scalar" if array.ndim == 0 else f"{len(array)} targets (shape {array.shape})"
            raise ValueError(message(where, f"one target per input ({n}, as x has {n} samples)", got,
                                     "x and y must have the same length; check how they were sliced."))
        try:
            targets = self._compiled.losses[output].check_targets(array, (n,) + shape)
        except (ValueError, TypeError) as error:
            raise type(error)(f"{where}: {error}") from None
        if targets.dtype.kind == "f" or targets.shape != (n,) + shape[:-1]:
            targets = np.asarray(targets, dtype=self.dtype)
        return targets

    def _fusable(self):
        """Whether training runs on logits with a loss's fused activation + cross-entropy."""
        return trainer.fusion(self)[0]

    @trains_alone
    def fit(self, x=None, y=None, batch_size=32, epochs=1, verbose="auto", validation_split=0.0,
            validation_data=None, shuffle=True, callbacks=None, seed=None, initial_epoch=0, steps_per_epoch=None,
            check_numerics=True, class_weight=None, sample_weight=None, validation_freq=1, validation_steps=None):
        """Train for ``epochs - initial_epoch`` epochs; returns a :class:`~glassnet.callbacks.History`.

        Parameters
        ----------
        x : array (N, ...), list or dict of arrays, or iterator of batches
            Inputs (converted once to the model's dtype): for several inputs a list (``model.inputs``
            order) or a dict by input name. Or a generator / iterator / Keras-style
            Sequence of ``(x, y)`` or ``(x, y, sample_weight)`` batches, e.g.
            ``ImageDataGenerator().flow(x, y, sample_weight=w)``; then ``y`` is None.
        y : array, or list or dict of arrays
            Targets: one-hot ``(N, C)`` or class indices ``(N,)`` as the loss requires; for several
            outputs a list (``model.output_names`` order) or a dict by output name.
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
        sample_weight : array (N,), or list or dict of them, optional
            One weight per training sample (for several outputs one array for all, or one per output): the batch loss is ``sum(w * loss) / batch size``, as in
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
        return trainer.fit(self, x, y, batch_size=batch_size, epochs=epochs, verbose=verbose,
                           validation_split=validation_split, validation_data=validation_data, shuffle=shuffle,
                           callbacks=callbacks, seed=seed, initial_epoch=initial_epoch,
                           steps_per_epoch=steps_per_epoch, check_numerics=check_numerics,
                           class_weight=class_weight, sample_weight=sample_weight,
                           validation_freq=validation_freq, validation_steps=validation_steps)

    def evaluate(self, x=None, y=None, batch_size=32, verbose=0, steps=None, sample_weight=None,
                 return_dict=False):
        """Loss and metrics on ``(x, y)`` in inference mode.

        ``x`` may be a generator of ``(x, y)`` or ``(x, y, sample_weight)`` batches (``y`` None).
        ``sample_weight`` weighs the loss and the weighted metrics as in :meth:`fit`; ``verbose``
        takes "auto" (a progress bar) as in Keras. For several inputs or outputs, ``x``, ``y`` and
        ``sample_weight`` are lists or dicts as in :meth:`fit`.

        Returns
        -------
        float, list of float or dict
            ``[loss, *metrics]`` (order of :attr:`metrics_names`), or the loss alone without metrics;
            with ``return_dict=True`` a dict ``{"loss": ..., "accuracy": ...}``.
        """
        return trainer.evaluate(self, x, y, batch_size=batch_size, verbose=verbose, steps=steps,
                                sample_weight=sample_weight, return_dict=return_dict)

    @trains_alone
    def train_on_batch(self, x, y, sample_weight=None, class_weight=None, return_dict=False):
        """One gradient step on one batch; returns ``[loss, *metrics]`` (or the loss, or a dict with
        ``return_dict=True``) from before the update. Weights as in :meth:`fit`."""
        return trainer.train_on_batch(self, x, y, sample_weight, class_weight, return_dict)

    def test_on_batch(self, x, y, sample_weight=None, return_dict=False):
        """Loss and metrics on one batch in inference mode (no update)."""
        return trainer.test_on_batch(self, x, y, sample_weight, return_dict)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r} layers={len(self._layers)} params={self.count_params():,}>"

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
