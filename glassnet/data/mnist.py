"""MNIST loader (and the machinery Fashion-MNIST shares): local files first, verified download last.

Where ``load_data`` looks, in order:

1. ``path`` if given: a folder with the four IDX files (gzipped or raw), or a
   Keras-style ``.npz`` with ``x_train, y_train, x_test, y_test``;
2. the cache, ``~/.glassnet/datasets/<name>/`` (``$GLASSNET_DATA/<name>/`` when set);
3. system folders (Debian's ``/usr/share/datasets/fashion-mnist/`` for Fashion-MNIST);
4. a download from the mirrors, SHA-256 verified, written atomically to the cache.

Offline and with no files anywhere it raises one ``DatasetNotFoundError``
that lists where it looked and where to put the files.
"""
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from glassnet.data.download import DownloadError, fetch
from glassnet.data.idx import load_idx

# The four standard files, in the order (x_train, y_train, x_test, y_test).
STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
FILENAMES = tuple(stem + ".gz" for stem in STEMS)


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is neither on disk nor downloadable; the message says where to put it."""


@dataclass(frozen=True)
class IDXDataset:
    """Where an IDX-format dataset lives: its cache name, mirrors and checksums.

    Attributes
    ----------
    name : str
        Folder name in the cache (``mnist``, ``fashion-mnist``).
    title : str
        Human-readable name for messages.
    mirrors : tuple of str
        Base URLs that serve the four ``*.gz`` files, tried in order.
    checksums : dict
        ``{filename.gz: sha256}`` of the files the mirrors serve.
    system_dirs : tuple of str
        Read-only folders where a system package may have installed the files.
    class_names : tuple of str
    """
    name: str
    title: str
    mirrors: tuple
    checksums: dict
    system_dirs: tuple = ()
    class_names: tuple = field(default=tuple(str(d) for d in range(10)))


# SHA-256 of the original gzipped files as published (http://yann.lecun.com/exdb/mnist/,
# mirrored byte for byte by CVDF and by PyTorch's S3 bucket); the same values are pinned
# by torchvision's dataset definitions and TensorFlow Datasets' checksum lists.
MNIST = IDXDataset(
    name="mnist",
    title="MNIST",
    mirrors=(
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
    checksums={
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
)

# Where to put a dataset by hand (no environment variable means the default under the home folder).
_DATA_ENV = "GLASSNET_DATA"
_T10K_ENV = "GLASSNET_MNIST_T10K"


def data_home():
    """The dataset cache folder: ``$GLASSNET_DATA`` if set, else ``~/.glassnet/datasets``."""
    env = os.environ.get(_DATA_ENV)
    return Path(env).expanduser() if env else Path.home() / ".glassnet" / "datasets"


def _find(directory, stem):
    """The file for ``stem`` in ``directory``: gzipped, raw, or with Kaggle's ``.idx`` spelling."""
    dotted = stem.replace("-idx", ".idx")
    for name in (stem + ".gz", stem, dotted + ".gz", dotted):
        candidate = Path(directory) / name
        if candidate.is_file():
            return candidate
    return None


def find_files(directory, stems=STEMS):
    """Paths of ``stems`` in ``directory``, or None if any is missing."""
    if directory is None or not Path(directory).is_dir():
        return None
    paths = [_find(directory, stem) for stem in stems]
    return None if any(p is None for p in paths) else paths


def _check_pair(x, y, where, n_classes, image_shape=(28, 28)):
    if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != image_shape:
        raise ValueError(f"{where}: expected uint8 images of shape (N, {image_shape[0]}, {image_shape[1]}); "
                         f"got {x.dtype} of shape {x.shape}. Is this the right file?")
    if y.ndim != 1 or y.shape[0] != x.shape[0] or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{where}: expected {x.shape[0]} integer labels of shape ({x.shape[0]},); "
                         f"got {y.dtype} of shape {y.shape}. Images and labels files do not match.")
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"{where}: expected labels in 0..{n_classes - 1}; got {y.min()}..{y.max()}.")
    return x, y.astype(np.uint8)


def load_pair(images_path, labels_path, n_classes=10):
    """Read one images/labels pair of IDX files and check they belong together.

    Returns
    -------
    x : uint8 ndarray (N, 28, 28)
    y : uint8 ndarray (N,)
    """
    x, y = load_idx(images_path), load_idx(labels_path)
    return _check_pair(x, y, f"{images_path} + {labels_path}", n_classes)


def load_folder(directory, n_classes=10):
    """Load ``((x_train, y_train), (x_test, y_test))`` from a folder with the four standard IDX files."""
    paths = find_files(directory)
    if paths is None:
        missing = [s for s in STEMS if _find(directory, s) is None]
        raise DatasetNotFoundError(f"{directory}: missing {', '.join(missing)} (gzipped .gz or raw). "
                                   f"Expected the four files {', '.join(FILENAMES)}.")
    return load_pair(paths[0], paths[1], n_classes), load_pair(paths[2], paths[3], n_classes)


def _load_npz(path, n_classes=10):
    with np.load(path, allow_pickle=False) as data:
        missing = {"x_train", "y_train", "x_test", "y_test"} - set(data.files)
        if missing:
            raise ValueError(f"{path}: expected a Keras-style .npz with x_train, y_train, x_test, y_test; "
                             f"missing {sorted(missing)}.")
        train = _check_pair(data["x_train"], data["y_train"], f"{path} (train)", n_classes)
        test = _check_pair(data["x_test"], data["y_test"], f"{path} (test)", n_classes)
    return train, test


def _load_given(path, n_classes):
    path = Path(path).expanduser()
    if path.is_file() and path.suffix == ".npz":
        return _load_npz(path, n_classes)
    if path.is_file():
        raise DatasetNotFoundError(f"load_data expects path to be a folder with the four IDX files "
                                   f"{', '.join(FILENAMES)} (or a Keras .npz); got the file {str(path)!r}. "
                                   f"Pass the folder that holds it.")
    if not path.is_dir():
        raise DatasetNotFoundError(f"load_data expects path to be a folder with the four IDX files "
                                   f"{', '.join(FILENAMES)} (or a Keras .npz); got {str(path)!r}, "
                                   f"which does not exist.")
    return load_folder(path, n_classes)


def load(spec, path=None, download=True, mirrors=None, checksums=None, cache_dir=None, timeout=30.0):
    """Load an IDX dataset described by ``spec`` (see the module docstring for the search order).

    Parameters
    ----------
    spec : IDXDataset
    path : str or os.PathLike, optional
        A folder with the four IDX files, or a Keras ``.npz``. Searched alone when given.
    download : bool
        Try the mirrors when nothing is on disk.
    mirrors : sequence of str, optional
        Replace ``spec.mirrors`` (e.g. a local server in tests).
    checksums : dict, optional
        Replace ``spec.checksums`` (``{filename.gz: sha256}``).
    cache_dir : str or os.PathLike, optional
        Replace ``data_home() / spec.name``.
    timeout : float
        Seconds per connection attempt.

    Returns
    -------
    (x_train, y_train), (x_test, y_test)
        uint8 arrays, images ``(N, 28, 28)``, labels ``(N,)``.

    Raises
    ------
    DatasetNotFoundError
        Nothing on disk and the download failed or was disabled.
    ValueError
        A file exists but is malformed (never silently skipped).
    """
    n_classes = len(spec.class_names)
    if path is not None:
        return _load_given(path, n_classes)
    cache = Path(cache_dir) if cache_dir is not None else data_home() / spec.name
    for directory in (cache, *spec.system_dirs):
        if find_files(directory) is not None:
            return load_folder(directory, n_classes)
    problem = "downloading is disabled (download=False)"
    if download:
        try:
            fetch(FILENAMES, mirrors if mirrors is not None else spec.mirrors, cache,
                  checksums=checksums if checksums is not None else spec.checksums, timeout=timeout)
            return load_folder(cache, n_classes)
        except DownloadError as exc:
            problem = f"the download failed: {exc}"
    looked = ", ".join(str(d) for d in (cache, *spec.system_dirs))
    raise DatasetNotFoundError(
        f"{spec.title} was not found and {problem}\n"
        f"Looked in: {looked}.\n"
        f"Fix: put the four files {', '.join(FILENAMES)} (gzipped or raw) in {cache} "
        f"(or point ${_DATA_ENV} at a folder that has a '{spec.name}' subfolder with them), "
        f"or pass load_data(path=<folder with the files>).")


def load_data(path=None, download=True, **kwargs):
    """Load MNIST like ``keras.datasets.mnist.load_data()``.

    Parameters
    ----------
    path : str or os.PathLike, optional
        A folder with ``train-images-idx3-ubyte(.gz)``, ``train-labels-idx1-ubyte(.gz)``,
        ``t10k-images-idx3-ubyte(.gz)``, ``t10k-labels-idx1-ubyte(.gz)``, or a Keras ``mnist.npz``.
    download : bool
        Download from the mirrors when the files are not in the cache.
    **kwargs
        ``mirrors``, ``checksums``, ``cache_dir``, ``timeout``: see :func:`load`.

    Returns
    -------
    (x_train, y_train), (x_test, y_test)
        uint8; ``x_train`` (60000, 28, 28), ``y_train`` (60000,), ``x_test`` (10000, 28, 28),
        ``y_test`` (10000,).
    """
    return load(MNIST, path=path, download=download, **kwargs)


def _t10k_candidates(path):
    if path is not None:
        return [Path(path).expanduser()]
    candidates = []
    if os.environ.get(_T10K_ENV):
        candidates.append(Path(os.environ[_T10K_ENV]).expanduser())
    candidates.append(data_home() / MNIST.name)
    return candidates


def t10k_dir(path=None):
    """The folder holding the real 10,000 MNIST test digits, or None when none is found.

    Looks at ``path``, then ``$GLASSNET_MNIST_T10K``, then the MNIST cache of :func:`load_data`
    (``$GLASSNET_DATA/mnist`` or ``~/.glassnet/datasets/mnist``). It never guesses folders of a
    development layout.
    """
    stems = STEMS[2:]
    for candidate in _t10k_candidates(path):
        if find_files(candidate, stems) is not None:
            return candidate
    return None


def load_t10k(path=None):
    """Load the real 10,000 MNIST test digits (``t10k-images/labels``), for accuracy tests and benchmarks.

    Parameters
    ----------
    path : str or os.PathLike, optional
        Folder with ``t10k-images-idx3-ubyte(.gz)`` and ``t10k-labels-idx1-ubyte(.gz)``.
        Default: see :func:`t10k_dir`.

    Returns
    -------
    x : uint8 ndarray (10000, 28, 28)
    y : uint8 ndarray (10000,)

    Raises
    ------
    DatasetNotFoundError
        If no candidate folder has both files.
    """
    directory = t10k_dir(path)
    if directory is None:
        looked = ", ".join(str(c) for c in _t10k_candidates(path))
        raise DatasetNotFoundError(
            f"The MNIST test digits (t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) were not found. "
            f"Looked in: {looked}. Fix: set ${_T10K_ENV} to the folder that holds them, or pass path=.")
    images, labels = find_files(directory, STEMS[2:])
    return load_pair(images, labels)
