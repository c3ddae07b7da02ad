"""Scratch arrays kept between calls, one set per thread (the convolutions' im2col blocks).

A fresh multi-MiB array per call would be mapped and page-faulted in again every batch, so the
convolutions borrow flat arrays from here instead. They are sized by the block size
(:data:`glassnet.ops.conv.plan.BLOCK_BYTES`), so this holds a few MiB per thread at most. Two more
kinds of kept array live here: vectors of ones for the bias gradients (:func:`column_sums`), and the
arrays of :func:`recycled_empty`, which a layer returns and gets back once nobody holds them.
"""
import math
import sys
import threading
import weakref

import numpy as np


class _Pool:
    """One thread's scratch arrays: ``arrays[(name, dtype)]`` is a flat array."""

    def __init__(self):
        self.arrays = {}


_LOCAL = threading.local()        # each thread's _Pool, dropped with its thread
_POOLS = weakref.WeakSet()        # every live _Pool, for clear_workspace


def _thread_pool():
    """The calling thread's _Pool."""
    pool = getattr(_LOCAL, "pool", None)
    if pool is None:
        pool = _LOCAL.pool = _Pool()
        _POOLS.add(pool)
    return pool


def _kept_flat(key, size, make):
    """This thread's kept flat array ``key`` of at least ``size`` elements (``make(size)`` when
    there is none or it is too small), cut to ``size``."""
    arrays = _thread_pool().arrays
    if key not in arrays or arrays[key].size < size:
        arrays[key] = None                    # let the old one go before allocating the new one
        arrays[key] = make(size)
    return arrays[key][:size]


def scratch_array(name, size, dtype):
    """This thread's flat scratch array ``name`` of ``size`` elements (kept, and only grown, between calls)."""
    return _kept_flat((name, np.dtype(dtype).str), size, lambda n: np.empty(n, dtype=dtype))


def _read_only_ones(size, dtype):
    vector = np.ones(size, dtype=dtype)
    vector.flags.writeable = False
    return vector


def column_sums(matrix, dtype=None):
    """``matrix.sum(axis=0)`` of a tall 2-D matrix (a bias gradient: dy summed over all pixels), in
    ``dtype`` (default the matrix's), as a GEMV with this thread's kept vector of ones.

    The GEMV runs several times faster than ``.sum(axis=0)`` on a tall, narrow matrix and adds
    more accurately; a fresh vector of ones per call would cost page faults and filling (a first
    layer's 86,528-pixel batch: 0.2 ms). NumPy's GEMV holds the GIL, so a block calls this last:
    a worker thread starting its own block would wait for it.
    """
    dtype = matrix.dtype if dtype is None else np.dtype(dtype)
    ones = _kept_flat(("ones", dtype.str), len(matrix), lambda n: _read_only_ones(n, dtype))
    return ones @ matrix


def recycled_empty(name, shape, dtype):
    """``np.empty(shape, dtype)``, but the same memory as the last call's array of that ``name``
    when nothing but this cache refers to it any more (nor to a view of it).

    For the large arrays a layer returns, such as a convolution's input gradient: they are
    dropped by the end of a training step, and glibc hands that much memory back to the kernel,
    so every step would fault it in again (benchmarks/NOTES.md). An array the caller still holds
    is never reused: a fresh one is made and kept in its place.
    """
    arrays, key = _thread_pool().arrays, ("recycled", name)
    array = arrays.get(key)
    # the references to a free array: the cache, ``array`` here and getrefcount's own argument
    if array is None or array.shape != tuple(shape) or array.dtype != dtype or sys.getrefcount(array) > 3:
        array = None
        arrays[key] = array = np.empty(shape, dtype=dtype)
    return array


#: :func:`recycled_array` keeps at most this many free-or-busy arrays per (kind, shape, dtype) ...
RECYCLED_PER_SHAPE = 16

#: ... and arrays of at most this many shapes per kind (a new shape drops the oldest one's arrays): a
#: network's padded inputs or outputs come in one shape per resolution and stride, and the last batch
#: of an epoch adds its own.
RECYCLED_SHAPES = 16


def recycled_array(kind, shape, dtype):
    """``np.empty(shape, dtype)`` from this thread's arrays of ``kind`` and that shape: the first one that
    nothing but this cache refers to (nor a view of it), else a fresh one, kept for later calls.

    For the arrays of which a training step makes several at once and drops all by its end (the
    normalizations' outputs and caches): glibc hands freed multi-MiB arrays back to the kernel, and
    faulting them in again cost a 28x28x16 batch normalization of 128 images more than its arithmetic
    (benchmarks/NOTES.md). An array the caller still holds is never handed out twice.
    """
    arrays, shape, dtype = _thread_pool().arrays, tuple(shape), np.dtype(dtype)
    shapes = arrays.setdefault(("recycled_kind", kind), {})
    slots = shapes.pop((shape, dtype.str), [])
    shapes[(shape, dtype.str)] = slots                      # the most recent shape last
    while len(shapes) > RECYCLED_SHAPES:
        del shapes[next(iter(shapes))]
    for array in slots:
        # the references to a free array: the list, ``array`` here and getrefcount's own argument
        if sys.getrefcount(array) <= 3:
            return array
    array = np.empty(shape, dtype=dtype)
    if len(slots) < RECYCLED_PER_SHAPE:
        slots.append(array)
    return array


def clear_workspace():
    """Free every thread's kept arrays: the convolutions' scratch arrays (a few MiB per thread) and the
    recycled arrays (about one training step's activations and gradients per thread that ran one; a
    thread's arrays also go when the thread ends)."""
    for pool in list(_POOLS):
        pool.arrays.clear()


def view(scratch, shape):
    """A view of the first ``prod(shape)`` elements of a flat scratch array, as ``shape``."""
    return scratch[:math.prod(shape)].reshape(shape)


def block_matrix(kept, block, size, dtype, build, forward):
    """A convolution block's im2col-like matrix, built by ``build(flat)`` into a flat array of
    ``size`` elements (``flat`` None: a scratch array of ``build``'s choice).

    ``kept`` (a dict, or None) holds the matrices of a training forward pass for its backward
    pass: the forward pass (``forward``) builds into the array it already holds for the block (a
    new one the first time), so a step rewrites the same memory instead of faulting in fresh
    pages; the backward pass takes the matrix it finds there, and builds one in scratch space
    (never into ``kept``) for a block it does not find.
    """
    if kept is None:
        return build(None)
    key = (block[0].start, block[0].stop, block[1].start, block[1].stop)
    if not forward:
        return kept[key][1] if key in kept else build(None)
    flat = kept[key][0] if key in kept else np.empty(size, dtype=dtype)
    kept[key] = (flat, build(flat))
    return kept[key][1]
