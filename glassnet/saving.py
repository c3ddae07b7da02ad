"""Saving and loading models: one ``.npz`` file, written atomically, read without pickle.

File format (``format_version`` 1)
----------------------------------
An uncompressed NumPy ``.npz`` (a zip of ``.npy`` files) with only numeric arrays:

``config``
    UTF-8 JSON as a uint8 array: ``format`` ("glassnet.model" or "glassnet.weights"),
    ``format_version``, ``glassnet_version``, ``model`` (``Sequential.get_config()``),
    ``weights`` (layer, name, shape, dtype of every weight, in order), ``compile`` (loss and
    optimizer configs, metrics; null for an uncompiled model), ``optimizer_state`` (how many
    arrays), ``training`` (``completed_epochs``, ``fit_seed``, every layer's ``rng`` state) and
    ``metadata`` (free-form, e.g. dataset and class names).
``weight_0000``, ``weight_0001``, ...
    Every weight, trainable and not (BatchNormalization's moving statistics), in Keras's order.
``optimizer_0000``, ...
    ``optimizer.get_state()``: the iteration count, then the slot arrays.

Writing goes to a temporary file in the same folder, which is flushed, fsynced and renamed over
the target (``os.replace`` is atomic), so a crash at any moment leaves the old file or the new one.

Reading never unpickles: every member is parsed as a ``.npy`` header first (object dtypes refused,
sizes checked against the archive before anything is allocated), the format version, layer
names and weight shapes are checked, and any truncated, corrupted or tampered file raises a
``ValueError`` that says so (never a raw zipfile / NumPy error).
"""
import contextlib
import errno
import json
import math
import os
import tempfile
import zipfile

import numpy as np

from glassnet.errors import message
from glassnet.validation import check_path, planned_weight_shapes

FORMAT = "glassnet.model"
WEIGHTS_FORMAT = "glassnet.weights"
FORMAT_VERSION = 1
_ZIP_MAGIC = b"PK\x03\x04"
_NPY_MAGIC = b"\x93NUMPY"


# -- writing ---------------------------------------------------------------------------------
def _json_bytes(config):
    return np.frombuffer(json.dumps(config, sort_keys=True).encode("utf-8"), dtype=np.uint8)


#: What to do about a failed write, by errno (the default: :data:`_WRITE_FIX`).
_WRITE_FIXES = {
    errno.ENOSPC: "Free space on that disk, or save to another one.",
    errno.EDQUOT: "Free space within your disk quota, or save to another disk.",
    errno.EFBIG: "The process's file-size limit (ulimit -f) is smaller than the file: raise it, or save elsewhere.",
    errno.EACCES: "Save to a folder you may write to, or change its permissions.",
    errno.EPERM: "Save to a folder you may write to, or change its permissions.",
    errno.EROFS: "That file system is read-only: save to another one.",
}
_WRITE_FIX = "Check that the folder exists, is writable and has free space, or save elsewhere."


def _write_error(error, path, where):
    """The OSError to raise for ``error`` while writing ``path``: the same errno (so the same
    subclass, e.g. PermissionError), with glassnet's message naming the file and the fix."""
    reason = error.strerror or str(error)
    text = message(where, f"a writable file system with room for {path!r}", f"{type(error).__name__}: {reason}",
                   "The file there, if any, is unchanged and no temporary file is left. "
                   + _WRITE_FIXES.get(error.errno, _WRITE_FIX))
    return OSError(error.errno, text) if error.errno is not None else OSError(text)


def atomic_write(path, write, where="save"):
    """Call ``write(file)`` on a temporary file next to ``path``, fsync it, then rename it to ``path``.

    Creates missing parent folders. The folder is fsynced too, so the rename survives a power cut.
    Any failure (a full disk, a file-size limit, no permission) leaves the old file as it was and
    removes the temporary file; an OSError is raised again with the path and what to do about it
    (same errno, so ``except PermissionError`` still catches a permission problem).
    """
    path = check_path(path, where)
    if os.path.isdir(path):
        raise ValueError(message(where, "the path of a file to write", f"{path!r}, which is a folder",
                                 "Add a file name, e.g. os.path.join(folder, 'model.npz')."))
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
        _write_and_rename(path, directory, write)
    except OSError as error:
        raise _write_error(error, path, where) from error
    with contextlib.suppress(OSError):
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _write_and_rename(path, directory, write):
    """Write a temporary file in ``directory`` and rename it over ``path``; on any failure the
    temporary file is removed and the exception propagates."""
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _weight_entries(model):
    return [{"layer": layer.name, "name": key, "shape": list(np.shape(weight)), "dtype": str(weight.dtype)}
            for layer in model.layers for key, weight in zip(layer.weight_names, layer.weights)]


def _rng_state(layer):
    rng = getattr(layer, "rng", None)
    return rng.bit_generator.state if isinstance(rng, np.random.Generator) else None


def save_model(model, path, include_optimizer=True):
    """Write ``model`` (config, weights, optimizer state, epoch count, RNG states) to ``path`` atomically.

    Parameters
    ----------
    model : Sequential
    path : str or os.PathLike
        Written exactly as given (conventionally ending in ``.npz``); a name ending in ``.keras``
        writes a Keras 3 file instead (:mod:`glassnet.interop.keras_writer`: architecture and weights).
    include_optimizer : bool
        Save the compile configuration and optimizer state (needed to resume training exactly).
    """
    from glassnet import __version__
    if os.fsdecode(check_path(path, "save")).lower().endswith(".keras"):
        from glassnet.interop.keras_writer import save_keras
        return save_keras(model, path)
    arrays = {}
    for i, weight in enumerate(model.get_weights()):
        arrays[f"weight_{i:04d}"] = weight
    compile_config = model.get_compile_config() if include_optimizer else None
    state = model.optimizer.get_state() if compile_config is not None else []
    for i, value in enumerate(state):
        arrays[f"optimizer_{i:04d}"] = np.asarray(value)
    config = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "glassnet_version": __version__,
        "model": model.get_config(), "weights": _weight_entries(model), "compile": compile_config,
        "optimizer_state": len(state),
        "training": {"completed_epochs": int(model.completed_epochs), "fit_seed": model.fit_seed,
                     "rng": [_rng_state(layer) for layer in model.layers]},
        "metadata": model.metadata or {},
    }
    arrays["config"] = _json_bytes(config)
    atomic_write(path, lambda handle: np.savez(handle, **arrays), where="save_model")


def save_weights(model, path):
    """Write only the weights (and their names and shapes) to ``path`` atomically."""
    from glassnet import __version__
    arrays = {f"weight_{i:04d}": w for i, w in enumerate(model.get_weights())}
    arrays["config"] = _json_bytes({"format": WEIGHTS_FORMAT, "format_version": FORMAT_VERSION,
                                    "glassnet_version": __version__, "weights": _weight_entries(model)})
    atomic_write(path, lambda handle: np.savez(handle, **arrays), where="save_weights")


# -- reading ---------------------------------------------------------------------------------
class _Bad(Exception):
    """Internal: a problem with the file, turned into one ValueError by :func:`_read_archive`."""


def _read_member(archive, info, file_size):
    """Parse one ``.npy`` member safely: header first, sizes checked, then exactly its bytes."""
    if info.compress_type != zipfile.ZIP_STORED:
        raise _Bad(f"member {info.filename!r} is compressed (glassnet writes uncompressed archives)")
    if info.file_size > file_size:
        raise _Bad(f"member {info.filename!r} claims {info.file_size} bytes, more than the whole file")
    with archive.open(info) as member:
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(member)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(member)
        else:
            raise _Bad(f"member {info.filename!r} has unsupported .npy version {version}")
        if dtype.hasobject or dtype.kind not in "biuf":
            raise _Bad(f"member {info.filename!r} holds {dtype} data (pickled Python objects or non-numbers); "
                       "glassnet refuses to load those")
        count = math.prod(shape)
        expected = count * dtype.itemsize
        header = member.tell()
        if info.file_size - header != expected:
            raise _Bad(f"member {info.filename!r} declares shape {shape} ({expected} bytes) but holds "
                       f"{info.file_size - header}")
        data = member.read(expected)
        if len(data) != expected or member.read(1):
            raise _Bad(f"member {info.filename!r} is truncated")
    array = np.frombuffer(data, dtype=dtype, count=count)
    return array.reshape(shape, order="F" if fortran else "C").copy()


_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
#: What zipfile raises on a damaged or altered archive.
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, KeyError, TypeError,
               SyntaxError, NotImplementedError, RuntimeError, MemoryError, OverflowError)


def foreign_format(path):
    """Which other library made the file (or folder) at ``path``, from its content; None if none known.

    A small sniffer so that ``load_model`` names the library instead of calling the file damaged;
    loading those formats is :mod:`glassnet.saving`'s readers' business, not this function's.
    """
    if os.path.isdir(path):
        return "a TensorFlow SavedModel folder" if os.path.isfile(os.path.join(path, "saved_model.pb")) else None
    with open(path, "rb") as handle:
        head = handle.read(8)
    if head.startswith(_HDF5_MAGIC):
        return "an HDF5 file, as Keras 2 writes with model.save('model.h5')"
    if head[:1] == b"\x08" and str(path).lower().endswith(".onnx"):
        return "an ONNX model"
    if not head.startswith(_ZIP_MAGIC):
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except _ZIP_ERRORS:       # damaged: the reader reports it
        return None
    if "config.json" in names and any(name.endswith(".weights.h5") or name == "model.weights.h5" for name in names):
        return "a Keras 3 model file (.keras)"
    if any(name.endswith("data.pkl") for name in names):
        return "a PyTorch file (torch.save)"
    return None


def _read_archive(path, where):
    """All arrays of an ``.npz`` as a dict, refusing pickles, object arrays and damaged files."""
    path = check_path(path, where)
    if os.path.exists(path):
        made_by = foreign_format(path)
        if made_by is not None:
            raise ValueError(message(where, "a glassnet model file (.npz written by model.save)",
                                     f"{path!r}: {made_by}", "glassnet reads its own .npz files: rebuild the model "
                                     "with glassnet layers and copy the weights in with set_weights, or save it "
                                     "from glassnet."))
    if not os.path.isfile(path):
        raise FileNotFoundError(message(where, "the path of a file written by model.save()",
                                        f"{path!r}, which does not exist" if not os.path.exists(path)
                                        else f"{path!r}, which is not a file", "Check the path."))
    with open(path, "rb") as handle:
        head = handle.read(8)
    file_size = os.path.getsize(path)
    if not head.startswith(_ZIP_MAGIC):
        kind = ("a single .npy array" if head.startswith(_NPY_MAGIC)
                else "a pickle (e.g. PyTorch's legacy torch.save), which glassnet never loads (it can run arbitrary "
                "code)" if head[:1] == b"\x80"
                else "empty" if not head else "not an .npz archive")
        raise ValueError(message(where, "a glassnet model file (.npz written by model.save)",
                                 f"{path!r}: {kind}", "Pass a file written by model.save(path)."))
    try:
        arrays = {}
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if not info.filename.endswith(".npy"):
                    raise _Bad(f"unexpected member {info.filename!r}")
                key = info.filename[:-4]
                if key in arrays:
                    raise _Bad(f"duplicate member {info.filename!r}")
                arrays[key] = _read_member(archive, info, file_size)
    except _Bad as error:
        raise ValueError(message(where, "an intact glassnet model file", f"{path!r}: {error}",
                                 "The file was damaged or altered; use another checkpoint.")) from None
    except _ZIP_ERRORS as error:
        raise ValueError(message(where, "an intact glassnet model file",
                                 f"{path!r}: truncated or corrupted ({type(error).__name__}: {str(error)[:200]})",
                                 "The file was cut short or damaged; use another checkpoint.")) from None
    return arrays


def _parse_config(arrays, path, where, formats):
    def bad(problem, expected="a glassnet model file", fix="Use a file written by model.save(path)."):
        return ValueError(message(where, expected, f"{os.fspath(path)!r}: {problem}", fix))
    raw = arrays.pop("config", None)
    if raw is None or raw.dtype != np.uint8 or raw.ndim != 1:
        raise bad("no glassnet configuration inside")
    try:
        config = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise bad(f"its configuration is not valid JSON ({error})") from None
    if not isinstance(config, dict) or config.get("format") not in formats:
        raise bad(f"format {config.get('format') if isinstance(config, dict) else None!r}, expected one of "
                  f"{list(formats)}")
    version = config.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise bad(f"invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise ValueError(message(where, f"format_version <= {FORMAT_VERSION}", f"{version} in {os.fspath(path)!r}",
                                 "It was written by a newer glassnet: upgrade glassnet to load it."))
    return config, bad


def _check_weights(model, config, arrays, bad, by_name=True):
    """The model's weights from ``arrays``, checked against the saved entries and the model."""
    entries = config.get("weights")
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise bad("its weight list is missing or malformed")
    expected = _weight_entries(model)

    def mismatch(problem):         # a sound file of another architecture
        return bad(problem, "the weights of a model with this one's layers",
                   "The file holds another architecture: gn.load_model(path) rebuilds the model it was saved from.")
    if len(entries) != len(expected):
        raise mismatch(f"{len(entries)} weights for a model with {len(expected)}")
    weights = []
    for i, (entry, want) in enumerate(zip(entries, expected)):
        key = f"weight_{i:04d}"
        if key not in arrays:
            raise bad(f"weight {i} ({entry.get('layer')}/{entry.get('name')}) is missing")
        array = arrays.pop(key)
        if by_name and (entry.get("layer"), entry.get("name")) != (want["layer"], want["name"]):
            raise mismatch(f"weight {i} is {entry.get('layer')}/{entry.get('name')}, expected "
                           f"{want['layer']}/{want['name']}")
        if entry.get("shape") != want["shape"]:
            saved = entry.get("shape")
            raise mismatch(f"weight {want['layer']}/{want['name']} has shape "
                           f"{tuple(saved) if isinstance(saved, list) else saved!r}, expected {tuple(want['shape'])}")
        if list(array.shape) != want["shape"]:
            raise bad(f"weight {want['layer']}/{want['name']} holds an array of shape {tuple(array.shape)} where "
                      f"its entry says {tuple(want['shape'])}")
        if array.dtype.kind != "f" or not np.isfinite(array).all():
            raise bad(f"weight {want['layer']}/{want['name']} is not finite floating-point data")
        weights.append(array)
    return weights


def _restore_compile(model, config, arrays, bad):
    compile_config = config.get("compile")
    if compile_config is None:
        return
    try:
        model.compile_from_config(compile_config)
    except (KeyError, TypeError, ValueError) as error:
        raise bad(f"its compile configuration is invalid ({error})") from None
    count = config.get("optimizer_state", 0)
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise bad("its optimizer state count is invalid")
    if count > len(arrays):  # checked before building ``count`` key names: the count may be absurd
        raise bad(f"it announces {count} optimizer state arrays but holds {len(arrays)} more arrays")
    keys = [f"optimizer_{i:04d}" for i in range(count)]
    if any(key not in arrays for key in keys):
        raise bad("optimizer state arrays are missing")
    state = [arrays.pop(key) for key in keys]
    if not state:
        return
    params = model.trainable_weights()
    slots = state[1:]
    if slots and (len(slots) % len(params) or any(
            s.shape != params[i % len(params)].shape or not np.isfinite(s).all() for i, s in enumerate(slots))):
        raise bad("its optimizer state does not match the model's trainable weights")
    try:
        model.optimizer.set_state(state)
    except (TypeError, ValueError) as error:
        raise bad(f"its optimizer state is invalid ({error})") from None


def _restore_training(model, config, bad):
    training = config.get("training") or {}
    if not isinstance(training, dict):
        raise bad("its training state is malformed")
    epochs, seed = training.get("completed_epochs", 0), training.get("fit_seed")
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 0:
        raise bad(f"invalid completed_epochs {epochs!r}")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        raise bad(f"invalid fit_seed {seed!r}")
    model.completed_epochs, model.fit_seed = epochs, seed
    states = training.get("rng") or []
    if not isinstance(states, list) or (states and len(states) != len(model.layers)):
        raise bad("its random-number states do not match the layers")
    for layer, state in zip(model.layers, states):
        if state is None:
            continue
        try:
            bit_generator = getattr(np.random, state["bit_generator"])
            if not (isinstance(bit_generator, type) and issubclass(bit_generator, np.random.BitGenerator)):
                raise ValueError("not a bit generator")
            generator = bit_generator()
            generator.state = state
            layer.rng = np.random.Generator(generator)
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as error:
            raise bad(f"the random state of layer {layer.name!r} is invalid ({error})") from None
    metadata = config.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise bad("its metadata is not a JSON object")
    model.metadata = metadata


def load_model(path, compile=True):
    """Rebuild a model written by :func:`save_model` / ``model.save(path)``.

    Parameters
    ----------
    path : str or os.PathLike
    compile : bool
        Restore the loss, metrics and optimizer state (training then resumes exactly with
        ``fit(..., initial_epoch=model.completed_epochs)``).

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Not a glassnet model file, a newer format, pickled or object data, a truncated or
        tampered file, or weights whose names or shapes do not match the configuration.
    """
    from glassnet import functional, interop
    from glassnet.model import Model, Sequential
    where = "load_model"
    kind = interop.detect_format(check_path(path, where))
    if kind != "npz":  # Keras .keras / .h5 and ONNX files, told by content
        return interop.load(path, kind)
    arrays = _read_archive(path, where)
    config, bad = _parse_config(arrays, path, where, (FORMAT,))
    model_config = config.get("model")
    if not isinstance(model_config, dict) or not isinstance(model_config.get("layers"), list):
        raise bad("its model configuration is missing")
    graph = "input_layers" in model_config          # a Functional model's config (else a Sequential's)
    try:
        # weight shapes worked out without allocating: a tampered units=10**9 must not allocate gigabytes
        planned = (functional.planned_weight_shapes(model_config) if graph else
                   planned_weight_shapes(model_config["layers"], model_config.get("input_shape")))
    except Exception as error:  # any layer constructor error means the configuration was altered
        raise bad(f"its model configuration is invalid ({type(error).__name__}: {error})") from None
    held = [arrays[key].shape for key in sorted(arrays) if key.startswith("weight_")]
    if planned is not None and planned != held:
        raise bad(f"its model configuration needs weights of shapes {planned[:6]}, the file holds {held[:6]}")
    try:
        model = (Model if graph else Sequential).from_config(model_config)
    except Exception as error:  # any layer constructor error means the configuration was altered
        raise bad(f"its model configuration is invalid ({type(error).__name__}: {error})") from None
    weights = _check_weights(model, config, arrays, bad)
    if model.built:  # a model saved before it was built has no weights to restore
        model.set_weights(weights)
    if compile:
        _restore_compile(model, config, arrays, bad)
    else:
        for key in [k for k in arrays if k.startswith("optimizer_")]:
            arrays.pop(key)
    if arrays:
        raise bad(f"unexpected entries {sorted(arrays)[:5]}")
    _restore_training(model, config, bad)
    return model


def load_weights(model, path):
    """Load weights from a file of :func:`save_weights` or :func:`save_model` into ``model``.

    Weights are matched by position; their count and shapes must agree (names may differ).
    """
    where = "Sequential.load_weights"
    arrays = _read_archive(path, where)
    config, bad = _parse_config(arrays, path, where, (FORMAT, WEIGHTS_FORMAT))
    if not model.built:
        raise RuntimeError(message(where, "a built model", "an unbuilt one",
                                   "Give the first layer input_shape=... or call model.build(input_shape)."))
    model.set_weights(_check_weights(model, config, arrays, bad, by_name=False))


def read_config(path):
    """The JSON configuration stored in a model file (no weights loaded), e.g. for ``glassnet summary``."""
    arrays = _read_archive(path, "read_config")
    return _parse_config(arrays, path, "read_config", (FORMAT, WEIGHTS_FORMAT))[0]


__all__ = ["save_model", "load_model", "save_weights", "load_weights", "read_config", "atomic_write",
           "FORMAT_VERSION"]
