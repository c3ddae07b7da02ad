"""What the Keras and ONNX readers share: one error per damaged or unsupported file, the optional
imports, bounded reads, and the flattening permutation of channels-first models."""
import importlib
import math
import os

import numpy as np

from glassnet.errors import message

#: the largest model glassnet opens from another library's file: 2**28 float32 numbers (1 GiB)
MAX_PARAMETERS = 1 << 28
#: the largest JSON configuration read from a file
MAX_CONFIG_BYTES = 64 << 20
#: how much larger than its stored bytes a (compressed) HDF5 dataset may claim to be
MAX_COMPRESSION = 64

WHERE = "load_model"


class FileProblem(Exception):
    """Internal: what is wrong with a file; turned into one ValueError naming the file by :func:`refuse`."""


def refuse(path, what, problem, fix):
    """The ValueError for a file of format ``what`` that cannot be loaded."""
    return ValueError(message(WHERE, what, f"{os.fspath(path)!r}: {problem}", fix))


def unsupported(path, what, items, fix):
    """One ValueError listing every unsupported layer / operator: ``items`` are (name, kind, reason)."""
    listed = "; ".join(f"{name!r} ({kind}{': ' + reason if reason else ''})" for name, kind, reason in items)
    return ValueError(message(WHERE, f"{what} whose layers glassnet has",
                              f"{os.fspath(path)!r} with {len(items)} unsupported "
                              f"{'layer' if len(items) == 1 else 'layers'}: {listed}", fix))


def require(module, extra="interop"):
    """Import an optional dependency or raise an ImportError that says how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(f"Reading and writing Keras and ONNX files needs the optional package {module!r} "
                          f"({error}); install it with: pip install 'glassnet[{extra}]'") from None


def check_parameter_count(shapes, path, what):
    """Refuse a configuration whose weights would be absurdly large before anything is allocated."""
    total = sum(int(np.prod(shape, dtype=np.float64)) for shape in shapes)
    if total > MAX_PARAMETERS:
        raise refuse(path, what, f"its configuration asks for {total:,} parameters (glassnet opens at most "
                     f"{MAX_PARAMETERS:,})", "The file is damaged, or the model is far larger than glassnet's "
                     "CNNs; check the file.")


def flat_permutation(shape, order):
    """Row order ``p`` that turns a Dense kernel written for another library's flattening into glassnet's.

    The other library flattens ``x.transpose(order)`` of a glassnet per-example tensor ``x`` of
    ``shape`` (e.g. ``order=(2, 0, 1)``: a channels-first (C, H, W) tensor); glassnet flattens ``x``
    itself (h, w, c). With ``p``, ``glassnet_flat = other_flat[p]`` and so ``glassnet_kernel = kernel[p]``.
    """
    positions = np.arange(int(np.prod(shape))).reshape(shape).transpose(order).reshape(-1)
    return np.argsort(positions)


# A feature order: how another library's flat features map to glassnet's, kept symbolic as a tuple of
# segments ``(size, shape, order)`` (features flattened from ``x.transpose(order)`` of a glassnet
# tensor ``x`` of ``shape``; ``(size, None, None)``: ``size`` features already in glassnet's order), so
# that reading a configuration compares and concatenates orders without allocating; the index array
# is made by :func:`order_permutation` only when weights, checked against the file, are reordered.
def flat_order(shape, order):
    """The feature order of a tensor of glassnet ``shape`` flattened as ``x.transpose(order)``."""
    return ((math.prod(shape), tuple(int(d) for d in shape), tuple(order)),)


def joined_order(orders, sizes):
    """The feature order of features concatenated from inputs of ``sizes`` features in ``orders``
    (None: glassnet's order)."""
    return sum((((size, None, None),) if order is None else order for order, size in zip(orders, sizes)), ())


def order_permutation(order):
    """The index array ``p`` of a feature order: ``glassnet_features = other_features[p]``, each
    segment's :func:`flat_permutation` shifted by the features before it."""
    parts, offset = [], 0
    for size, shape, axes in order:
        parts.append(offset + (np.arange(size) if shape is None else flat_permutation(shape, axes)))
        offset += size
    return np.concatenate(parts)


def as_float_array(value, shape, label, dtype="float32"):
    """A finite float array of exactly ``shape`` from raw file data, or a FileProblem."""
    array = np.asarray(value)
    if array.dtype.kind not in "fiu":
        raise FileProblem(f"{label} holds {array.dtype} data, not numbers")
    if tuple(array.shape) != tuple(shape):
        raise FileProblem(f"{label} has shape {tuple(array.shape)}, expected {tuple(shape)}")
    array = array.astype(dtype, copy=False)
    if not np.isfinite(array).all():
        raise FileProblem(f"{label} holds NaN or infinite values")
    return array
