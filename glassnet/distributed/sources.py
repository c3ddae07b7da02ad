"""Inputs of a distributed job, cut into chunks: a NumPy array, a dask array, an IDX file, or a
folder of image files.

Files are read on the workers, a chunk at a time, never on the client: the client only learns
how many images there are, from a small task that runs on a worker (so the path has to exist
where the workers run, which for a cluster is usually a shared filesystem). A path a worker
cannot find raises ``FileNotFoundError`` naming that worker and the path.

IDX images (uint8, (N, H, W) or (N, H, W, C)) and image files come out as float32 in [0, 1]
with a channel axis, the scaling every glassnet preset is trained with (``x / 255``); IDX labels
keep their integers. Arrays (NumPy or dask) are passed through as they are.
"""
import os
import threading

import numpy as np

from glassnet.errors import describe, message

#: File name endings read as images from a folder (with Pillow, in the viz extra).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")

_IDX_CACHE = {}
_IDX_LOCK = threading.Lock()


def worker_name():
    """The address of the Dask worker running the caller, or "the client" outside a worker."""
    try:
        from distributed import get_worker
        return f"worker {get_worker().address}"
    except (ImportError, ValueError):
        return "the client"


def _missing(path):
    return FileNotFoundError(message("glassnet.distributed", "a dataset path that exists where the task runs",
                                     f"{worker_name()} cannot find {os.fspath(path)!r}",
                                     "Put the data on a filesystem every worker sees, or pass an array."))


def _idx_array(path):
    """The whole IDX file at ``path``, kept per worker process while its size and mtime are unchanged."""
    from glassnet.data.idx import load_idx
    try:
        status = os.stat(path)
    except FileNotFoundError:
        raise _missing(path) from None
    key = (os.path.abspath(path), status.st_size, status.st_mtime_ns)
    with _IDX_LOCK:
        if key not in _IDX_CACHE:
            _IDX_CACHE.clear()        # one file at a time: the data of the job at hand
            _IDX_CACHE[key] = load_idx(path)
        return _IDX_CACHE[key]


def _image_files(folder):
    if not os.path.isdir(folder):
        raise _missing(folder)
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        found += [os.path.join(root, name) for name in sorted(files) if name.lower().endswith(IMAGE_SUFFIXES)]
    if not found:
        raise ValueError(message("glassnet.distributed", f"a folder holding image files ({', '.join(IMAGE_SUFFIXES)})",
                                 f"{folder!r} on {worker_name()}, which holds none"))
    return found


def describe_path(path):
    """(Runs on a worker.) ``("idx", n)`` for an IDX file, ``("folder", files)`` for a folder of images."""
    if os.path.isdir(path):
        return "folder", _image_files(path)
    return "idx", int(len(_idx_array(path)))


def as_images(array):
    """uint8 images (N, H, W) or (N, H, W, C) -> float32 (N, H, W, C) in [0, 1]; other arrays unchanged."""
    if array.dtype != np.uint8:
        return array
    if array.ndim == 3:
        array = array[..., None]
    return array.astype(np.float32) / np.float32(255)


def read_part(part, input_shape):
    """(Runs on a worker.) The array of one chunk: ``part`` is an array, ``("idx", path, start, stop,
    labels)`` or ``("folder", files)``."""
    if not isinstance(part, tuple):
        return part
    if part[0] == "idx":
        _, path, start, stop, labels = part
        chunk = _idx_array(path)[start:stop]
        return chunk.astype(np.int64) if labels else as_images(chunk)
    from glassnet.viz.explanations import load_image
    images = []
    for path in part[1]:
        if not os.path.isfile(path):
            raise _missing(path)
        images.append(load_image(path, input_shape))
    return np.stack(images)


class Source:
    """An input on the client: its length and the ``part`` each chunk's task reads.

    Parameters
    ----------
    data : numpy array, dask array, str or os.PathLike (IDX file or folder of images)
    client : distributed.Client
        Asked (through one task on a worker) how many images a file or folder holds.
    labels : bool
        An IDX file of labels (integers) rather than images.
    """

    def __init__(self, data, client, where, labels=False):
        self.labels = labels
        self.kind, self.data = self._resolve(data, client, where)
        self.length = len(self.data)

    def _resolve(self, data, client, where):
        if isinstance(data, (str, os.PathLike)):
            path = os.fspath(data)
            kind, found = client.submit(describe_path, path, pure=False).result()
            if kind == "folder" and self.labels:
                raise ValueError(message(where, "labels as an array or an IDX file", f"the folder {path!r}"))
            self.path = path
            return kind, (range(found) if kind == "idx" else found)
        if _is_dask_array(data):
            if data.ndim == 0:
                raise ValueError(message(where, "a dask array with a batch axis", describe(data)))
            return "dask", data
        if isinstance(data, np.ndarray) or isinstance(data, (list, tuple)):
            array = np.asarray(data)
            if array.ndim == 0 or array.dtype == object:
                raise TypeError(message(where, "an array of examples (N, ...)", describe(data)))
            return "array", array
        raise TypeError(message(where, "a NumPy array, a dask array, an IDX file path or a folder of images",
                                describe(data), "For example images=x_test or images='t10k-images-idx3-ubyte.gz'."))

    def __len__(self):
        return self.length

    def part(self, start, stop):
        """What the task of rows ``[start, stop)`` receives (a dask array slice stays lazy)."""
        if self.kind == "idx":
            return ("idx", self.path, start, stop, self.labels)
        if self.kind == "folder":
            return ("folder", tuple(self.data[start:stop]))
        return self.data[start:stop]


def _is_dask_array(value):
    return type(value).__module__.startswith("dask.array") and hasattr(value, "chunks")


__all__ = ["Source", "read_part", "describe_path", "as_images", "worker_name", "IMAGE_SUFFIXES"]
