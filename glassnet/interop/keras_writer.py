"""Writing a glassnet Sequential as a Keras 3 ``.keras`` file that ``keras.models.load_model`` opens.

The zip holds ``metadata.json``, ``config.json`` (a Keras Sequential configuration: an InputLayer,
then one Keras layer per glassnet layer, the same names) and ``model.weights.h5`` with each
layer's weights in Keras's order under ``layers/<snake_case class name>[_<n>]/vars/<i>``, the
path Keras itself uses. Keras's Conv2D pads only 'valid' or 'same', so a convolution with explicit
padding amounts is written as a ZeroPadding2D (named ``<name>_padding``) and a 'valid' Conv2D.
The file is written atomically like every glassnet save.
"""
import datetime
import io
import json
import re
import zipfile

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
        "RandomFlip": lambda: {"mode": layer.mode, "seed": layer.seed},
    }
    if cls not in simple:
        raise ValueError(message("save (.keras)", "a model whose layers Keras has", f"layer {layer.name!r} "
                                 f"of type {cls}", "Save it as glassnet's .npz instead (model.save('m.npz'))."))
    return [_entry(cls, {**base, **simple[cls]()}, shape)]


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


def save_keras(model, path):
    """Write ``model`` (a built glassnet Sequential) to ``path`` as a Keras 3 ``.keras`` file."""
    from glassnet import __version__
    from glassnet.model import Sequential
    from glassnet.saving import atomic_write
    if not isinstance(model, Sequential):
        raise ValueError(message("save (.keras)", "a Sequential model (glassnet writes Keras files of "
                                 "Sequential models)", f"a {type(model).__name__}",
                                 "Save it as glassnet's .npz (model.save('m.npz')), which keeps every model."))
    if not model.built:
        raise RuntimeError(message("save (.keras)", "a built model", "an unbuilt one",
                                   "Give the first layer input_shape=... or call model.build(input_shape)."))
    config, pairs = keras_config(model)
    weights = _weights_h5(pairs, model.name)
    metadata = {"keras_version": KERAS_VERSION, "glassnet_version": __version__,
                "date_saved": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d@%H:%M:%S")}

    def write(handle):
        with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_STORED) as archive:
            archive.writestr("metadata.json", json.dumps(metadata))
            archive.writestr("config.json", json.dumps(config))
            archive.writestr("model.weights.h5", weights)
    atomic_write(path, write)
