"""Sequential: a stack of layers with Keras's API.

The forward pass threads ``x`` through the layers; the backward pass threads ``dy`` back and
each layer fills its own ``grads``. ``logits=True`` stops before the final softmax (fused in a
Dense or a separate Softmax/Activation layer), which is what losses and explanations work on.
"""
import numpy as np

from glassnet.errors import describe, message
from glassnet.layers import Activation, Layer, Softmax
from glassnet.layers.base import unique_name
from glassnet.validation import as_float_array, check_input_shape


class Sequential:
    """A linear stack of layers.

    Parameters
    ----------
    layers : list of Layer, optional
    name : str, optional
    seed : int, optional
        Seeds weight initialization (layer ``i`` draws from ``default_rng([seed, i])``).
    """

    def __init__(self, layers=None, name=None, seed=None):
        self.name = name or unique_name("sequential")
        self.seed = seed
        self._layers = []
        self.built = False
        self.input_shape = None
        self.optimizer = None
        self.loss = None
        self.compiled = False
        for layer in layers or []:
            self.add(layer)

    # -- structure -----------------------------------------------------------------------
    @property
    def layers(self):
        return list(self._layers)

    def add(self, layer):
        """Append a layer; builds it at once when the model's input shape is known."""
        if not isinstance(layer, Layer):
            raise TypeError(message("Sequential.add", "a glassnet Layer instance", describe(layer),
                                    "Create it first, e.g. model.add(layers.Dense(10))."))
        if any(existing.name == layer.name for existing in self._layers):
            raise ValueError(message("Sequential.add", "unique layer names", f"a second layer named {layer.name!r}",
                                     "Pass a different name=... to one of them."))
        self._layers.append(layer)
        if len(self._layers) == 1 and layer.input_shape_arg is not None:
            self.build((None,) + layer.input_shape_arg)
        elif self.built:
            self._build_layer(len(self._layers) - 1, self._layers[-2].output_shape[1:])

    def _build_layer(self, index, shape):
        layer = self._layers[index]
        if self.seed is not None and not layer.built:
            layer.rng = np.random.default_rng([self.seed, index])
        if not layer.built or layer.input_shape[1:] != tuple(shape):
            layer.build(shape)
        return layer.output_shape[1:]

    def build(self, input_shape=None):
        """Build every layer for a per-example ``input_shape`` (a leading None is accepted)."""
        if input_shape is None:
            first = self._layers[0].input_shape_arg if self._layers else None
            if first is None:
                raise ValueError(message("Sequential.build", "an input_shape (or a first layer with input_shape)",
                                         "neither", "Call model.build((None, 28, 28, 1))."))
            input_shape = first
        shape = tuple(input_shape)
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
        last = self._layers[-1]
        if isinstance(last, Softmax) or (isinstance(last, Activation) and last.activation == "softmax"):
            return len(self._layers) - 1, False
        if getattr(last, "activation", None) in ("softmax", "sigmoid") and hasattr(last, "_activate"):
            return len(self._layers), True
        return len(self._layers), False

    @property
    def output_activation(self):
        """The final activation ("softmax", "sigmoid", "linear", ...) that ``logits=True`` removes."""
        last = self._layers[-1]
        if isinstance(last, Softmax):
            return "softmax"
        return getattr(last, "activation", "linear") if isinstance(getattr(last, "activation", None), str) else "linear"

    def forward(self, x, training=False, logits=False, stop=None):
        """Run layers ``[0, stop)`` (all by default) on an already validated batch.

        With ``logits=True`` the final softmax/sigmoid is left out.
        """
        count, head_logits = self._head() if logits else (len(self._layers), False)
        if stop is not None:
            count, head_logits = stop, head_logits and stop == len(self._layers)
        for index in range(count):
            layer = self._layers[index]
            if head_logits and index == count - 1:
                x = layer.forward(x, training=training, logits=True)
            else:
                x = layer.forward(x, training=training)
        return x

    def backward(self, dy, logits=False, stop=0, input_grad=True):
        """Backpropagate ``dy`` (w.r.t. the output, or the logits) down to the input of layer ``stop``.

        Returns dL/d(input of layer ``stop``); every layer passed fills its ``grads``.
        """
        count = self._head()[0] if logits else len(self._layers)
        first = self._layers[0]
        if hasattr(first, "input_grad"):
            first.input_grad = input_grad or stop > 0
        for index in range(count - 1, stop - 1, -1):
            dy = self._layers[index].backward(dy)
        return dy

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

    def predict(self, x, batch_size=32, verbose=0, logits=False):
        """Outputs for ``x`` computed in batches: (N, ...) -> (N, *output_shape)."""
        x = self.check_x(x, "Sequential.predict")
        if not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
            raise ValueError(message("Sequential.predict", "batch_size as a positive int", repr(batch_size)))
        outputs = [self.forward(x[start:start + batch_size], logits=logits)
                   for start in range(0, len(x), batch_size)]
        return np.concatenate(outputs, axis=0)

    def predict_on_batch(self, x):
        return self.predict(x, batch_size=max(len(np.asarray(x)), 1))

    def __call__(self, x, training=False):
        return self.forward(x, training=training)

    # -- description ---------------------------------------------------------------------
    def summary(self, line_length=65, print_fn=None):
        """Print (or pass to ``print_fn``, line by line) Keras's summary table; returns it as a string.

        Columns are cut like Keras 2's ``print_summary`` so the table matches Keras's output.
        """
        if not self.built:
            raise RuntimeError(message("Sequential.summary", "a built model", "an unbuilt one",
                                       "Give the first layer input_shape=... or call model.build(input_shape)."))
        positions = [int(line_length * p) for p in (0.45, 0.85, 1.0)]

        def row(fields):
            line = ""
            for i, field in enumerate(fields):
                if i > 0:
                    line = line[:-1] + " "
                line = (line + str(field))[:positions[i]]
                line += " " * (positions[i] - len(line))
            return line

        lines = [f'Model: "{self.name}"', "_" * line_length, row(["Layer (type)", "Output Shape", "Param #"]),
                 "=" * line_length]
        for i, layer in enumerate(self._layers):
            lines.append(row([f"{layer.name} ({type(layer).__name__})", str(layer.output_shape),
                              layer.count_params()]))
            lines.append("=" * line_length if i == len(self._layers) - 1 else "_" * line_length)
        total = self.count_params()
        trainable = sum(layer.count_trainable_params() for layer in self._layers)
        lines += [f"Total params: {total:,}", f"Trainable params: {trainable:,}",
                  f"Non-trainable params: {total - trainable:,}", "_" * line_length]
        text = "\n".join(lines)
        emit = print if print_fn is None else print_fn
        for line in lines:
            emit(line)
        return text

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

    def __repr__(self):
        return f"<Sequential name={self.name!r} layers={len(self._layers)} params={self.count_params():,}>"
