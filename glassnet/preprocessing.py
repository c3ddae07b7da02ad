"""Keras-style preprocessing: ``ImageDataGenerator`` for real-time augmentation and normalization.

See :mod:`glassnet.data.augmentation` for the details.
"""
from glassnet.data.augmentation import ImageDataGenerator, NumpyArrayIterator

__all__ = ["ImageDataGenerator", "NumpyArrayIterator"]
