"""What the Keras and ONNX readers share: one error per damaged or unsupported file, the optional
imports, bounded reads, and the flattening permutation of channels-first models."""
import importlib
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


def concatenated_permutation(permutations, sizes):
    """The permutation (see :func:`flat_permutation`) of flat features concatenated from inputs of
    ``sizes`` features, each in its own ``permutations`` entry (None: already in glassnet's order):
    each input's, shifted by the number of features before it."""
    offsets = np.cumsum([0] + list(sizes[:-1]))
    return np.concatenate([offset + (np.arange(size) if p is None else p)
                           for p, size, offset in zip(permutations, sizes, offsets)])


def same_permutation(a, b):
    """Whether two pending permutations (arrays, or None for glassnet's order) are the same."""
    return a is b or (a is not None and b is not None and np.array_equal(a, b))


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
