"""Writing a glassnet Sequential as a Keras 3 ``.keras`` file that ``keras.models.load_model`` opens.

The zip holds ``metadata.json``, ``config.json`` (a Keras Sequential configuration: an InputLayer,
then one Keras layer per glassnet layer, the same names) and ``model.weights.h5`` with each
layer's weights in Keras's order under ``layers/<snake_case class name>[_<n>]/vars/<i>``, the
path Keras itself uses. Keras's Conv2D pads only 'valid' or 'same', so a convolution with explicit
padding amounts is written as a ZeroPadding2D (named ``<name>_padding``) and a 'valid' Conv2D.
The file is written atomically like every glassnet save.
"""
import copy
import datetime
import io
import json
import re
import zipfile

import numpy as np

from glassnet.errors import message
from glassnet.interop._common import require

KERAS_VERSION = "3.0.0"


def _snake_case(name):
    """Keras's name of a class in weight paths: ``MaxPooling2D`` -> ``max_pooling2d``, ``PReLU`` -> ``p_re_lu``."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", re.sub(r"\W+", "", name))
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _entry(class_name, config, input_shape):
    return {"module": "keras.layers", "class_name": class_name, "config": config, "registered_name": None,
            "build_config": {"input_shape": [None] + list(input_shape)}}


def _base(layer, name=None):
    return {"name": name or layer.name, "trainable": layer.trainable,
            "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": str(layer.dtype)},
                      "registered_name": None}}


def _pads_of(padding):
    """glassnet's explicit padding (a layer keeps it parsed, as ((top, bottom), (left, right)):
    see validation.check_padding) as Keras's JSON lists."""
    return [list(p) for p in padding]


def _conv(layer, shape):
    """Conv2D, DepthwiseConv2D or SeparableConv2D: Keras pads only 'valid' or 'same', so explicit
    amounts become a ZeroPadding2D before the convolution."""
    cls = type(layer).__name__
    entries = []
    padding = layer.padding
    if not isinstance(padding, str):
        entries.append(_entry("ZeroPadding2D", {**_base(layer, f"{layer.name}_padding"), "padding": _pads_of(padding),
                                                "data_format": "channels_last"}, shape))
        (top, bottom), (left, right) = _pads_of(padding)
        shape = (shape[0] + top + bottom, shape[1] + left + right, shape[2])
        padding = "valid"
    config = {**_base(layer), "kernel_size": list(layer.kernel_size), "strides": list(layer.strides),
              "padding": padding, "data_format": "channels_last", "activation": layer.activation,
              "use_bias": layer.use_bias}
    config["dilation_rate"] = list(layer.dilation_rate)
    if cls == "Conv2D":
        config.update(filters=layer.filters, groups=1)
    else:
        config.update(depth_multiplier=layer.depth_multiplier)
        if cls == "SeparableConv2D":
            config["filters"] = layer.filters
    entries.append(_entry(cls, config, shape))
    return entries


def _layer_entries(layer, shape):
    """The Keras layer entries (usually one) for one glassnet layer with per-example input ``shape``."""
    cls = type(layer).__name__
    base = _base(layer)
    if cls in ("Conv2D", "DepthwiseConv2D", "SeparableConv2D"):
        return _conv(layer, shape)
    if cls == "RandomCrop":     # at inference, the central window (Keras's RandomCrop resizes instead)
        from glassnet.interop.onnx_writer import central_crop
        return [_entry("Cropping2D", {**base, "cropping": central_crop(layer, shape), "data_format": "channels_last"},
                       shape)]
    simple = {
        "Dense": lambda: {"units": layer.units, "activation": layer.activation, "use_bias": layer.use_bias},
        "MaxPooling2D": lambda: _pool(layer), "AveragePooling2D": lambda: _pool(layer),
        "GlobalAveragePooling2D": lambda: {"data_format": "channels_last", "keepdims": False},
        "GlobalMaxPooling2D": lambda: {"data_format": "channels_last", "keepdims": False},
        "Flatten": lambda: {"data_format": "channels_last"},
        "Dropout": lambda: {"rate": layer.rate, "seed": layer.seed, "noise_shape": None},
        "Activation": lambda: {"activation": layer.activation},
        "ReLU": lambda: {"max_value": layer.max_value, "negative_slope": layer.negative_slope, "threshold": 0.0},
        "LeakyReLU": lambda: {"negative_slope": layer.alpha},
        "PReLU": lambda: {"shared_axes": layer.shared_axes},
        "Softmax": lambda: {"axis": -1},
        "BatchNormalization": lambda: {"axis": -1, "momentum": layer.momentum, "epsilon": layer.epsilon,
                                       "center": layer.center, "scale": layer.scale},
        "ZeroPadding2D": lambda: {"padding": _pads_of(layer.padding), "data_format": "channels_last"},
        "Reshape": lambda: {"target_shape": list(layer.target_shape)},
        "UpSampling2D": lambda: {"size": list(layer.size), "interpolation": layer.interpolation,
                                 "data_format": "channels_last"},
        "Cropping2D": lambda: {"cropping": [list(p) for p in layer.cropping], "data_format": "channels_last"},
        "Rescaling": lambda: {"scale": layer.scale, "offset": layer.offset},
        "RandomFlip": lambda: {"mode": layer.mode, "seed": _keras_seed(layer.seed)},
        "RandomErasing": lambda: {"factor": list(layer.factor), "scale": list(layer.scale),
                                  "fill_value": layer.fill_value, "value_range": list(layer.value_range),
                                  "seed": _keras_seed(layer.seed), "data_format": "channels_last"},
    }
    if cls not in simple:
        raise ValueError(message("save (.keras)", "a model whose layers Keras has", f"layer {layer.name!r} "
                                 f"of type {cls}", "Save it as glassnet's .npz instead (model.save('m.npz'))."))
    return [_entry(cls, {**base, **simple[cls]()}, shape)]


def _keras_seed(seed):
    """A seed Keras takes (an int32); None for a Generator or no seed."""
    return int(seed) % (1 << 31) if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) else None


def _pool(layer):
    return {"pool_size": list(layer.pool_size), "strides": list(layer.strides), "padding": layer.padding,
            "data_format": "channels_last"}


def keras_config(model):
    """The Keras 3 configuration (``config.json``) of a built glassnet Sequential, and the
    (entry, glassnet layer or None) pairs in order for the weights."""
    shape = tuple(model.input_shape[1:])
    entries = [{"module": "keras.layers", "class_name": "InputLayer", "registered_name": None,
                "config": {"batch_shape": [None] + list(shape), "dtype": str(model.dtype), "sparse": False,
                           "name": "input_layer"}}]
    owners = []
    for layer in model.layers:
        made = _layer_entries(layer, shape)
        entries += made
        owners += [None] * (len(made) - 1) + [layer]
        shape = tuple(layer.output_shape[1:])
    build = {"input_shape": [None] + list(model.input_shape[1:])}
    config = {"module": "keras", "class_name": "Sequential", "registered_name": None, "build_config": build,
              "config": {"name": model.name, "trainable": True, "layers": entries,
                         "build_input_shape": build["input_shape"]}}
    return config, list(zip(entries[1:], owners))


def _tensor(shape, dtype, name, call):
    """A Keras 3 ``__keras_tensor__`` reference to output 0 of ``call`` of layer ``name``."""
    return {"class_name": "__keras_tensor__", "config": {"shape": list(shape), "dtype": dtype,
                                                          "keras_history": [name, call, 0]}}


def _graph_layer_entries(layer, call):
    """The Keras entries (the last one produces the layer's output) for a layer of a graph model,
    whose first ``call`` sets the build shapes."""
    from glassnet.layers.input import InputLayer
    shapes = [tuple(t.shape[1:]) for t in call.inputs] if call is not None else []
    if isinstance(layer, InputLayer):
        return [{"module": "keras.layers", "class_name": "InputLayer", "registered_name": None,
                 "config": {"batch_shape": [None] + list(layer.output_shape[1:]), "dtype": str(layer.dtype),
                            "sparse": False, "name": layer.name}}]
    if getattr(layer, "takes_list", False):
        extra = {"axis": layer.axis} if type(layer).__name__ == "Concatenate" else {}
        entry = _entry(type(layer).__name__, {**_base(layer), **extra}, ())
        entry["build_config"] = {"input_shape": [[None] + list(shape) for shape in shapes]}
        return [entry]
    return _layer_entries(layer, shapes[0])


def functional_config(model):
    """The Keras 3 Functional configuration of a glassnet graph model, and the (entry, glassnet
    layer or None) pairs in Keras's layer order (the order of the weight groups)."""
    from glassnet.interop.keras_graph import keras_layer_order
    traced, dtype = model._traced, str(model.dtype)
    first_calls = {id(c.layer): c for c in reversed(traced.calls)}
    entries, last_of, parents = {}, {}, {}
    for layer in model.layers:
        made = _graph_layer_entries(layer, first_calls.get(id(layer)))
        for entry, before in zip(made, [None] + made[:-1]):
            entry["name"] = entry["config"]["name"]
            entry["inbound_nodes"] = []
            entries[entry["name"]] = (entry, layer if entry is made[-1] else None, before)
        last_of[id(layer)] = made[-1]["name"]
        if not first_calls.get(id(layer)):
            parents[(made[-1]["name"], 0)] = []

    def ref(tensor):
        return last_of[id(tensor.history.layer)], model._call_number(tensor.history)

    for call, tensor in zip(traced.calls, traced.tensors):
        index = model._call_number(call)
        sources = [(ref(t), t.shape) for t in call.inputs]
        names = _expansion(entries, last_of[id(call.layer)])
        for name, following in zip(names, names[1:] + [None]):
            entry = entries[name][0]
            args = [_tensor(shape, dtype, *source) for source, shape in sources]
            entry["inbound_nodes"].append({"args": [args] if getattr(call.layer, "takes_list", False) else args,
                                           "kwargs": {}})
            parents[(name, index)] = [source for source, _ in sources]
            shape = tensor.shape if following is None else entries[following][0]["build_config"]["input_shape"]
            sources = [((name, index), shape)]
    ends = {"input_layers": [list(ref(t)) + [0] for t in traced.input_tensors],
            "output_layers": [list(ref(t)) + [0] for t in traced.output_tensors]}
    order = keras_layer_order(parents, [tuple(end[:2]) for end in ends["output_layers"]])
    config = {"module": "keras.src.models.functional", "class_name": "Functional", "registered_name": "Functional",
              "build_config": {"input_shape": None},
              "config": {"name": model.name, "trainable": True, "layers": [entries[n][0] for n in order], **ends}}
    return config, [(entries[n][0], entries[n][1]) for n in order]


def _expansion(entries, last):
    """The names of the Keras entries one glassnet layer became, first to ``last``."""
    names = [last]
    while entries[names[0]][2] is not None:
        names.insert(0, entries[names[0]][2]["name"])
    return names


def _weights_h5(pairs, model_name):
    """``model.weights.h5`` as bytes: ``layers/<path>/vars/<i>`` in Keras's container naming."""
    h5py = require("h5py")
    buffer = io.BytesIO()
    used = {}
    with h5py.File(buffer, "w") as handle:
        for entry, layer in pairs:
            base = _snake_case(entry["class_name"])
            used[base] = used.get(base, -1) + 1
            key = base if used[base] == 0 else f"{base}_{used[base]}"
            group = handle.create_group(f"layers/{key}/vars")
            group.attrs["name"] = entry["config"]["name"]
            for i, weight in enumerate(layer.get_weights() if layer is not None else []):
                group.create_dataset(str(i), data=weight)
        handle.create_group("vars").attrs["name"] = model_name
    return buffer.getvalue()


def _model_config(model, where):
    """The Keras 3 configuration of a built glassnet model and its (entry, layer or None) pairs."""
    from glassnet.model import Sequential
    if not model.built:
        raise RuntimeError(message(where, "a built model", "an unbuilt one",
                                   "Give the first layer input_shape=... or call model.build(input_shape)."))
    return keras_config(model) if isinstance(model, Sequential) else functional_config(model)


#: settings Keras 2 spells differently: class -> (Keras 3 name, Keras 2 name) (Keras 3 reads both)
_KERAS2_NAMES = {"InputLayer": [("batch_shape", "batch_input_shape")], "LeakyReLU": [("negative_slope", "alpha")]}


def keras2_config(config):
    """A Keras 3 model configuration in Keras 2's spelling (what tf.keras writes to ``.h5`` files):
    each call's inputs as ``[layer, node, tensor, kwargs]`` lists, plain dtype names and the settings
    of ``_KERAS2_NAMES`` under their Keras 2 names."""
    legacy = copy.deepcopy(config)
    for entry in legacy["config"]["layers"]:
        dtype = entry["config"].get("dtype")
        if isinstance(dtype, dict):
            entry["config"]["dtype"] = dtype["config"]["name"]
        for old, new in _KERAS2_NAMES.get(entry["class_name"], ()):
            entry["config"][new] = entry["config"].pop(old)
        calls = []
        for node in entry.get("inbound_nodes", None) or []:
            args = node["args"]
            tensors = args[0] if isinstance(args[0], list) else args
            calls.append([t["config"]["keras_history"] + [{}] for t in tensors])
        if "inbound_nodes" in entry:
            entry["inbound_nodes"] = calls
    return legacy


def save_keras_h5(model, path):
    """Write ``model`` as a Keras 2 / tf.keras ``.h5`` file (architecture and weights, no optimizer):
    the root attribute ``model_config`` and ``model_weights/<layer>/<layer>/<weight>:0`` datasets
    listed by the ``layer_names`` and ``weight_names`` attributes, layers in Keras's order."""
    h5py = require("h5py")
    from glassnet.saving import atomic_write
    config, pairs = _model_config(model, "save (.h5)")
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        handle.attrs["keras_version"] = KERAS_VERSION
        handle.attrs["backend"] = "numpy"
        handle.attrs["model_config"] = json.dumps(keras2_config(config))
        weights = handle.create_group("model_weights")
        weights.attrs["layer_names"] = [entry["name"].encode() if "name" in entry else
                                        entry["config"]["name"].encode() for entry, _ in pairs]
        weights.attrs["backend"], weights.attrs["keras_version"] = "numpy", KERAS_VERSION
        for entry, layer in pairs:
            name = entry["config"]["name"]
            group = weights.create_group(name)
            names = [f"{name}/{key}:0" for key in (layer.weight_names if layer is not None else [])]
            group.attrs["weight_names"] = [n.encode() for n in names]
            for weight_name, weight in zip(names, layer.get_weights() if layer is not None else []):
                group.create_dataset(weight_name, data=weight)
    data = buffer.getvalue()
    atomic_write(path, lambda handle: handle.write(data))


def save_keras(model, path):
    """Write ``model`` (a built Sequential or graph model) to ``path`` as a Keras 3 ``.keras`` file."""
    from glassnet import __version__
    from glassnet.saving import atomic_write
    config, pairs = _model_config(model, "save (.keras)")
    weights = _weights_h5(pairs, model.name)
    metadata = {"keras_version": KERAS_VERSION, "glassnet_version": __version__,
                "date_saved": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d@%H:%M:%S")}

    def write(handle):
        with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_STORED) as archive:
            archive.writestr("metadata.json", json.dumps(metadata))
            archive.writestr("config.json", json.dumps(config))
            archive.writestr("model.weights.h5", weights)
    atomic_write(path, write)
