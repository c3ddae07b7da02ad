"""What ``compile`` sets up, per model output, as Keras 3's ``trainers/compile_utils.py`` does.

- ``loss``: one loss for every output, a list (one per output, in ``model.output_names`` order) or a
  dict by output name. The loss that training minimizes is ``sum_k loss_weights[k] * loss_k``.
- ``loss_weights``: None (all 1), a list or a dict by output name.
- ``metrics`` / ``weighted_metrics``: for one output a list of metrics; for several a list with one
  entry per output (a metric or a list of them) or a dict by output name.
- The names ``evaluate`` and the History report: ``loss``, then for several outputs ``<output>_loss``
  (unweighted) per output, then each metric, named ``<output>_<metric>`` for several outputs, as Keras 3.
"""
import copy

from glassnet.errors import describe, message
from glassnet.validation import check_real


def per_output(value, names, what, where, broadcast=True):
    """``value`` as a list aligned with the output ``names``: from a dict keyed by output name, a list or
    tuple with one entry per output, or (``broadcast``) one value used for every output.

    Raises
    ------
    ValueError
        A dict with a missing or unknown output name, or a list of the wrong length.
    TypeError
        A single value where one per output is needed (``broadcast=False``).
    """
    if isinstance(value, dict):
        unknown = [key for key in value if key not in names]
        missing = [name for name in names if name not in value]
        if unknown or missing:
            raise ValueError(message(where, f"{what} as a dict keyed by the output names {list(names)}",
                                     f"keys {[str(k) for k in value]}" + (f" (missing {missing})" if missing else "")
                                     + (f" (unknown {unknown})" if unknown else ""),
                                     "Use the output layers' names (model.output_names)."))
        return [value[name] for name in names]
    if isinstance(value, (list, tuple)):
        if len(value) != len(names):
            raise ValueError(message(where, f"{what} with one entry per output ({len(names)}: {list(names)})",
                                     f"{len(value)} entries", "Or pass a dict keyed by output name."))
        return list(value)
    if broadcast:
        return [value] * len(names)
    raise TypeError(message(where, f"{what} as a list (one per output) or a dict keyed by {list(names)}",
                            describe(value), "The model has several outputs: give one entry per output."))


def _metric_list(metrics, what, where):
    """One output's metrics as a list of specs (a single name, Metric or function is one spec)."""
    if metrics is None:
        return []
    if isinstance(metrics, (list, tuple)):
        return list(metrics)
    if isinstance(metrics, str) or callable(metrics):
        return [metrics]
    raise TypeError(message(where, f"{what} as a list such as ['accuracy']", describe(metrics)))


def metrics_per_output(metrics, names, what, where):
    """``metrics`` / ``weighted_metrics`` as one list of specs per output (see the module notes)."""
    if len(names) == 1 and not isinstance(metrics, dict):
        return [_metric_list(metrics, what, where)]
    if metrics is None or isinstance(metrics, (list, tuple)) and not metrics:
        return [[] for _ in names]
    return [_metric_list(entry, what, where) for entry in per_output(metrics, names, what, where, broadcast=False)]


def _renamed(metric, name):
    metric = copy.copy(metric)
    metric.name = name
    return metric


def _structured(values, names, structure):
    """Per-output ``values`` back in the structure the user gave (one value, a list or a dict)."""
    if structure == "single":
        return values[0]
    return dict(zip(names, values)) if structure == "dict" else list(values)


def _structure(value, names):
    if isinstance(value, dict):
        return "dict"
    return "list" if isinstance(value, (list, tuple)) or len(names) > 1 else "single"


class CompiledOutputs:
    """Losses, loss weights and metrics of every output, as ``compile`` was given them.

    Parameters
    ----------
    names : list of str
        The model's output names (``model.output_names``).
    loss, loss_weights, metrics, weighted_metrics
        As given to ``compile`` (see the module notes).
    where : str
        Names the caller in error messages.
    """

    def __init__(self, names, loss, loss_weights, metrics, weighted_metrics, where):
        from glassnet import losses
        self.names = list(names)
        self.several = len(self.names) > 1
        if loss is None:
            raise ValueError(message(where, "a loss", "loss=None",
                                     "E.g. model.compile('adam', loss='sparse_categorical_crossentropy', "
                                     "metrics=['accuracy'])."))
        given = per_output(loss, self.names, "loss", where)
        if any(entry is None for entry in given):
            raise ValueError(message(where, "a loss for every output", f"None for outputs "
                                     f"{[n for n, e in zip(self.names, given) if e is None]}"))
        self.losses = [losses.get(entry) for entry in given]
        self._loss_structure = _structure(loss, self.names)
        self.loss_weights = [1.0] * len(self.names) if loss_weights is None else [
            check_real(weight, "loss_weights entries", where, low=0)
            for weight in per_output(loss_weights, self.names, "loss_weights", where, broadcast=not self.several)]
        self._weights_structure = None if loss_weights is None else _structure(loss_weights, self.names)
        self.metric_specs = metrics_per_output(metrics, self.names, "metrics", where)
        self.weighted_specs = metrics_per_output(weighted_metrics, self.names, "weighted_metrics", where)
        self._metrics_structure = (_structure(metrics, self.names) if metrics is not None else None,
                                   _structure(weighted_metrics, self.names) if weighted_metrics is not None else None)

    @property
    def loss(self):
        """What ``model.loss`` shows: the Loss for one output; a list or dict of them (as given) for several."""
        return _structured(self.losses, self.names, self._loss_structure if self.several else "single")

    def resolve(self, output_shapes, where):
        """The Metric objects, as two lists of ``(output index, Metric)`` pairs (plain, weighted), named
        as the History reports them; the variant of ``"accuracy"`` depends on each output's shape and loss.

        ``output_shapes`` is one ``(None, ...)`` shape per output, or None before the model is built.
        """
        from glassnet import metrics as metrics_module
        plain, weighted = [], []
        for k, name in enumerate(self.names):
            shape = None if output_shapes is None else tuple(output_shapes[k][1:])
            ours = [metrics_module.get(spec, loss=self.losses[k], output_shape=shape) for spec in self.metric_specs[k]]
            theirs = [metrics_module.get(spec, loss=self.losses[k], output_shape=shape)
                      for spec in self.weighted_specs[k]]
            own = {m.name for m in ours}
            theirs = [_renamed(m, "weighted_" + m.name) if m.name in own else m for m in theirs]  # Keras 3's rule
            if self.several:
                ours, theirs = ([_renamed(m, f"{name}_{m.name}") for m in group] for group in (ours, theirs))
            plain += [(k, m) for m in ours]
            weighted += [(k, m) for m in theirs]
        names = self.loss_names + [m.name for _, m in plain + weighted]
        if len(set(names)) != len(names):
            raise ValueError(message(where, "distinct metric names other than the losses'", repr(names)))
        return plain, weighted

    @property
    def loss_names(self):
        """``["loss"]``, then ``<output>_loss`` per output for several outputs."""
        return ["loss"] + ([f"{name}_loss" for name in self.names] if self.several else [])

    def total(self, values):
        """The loss training minimizes: ``sum_k loss_weights[k] * values[k]``."""
        if not self.several and self.loss_weights[0] == 1.0:
            return values[0]
        return float(sum(w * v for w, v in zip(self.loss_weights, values)))

    def values_and_grads(self, outputs, targets, weights, fused, gradients):
        """Every output's loss: ``(total, [loss_k], [dL/d output_k] or None)``.

        ``outputs`` are the model's outputs (logits where ``fused[k]``: the loss then runs its fused
        activation); the gradients of the total, ``loss_weights[k] * dloss_k``, are computed when
        ``gradients`` is true.
        """
        values, grads = [], []
        for loss, z, y, w, on_logits in zip(self.losses, outputs, targets, weights, fused):
            if on_logits:
                value, grad = loss.value_and_grad_logits(y, z, w)
            elif gradients:
                value, grad = loss.value_and_grad(y, z, w)
            else:
                value, grad = loss(y, z, w), None
            values.append(value)
            grads.append(grad)
        if not gradients:
            return self.total(values), values, None
        grads = [g if weight == 1.0 else g * g.dtype.type(weight) for g, weight in zip(grads, self.loss_weights)]
        return self.total(values), values, grads

    def get_config(self, optimizer):
        """Keras 3's compile config (JSON-able); :meth:`from_config` reads it back."""
        def structured(values, structure):
            return None if structure is None else _structured(values, self.names, structure)

        return {"optimizer": optimizer.get_config(),
                "loss": structured([loss.get_config() for loss in self.losses],
                                   self._loss_structure if self.several else "single"),
                "loss_weights": structured(self.loss_weights, self._weights_structure),
                "metrics": structured([[_metric_config(s) for s in specs] for specs in self.metric_specs],
                                      self._flat(self._metrics_structure[0])),
                "weighted_metrics": structured([[_metric_config(s) for s in specs] for specs in self.weighted_specs],
                                               self._flat(self._metrics_structure[1])),
                "run_eagerly": True, "steps_per_execution": 1, "jit_compile": False}

    def _flat(self, structure):
        """One output's metrics are saved as a flat list (as they were given), several per structure."""
        if structure is None:
            return None
        return "single" if not self.several and structure != "dict" else structure


def _metric_config(spec):
    """A metric as saved: its name, or a Metric's config; a plain function cannot be saved."""
    from glassnet import metrics as metrics_module
    if isinstance(spec, str):
        return spec
    if isinstance(spec, metrics_module.Metric) and not isinstance(spec, metrics_module.FunctionMetric):
        return spec.get_config()
    raise ValueError(message("save_model", "metrics given by name or as glassnet Metric objects",
                             describe(spec), "Plain functions cannot be saved; use model.save_weights(path)."))


def _metric_from_config(entry):
    """A metric name or Metric back from :func:`_metric_config`'s entry (ValueError if unknown)."""
    from glassnet import metrics as metrics_module
    if not isinstance(entry, dict):
        return entry
    cls = getattr(metrics_module, str(entry.get("class_name")), None)
    if not (isinstance(cls, type) and issubclass(cls, metrics_module.Metric)):
        raise ValueError(f"unknown metric class {entry.get('class_name')!r}")
    return cls(**{k: v for k, v in entry.items() if k != "class_name"})


def _map_structure(function, value, leaf):
    """Apply ``function`` to the leaves (``leaf(x)`` true) of a value that is a leaf, a list or a dict."""
    if value is None or leaf(value):
        return None if value is None else function(value)
    if isinstance(value, dict):
        return {key: _map_structure(function, item, leaf) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_map_structure(function, item, leaf) for item in value]
    raise ValueError(f"unexpected entry {describe(value)}")


def compile_arguments(config):
    """``compile`` keyword arguments from :meth:`CompiledOutputs.get_config`'s dict (or the older form
    with only ``loss``, ``optimizer``, ``metrics``, ``weighted_metrics``).

    Raises
    ------
    KeyError, TypeError, ValueError
        A config that is not one glassnet wrote.
    """
    from glassnet import losses, optimizers
    if not isinstance(config, dict):
        raise TypeError(message("compile_from_config", "a dict from model.get_compile_config()", describe(config)))

    def is_loss(entry):
        return isinstance(entry, (str, dict)) and (isinstance(entry, str) or "class_name" in entry)

    def is_metric(entry):
        return isinstance(entry, str) or isinstance(entry, dict) and "class_name" in entry

    return {"optimizer": optimizers.from_saved_config(config["optimizer"]),
            "loss": _map_structure(lambda e: losses.from_config(e) if isinstance(e, dict) else losses.get(e),
                                   config["loss"], is_loss),
            "loss_weights": config.get("loss_weights"),
            "metrics": _map_structure(_metric_from_config, config.get("metrics"), is_metric),
            "weighted_metrics": _map_structure(_metric_from_config, config.get("weighted_metrics"), is_metric)}
