"""Data: IDX files, MNIST / Fashion-MNIST loaders, the synthetic ``shapes`` dataset, augmentation.

Submodules: :mod:`~glassnet.data.idx`, :mod:`~glassnet.data.download`, :mod:`~glassnet.data.mnist`,
:mod:`~glassnet.data.fashion_mnist`, :mod:`~glassnet.data.synthetic`, :mod:`~glassnet.data.augmentation`.
The public names are gathered in :mod:`glassnet.datasets` and :mod:`glassnet.preprocessing`.
"""
from glassnet.data.idx import load_idx, save_idx

__all__ = ["load_idx", "save_idx"]
