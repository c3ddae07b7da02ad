"""Reading ONNX models (e.g. from ``torch.onnx.export``) as glassnet models: a Sequential for a chain,
a graph :class:`glassnet.Model` for anything else (residual Adds, Concats of branches, several inputs
or outputs).

Supported operators (the CNN set): Conv (group 1, or depthwise), Relu, LeakyRelu, PRelu, Sigmoid,
Tanh, Softmax, MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool (and ReduceMean / ReduceMax
over H and W), Gemm, MatMul (+ Add of a constant bias), Flatten, Reshape (to (N, -1) or a no-op),
BatchNormalization (inference), Dropout, Pad (constant zeros on H and W), Identity, Transpose
(layout changes only), Resize / Upsample (integer factors), Slice (crops of H and W), Clip / Min (a
capped ReLU), Mul / Div / Add / Sub by a scalar constant (Rescaling), and the merges of computed
tensors of one shape: Add and Sum (Add), Sub (Subtract), Mul (Multiply), Max (Maximum), Mean
(Average) and Concat (Concatenate, on any non-batch axis). Shape arithmetic on constants (Constant,
Shape of a static tensor, Gather, Unsqueeze, Squeeze, Concat, Cast, Slice) is folded while reading;
nothing else is evaluated.

Images are NCHW in ONNX and NHWC in glassnet: a 4-D input (N, C, H, W) becomes a glassnet input
(H, W, C) (an input that the graph itself transposes from NHWC, as glassnet's own exports do, stays
(H, W, C)); convolution kernels are transposed OIHW -> HWIO and the rows of the first Gemm / MatMul
after a channels-first flatten are reordered. Every input dimension but the batch must be static.
An activation or a bias folds into the Conv / Gemm before it only when nothing else reads that
operator's output.
"""
import os

import numpy as np

from glassnet.interop._common import (MAX_PARAMETERS, FileProblem, check_parameter_count, flat_order, joined_order,
                                      order_permutation, refuse, require, unsupported)

ONNX_WHAT = "an ONNX model file"
_FIX = ("glassnet reads the CNN operators listed in glassnet.interop.onnx_format; export the "
        "model without these operators (e.g. torch.onnx.export of the model in eval mode with static "
        "image sizes) and retry.")
#: the batch dimension inside folded shape arithmetic (Shape -> Gather -> Concat -> Reshape)
BATCH = -(1 << 62)
_ELEMENTWISE = {"ReLU", "LeakyReLU", "PReLU", "Activation", "Dropout", "BatchNormalization", "Rescaling"}
#: why some common operators are refused, and what to export instead
_MISSING_REASONS = {
    "LogSoftmax": "glassnet has no log-softmax output; export the logits or a Softmax (e.g. drop F.log_softmax "
                  "from forward for the export)",
}
_ARITHMETIC = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}
#: operators that merge two or more computed tensors (branches), and glassnet's merge layer for each
_MERGES = {"Add": "Add", "Sum": "Add", "Sub": "Subtract", "Mul": "Multiply", "Max": "Maximum", "Mean": "Average",
           "Concat": "Concatenate"}


class _Skip(Exception):
    """Internal: a node glassnet cannot represent, with the reason."""


class _Tensor:
    """The chain tensor: its glassnet per-example ``shape``, for images the ONNX ``axes`` (the glassnet
    axis of each ONNX axis: (0, 3, 1, 2) for NCHW), for vectors the ``onnx_rank`` and the pending
    ``permutation`` of flattened channels-first features (a symbolic feature order, see
    :func:`glassnet.interop._common.flat_order`; None when in glassnet's order), and
    ``non_negative`` when the last layer cannot output negatives (ReLU, sigmoid, softmax)."""

    def __init__(self, shape, axes=None, onnx_rank=2, permutation=None, non_negative=False):
        self.shape, self.axes, self.onnx_rank = tuple(shape), axes, onnx_rank
        self.permutation, self.non_negative = permutation, non_negative

    @property
    def is_image(self):
        return len(self.shape) == 3

    def require_nchw(self, op):
        if not self.is_image or tuple(self.axes) != (0, 3, 1, 2):
            raise _Skip(f"{op} on a tensor that is not an NCHW image")


def _attributes(node, onnx):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _layer_name(node, index, used, suffix=""):
    """A readable unique layer name from an ONNX node name: PyTorch's ``/features/features.0/Conv``
    becomes ``features.0``, ``/Reshape`` becomes ``reshape``."""
    name = node.name[5:] if node.name.startswith("node_") else node.name   # PyTorch's dynamo exporter
    parts = [p for p in name.strip("/").split("/") if p]
    if parts and parts[-1].split("_")[0] == node.op_type:
        parts = parts[:-1] if len(parts) > 1 else [parts[0].lower()]
    return _unique((parts[-1] if parts else f"{node.op_type.lower()}_{index}") + suffix, used)


def _unique(base, used):
    """``base``, or ``base_2``, ``base_3``, ... : the first name not in ``used`` (then added to it)."""
    name, n = base, 1
    while name in used:
        n += 1
        name = f"{base}_{n}"
    used.add(name)
    return name


def _ints(values):
    return [int(v) for v in values]


class _Reader:
    """Walks the nodes in order, folding constants and appending glassnet layers to a chain."""

    def __init__(self, onnx, path):
        self.onnx, self.path = onnx, path
        self.constants = {}
        self.layers, self.weights = [], []   # glassnet layer configs, and each one's weights
        self.inbound = []                    # each layer's input layers (by name)
        #: ONNX tensor name -> (_Tensor, glassnet layer computing it, whether that layer made it just now)
        self.values = {}
        self.inputs = []                     # (input layer name, glassnet per-example shape)
        self.current, self.tensor, self.source = None, None, None
        self.problems, self.used_names = [], set()
        self.dtype = "float32"
        self.batch, self.opset, self.just_added = BATCH, 17, False

    # -- constants ----------------------------------------------------------------------------
    def tensor_array(self, proto):
        numpy_helper = self.onnx.numpy_helper
        count = int(np.prod([int(d) for d in proto.dims], dtype=np.float64))
        if count > MAX_PARAMETERS or any(int(d) < 0 for d in proto.dims):
            raise FileProblem(f"tensor {proto.name!r} has absurd dimensions {list(proto.dims)[:8]}")
        try:
            if proto.data_location == self.onnx.TensorProto.EXTERNAL or proto.external_data:
                return self.external_array(proto, count)
            array = numpy_helper.to_array(proto)
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            raise FileProblem(f"tensor {proto.name!r} is damaged ({str(error)[:120]})") from None
        if array.dtype.kind not in "biuf":
            raise FileProblem(f"tensor {proto.name!r} holds {array.dtype} data, not numbers")
        if array.size != count:
            raise FileProblem(f"tensor {proto.name!r} holds {array.size} values for dimensions {list(proto.dims)}")
        return array

    def external_array(self, proto, count):
        """A tensor kept in a side file (PyTorch's exporter writes ``model.onnx.data``): only a file in
        the model's own folder, and exactly the bytes the tensor's shape needs."""
        entries = {e.key: e.value for e in proto.external_data}
        location = entries.get("location", "")
        if not location or os.path.basename(location) != location or location in (".", ".."):
            raise FileProblem(f"tensor {proto.name!r} points to data file {location!r} outside the model's folder")
        dtype = np.dtype(self.onnx.helper.tensor_dtype_to_np_dtype(proto.data_type))
        if dtype.kind not in "biuf":
            raise FileProblem(f"tensor {proto.name!r} holds {dtype} data, not numbers")
        offset, length = int(entries.get("offset", 0)), int(entries.get("length", count * dtype.itemsize))
        side = os.path.join(os.path.dirname(os.path.abspath(self.path)), location)
        if length != count * dtype.itemsize or offset < 0 or not os.path.isfile(side) or \
                offset + length > os.path.getsize(side):
            raise FileProblem(f"tensor {proto.name!r}: its {length} bytes at offset {offset} of {location!r} "
                              "are missing or do not match its shape")
        with open(side, "rb") as handle:
            handle.seek(offset)
            data = handle.read(length)
        return np.frombuffer(data, dtype=dtype.newbyteorder("<")).astype(dtype).reshape([int(d) for d in proto.dims])

    def onnx_shape(self):
        """The ONNX shape of the chain tensor (what a Shape node returns), ``BATCH`` for the batch."""
        tensor = self.tensor
        if tensor.is_image:
            nhwc = (BATCH,) + tensor.shape
            return [nhwc[g] for g in tensor.axes]
        return [BATCH, *tensor.shape] + [1] * (tensor.onnx_rank - 1 - len(tensor.shape))

    def const(self, name, what):
        if name not in self.constants:
            raise _Skip(f"{what} {name!r} is computed in the graph, not a constant")
        return self.constants[name]

    def fold(self, node, attrs):
        """Evaluate a shape-arithmetic node whose inputs are all constants; False when not foldable."""
        op, ins = node.op_type, [self.constants[i] for i in node.input if i]
        if op == "Constant":
            if "value" not in attrs:
                raise _Skip("a Constant without a tensor value")
            value = self.tensor_array(attrs["value"])
        elif op == "Identity" or op == "Cast":
            value = ins[0]
        elif op == "Gather":
            value = np.take(ins[0], ins[1].astype(np.int64), axis=int(attrs.get("axis", 0)))
        elif op in ("Unsqueeze", "Squeeze"):
            axes = attrs.get("axes", list(ins[1]) if len(ins) > 1 else None)
            value = ins[0]
            if op == "Unsqueeze":
                for axis in sorted(int(a) % (value.ndim + len(axes)) for a in axes):
                    value = np.expand_dims(value, axis)
            else:
                value = np.squeeze(value, axis=None if axes is None else tuple(int(a) for a in axes))
        elif op == "Concat":
            value = np.concatenate([np.atleast_1d(v) for v in ins], axis=int(attrs.get("axis", 0)))
        elif op == "Slice" and len(ins) >= 3:
            axes = ins[3] if len(ins) > 3 else range(len(ins[1]))
            steps = ins[4] if len(ins) > 4 else [1] * len(ins[1])
            index = [slice(None)] * ins[0].ndim
            for start, end, axis, step in zip(ins[1], ins[2], axes, steps):
                index[int(axis)] = slice(int(start), int(end), int(step))
            value = ins[0][tuple(index)]
        elif op == "Reshape":
            value = ins[0].reshape([int(d) for d in ins[1]])
        elif op in _ARITHMETIC and len(ins) == 2:
            value = _ARITHMETIC[op](ins[0], ins[1])
        else:
            return False
        if np.size(value) > MAX_PARAMETERS:
            raise _Skip("a constant too large")
        self.constants[node.output[0]] = np.asarray(value)
        return True

    # -- the graph ------------------------------------------------------------------------------
    def add(self, node, cls, config, weights=(), non_negative=False, suffix=""):
        """Append a layer taking the current tensor; it becomes the current tensor's source."""
        name = _layer_name(node, len(self.layers), self.used_names, suffix)
        self.layers.append({"class_name": cls, "config": {"name": name, "dtype": self.dtype, **config}})
        self.weights.append(list(weights))
        self.inbound.append([self.source])
        self.source = name
        from glassnet.layers import deserialize
        layer = deserialize(self.layers[-1])
        layer.check_input_shape(self.tensor.shape)
        shape = tuple(layer.compute_output_shape(self.tensor.shape))
        if cls in _ELEMENTWISE:   # same tensor layout (and pending feature order) as the input
            self.tensor = _Tensor(shape, self.tensor.axes, self.tensor.onnx_rank, self.tensor.permutation,
                                  non_negative)
        else:
            self.tensor = _Tensor(shape, (0, 3, 1, 2) if len(shape) == 3 else None, 2, None, non_negative)

    def fuse_activation(self, activation):
        """Fold an activation into the Conv2D / Dense just added (as Keras writes them), if it has none."""
        if self.layers and self.layers[-1]["class_name"] in ("Conv2D", "Dense") and \
                self.layers[-1]["config"].get("activation", "linear") == "linear" and self.just_added:
            self.layers[-1]["config"]["activation"] = activation
            self.tensor.non_negative = activation in ("relu", "sigmoid", "softmax")
            return True
        return False

    def weight(self, name, what):
        return np.asarray(self.const(name, what), dtype=self.dtype)

    # -- operators: each takes (node, attrs) ------------------------------------------------------
    def Conv(self, node, a):
        self.tensor.require_nchw("Conv")
        kernel = self.weight(node.input[1], "the Conv kernel")
        if kernel.ndim != 4:
            raise _Skip(f"a kernel of shape {kernel.shape} (glassnet convolves 2-D images)")
        bias = self.weight(node.input[2], "the Conv bias") if len(node.input) > 2 and node.input[2] else None
        size = list(kernel.shape[2:])
        strides = _ints(a.get("strides", [1, 1]))
        dilations = _ints(a.get("dilations", [1, 1]))
        padding = self.spatial_padding(a, size, strides, "Conv")
        config = {"kernel_size": size, "strides": strides, "padding": padding, "use_bias": bias is not None}
        groups, channels = int(a.get("group", 1)), self.tensor.shape[-1]
        if groups == channels and groups > 1 and kernel.shape[1] == 1 and kernel.shape[0] % channels == 0:
            # depthwise: output channel c * M + m filters input channel c; glassnet's kernel is (KH, KW, C, M)
            multiplier = kernel.shape[0] // channels
            weights = [kernel.reshape(channels, multiplier, *size).transpose(2, 3, 0, 1)]
            return self.add(node, "DepthwiseConv2D", {**config, "depth_multiplier": multiplier,
                                                      "dilation_rate": dilations},
                            weights + ([bias] if bias is not None else []))
        if groups != 1:
            raise _Skip(f"group={groups} on {channels} channels (glassnet has plain and depthwise convolutions)")
        if any(d != 1 for d in dilations) and any(s != 1 for s in strides):
            raise _Skip(f"dilations {dilations} with strides {strides} (Conv2D dilates with strides of 1, as Keras)")
        weights = [kernel.transpose(2, 3, 1, 0)] + ([bias] if bias is not None else [])
        self.add(node, "Conv2D", {**config, "filters": int(kernel.shape[0]), "dilation_rate": dilations}, weights)

    def spatial_padding(self, a, size, strides, op):
        """glassnet's padding argument for ONNX pads / auto_pad."""
        auto = a.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
        if auto == "SAME_UPPER":
            return "same"
        if auto == "VALID":
            return "valid"
        if auto not in ("NOTSET", ""):
            raise _Skip(f"auto_pad {auto} (glassnet pads 'same' with the extra pixel at the bottom/right)")
        top, left, bottom, right = _ints(a.get("pads", [0, 0, 0, 0]))
        if min(top, left, bottom, right) < 0:
            raise _Skip("negative pads")
        return [[top, bottom], [left, right]] if any((top, left, bottom, right)) else "valid"

    def _pool(self, node, a, cls):
        self.tensor.require_nchw(node.op_type)
        size = _ints(a["kernel_shape"])
        strides = _ints(a.get("strides", [1, 1]))
        if any(d != 1 for d in a.get("dilations", [1, 1])):
            raise _Skip("dilated pooling")
        padding = self.spatial_padding(a, size, strides, node.op_type)
        if a.get("ceil_mode", 0):
            padding = self.ceil_padding(padding, size, strides)
        config = {"pool_size": size, "strides": strides}
        if isinstance(padding, str):
            return self.add(node, cls, {**config, "padding": padding}, non_negative=self.tensor.non_negative)
        same = self.same_pads(size, strides)
        include = cls == "AveragePooling2D" and a.get("count_include_pad", 0)
        if padding == same and not include:
            # glassnet's 'same' pooling ignores padded cells: a max over -inf padding, a mean over real cells
            return self.add(node, cls, {**config, "padding": "same"}, non_negative=self.tensor.non_negative)
        if cls == "MaxPooling2D" and not self.tensor.non_negative:
            raise _Skip(f"pads {padding} on an input that may be negative (glassnet max-pools with explicit "
                        "padding only after a ReLU, sigmoid or softmax, where zero padding is exact)")
        if cls == "AveragePooling2D" and not include:
            raise _Skip(f"pads {padding} without count_include_pad (glassnet excludes padding only for 'same')")
        # zero padding is exact here: windows of non-negative values, or padded zeros counted in the mean
        self.add_padding(node, padding)
        self.add(node, cls, {**config, "padding": "valid"}, non_negative=self.tensor.non_negative)

    def same_pads(self, size, strides):
        from glassnet.ops import resolve_padding
        pads = resolve_padding("same", tuple(size), tuple(strides), self.tensor.shape[:2])
        return [list(p) for p in pads]

    def ceil_padding(self, padding, size, strides):
        """ceil_mode as extra bottom/right padding, or the padding unchanged when it makes no difference."""
        pads = [[0, 0], [0, 0]] if padding == "valid" else [list(p) for p in padding]
        if padding == "same":
            raise _Skip("ceil_mode with auto_pad")
        for axis in range(2):
            total = self.tensor.shape[axis] + sum(pads[axis])
            floor_out = (total - size[axis]) // strides[axis] + 1
            ceil_out = -(-(total - size[axis]) // strides[axis]) + 1
            if ceil_out > floor_out and (ceil_out - 1) * strides[axis] < self.tensor.shape[axis] + pads[axis][0]:
                pads[axis][1] += (ceil_out - 1) * strides[axis] + size[axis] - total
        return "valid" if not any(map(any, pads)) else pads

    def add_padding(self, node, pads):
        non_negative = self.tensor.non_negative
        self.add(node, "ZeroPadding2D", {"padding": pads}, suffix="_padding" if node.op_type != "Pad" else "")
        self.tensor.non_negative = non_negative

    def MaxPool(self, node, a):
        if len(node.output) > 1 and node.output[1]:
            raise _Skip("MaxPool's indices output")
        self._pool(node, a, "MaxPooling2D")

    def AveragePool(self, node, a):
        self._pool(node, a, "AveragePooling2D")

    def GlobalAveragePool(self, node, a):
        self.tensor.require_nchw(node.op_type)
        self.add(node, "GlobalAveragePooling2D", {}, non_negative=self.tensor.non_negative)
        self.tensor.onnx_rank = 4    # ONNX keeps (N, C, 1, 1)

    def GlobalMaxPool(self, node, a):
        self.tensor.require_nchw(node.op_type)
        self.add(node, "GlobalMaxPooling2D", {}, non_negative=self.tensor.non_negative)
        self.tensor.onnx_rank = 4

    def _global_reduce(self, node, a, cls):
        """ReduceMean / ReduceMax over H and W of an NCHW image (how PyTorch's dynamo exporter writes
        adaptive pooling to 1x1): a global pooling layer."""
        self.tensor.require_nchw(node.op_type)
        axes = a.get("axes") if "axes" in a else (self.const(node.input[1], "the reduced axes")
                                                  if len(node.input) > 1 and node.input[1] else None)
        if axes is None or sorted(int(v) % 4 for v in np.asarray(axes).reshape(-1)) != [2, 3]:
            raise _Skip(f"a {node.op_type} over axes {axes} (glassnet pools over H and W)")
        self.add(node, cls, {}, non_negative=self.tensor.non_negative)
        self.tensor.onnx_rank = 4 if a.get("keepdims", 1) else 2

    def ReduceMean(self, node, a):
        self._global_reduce(node, a, "GlobalAveragePooling2D")

    def ReduceMax(self, node, a):
        self._global_reduce(node, a, "GlobalMaxPooling2D")

    def Relu(self, node, a):
        if not self.fuse_activation("relu"):
            self.add(node, "ReLU", {}, non_negative=True)

    def Sigmoid(self, node, a):
        if not self.fuse_activation("sigmoid"):
            self.add(node, "Activation", {"activation": "sigmoid"}, non_negative=True)

    def Tanh(self, node, a):
        if not self.fuse_activation("tanh"):
            self.add(node, "Activation", {"activation": "tanh"})

    def Softmax(self, node, a):
        axis = int(a.get("axis", 1 if self.opset < 13 else -1))
        if self.tensor.is_image or axis not in (-1, 1) or self.tensor.onnx_rank != 2:
            raise _Skip(f"Softmax over axis {axis} of a {4 if self.tensor.is_image else self.tensor.onnx_rank}-D "
                        "tensor (glassnet's runs over the class axis of (N, classes))")
        if self.tensor.permutation is not None:
            raise _Skip("Softmax of features still in channels-first order")
        if not self.fuse_activation("softmax"):
            self.add(node, "Softmax", {}, non_negative=True)

    def LeakyRelu(self, node, a):
        self.add(node, "LeakyReLU", {"alpha": float(a.get("alpha", 0.01))})

    def PRelu(self, node, a):
        slope = self.weight(node.input[1], "the PRelu slope")
        rank = 3 if self.tensor.is_image else 1
        if slope.ndim == rank + 1 and slope.shape[0] == 1:   # the batch axis, broadcast
            slope = slope[0]
        if slope.ndim > rank:
            raise _Skip(f"a slope of shape {slope.shape}")
        slope = slope.reshape((1,) * (rank - slope.ndim) + slope.shape)
        if self.tensor.is_image:
            slope = slope.transpose([list(self.tensor.axes[1:]).index(g) for g in (1, 2, 3)])
        elif self.tensor.permutation is not None and slope.shape[0] > 1:
            if slope.shape[0] != self.tensor.shape[0]:
                raise _Skip(f"a slope of shape {slope.shape} for {self.tensor.shape[0]} features")
            slope = slope[order_permutation(self.tensor.permutation)]
        shared = [i + 1 for i, n in enumerate(slope.shape) if n == 1 and self.tensor.shape[i] != 1]
        self.add(node, "PReLU", {"shared_axes": shared or None}, [slope])

    def _dense(self, node, kernel, bias):
        if self.tensor.is_image or kernel.ndim != 2 or kernel.shape[0] != self.tensor.shape[0]:
            raise _Skip(f"a matrix product of {self.tensor.shape} features with a kernel of shape "
                        f"{kernel.shape}")
        if self.tensor.permutation is not None:
            kernel = kernel[order_permutation(self.tensor.permutation)]
        self.add(node, "Dense", {"units": int(kernel.shape[1]), "use_bias": bias is not None},
                 [kernel] + ([np.broadcast_to(bias, kernel.shape[1:]).copy()] if bias is not None else []))

    def Gemm(self, node, a):
        if a.get("transA", 0):
            raise _Skip("transA=1")
        kernel = self.weight(node.input[1], "the Gemm weight")
        kernel = (kernel.T if a.get("transB", 0) else kernel) * float(a.get("alpha", 1.0))
        bias = None
        if len(node.input) > 2 and node.input[2]:
            bias = self.weight(node.input[2], "the Gemm bias") * float(a.get("beta", 1.0))
        self.flatten_rank4_vector()
        self._dense(node, kernel, bias)

    def MatMul(self, node, a):
        self.flatten_rank4_vector()
        self._dense(node, self.weight(node.input[1], "the MatMul weight"), None)

    def _rescale(self, node, op):
        """x * c, x / c, x + c or x - c with a scalar constant c: a Rescaling layer (merged with the one
        just before it, so torch's (x - mean) / std is one layer)."""
        other = [i for i in node.input if i != self.current]
        if len(other) != 1 or other[0] not in self.constants or np.size(self.constants[other[0]]) != 1:
            return False
        c = float(np.asarray(self.constants[other[0]]).reshape(()))
        if op in ("Sub", "Div") and node.input[0] != self.current:
            raise _Skip(f"a {op} with the tensor second (c {'-' if op == 'Sub' else '/'} x)")
        scale, offset = {"Mul": (c, 0.0), "Div": (1 / c if c else np.inf, 0.0), "Add": (1.0, c),
                         "Sub": (1.0, -c)}[op]
        if not np.isfinite(scale):
            raise _Skip("a division by zero")
        last = self.layers[-1] if self.layers else None
        if last and last["class_name"] == "Rescaling" and self.just_added:
            last["config"]["scale"] *= scale
            last["config"]["offset"] = last["config"]["offset"] * scale + offset
        else:
            self.add(node, "Rescaling", {"scale": scale, "offset": offset})
        return True

    def Mul(self, node, a):
        if not self._rescale(node, "Mul"):
            raise _Skip("a Mul that is not a scaling by one constant")

    def Div(self, node, a):
        if not self._rescale(node, "Div"):
            raise _Skip("a Div that is not a scaling by one constant")

    def Sub(self, node, a):
        if not self._rescale(node, "Sub"):
            raise _Skip("a Sub that is not a shift by one constant")

    def Resize(self, node, a):
        """Nearest (asymmetric, floor: a repeat) or linear (half-pixel) upsampling by integer factors."""
        self.tensor.require_nchw("Resize")
        scales = self.const(node.input[2], "the Resize scales") if len(node.input) > 2 and node.input[2] else []
        if np.size(scales) == 0 and len(node.input) > 3:
            sizes = np.asarray(self.const(node.input[3], "the Resize sizes")).reshape(-1)
            scales = [1, 1] + [sizes[2] / self.tensor.shape[0], sizes[3] / self.tensor.shape[1]]
        self._upsample(node, a.get("mode", b"nearest"), a.get("coordinate_transformation_mode", b"half_pixel"),
                       a.get("nearest_mode", b"round_prefer_floor"), scales)

    def Upsample(self, node, a):
        """The Resize of opsets 7-9: asymmetric coordinates, nearest pixels rounded down."""
        self.tensor.require_nchw("Upsample")
        scales = a["scales"] if "scales" in a else self.const(node.input[1], "the Upsample scales")
        self._upsample(node, a.get("mode", b"nearest"), "asymmetric", "floor", scales)

    def _upsample(self, node, mode, transform, nearest, scales):
        mode, transform, nearest = (v.decode() if isinstance(v, bytes) else v for v in (mode, transform, nearest))
        scales = [float(v) for v in np.asarray(scales).reshape(-1)]
        if len(scales) != 4 or scales[:2] != [1.0, 1.0] or any(v != int(v) or v < 1 for v in scales[2:]):
            raise _Skip(f"scales {scales} (glassnet upsamples H and W by integer factors)")
        if mode == "nearest" and transform == "asymmetric" and nearest == "floor":
            interpolation = "nearest"
        elif mode == "linear" and transform in ("half_pixel", "pytorch_half_pixel"):
            interpolation = "bilinear"
        else:
            raise _Skip(f"mode {mode} with {transform} coordinates (glassnet repeats pixels, or interpolates "
                        "with half-pixel centres)")
        self.add(node, "UpSampling2D", {"size": [int(scales[2]), int(scales[3])], "interpolation": interpolation},
                 non_negative=self.tensor.non_negative)

    def Slice(self, node, a):
        """A crop of H and W (torch's x[:, :, a:b, c:d]): Cropping2D."""
        self.tensor.require_nchw("Slice")
        starts, ends = (np.asarray(self.const(n, "the Slice bounds")).reshape(-1) for n in node.input[1:3])
        axes = np.asarray(self.const(node.input[3], "the Slice axes")).reshape(-1) if len(node.input) > 3 and \
            node.input[3] else np.arange(len(starts))
        steps = np.asarray(self.const(node.input[4], "the Slice steps")).reshape(-1) if len(node.input) > 4 and \
            node.input[4] else np.ones(len(starts), int)
        crop = [[0, 0], [0, 0]]
        for start, end, axis, step in zip(starts, ends, axes, steps):
            axis = int(axis) % 4
            if axis < 2 or step != 1:
                raise _Skip(f"a Slice of axis {axis} with step {step} (glassnet crops H and W)")
            size = self.tensor.shape[axis - 2]
            begin, stop = (int(np.clip(v + size if v < 0 else v, 0, size)) for v in (start, end))
            crop[axis - 2] = [begin, size - stop]
        self.add(node, "Cropping2D", {"cropping": crop}, non_negative=self.tensor.non_negative)

    def Add(self, node, a):
        last = self.layers[-1] if self.layers else None
        other = node.input[1] if node.input[0] == self.current else node.input[0]
        if not (last and last["class_name"] == "Dense" and not last["config"]["use_bias"] and self.just_added):
            if self._rescale(node, "Add"):
                return
            raise _Skip("an Add that is not a Dense bias (branches need glassnet's Functional API)")
        bias = self.weight(other, "the added bias")
        units = last["config"]["units"]
        if bias.size not in (1, units):
            raise _Skip(f"a bias of shape {bias.shape} for {units} units")
        last["config"]["use_bias"] = True
        self.weights[-1].append(np.broadcast_to(bias.reshape(-1), (units,)).copy())

    def merge(self, node, a, operands):
        """A merge layer for an operator on two or more computed tensors ((_Tensor, source) pairs),
        which must be in one layout (and, but for Concat, of one shape: no broadcasting).

        Features flattened from NCHW images keep their pending permutation: an elementwise merge
        needs one for all its operands, a Concat of vectors joins them (see
        :func:`glassnet.interop._common.joined_order`)."""
        from glassnet.layers import deserialize
        first = operands[0][0]
        if len({(tuple(t.axes) if t.axes else None, t.onnx_rank) for t, _ in operands}) != 1:
            raise _Skip("a merge of tensors in different layouts")
        permutations = [t.permutation for t, _ in operands]
        permutation = permutations[0]
        cls, config = _MERGES[node.op_type], {}
        if cls == "Concatenate":
            rank = 4 if first.is_image else first.onnx_rank
            axis = int(a.get("axis", 1)) % rank
            if axis == 0 or (not first.is_image and rank != len(first.shape) + 1):
                raise _Skip(f"a Concat along axis {a.get('axis')} of a {rank}-D tensor")
            config["axis"] = int(first.axes[axis]) if first.is_image else axis
            if any(p is not None for p in permutations):
                permutation = joined_order(permutations, [t.shape[0] for t, _ in operands])
        elif not all(p == permutation for p in permutations):
            raise _Skip("a merge of features flattened from NCHW images with features in another order")
        elif len({t.shape for t, _ in operands}) != 1:
            raise _Skip(f"a {node.op_type} broadcasting shapes {[t.shape for t, _ in operands]} (glassnet merges "
                        "tensors of one shape)")
        name = _layer_name(node, len(self.layers), self.used_names)
        self.layers.append({"class_name": cls, "config": {"name": name, "dtype": self.dtype, **config}})
        self.weights.append([])
        self.inbound.append([source for _, source in operands])
        layer = deserialize(self.layers[-1])
        layer.build([(None,) + t.shape for t, _ in operands])
        self.tensor = _Tensor(layer.output_shape[1:], first.axes, first.onnx_rank, permutation,
                              all(t.non_negative for t, _ in operands))
        self.source = name

    def flatten_rank4_vector(self):
        if not self.tensor.is_image and self.tensor.onnx_rank != 2:
            raise _Skip("a matrix product of a 4-D tensor (flatten it first)")

    def Flatten(self, node, a):
        if int(a.get("axis", 1)) != 1:
            raise _Skip(f"axis={a.get('axis')} (glassnet flattens everything but the batch axis)")
        self.flatten(node)

    def flatten(self, node):
        if not self.tensor.is_image:
            if len(self.tensor.shape) > 1:      # e.g. (N, 2, 2) from a Reshape
                self.add(node, "Flatten", {}, non_negative=self.tensor.non_negative)
            self.tensor.onnx_rank = 2
            return
        order = tuple(g - 1 for g in self.tensor.axes[1:])
        shape = self.tensor.shape
        self.add(node, "Flatten", {}, non_negative=self.tensor.non_negative)
        if order != (0, 1, 2):
            self.tensor.permutation = flat_order(shape, order)

    def Reshape(self, node, a):
        target = [int(d) for d in self.const(node.input[1], "the Reshape shape")]
        shown = ['N' if d == BATCH else d for d in target]
        if len(target) < 2 or target[0] not in (0, -1, BATCH, self.batch):
            raise _Skip(f"a Reshape to {shown} (glassnet keeps the batch axis first)")
        if len(target) == 2 and target[1] in (-1, int(np.prod(self.tensor.shape))):
            return self.flatten(node)
        if self.tensor.is_image or self.tensor.permutation is not None or self.tensor.onnx_rank != 2:
            raise _Skip(f"a Reshape to {shown} of a tensor that is not a vector in glassnet's order")
        # a vector reshaped row-major: an image comes out (N, H, W, C), glassnet's own layout
        self.add(node, "Reshape", {"target_shape": target[1:]}, non_negative=self.tensor.non_negative)
        self.tensor.axes = (0, 1, 2, 3) if self.tensor.is_image else None
        self.tensor.onnx_rank = len(target)

    def Transpose(self, node, a):
        perm = [int(p) for p in a.get("perm", [])]
        if not self.tensor.is_image or sorted(perm) != [0, 1, 2, 3] or perm[0] != 0:
            raise _Skip(f"a Transpose with perm {perm} (only image layout changes are read)")
        self.tensor.axes = tuple(self.tensor.axes[p] for p in perm)

    def BatchNormalization(self, node, a):
        if a.get("training_mode", 0) or (len(node.output) > 1 and any(node.output[1:])):
            raise _Skip("BatchNormalization in training mode")
        if self.tensor.is_image:
            self.tensor.require_nchw("BatchNormalization")
        scale, bias, mean, var = (self.weight(name, "a BatchNormalization statistic") for name in node.input[1:5])
        if self.tensor.permutation is not None:
            if any(v.shape != self.tensor.shape for v in (scale, bias, mean, var)):
                raise _Skip(f"statistics of shapes {[v.shape for v in (scale, bias, mean, var)]} for "
                            f"{self.tensor.shape[0]} features")
            permutation = order_permutation(self.tensor.permutation)
            scale, bias, mean, var = (v[permutation] for v in (scale, bias, mean, var))
        self.add(node, "BatchNormalization", {"epsilon": float(a.get("epsilon", 1e-5)),
                                              "momentum": float(a.get("momentum", 0.9))}, [scale, bias, mean, var])

    def Dropout(self, node, a):
        ratio = a.get("ratio", 0.5)
        if len(node.input) > 1 and node.input[1]:
            ratio = float(self.const(node.input[1], "the Dropout ratio"))
        self.add(node, "Dropout", {"rate": float(ratio)}, non_negative=self.tensor.non_negative)

    def Clip(self, node, a):
        low = a.get("min") if "min" in a else (self.const(node.input[1], "the Clip minimum")
                                                if len(node.input) > 1 and node.input[1] else None)
        high = a.get("max") if "max" in a else (self.const(node.input[2], "the Clip maximum")
                                                 if len(node.input) > 2 and node.input[2] else None)
        if low is None or float(low) != 0 or high is None or not float(high) > 0:
            raise _Skip(f"Clip to [{low}, {high}] (glassnet reads [0, max], a ReLU with max_value)")
        self.add(node, "ReLU", {"max_value": float(high)}, non_negative=True)

    def Min(self, node, a):
        last = self.layers[-1] if self.layers else None
        other = [i for i in node.input if i != self.current]
        if len(node.input) != 2 or len(other) != 1 or not (
                last and last["class_name"] in ("ReLU", "LeakyReLU") and self.just_added and
                last["config"].get("max_value") is None):
            raise _Skip("a Min that is not a ReLU's cap (max_value)")
        cap = self.const(other[0], "the cap")
        if np.size(cap) != 1 or not float(cap) > 0:
            raise _Skip(f"a cap of {cap}")
        if last["class_name"] == "LeakyReLU":
            last["class_name"] = "ReLU"
            last["config"]["negative_slope"] = last["config"].pop("alpha")
        last["config"]["max_value"] = float(cap)

    def Identity(self, node, a):
        pass

    def Pad(self, node, a):
        mode = a.get("mode", b"constant")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        pads = a.get("pads") if "pads" in a else self.const(node.input[1], "the Pad amounts")
        value = float(self.const(node.input[2], "the Pad value")) if len(node.input) > 2 and node.input[2] \
            else float(a.get("value", 0.0))
        pads = [int(p) for p in pads]
        self.tensor.require_nchw("Pad")
        if mode != "constant" or value != 0 or len(pads) != 8 or any(pads[i] for i in (0, 1, 4, 5)) or min(pads) < 0:
            raise _Skip(f"a Pad ({mode}, value {value}, pads {pads}); glassnet pads H and W with zeros")
        self.add_padding(node, [[pads[2], pads[6]], [pads[3], pads[7]]])


_OPERATORS = {name for name in vars(_Reader) if name[0].isupper()}


def _graph_inputs(reader, graph):
    """Every non-constant graph input as an input layer: its glassnet per-example shape and tensor."""
    inputs = [i for i in graph.input if i.name not in reader.constants]
    if not inputs:
        raise _Skip("no graph input (glassnet models take image or feature batches)")
    for graph_input in inputs:
        name, tensor = _graph_input(reader, graph, graph_input)
        layer = _unique("".join(c if c.isalnum() or c in "._-" else "_" for c in name) or "input", reader.used_names)
        reader.inputs.append((layer, tensor.shape))
        reader.values[name] = (tensor, layer, False)


def _graph_input(reader, graph, graph_input):
    """One graph input: its name and its initial tensor."""
    tensor_type = graph_input.type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim]
    names = [d.dim_param or "?" for d in tensor_type.shape.dim]
    if tensor_type.elem_type == reader.onnx.TensorProto.DOUBLE:
        reader.dtype = "float64"
    if len(dims) not in (2, 4) or any(d is None or d <= 0 for d in dims[1:]):
        shown = ["N" if i == 0 else (d if d is not None else names[i]) for i, d in enumerate(dims)]
        raise _Skip(f"input {graph_input.name!r} of shape {shown}: glassnet needs a static (N, C, H, W) or "
                    f"(N, features) input (only the batch dimension may be dynamic)")
    reader.batch = dims[0] if dims[0] else BATCH
    if len(dims) == 2:
        return graph_input.name, _Tensor((dims[1],))
    first = _first_layout_node(graph, graph_input.name)
    perm = [int(p) for p in _attributes(first, reader.onnx).get("perm", [])] if first is not None and \
        first.op_type == "Transpose" else None
    if perm == [0, 3, 1, 2]:    # an NHWC input transposed to NCHW by the graph itself
        return graph_input.name, _Tensor(tuple(dims[1:]), (0, 1, 2, 3))
    return graph_input.name, _Tensor((dims[2], dims[3], dims[1]), (0, 3, 1, 2))


#: operators that leave an image's layout as it is (followed to find how the graph reads its input)
_LAYOUT_FREE = {"Mul", "Add", "Sub", "Div", "Identity", "Cast", "Relu", "LeakyRelu", "Sigmoid", "Tanh", "Clip"}


def _first_layout_node(graph, name):
    """The first node after ``name`` whose result depends on the layout (past scalings and activations)."""
    for _ in range(len(graph.node)):
        node = next((n for n in graph.node if name in n.input), None)
        if node is None or node.op_type not in _LAYOUT_FREE:
            return node
        name = node.output[0]
    return None


def _walk(reader, graph):
    """Fold constants and translate the graph; collects every unsupported node in ``reader.problems``."""
    import copy
    for tensor in graph.initializer:
        reader.constants[tensor.name] = reader.tensor_array(tensor)
    try:
        _graph_inputs(reader, graph)
    except _Skip as reason:
        reader.problems.append(("input", "graph input", str(reason)))
    uses = {}
    for name in [i for node in graph.node for i in node.input] + [o.name for o in graph.output]:
        uses[name] = uses.get(name, 0) + 1
    for index, node in enumerate(graph.node):
        attrs = _attributes(node, reader.onnx)
        try:
            known = [i for i in dict.fromkeys(node.input) if i in reader.values]
            if node.op_type == "Shape" and known:
                reader.tensor = reader.values[known[0]][0]
                reader.constants[node.output[0]] = np.array(reader.onnx_shape(), dtype=np.int64)
                continue
            if all(i in reader.constants for i in node.input if i) and reader.fold(node, attrs):
                continue
            if node.op_type not in _OPERATORS and node.op_type not in _MERGES:
                raise _Skip(_MISSING_REASONS.get(node.op_type, "glassnet has no such operator"))
            if reader.problems:    # after a problem the graph is unknown: only list the other operators
                continue
            if not known:
                raise _Skip("it takes no tensor computed from the graph's inputs")
            if len(known) > 1 or (node.op_type in _MERGES and node.op_type not in _OPERATORS):
                if node.op_type not in _MERGES or len(known) != len([i for i in node.input if i]):
                    raise _Skip(f"a {node.op_type} of {len(known)} computed tensors and constants")
                reader.merge(node, attrs, [reader.values[name][:2] for name in known])
                fresh = True
            else:
                tensor, reader.source, fresh = reader.values[known[0]]
                reader.current, reader.tensor = known[0], copy.copy(tensor)
                # an activation or bias folds into the Conv / Dense just before it, if nothing else reads its output
                reader.just_added = fresh and uses.get(known[0]) == 1 and bool(reader.layers) and \
                    reader.layers[-1]["config"]["name"] == reader.source
                count = len(reader.layers)
                getattr(reader, node.op_type)(node, attrs)
                fresh = len(reader.layers) > count or (node.op_type in _ARITHMETIC and reader.just_added)
            reader.values[node.output[0]] = (reader.tensor, reader.source, fresh)
        except _Skip as reason:
            reader.problems.append((node.name or f"node {index}", node.op_type, str(reason)))
        except (KeyError, IndexError, TypeError, ValueError) as error:
            reader.problems.append((node.name or f"node {index}", node.op_type,
                                    f"invalid ({type(error).__name__}: {str(error)[:120]})"))


def read_onnx(path):
    """A glassnet Sequential from an ONNX file (see the module docstring for what is read)."""
    onnx = require("onnx")
    from google.protobuf.message import DecodeError
    size = os.path.getsize(path)
    if size >= 2 << 30:
        raise refuse(path, ONNX_WHAT, f"{size} bytes (protobuf files are below 2 GiB)", "Check the file.")
    with open(path, "rb") as handle:
        data = handle.read(size + 1)
    try:
        model = onnx.ModelProto()
        model.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError, TypeError) as error:
        raise refuse(path, ONNX_WHAT, f"not a readable ONNX protobuf ({type(error).__name__}: "
                     f"{str(error)[:160]})", "The file was damaged, cut short, or is not ONNX.") from None
    graph = model.graph
    if not graph.node or not graph.output:
        raise refuse(path, ONNX_WHAT, "no graph (not an ONNX model, or an empty one)",
                     "The file was damaged, cut short, or is not ONNX.")
    reader = _Reader(onnx, path)
    reader.opset = max([o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] or [1])
    try:
        _walk(reader, graph)
    except FileProblem as problem:
        raise refuse(path, "an intact ONNX model file", str(problem), "The file was damaged; export it again.") \
            from None
    outputs = [o.name for o in graph.output]
    if not reader.problems:
        missing = [name for name in outputs if name not in reader.values or reader.values[name][1] in
                   {layer for layer, _ in reader.inputs}]
        reader.problems += [("output", "graph output", f"output {name!r} is not computed by a layer from the "
                             "inputs") for name in missing]
        reader.problems += [("output", "graph output", f"output {name!r} holds channels-first features flattened "
                             "without a matrix product after them") for name in outputs
                            if name not in missing and reader.values[name][0].permutation is not None]
    if reader.problems:
        raise unsupported(path, "an ONNX model", reader.problems, _FIX)
    return _build(reader, [reader.values[name][1] for name in outputs], path)


def _is_chain(reader, outputs):
    """Whether the layers form one chain from the one input to the one output."""
    names = [reader.inputs[0][0]] + [layer["config"]["name"] for layer in reader.layers] if reader.inputs else []
    return len(reader.inputs) == 1 and outputs == names[-1:] and \
        all(inbound == [before] for inbound, before in zip(reader.inbound, names))


def _graph_config(reader, outputs):
    """glassnet's graph model config of the layers read: input layers, every layer's one call, the outputs."""
    layers = [{"class_name": "InputLayer", "name": name, "inbound_nodes": [],
               "config": {"name": name, "dtype": reader.dtype, "batch_shape": [None, *shape]}}
              for name, shape in reader.inputs]
    layers += [{**layer, "name": layer["config"]["name"], "inbound_nodes": [[[source, 0, 0] for source in inbound]]}
               for layer, inbound in zip(reader.layers, reader.inbound)]
    return {"name": "onnx_model", "layers": layers, "input_layers": [[name, 0, 0] for name, _ in reader.inputs],
            "output_layers": [[name, 0, 0] for name in outputs],
            "output_structure": "single" if len(outputs) == 1 else "list", "output_names": list(outputs)}


def _build(reader, outputs, path):
    """The glassnet model read: a Sequential for a chain, a graph :class:`glassnet.Model` otherwise."""
    from glassnet.functional import planned_weight_shapes as planned_graph_shapes
    from glassnet.model import Model, Sequential
    from glassnet.layers.base import planned_weight_shapes
    chain = _is_chain(reader, outputs)
    config = {"name": "onnx_model", "layers": reader.layers, "input_shape": list(reader.inputs[0][1])} if chain \
        else _graph_config(reader, outputs)
    try:
        shapes = planned_weight_shapes(reader.layers, reader.inputs[0][1]) if chain else planned_graph_shapes(config)
    except (TypeError, ValueError) as error:
        raise refuse(path, ONNX_WHAT, f"its operators do not fit together ({str(error)[:300]})",
                     "The file is damaged; export it again.") from None
    check_parameter_count(shapes, path, ONNX_WHAT)
    held = [tuple(w.shape) for weights in reader.weights for w in weights]
    if held != shapes:
        raise refuse(path, ONNX_WHAT, f"weights of shapes {held[:6]} where the layers need {shapes[:6]}",
                     "The file is damaged; export it again.")
    if not all(np.isfinite(w).all() for weights in reader.weights for w in weights):
        raise refuse(path, ONNX_WHAT, "weights holding NaN or infinite values", "Export the model again.")
    model = (Sequential if chain else Model).from_config(config)
    for layer, weights in zip(reader.layers, reader.weights):
        if weights:
            model.get_layer(layer["config"]["name"]).set_weights(weights)
    model.metadata = {"source": "onnx"}
    return model
