"""Keras model files: Keras 3 ``.keras`` zips (read and written) and Keras 2 / tf.keras ``.h5`` files (read).

A ``.keras`` file is a zip of ``config.json`` (the model's JSON configuration), ``model.weights.h5``
(every layer's variables under ``layers/<snake_case class name>[_<n>]/vars/<i>``) and
``metadata.json``. A Keras 2 ``.h5`` file keeps the JSON configuration in the root attribute
``model_config`` and the weights under ``model_weights/<layer>/<weight name>``, listed by the
attributes ``layer_names`` and ``weight_names``.

Only data is read: the JSON configuration is translated layer by layer into glassnet's own
configuration (a layer glassnet lacks, a Lambda's code or a custom class is refused, all of them
listed in one error), the planned weight shapes are checked before any array is read, and every
array is checked against them. Nothing is unpickled and no code from the file runs.

Layout: glassnet is channels-last. A ``channels_first`` model (a chain or a graph) becomes the
same model on (H, W, C) images: its input shapes are transposed, convolution kernels (HWIO in Keras
for both layouts) stay, a Concatenate's image axis is mapped (Keras's axis 1, the channels, becomes
-1), and the rows of the first Dense kernel after a Flatten are reordered so the flattened features
line up (see :func:`glassnet.interop._common.flat_permutation`), on every branch and through a
Concatenate of flattened features. What has no exact channels-last counterpart (a Reshape of
images, a Dense or a softmax over an image's width axis, a merge of features flattened in
different orders) is refused.
"""
import io
import json
import zipfile
from typing import NamedTuple, Optional

import numpy as np

from glassnet.interop._common import (MAX_COMPRESSION, MAX_CONFIG_BYTES, WHERE, FileProblem, as_float_array,
                                      check_parameter_count, flat_order, joined_order, order_permutation, refuse,
                                      require, unsupported)

KERAS_WHAT = "a Keras model file (.keras zip or Keras 2 .h5)"
_FIX_UNSUPPORTED = ("glassnet opens Sequential and Functional Keras models built from its own layers; rebuild "
                    "the model without these layers (or replace them with glassnet's), save it again and retry.")
_ALIASES = {"Convolution2D": "Conv2D", "MaxPool2D": "MaxPooling2D", "AvgPool2D": "AveragePooling2D",
            "GlobalAvgPool2D": "GlobalAveragePooling2D", "GlobalMaxPool2D": "GlobalMaxPooling2D"}
_ACTIVATIONS = ("relu", "sigmoid", "tanh", "linear", "softmax")


def _single(axis):
    """A layer's ``axis`` setting as Keras may save it: an int, or a list of one int (that int)."""
    return axis[0] if isinstance(axis, list) and len(axis) == 1 else axis


class _Unsupported(Exception):
    """Internal: why one layer of the file has no glassnet counterpart."""


# -- reading the configuration ------------------------------------------------------------------
def _dtype(config):
    """glassnet's dtype for a Keras dtype entry (a name, or a DTypePolicy dict)."""
    value = config.get("dtype")
    if isinstance(value, dict):
        value = (value.get("config") or {}).get("name")
    return "float64" if value == "float64" else "float32"


def _activation(value):
    if value is None:
        return "linear"
    if not isinstance(value, str) or value.lower() not in _ACTIVATIONS:
        shown = value if isinstance(value, str) else (value or {}).get("class_name", "a custom function")
        raise _Unsupported(f"activation {shown!r} (glassnet has {', '.join(_ACTIVATIONS)})")
    return value.lower()


def _pair(value, what):
    pair = [value, value] if isinstance(value, int) else value
    if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(isinstance(v, int) for v in pair)):
        raise _Unsupported(f"{what} {value!r}")
    return [int(v) for v in pair]


def _padding_mode(value):
    if not isinstance(value, str) or value.lower() not in ("valid", "same"):
        raise _Unsupported(f"padding {value!r} (glassnet has 'valid' and 'same')")
    return value.lower()


def _seed(config):
    """A Keras layer config's ``seed`` as glassnet takes it: a non-negative int, else None."""
    seed = config.get("seed")
    return seed if isinstance(seed, int) and seed >= 0 else None


class _Translator:
    """Keras layer configurations -> glassnet layer configurations, tracking the image layout.

    ``layout`` is the data_format of the model's image layers (all must agree), ``shape`` the
    glassnet per-example shape of the current tensor (None when unknown), ``input_shapes`` and
    ``input_orders`` those of a merge's inputs, and ``feature_order`` the order of features Keras
    flattened from channels-first images (None when Keras's order is glassnet's); the first Dense
    they reach takes its kernel rows in that order (kept symbolic: see :func:`glassnet.interop._common.flat_order`).
    """

    def __init__(self, layout):
        self.layout = layout
        self.shape = None
        self.input_shapes = self.input_orders = None
        self.feature_order = None

    def base(self, config):
        return {"name": config["name"], "dtype": _dtype(config), "trainable": bool(config.get("trainable", True))}

    def images_first(self):
        """Whether the current tensor is a channels-first image (Keras holds it as (C, H, W))."""
        return self.layout == "channels_first" and self.shape is not None and len(self.shape) == 3

    def image_activation(self, c):
        """The activation of a layer whose output is an image: Keras takes a softmax over the last
        axis, the width of a channels-first image, which glassnet's (over channels) does not match."""
        activation = _activation(c.get("activation"))
        if activation == "softmax" and self.layout == "channels_first":
            raise _Unsupported("a softmax over channels_first images (Keras takes it over their width axis)")
        return activation

    def image_layout(self, config):
        """Check a layer's data_format against the model's; returns whether it is channels-first."""
        fmt = config.get("data_format") or "channels_last"
        if fmt != self.layout:
            raise _Unsupported(f"data_format {fmt!r} in a {self.layout} model (mixed layouts)")
        return fmt == "channels_first"

    def channel_axis_ok(self, axis, rank):
        """Whether a Keras ``axis`` of a rank-``rank`` tensor (with batch) is glassnet's last axis."""
        if rank == 4 and self.layout == "channels_first":
            return axis in (1, -3)
        return axis in (-1, rank - 1)

    # -- one converter per Keras class: returns (class_name, config, weight fix or None) ----------
    def Conv2D(self, c):
        self.image_layout(c)
        if c.get("groups", 1) != 1:
            raise _Unsupported(f"groups={c.get('groups')} (glassnet's Conv2D is not grouped)")
        return "Conv2D", {"filters": int(c["filters"]), "kernel_size": _pair(c["kernel_size"], "kernel_size"),
                          "strides": _pair(c.get("strides", 1), "strides"), "padding": _padding_mode(c["padding"]),
                          "dilation_rate": _pair(c.get("dilation_rate", 1), "dilation_rate"),
                          "activation": self.image_activation(c), "use_bias": bool(c.get("use_bias", True))}

    def _depthwise_config(self, c):
        self.image_layout(c)
        return {"kernel_size": _pair(c["kernel_size"], "kernel_size"), "strides": _pair(c.get("strides", 1), "strides"),
                "padding": _padding_mode(c["padding"]), "depth_multiplier": int(c.get("depth_multiplier", 1)),
                "dilation_rate": _pair(c.get("dilation_rate", 1), "dilation_rate"),
                "activation": self.image_activation(c), "use_bias": bool(c.get("use_bias", True))}

    def DepthwiseConv2D(self, c):
        return "DepthwiseConv2D", self._depthwise_config(c)

    def SeparableConv2D(self, c):
        return "SeparableConv2D", {**self._depthwise_config(c), "filters": int(c["filters"])}

    def UpSampling2D(self, c):
        self.image_layout(c)
        return "UpSampling2D", {"size": _pair(c.get("size", 2), "size"),
                                "interpolation": c.get("interpolation", "nearest")}

    def Cropping2D(self, c):
        self.image_layout(c)
        cropping = c.get("cropping", ((0, 0), (0, 0)))
        if isinstance(cropping, (list, tuple)) and all(isinstance(p, (list, tuple)) for p in cropping):
            cropping = [[int(v) for v in p] for p in cropping]
        return "Cropping2D", {"cropping": cropping}

    def Rescaling(self, c):
        scale, offset = c.get("scale", 1.0), c.get("offset", 0.0)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (scale, offset)):
            raise _Unsupported(f"scale {scale!r} and offset {offset!r} (glassnet rescales by one number)")
        return "Rescaling", {"scale": float(scale), "offset": float(offset)}

    def RandomFlip(self, c):        # the identity at inference in both libraries
        return "RandomFlip", {"mode": c.get("mode", "horizontal_and_vertical"), "seed": _seed(c)}

    def RandomErasing(self, c):     # the identity at inference in both libraries
        fill = c.get("fill_value")
        if isinstance(fill, (list, tuple)):
            raise _Unsupported(f"fill_value {fill!r} (glassnet fills with one number or noise)")
        # the values as the file holds them (Keras's defaults where it has none): the layer checks them
        return "RandomErasing", {"factor": c.get("factor", 1.0), "scale": c.get("scale", [0.02, 0.33]),
                                 "fill_value": fill, "value_range": c.get("value_range", [0, 255]),
                                 "seed": _seed(c)}

    def Dense(self, c):
        if self.images_first():
            raise _Unsupported("a Dense on channels_first images (Keras applies it to their width axis)")
        return "Dense", {"units": int(c["units"]), "activation": _activation(c.get("activation")),
                         "use_bias": bool(c.get("use_bias", True))}

    def _pooling(self, cls, c):
        self.image_layout(c)
        strides = c.get("strides")
        return cls, {"pool_size": _pair(c.get("pool_size", 2), "pool_size"),
                     "strides": None if strides is None else _pair(strides, "strides"),
                     "padding": _padding_mode(c.get("padding", "valid"))}

    def MaxPooling2D(self, c):
        return self._pooling("MaxPooling2D", c)

    def AveragePooling2D(self, c):
        return self._pooling("AveragePooling2D", c)

    def _global_pooling(self, cls, c):
        self.image_layout(c)
        if c.get("keepdims"):
            raise _Unsupported("keepdims=True (glassnet's global pooling returns (N, C))")
        return cls, {}

    def GlobalAveragePooling2D(self, c):
        return self._global_pooling("GlobalAveragePooling2D", c)

    def GlobalMaxPooling2D(self, c):
        return self._global_pooling("GlobalMaxPooling2D", c)

    def Flatten(self, c):
        if self.shape is not None and len(self.shape) == 3:
            # Keras flattens the tensor as it holds it, after moving channels last when Flatten's own
            # data_format is channels_first; glassnet's (H, W, C) axes in that order:
            held = (2, 0, 1) if self.layout == "channels_first" else (0, 1, 2)
            order = tuple(held[i] for i in (1, 2, 0)) if c.get("data_format") == "channels_first" else held
            if order != (0, 1, 2):
                self.feature_order = flat_order(self.shape, order)
        return "Flatten", {}

    def Dropout(self, c):
        if c.get("noise_shape") is not None:
            raise _Unsupported(f"noise_shape {c.get('noise_shape')} (glassnet drops units independently)")
        return "Dropout", {"rate": float(c["rate"]), "seed": _seed(c)}

    def Activation(self, c):
        return "Activation", {"activation": self.image_activation(c) if self.images_first() else
                              _activation(c.get("activation"))}

    def ReLU(self, c):
        if c.get("threshold", 0) not in (0, 0.0, None):
            raise _Unsupported(f"threshold {c.get('threshold')} (glassnet's ReLU thresholds at 0)")
        return "ReLU", {"max_value": c.get("max_value"), "negative_slope": float(c.get("negative_slope") or 0.0)}

    def LeakyReLU(self, c):
        slope = c.get("negative_slope", c.get("alpha", 0.3))
        return "LeakyReLU", {"alpha": float(slope)}

    def PReLU(self, c):
        axes = c.get("shared_axes")
        axes = [axes] if isinstance(axes, int) else axes
        if self.images_first():
            axes = [_FIRST_TO_LAST[a] for a in axes or []] or None
            return "PReLU", {"shared_axes": axes}, lambda w: [np.moveaxis(w[0], 0, -1)]
        return "PReLU", {"shared_axes": axes}, self.permute_features(0)

    def Softmax(self, c):
        axis = c.get("axis", -1)
        rank = 1 + (len(self.shape) if self.shape is not None else 1)
        if not self.channel_axis_ok(_single(axis), rank):
            raise _Unsupported(f"axis {axis} (glassnet's Softmax runs over the channel axis)")
        return "Softmax", {}

    def BatchNormalization(self, c):
        axis = c.get("axis", -1)
        axis = _single(axis)
        rank = 1 + (len(self.shape) if self.shape is not None else 3)
        if not self.channel_axis_ok(axis, rank):
            raise _Unsupported(f"axis {axis} (glassnet normalizes over the channel axis)")
        if c.get("renorm") or c.get("synchronized"):
            raise _Unsupported("renorm or synchronized batch normalization")
        config = {"momentum": float(c.get("momentum", 0.99)), "epsilon": float(c.get("epsilon", 1e-3)),
                  "center": bool(c.get("center", True)), "scale": bool(c.get("scale", True))}
        return "BatchNormalization", config, self.permute_features(None)

    def ZeroPadding2D(self, c):
        self.image_layout(c)
        padding = c.get("padding", 1)
        if isinstance(padding, (list, tuple)) and all(isinstance(p, (list, tuple)) for p in padding):
            padding = [[int(v) for v in p] for p in padding]
        return "ZeroPadding2D", {"padding": padding}

    def Reshape(self, c):
        if self.layout == "channels_first" and (len(c["target_shape"]) == 3 or self.images_first()):
            raise _Unsupported("a Reshape from or to images in a channels_first model")
        if self.feature_order is not None:
            raise _Unsupported("a Reshape of channels_first features flattened by Keras")
        return "Reshape", {"target_shape": [int(d) for d in c["target_shape"]]}

    # -- merges (graph models): no settings but Concatenate's axis ------------------------------
    def _merge(self, cls, c):
        if self.feature_order is _MIXED:
            raise _Unsupported("a merge of features in different orders (flattened from channels_first images "
                               "and not)")
        return cls, {}

    def Add(self, c):
        return self._merge("Add", c)

    def Subtract(self, c):
        return self._merge("Subtract", c)

    def Multiply(self, c):
        return self._merge("Multiply", c)

    def Average(self, c):
        return self._merge("Average", c)

    def Maximum(self, c):
        return self._merge("Maximum", c)

    def Concatenate(self, c):
        axis = c.get("axis", -1)
        if not isinstance(axis, int) or isinstance(axis, bool) or axis == 0:
            raise _Unsupported(f"axis {axis!r} (glassnet concatenates along a non-batch axis)")
        shapes, orders = self.input_shapes or [None], self.input_orders or [None]
        if self.layout == "channels_first" and any(s is None for s in shapes):
            raise _Unsupported("a Concatenate of tensors of unknown shape in a channels_first model")
        if self.layout == "channels_first" and all(len(s) == 3 for s in shapes):
            if not -3 <= axis <= 3:
                raise _Unsupported(f"axis {axis} of channels_first images")
            axis = _FIRST_TO_LAST[axis % 4]            # Keras's (N, C, H, W) axis in glassnet's (N, H, W, C)
        elif any(order is not None for order in orders):
            if not all(len(s) == 1 for s in shapes):
                raise _Unsupported("a Concatenate of flattened channels_first features with other tensors")
            self.feature_order = joined_order(orders, [s[0] for s in shapes])
        return "Concatenate", {"axis": int(axis)}

    # -- weight fixes -----------------------------------------------------------------------------
    def permute_features(self, index):
        """A fix reordering per-feature vectors of a layer between a Flatten and the Dense it feeds
        (all of them when ``index`` is None)."""
        order = self.feature_order
        if order is None:
            return None

        def fix(weights):
            permutation = order_permutation(order)        # made once the weights are read, once for all
            return [w[..., permutation] if index is None or i == index else w for i, w in enumerate(weights)]
        return fix

    def dense_fix(self):
        """The Dense after a Flatten of channels-first features takes its kernel rows in glassnet's order."""
        order, self.feature_order = self.feature_order, None
        if order is None:
            return None
        return lambda weights: [weights[0][order_permutation(order)]] + list(weights[1:])


_KNOWN = [name for name in vars(_Translator) if name[0].isupper()]
#: Keras's axes of a channels-first image (N, C, H, W) as glassnet's axes of (N, H, W, C)
_FIRST_TO_LAST = {1: 3, 2: 1, 3: 2}
#: the feature order of a merge whose inputs are in different orders (refused by every merge but a
#: Concatenate of flat features)
_MIXED = "mixed"


def _built_in(entry):
    """Whether a Keras layer entry names a built-in Keras class (a registered custom class has
    ``registered_name`` "package>Name" and its own module)."""
    module = entry.get("module")
    return entry.get("registered_name") in (None, entry.get("class_name")) and (
        module is None or module == "keras.layers" or str(module).startswith("keras.src.layers"))


def _layer_entries(model_config, path):
    """The list of Keras layer dicts of a Sequential configuration (Keras 1/2 lists included)."""
    if not isinstance(model_config, dict):
        raise refuse(path, KERAS_WHAT, "its model configuration is not a JSON object", "Check the file.")
    cls = model_config.get("class_name")
    config = model_config.get("config")
    if cls in ("Functional", "Model") and isinstance(config, dict):
        if not isinstance(config.get("layers"), list) or not all(isinstance(e, dict) for e in config["layers"]):
            raise refuse(path, KERAS_WHAT, "its Functional configuration lists no layers", "Check the file.")
        return _functional_chain(config, path)
    if cls != "Sequential":
        raise refuse(path, "a Keras Sequential or Functional model", f"a {cls!r} model",
                     "Rebuild it from Keras layers as a Sequential or Functional model and save it again.")
    entries = config if isinstance(config, list) else (config or {}).get("layers")
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise refuse(path, KERAS_WHAT, "its Sequential configuration lists no layers", "Check the file.")
    return entries


def _functional_chain(config, path):
    """A Functional model that is one chain (input -> layer -> ... -> output, checked by
    :func:`keras_graph.is_chain`), as Sequential entries in chain order."""
    from glassnet.interop.keras_graph import entry_name, inbound_calls
    entries = config["layers"]
    by_name = {entry_name(e): e for e in entries}
    following = {}
    for name, entry in by_name.items():
        for ref in (inbound_calls(entry) or [[]])[0]:
            following[ref.name] = name
    chain = [next(e for e in entries if e.get("class_name") == "InputLayer")]
    for _ in range(len(by_name)):          # bounded: a tampered file may hold a cycle
        name = following.get(entry_name(chain[-1]))
        if name is None:
            break
        chain.append(by_name[name])
    if len(chain) != len(by_name) or len({id(e) for e in chain}) != len(chain):
        raise unsupported(path, "a Keras model that is one chain of layers", [
            (n, e.get("class_name"), "not on the chain from the input to the output")
            for n, e in by_name.items() if all(e is not c for c in chain)] or [("graph", "Functional", "a cycle")],
            "Remove the unused layers and save the model again.")
    return chain


def _input_shape(entries, config):
    """The per-example Keras input shape from an InputLayer, a first layer's batch_input_shape or
    the model's build_input_shape."""
    candidates = [e.get("config", {}) for e in entries[:1]] + [config or {}]
    for c in candidates:
        for key in ("batch_shape", "batch_input_shape", "build_input_shape"):
            shape = c.get(key) if isinstance(c, dict) else None
            if isinstance(shape, list) and len(shape) >= 2:
                return shape[1:]
    return None


def _model_layout(entries):
    formats = {e.get("config", {}).get("data_format") for e in entries
               if e.get("class_name") != "Flatten" and isinstance(e.get("config"), dict)}
    return "channels_first" if "channels_first" in formats else "channels_last"


def _translate_layer(translator, entry):
    """One Keras layer entry -> (glassnet class name, glassnet config, weight fix or None); raises
    _Unsupported, or KeyError / TypeError / ValueError for an invalid configuration."""
    from glassnet.layers import deserialize
    cls = _ALIASES.get(entry.get("class_name"), entry.get("class_name"))
    c = entry.get("config") if isinstance(entry.get("config"), dict) else {}
    if cls not in _KNOWN or not _built_in(entry):
        raise _Unsupported("glassnet has no such layer" if cls != "Lambda" else
                           "a Lambda holds Python code, which glassnet never runs")
    made = getattr(translator, cls)(c)
    fix = made[2] if len(made) > 2 else (translator.dense_fix() if cls == "Dense" else None)
    layer_config = {**translator.base(c), **made[1]}
    deserialize({"class_name": made[0], "config": layer_config})      # the configuration is valid
    return made[0], layer_config, fix


def _problem(entry, error):
    """(name, Keras class, reason) of a layer that cannot be translated."""
    name = (entry.get("config") if isinstance(entry.get("config"), dict) else {}).get("name", "?")
    if isinstance(error, _Unsupported):
        return name, entry.get("class_name"), str(error)
    return name, entry.get("class_name"), f"invalid configuration ({type(error).__name__}: {str(error)[:160]})"


def translate(model_config, path):
    """Keras Sequential or Functional configuration -> (glassnet model config, [(keras name, keras
    class, weight fix)]): a Sequential config for a chain, a graph config (``input_layers``) otherwise.

    Raises one ValueError listing every layer glassnet cannot represent.
    """
    from glassnet.interop.keras_graph import is_chain
    functional = model_config.get("config") if isinstance(model_config, dict) and \
        model_config.get("class_name") in ("Functional", "Model") else None
    if isinstance(functional, dict) and isinstance(functional.get("layers"), list) and functional["layers"] and \
            all(isinstance(e, dict) for e in functional["layers"]) and not is_chain(functional["layers"], functional):
        return _translate_graph(functional, path)
    entries = _layer_entries(model_config, path)
    sequential = model_config.get("config") if isinstance(model_config.get("config"), dict) else {}
    translator = _Translator(_model_layout(entries))
    keras_shape = _input_shape(entries, sequential)
    if keras_shape is not None and all(isinstance(d, int) and d > 0 for d in keras_shape):
        translator.shape = _glassnet_shape(keras_shape, translator.layout)
    input_shape = translator.shape
    layers, sources, problems = [], [], []
    for entry in entries:
        if entry.get("class_name") == "InputLayer":
            continue
        try:
            cls, layer_config, fix = _translate_layer(translator, entry)
            if translator.shape is not None and not problems:
                translator.shape = _output_shape(cls, layer_config, [translator.shape])
        except (_Unsupported, KeyError, TypeError, ValueError) as error:
            problems.append(_problem(entry, error))
            continue
        layers.append({"class_name": cls, "config": layer_config})
        sources.append((layer_config["name"], entry.get("class_name"), fix))
    if problems:
        raise unsupported(path, "a Keras model", problems, _FIX_UNSUPPORTED)
    if translator.feature_order is not None:
        raise unsupported(path, "a Keras model", [_unordered_output(layers[-1]["config"]["name"])], _FIX_UNSUPPORTED)
    return {"name": str(sequential.get("name") or "sequential"), "layers": layers,
            "input_shape": list(input_shape) if input_shape else None}, sources


def _graph_input_entry(entry, layout):
    """A Keras InputLayer entry -> glassnet's InputLayer config (a static per-example shape, an
    image's channels last)."""
    c = entry.get("config") if isinstance(entry.get("config"), dict) else {}
    shape = c.get("batch_shape") or c.get("batch_input_shape")
    if not (isinstance(shape, list) and len(shape) >= 2 and
            all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape[1:])):
        raise _Unsupported(f"input shape {shape!r} (glassnet needs every axis but the batch fixed)")
    return {"name": c.get("name"), "dtype": _dtype(c), "batch_shape": [None, *_glassnet_shape(shape[1:], layout)]}


def _glassnet_shape(keras_shape, layout):
    """glassnet's per-example shape of a tensor Keras holds in ``keras_shape``: a channels-first
    image (C, H, W) becomes (H, W, C)."""
    shape = tuple(int(d) for d in keras_shape)
    return shape[1:] + shape[:1] if layout == "channels_first" and len(shape) == 3 else shape


def _output_shape(cls, layer_config, shapes):
    """glassnet's per-example output shape of a translated layer on inputs of per-example ``shapes``
    (a list, one per input), checked against the layer; allocates nothing."""
    from glassnet.layers import deserialize
    layer = deserialize({"class_name": cls, "config": layer_config})
    if getattr(layer, "takes_list", False):
        shapes = layer._shapes(list(shapes))
        layer.check_input_shapes(shapes)
        return tuple(layer.compute_output_shape(shapes))
    layer.check_input_shape(tuple(shapes[0]))
    return tuple(layer.compute_output_shape(tuple(shapes[0])))


def _unordered_output(name):
    return name, "output", "channels_first features flattened without a Dense after them"


class _Tensor(NamedTuple):
    """What the graph translation knows of one tensor: its glassnet per-example shape (None when an
    earlier layer could not be translated) and its feature order (see :class:`_Translator`)."""
    shape: Optional[tuple]
    order: Optional[tuple]


def _hold(translator, inputs):
    """Point the translator at the tensors one call takes."""
    orders = [t.order for t in inputs]
    translator.input_shapes, translator.input_orders = [t.shape for t in inputs], orders
    translator.shape = inputs[0].shape if len(inputs) == 1 else None
    translator.feature_order = orders[0] if all(o == orders[0] for o in orders) else _MIXED


def _translate_call(translator, entry, name, inputs, made):
    """Translate one call of a graph layer on ``inputs`` (a list of :class:`_Tensor`; None for an
    InputLayer); the layer's first call records (class, config, weight fix, feature order taken) in
    ``made[name]``, a later one (a shared layer) must translate the same. Returns the
    :class:`_Tensor` the call produces."""
    if inputs is None:
        made[name] = "InputLayer", {**_graph_input_entry(entry, translator.layout), "name": name}, None, None
        return _Tensor(tuple(made[name][1]["batch_shape"][1:]), None)
    _hold(translator, inputs)
    taken = translator.feature_order
    cls, layer_config, fix = _translate_layer(translator, entry)
    layer_config["name"] = name
    if name not in made:
        made[name] = cls, layer_config, fix, taken
    elif made[name][:2] != (cls, layer_config) or made[name][3] != taken:
        raise _Unsupported("a shared layer called on tensors in different layouts (features flattened from "
                           "channels_first images and not, or in different orders)")
    shapes = [t.shape for t in inputs]
    shape = None if any(s is None for s in shapes) else _output_shape(cls, layer_config, shapes)
    return _Tensor(shape, translator.feature_order)


def _translate_graph(config, path):
    """A branching Keras Functional configuration -> glassnet's graph model config (the same layer
    names, calls and wiring) and the weight sources.

    The calls are translated in a dependency order, each on what is known of the tensors it takes
    (their glassnet shapes, worked out call by call, and their feature orders), so that a
    channels_first graph becomes the same graph on channels-last images: its inputs transposed,
    Concatenate's image axes mapped, and the first Dense after each Flatten of channels-first images
    (on every branch, after any Concatenate of such features) taking its kernel rows in glassnet's order.
    """
    from glassnet.interop.keras_graph import check_wiring, endpoints, entry_name
    entries = config["layers"]
    calls, order = check_wiring(entries, config, path)
    by_name = {entry_name(entry): entry for entry in entries}
    translator = _Translator(_model_layout(entries))
    made, tensors, problems = {}, {}, {}
    for name, index in order:
        inputs = [tensors[ref.name, ref.node] for ref in calls[name][index]] if calls[name] else None
        try:
            tensors[name, index] = _translate_call(translator, by_name[name], name, inputs, made)
        except (_Unsupported, KeyError, TypeError, ValueError) as error:
            problems.setdefault(name, _problem(by_name[name], error))
            tensors[name, index] = _Tensor(None, None)
    outputs = endpoints(config.get("output_layers"))
    problems.update({ref.name: _unordered_output(ref.name) for ref in outputs
                     if ref.name not in problems and tensors[ref.name, ref.node].order is not None})
    if problems:
        raise unsupported(path, "a Keras model", [problems[name] for name in by_name if name in problems],
                          _FIX_UNSUPPORTED)
    layers = [{"class_name": made[name][0], "config": made[name][1], "name": name, "inbound_nodes": [
        [[ref.name, ref.node, 0] for ref in call] for call in calls[name]]} for name in by_name]
    sources = [(name, by_name[name].get("class_name"), made[name][2]) for name in by_name]
    ends = {key: [[ref.name, ref.node, 0] for ref in endpoints(config.get(key))]
            for key in ("input_layers", "output_layers")}
    return {"name": str(config.get("name") or "functional"), "layers": layers, **ends,
            "output_structure": "single" if len(ends["output_layers"]) == 1 else "list",
            "output_names": [ref[0] for ref in ends["output_layers"]]}, sources


# -- building the model -----------------------------------------------------------------------
def _planned_per_layer(layer_configs, input_shape):
    """Each layer's weight shapes, worked out without allocating them (see planned_weight_shapes)."""
    from glassnet.layers import deserialize
    from glassnet.layers.base import planned_weight_shapes
    shape, planned = tuple(input_shape), []
    for config in layer_configs:
        planned.append(planned_weight_shapes([config], shape))
        shape = tuple(deserialize(config).compute_output_shape(shape))
    return planned


def _planned_graph(glassnet_config):
    """Each layer's weight shapes of a graph config, from a replay that allocates nothing."""
    from glassnet.functional import replay
    record = {}
    replay(glassnet_config, record)
    return [record.get(entry["name"], []) for entry in glassnet_config["layers"]]


def build(glassnet_config, sources, read_weights, path):
    """The glassnet model of ``glassnet_config`` (a Sequential, or a graph :class:`glassnet.Model`
    when it has ``input_layers``) with weights from ``read_weights(index, name, cls, sizes)``.

    ``read_weights`` returns the layer's Keras arrays, each checked against the planned size before
    it is read; the model is built only once every array matched, so a configuration that asks for
    huge layers allocates nothing.
    """
    from glassnet.model import Model, Sequential
    graph = "input_layers" in glassnet_config
    if not graph and glassnet_config["input_shape"] is None:
        raise refuse(path, KERAS_WHAT, "its configuration gives no input shape", "Save a model built on an "
                     "input: keras.Input(shape) first, or input_shape= on the first layer.")
    try:
        planned = _planned_graph(glassnet_config) if graph else \
            _planned_per_layer(glassnet_config["layers"], glassnet_config["input_shape"])
    except (TypeError, ValueError) as error:
        raise refuse(path, KERAS_WHAT, f"its layers do not fit together ({str(error)[:400]})",
                     "Check the file.") from None
    check_parameter_count([s for shapes in planned for s in shapes], path, KERAS_WHAT)
    weights = {}
    for index, (config, want, (name, cls, fix)) in enumerate(zip(glassnet_config["layers"], planned, sources)):
        try:
            arrays = read_weights(index, name, cls, [int(np.prod(s)) for s in want])
            if len(arrays) != len(want):
                raise FileProblem(f"layer {name!r} has {len(arrays)} weight arrays, expected {len(want)}")
            if fix is not None and arrays:
                arrays = fix(arrays)
            weights[config["config"]["name"]] = [
                as_float_array(a, s, f"weight {i} of layer {name!r}", config["config"]["dtype"])
                for i, (a, s) in enumerate(zip(arrays, want))]
        except FileProblem as problem:
            raise refuse(path, KERAS_WHAT, str(problem), "The file is damaged or does not match its "
                         "configuration; save it again from Keras.") from None
    model = (Model if graph else Sequential).from_config(glassnet_config)
    for layer in model.layers:
        if weights.get(layer.name):
            layer.set_weights(weights[layer.name])
    model.metadata = {"source": "keras"}
    return model


def _read_dataset(dataset, size, label):
    """An HDF5 dataset's values, after checking its dtype, element count and stored size (a
    compressed dataset may not claim far more than it stores)."""
    if dataset.dtype.kind not in "fiu" or dataset.dtype.itemsize > 8:
        raise FileProblem(f"{label} holds {dataset.dtype} data, not numbers")
    count = int(np.prod(dataset.shape, dtype=np.float64))
    if count != size:
        raise FileProblem(f"{label} has shape {tuple(dataset.shape)} ({count} numbers), expected {size}")
    stored = dataset.id.get_storage_size()
    if count and count * dataset.dtype.itemsize > MAX_COMPRESSION * max(stored, 1) + 4096:
        raise FileProblem(f"{label} claims {count} numbers but stores {stored} bytes")
    return dataset[()]


# -- Keras 3 .keras -----------------------------------------------------------------------------
def _zip_member(archive, name, limit, path):
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise FileProblem(f"the zip has no {name!r}") from None
    if info.file_size > limit or (info.compress_type != zipfile.ZIP_STORED and
                                  info.file_size > MAX_COMPRESSION * max(info.compress_size, 1)):
        raise FileProblem(f"member {name!r} claims {info.file_size} bytes")
    with archive.open(info) as member:
        data = member.read(info.file_size + 1)
    if len(data) != info.file_size:
        raise FileProblem(f"member {name!r} is truncated")
    return data


def _keras_vars(weights_file):
    """Map layer name -> its ``vars`` group in a Keras 3 weights file (the group's ``name`` attribute)."""
    groups = {}
    layers_group = weights_file.get("layers")
    for key in (list(layers_group.keys()) if layers_group is not None else [])[:100000]:
        group = layers_group[key].get("vars")
        if group is not None:
            name = group.attrs.get("name", key)
            groups[name.decode() if isinstance(name, bytes) else str(name)] = group
    return groups


def _numbered(group, sizes, label):
    keys = sorted(group.keys(), key=lambda k: int(k) if k.isdigit() else -1)
    if keys != [str(i) for i in range(len(keys))]:
        raise FileProblem(f"{label} has weight entries {keys[:5]}, expected 0, 1, ...")
    if len(keys) != len(sizes):
        raise FileProblem(f"{label} has {len(keys)} weight arrays, expected {len(sizes)}")
    return [_read_dataset(group[k], size, f"weight {k} of {label}") for k, size in zip(keys, sizes)]


def read_keras_zip(path, archive_size):
    """A glassnet Sequential from a Keras 3 ``.keras`` file (a zip with config.json)."""
    h5py = require("h5py")
    try:
        with zipfile.ZipFile(path) as archive:
            config = _parse_json(_zip_member(archive, "config.json", MAX_CONFIG_BYTES, path))
            glassnet_config, sources = translate(config, path)
            weights_bytes = _zip_member(archive, "model.weights.h5", 4 * archive_size + (1 << 20), path)
        with h5py.File(io.BytesIO(weights_bytes), "r") as weights_file:
            groups = _keras_vars(weights_file)

            def read(index, name, cls, sizes):
                if not sizes:
                    return []
                if name not in groups:
                    raise FileProblem(f"the weights file has no variables for layer {name!r}")
                return _numbered(groups[name], sizes, f"layer {name!r}")
            return build(glassnet_config, sources, read, path)
    except FileProblem as problem:
        raise refuse(path, "an intact Keras .keras file", str(problem), "The file was damaged or cut short; "
                     "save it again from Keras.") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, KeyError, TypeError, RuntimeError,
            NotImplementedError, OverflowError, AttributeError, ValueError) as error:
        if _ours(error):
            raise
        raise refuse(path, "an intact Keras .keras file", f"truncated or corrupted ({type(error).__name__}: "
                     f"{str(error)[:200]})", "The file was damaged or cut short; save it again from Keras.") from None


def _ours(error):
    """Whether an error is glassnet's own (already worded for the user), not the file library's."""
    return type(error) is ValueError and str(error).startswith(f"{WHERE} expects")


def _parse_json(data):
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise FileProblem(f"its configuration is not UTF-8 text ({error})") from None
    if not isinstance(data, str) or len(data) > MAX_CONFIG_BYTES:
        raise FileProblem("its configuration is missing or too large")
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as error:
        raise FileProblem(f"its configuration is not valid JSON ({str(error)[:120]})") from None


# -- Keras 2 / tf.keras .h5 -------------------------------------------------------------------------
def _text_list(values):
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in np.asarray(values).reshape(-1)]


def read_keras_h5(path):
    """A glassnet Sequential from a Keras 2 / tf.keras (or Keras 3 legacy) ``.h5`` model file."""
    h5py = require("h5py")
    try:
        with h5py.File(path, "r") as handle:
            if "model_config" not in handle.attrs:
                raise refuse(path, "a whole Keras model saved with model.save('m.h5')", "an HDF5 file "
                             "without a model configuration (weights only, or not from Keras)",
                             "Save the whole model (model.save, not save_weights) and load that file.")
            glassnet_config, sources = translate(_parse_json(handle.attrs["model_config"]), path)
            weights = handle["model_weights"] if "model_weights" in handle else handle
            layer_names = _text_list(weights.attrs.get("layer_names", []))

            def read(index, name, cls, sizes):
                if name not in layer_names:
                    if sizes:
                        raise FileProblem(f"the file has no weights for layer {name!r}")
                    return []
                group = weights[name]
                names = _text_list(group.attrs.get("weight_names", []))
                if len(names) != len(sizes):
                    raise FileProblem(f"layer {name!r} has {len(names)} weight arrays, expected {len(sizes)}")
                return [_read_dataset(group[n], s, f"weight {n!r}") for n, s in zip(names, sizes)]
            return build(glassnet_config, sources, read, path)
    except FileProblem as problem:
        raise refuse(path, "an intact Keras .h5 file", str(problem), "The file was damaged or cut short; "
                     "save it again from Keras.") from None
    except (OSError, KeyError, TypeError, RuntimeError, AttributeError, OverflowError, ValueError) as error:
        if _ours(error):
            raise
        raise refuse(path, "an intact Keras .h5 file", f"truncated or corrupted ({type(error).__name__}: "
                     f"{str(error)[:200]})", "The file was damaged or cut short; save it again from Keras.") from None
