"""Exporting a glassnet Sequential or graph model to ONNX (``gn.export_onnx(model, path, opset=17)``).

The graph takes glassnet's own input, a float batch ``input`` of shape (N, H, W, C) (N dynamic), so
``session.run(None, {"input": x})`` predicts what ``model.predict(x)`` does. A Transpose turns it
into ONNX's NCHW layout for Conv / MaxPool / AveragePool / BatchNormalization / Pad, and images are
transposed back to NHWC before a Flatten or Reshape, so flattened features come in glassnet's
(and Keras's) order and Dense kernels are written unchanged. Dropout is the identity (inference).

The padding of each convolution and pooling is written as explicit ``pads`` worked out by
glassnet for the model's input size ('same' puts the extra pixel at the bottom/right, as Keras
and ONNX's SAME_UPPER do); AveragePool excludes padded cells, as glassnet does.
"""
import numpy as np

from glassnet.errors import describe, message
from glassnet.interop._common import require


class _Graph:
    """Nodes and initializers under construction; ``current`` is the chain tensor, ``nchw`` its layout."""

    def __init__(self, onnx, dtype):
        self.onnx, self.helper = onnx, onnx.helper
        self.nodes, self.initializers, self.used = [], [], {"input", "output"}
        self.current, self.nchw = "input", False
        self.dtype = dtype

    def constant(self, name, array, cast=True):
        """An initializer ``name`` (written once: a shared layer's later calls reuse its weights)."""
        if name in self.used:
            return name
        self.used.add(name)
        array = np.asarray(array)
        if cast and array.dtype.kind == "f":
            array = array.astype(self.dtype)
        self.initializers.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def node(self, op, name, inputs=(), **attrs):
        output, n = f"{name}/{op}", 1
        while output in self.used:
            n += 1
            output = f"{name}/{op}_{n}"
        self.used.add(output)
        self.nodes.append(self.helper.make_node(op, [self.current, *inputs], [output], name=output, **attrs))
        self.current = output
        return output

    def to_nchw(self, name):
        if not self.nchw:
            self.node("Transpose", f"{name}/to_nchw", perm=[0, 3, 1, 2])
            self.nchw = True

    def to_nhwc(self, name):
        if self.nchw:
            self.node("Transpose", f"{name}/to_nhwc", perm=[0, 2, 3, 1])
            self.nchw = False

    def activation(self, name, activation, image):
        if activation == "relu":
            self.node("Relu", name)
        elif activation == "sigmoid":
            self.node("Sigmoid", name)
        elif activation == "tanh":
            self.node("Tanh", name)
        elif activation == "softmax":
            self.node("Softmax", name, axis=1 if image else -1)


def _pads(layer, input_hw, kernel, strides):
    """ONNX pads [top, left, bottom, right] of a glassnet layer's padding for this input size."""
    from glassnet.ops import resolve_padding
    (top, bottom), (left, right) = resolve_padding(layer.padding, tuple(kernel), tuple(strides), tuple(input_hw))
    return [int(top), int(left), int(bottom), int(right)]


def _conv(g, layer, shape):
    g.to_nchw(layer.name)
    inputs = [g.constant(f"{layer.name}/kernel", layer.params["kernel"].transpose(3, 2, 0, 1))]
    if layer.use_bias:
        inputs.append(g.constant(f"{layer.name}/bias", layer.params["bias"]))
    g.node("Conv", layer.name, inputs, kernel_shape=list(layer.kernel_size), strides=list(layer.strides),
           dilations=list(layer.dilation_rate), pads=_layer_pads(layer, shape))
    g.activation(layer.name, layer.activation, True)


def _layer_pads(layer, shape):
    """ONNX pads [top, left, bottom, right] from the layer's own padding rule for this input."""
    (top, bottom), (left, right) = layer._pads(tuple(shape[:2]))
    return [int(top), int(left), int(bottom), int(right)]


def _depthwise(g, layer, shape, with_bias=True):
    """A grouped Conv with one group per channel: output channel c * M + m filters channel c."""
    g.to_nchw(layer.name)
    kernel = layer.params[layer.depthwise_key]                      # (KH, KW, C, M)
    KH, KW, C, M = kernel.shape
    inputs = [g.constant(f"{layer.name}/depthwise_kernel", kernel.transpose(2, 3, 0, 1).reshape(C * M, 1, KH, KW))]
    if with_bias and layer.use_bias:
        inputs.append(g.constant(f"{layer.name}/bias", layer.params["bias"]))
    g.node("Conv", layer.name, inputs, group=int(C), kernel_shape=[KH, KW], strides=list(layer.strides),
           dilations=list(layer.dilation_rate), pads=_layer_pads(layer, shape))


def _depthwise_conv(g, layer, shape):
    _depthwise(g, layer, shape)
    g.activation(layer.name, layer.activation, True)


def _separable_conv(g, layer, shape):
    _depthwise(g, layer, shape, with_bias=False)
    inputs = [g.constant(f"{layer.name}/pointwise_kernel", layer.params["pointwise_kernel"].transpose(3, 2, 0, 1))]
    if layer.use_bias:
        inputs.append(g.constant(f"{layer.name}/bias", layer.params["bias"]))
    g.node("Conv", f"{layer.name}/pointwise", inputs, kernel_shape=[1, 1])
    g.activation(layer.name, layer.activation, True)


def _upsampling(g, layer, shape):
    g.to_nchw(layer.name)
    scales = g.constant(f"{layer.name}/scales", np.array([1, 1, *layer.size], np.float32), cast=False)
    if layer.interpolation == "nearest":
        attrs = {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}
    else:
        attrs = {"mode": "linear", "coordinate_transformation_mode": "half_pixel"}
    g.node("Resize", layer.name, ["", scales], **attrs)


def _cropping(g, layer, shape, cropping=None):
    g.to_nchw(layer.name)
    (top, bottom), (left, right) = cropping or layer.cropping
    bounds = [g.constant(f"{layer.name}/{key}", np.array(value, np.int64)) for key, value in
              (("starts", [top, left]), ("ends", [shape[0] - bottom, shape[1] - right]), ("axes", [2, 3]))]
    g.node("Slice", layer.name, bounds)


def central_crop(layer, shape):
    """RandomCrop at inference: the central window, as Cropping2D's ((top, bottom), (left, right))."""
    top, left = (shape[0] - layer.height) // 2, (shape[1] - layer.width) // 2
    return [[top, shape[0] - layer.height - top], [left, shape[1] - layer.width - left]]


def _rescaling(g, layer, shape):
    g.node("Mul", layer.name, [g.constant(f"{layer.name}/scale", np.array(layer.scale, g.dtype))])
    if layer.offset:
        g.node("Add", layer.name, [g.constant(f"{layer.name}/offset", np.array(layer.offset, g.dtype))])


def _dense(g, layer, shape):
    inputs = [g.constant(f"{layer.name}/kernel", layer.params["kernel"])]
    if layer.use_bias:
        inputs.append(g.constant(f"{layer.name}/bias", layer.params["bias"]))
    g.node("Gemm", layer.name, inputs)
    g.activation(layer.name, layer.activation, False)


def _pool(g, layer, shape):
    g.to_nchw(layer.name)
    attrs = {"kernel_shape": list(layer.pool_size), "strides": list(layer.strides),
             "pads": _pads(layer, shape[:2], layer.pool_size, layer.strides)}
    if type(layer).__name__ == "AveragePooling2D":
        g.node("AveragePool", layer.name, count_include_pad=0, **attrs)
    else:
        g.node("MaxPool", layer.name, **attrs)


def _global_pool(op):
    def write(g, layer, shape):
        g.to_nchw(layer.name)
        g.node(op, layer.name)
        g.node("Flatten", layer.name, axis=1)
        g.nchw = False
    return write


def _flatten(g, layer, shape):
    g.to_nhwc(layer.name)
    g.node("Flatten", layer.name, axis=1)


def _reshape(g, layer, shape):
    g.to_nhwc(layer.name)
    g.node("Reshape", layer.name, [g.constant(f"{layer.name}/shape", np.array([0, *layer.target_shape], np.int64))])
    if len(layer.output_shape) == 4:
        g.to_nchw(layer.name)


def _image(shape):
    return len(shape) == 3


def _relu(g, layer, shape):
    if layer.negative_slope:
        g.node("LeakyRelu", layer.name, alpha=float(layer.negative_slope))
    else:
        g.node("Relu", layer.name)
    if layer.max_value is not None:
        g.node("Min", layer.name, [g.constant(f"{layer.name}/max_value", np.array(layer.max_value, g.dtype))])


def _prelu(g, layer, shape):
    alpha = layer.params["alpha"]
    if _image(shape):
        g.to_nchw(layer.name)
        alpha = alpha.transpose(2, 0, 1)
    g.node("PRelu", layer.name, [g.constant(f"{layer.name}/alpha", alpha)])


def _batch_norm(g, layer, shape):
    if _image(shape):
        g.to_nchw(layer.name)
    C = shape[-1]
    scale = layer.params["gamma"] if layer.scale else np.ones(C, g.dtype)
    bias = layer.params["beta"] if layer.center else np.zeros(C, g.dtype)
    names = [g.constant(f"{layer.name}/{key}", value) for key, value in
             (("gamma", scale), ("beta", bias), ("moving_mean", layer.non_trainable["moving_mean"]),
              ("moving_variance", layer.non_trainable["moving_variance"]))]
    g.node("BatchNormalization", layer.name, names, epsilon=float(layer.epsilon), momentum=float(layer.momentum))


def _zero_padding(g, layer, shape):
    g.to_nchw(layer.name)
    (top, bottom), (left, right) = layer.pads
    g.node("Pad", layer.name, [g.constant(f"{layer.name}/pads", np.array([0, 0, top, left, 0, 0, bottom, right],
                                                                         np.int64))], mode="constant")


def _softmax(g, layer, shape):
    g.node("Softmax", layer.name, axis=1 if _image(shape) and g.nchw else -1)


_WRITERS = {
    "Conv2D": _conv, "Dense": _dense, "MaxPooling2D": _pool, "AveragePooling2D": _pool,
    "GlobalAveragePooling2D": _global_pool("GlobalAveragePool"), "GlobalMaxPooling2D": _global_pool("GlobalMaxPool"),
    "Flatten": _flatten, "Reshape": _reshape, "Dropout": lambda g, layer, shape: None,
    "Activation": lambda g, layer, shape: g.activation(layer.name, layer.activation, _image(shape) and g.nchw),
    "ReLU": _relu, "LeakyReLU": _relu, "PReLU": _prelu, "Softmax": _softmax,
    "BatchNormalization": _batch_norm, "ZeroPadding2D": _zero_padding,
    "DepthwiseConv2D": _depthwise_conv, "SeparableConv2D": _separable_conv, "UpSampling2D": _upsampling,
    "Cropping2D": _cropping, "Rescaling": _rescaling, "RandomFlip": lambda g, layer, shape: None,
    "RandomErasing": lambda g, layer, shape: None,
    "RandomCrop": lambda g, layer, shape: _cropping(g, layer, shape, central_crop(layer, shape)),
}
#: glassnet's merge layers: the ONNX operator (all but Subtract and Multiply take any number of inputs)
_MERGES = {"Add": "Sum", "Subtract": "Sub", "Multiply": "Mul", "Average": "Mean", "Maximum": "Max",
           "Concatenate": "Concat"}


def _merge(g, layer, sources, shape):
    """A merge of ``sources`` ((ONNX name, nchw) pairs) of per-example ``shape``: images meet in NCHW
    when any of them is NCHW already."""
    nchw = len(shape) == 3 and any(is_nchw for _, is_nchw in sources)
    names = []
    for name, is_nchw in sources:
        g.current, g.nchw = name, is_nchw
        if nchw:
            g.to_nchw(layer.name)
        names.append(g.current)
    g.current, g.nchw = names[0], nchw
    op = _MERGES[type(layer).__name__]
    if op == "Concat":
        axis = layer._axis(len(shape)) + 1                  # in (N, H, W, C)
        g.node(op, layer.name, names[1:], axis=(0, 2, 3, 1)[axis] if nchw else axis)
    elif op == "Mul":                                       # two inputs at a time
        for other in names[1:]:
            g.node(op, layer.name, [other])
    else:
        g.node(op, layer.name, names[1:])


def _write_graph(g, model, input_names):
    """Every call of a graph model, in the executor's order; returns the (ONNX name, nchw) of each output."""
    shapes = model._slot_shapes()
    graph = model._graph()
    tensors = {slot: (name, False) for slot, name in zip(graph.inputs, input_names)}
    for node in graph.nodes:
        if type(node.layer).__name__ in _MERGES:
            _merge(g, node.layer, [tensors[slot] for slot in node.inputs], tuple(shapes[node.inputs[0]][1:]))
        else:
            g.current, g.nchw = tensors[node.inputs[0]]
            _WRITERS[type(node.layer).__name__](g, node.layer, tuple(shapes[node.inputs[0]][1:]))
        tensors[node.output] = (g.current, g.nchw)
    return [tensors[slot] for slot in graph.outputs]


def export_onnx(model, path, opset=17, dtype="float32"):
    """Write ``model`` (a built glassnet Sequential) to ``path`` as an ONNX model.

    Parameters
    ----------
    model : Sequential or Model
        A graph model (branches, merges, shared layers, several inputs and outputs) too.
    path : str or os.PathLike
        Written atomically.
    opset : int
        ONNX opset (13 or newer).
    dtype : {"float32", "float64"}
        Type of the graph's tensors and weights. float32 by default, whatever the model's dtype:
        onnxruntime's CPU kernels (Conv among them) have no float64 versions.

    The graph's input ``input`` is (N, H, W, C) and its output ``output`` what ``model.predict`` returns
    (a graph model with several: ``input_0``, ``input_1``, ... and ``output_0``, ... in the model's order).
    """
    onnx = require("onnx")
    from glassnet.layers.input import InputLayer
    from glassnet.model import Model, Sequential
    from glassnet.saving import atomic_write
    from glassnet.validation import check_int
    where = "export_onnx"
    if not isinstance(model, Model):
        raise TypeError(message(where, "a glassnet model (a Sequential or a gn.Model graph)", describe(model),
                                "Pass the model itself, e.g. gn.export_onnx(model, 'm.onnx')."))
    opset = check_int(opset, "opset", where, minimum=13, fix="Use opset=17 (the default) or any from 13 up.")
    if dtype not in ("float32", "float64"):
        raise ValueError(message(where, "dtype 'float32' or 'float64'", repr(dtype), "Keep the default, float32."))
    if not model.built:
        raise RuntimeError(message(where, "a built model", "an unbuilt one",
                                   "Give the first layer input_shape=... or call model.build(input_shape)."))
    missing = [f"{layer.name!r} ({type(layer).__name__})" for layer in model.layers
               if type(layer).__name__ not in _WRITERS and type(layer).__name__ not in _MERGES
               and not isinstance(layer, InputLayer)]
    if missing:
        raise ValueError(message(where, "a model whose layers have ONNX operators", ", ".join(missing),
                                 "Save it with model.save('m.npz') instead."))
    g = _Graph(onnx, np.dtype(dtype))
    input_shapes = [model.input_shape] if isinstance(model, Sequential) or len(model.inputs) == 1 else \
        list(model.input_shape)
    input_names = ["input"] if len(input_shapes) == 1 else [f"input_{i}" for i in range(len(input_shapes))]
    if isinstance(model, Sequential):
        shape = tuple(model.input_shape[1:])
        for layer in model.layers:
            _WRITERS[type(layer).__name__](g, layer, shape)
            shape = tuple(layer.output_shape[1:])
        outputs, output_shapes = [(g.current, g.nchw)], [model.output_shape]
    else:
        g.used.update(input_names)
        outputs = _write_graph(g, model, input_names)
        output_shapes = [tuple(t.shape) for t in model._traced.output_tensors]
    output_names = ["output"] if len(outputs) == 1 else [f"output_{i}" for i in range(len(outputs))]
    g.used.update(output_names)
    for (name, nchw), output in zip(outputs, output_names):
        g.current, g.nchw = name, nchw
        g.to_nhwc(output)
        g.nodes.append(onnx.helper.make_node("Identity", [g.current], [output], name=output))
    elem = onnx.TensorProto.DOUBLE if dtype == "float64" else onnx.TensorProto.FLOAT
    graph = onnx.helper.make_graph(
        g.nodes, model.name,
        [onnx.helper.make_tensor_value_info(name, elem, ["N", *shape[1:]]) for name, shape in zip(input_names,
                                                                                                 input_shapes)],
        [onnx.helper.make_tensor_value_info(name, elem, ["N", *shape[1:]]) for name, shape in zip(output_names,
                                                                                                 output_shapes)],
        g.initializers)
    proto = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)],
                                   producer_name="glassnet")
    # the oldest IR version the opset allows, so older runtimes open the file too
    proto.ir_version = onnx.helper.find_min_ir_version_for(list(proto.opset_import))
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()
    atomic_write(path, lambda handle: handle.write(data))
