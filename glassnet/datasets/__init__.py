"""Datasets, Keras style: ``datasets.mnist.load_data()`` and friends.

- ``mnist.load_data(path=None)``, ``fashion_mnist.load_data(path=None)``: real data, local files
  first (given folder, cache ``~/.glassnet/datasets`` or ``$GLASSNET_DATA``, Debian's package for
  Fashion-MNIST), then a SHA-256-verified download.
- ``mnist.load_t10k(path=None)``: the real 10,000 MNIST test digits (the given folder,
  ``$GLASSNET_MNIST_T10K``, or the MNIST cache).
- ``shapes.load_data(n_train, n_test, seed, ...)``: synthetic shapes with ground-truth masks, offline.
- ``load_idx(path)`` / ``save_idx(path, array)``: IDX files, gzipped or raw.
"""
from glassnet.data import fashion_mnist, mnist
from glassnet.data import synthetic as shapes
from glassnet.data.download import DownloadError, download
from glassnet.data.idx import load_idx, save_idx
from glassnet.data.mnist import DatasetNotFoundError, data_home

__all__ = ["mnist", "fashion_mnist", "shapes", "load_idx", "save_idx", "download",
           "DownloadError", "DatasetNotFoundError", "data_home"]
