"""Spread independent blocks of work over threads (NumPy releases the GIL inside its loops).

BLAS already runs each GEMM on several threads, but everything around the GEMMs (im2col copies,
slab additions, pooling) runs on one. Here the blocks of a convolution or of a pooling layer go
to a small pool of worker threads instead, each running its GEMMs single-threaded, so all of the
work, not just the GEMMs, is spread over the cores.

How many threads: ``glassnet.ops.NUM_THREADS`` when set, else as many as NumPy's BLAS may use
right now (``threadpoolctl.threadpool_limits(n)``, ``OPENBLAS_NUM_THREADS``, ...). While the
workers run, BLAS is held at one thread (:mod:`glassnet.ops.blas_threads`: counted, shared by
concurrent calls, and put back when the last one ends), so n workers use n cores, not n * n; a
training step holds it from start to end (:func:`held_blas`). BLAS's count is process-wide:
another thread of the program calling BLAS meanwhile runs single-threaded too, and so does a
matrix product that a custom layer computes with ``@`` inside a training step (use
:func:`glassnet.ops.matmul`, which runs on the workers). With a BLAS glassnet cannot hold (not a
pthreads OpenBLAS) everything runs on the calling thread. ``glassnet.ops.NUM_THREADS = 1``
turns all of this off.

The results do not depend on the thread that calls: how the work is split follows the count only
(the program's, also while another thread holds BLAS), every GEMM of a split call runs on one
BLAS thread, and partial results are folded in the order of the items whichever thread made them.
After a fork the child starts a fresh pool of workers (``os.register_at_fork``).
"""
import contextlib
import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from glassnet.ops import blas_threads
from glassnet.ops import config as _ops

#: Work smaller than this (bytes touched) stays on the calling thread: handing it to the workers
#: costs ~0.1 ms, more than splitting it saves.
MIN_PARALLEL_BYTES = 1 << 20

#: The same threshold for :func:`matmul`, in floating-point operations.
MIN_PARALLEL_FLOPS = 50_000_000

_CPUS = os.cpu_count() or 1
_LOCK = threading.Lock()
_STATE = {"executor": None, "workers": 0}
_IN_WORKER = threading.local()


def in_worker():
    """Whether the calling thread is running one share of a split :func:`run_blocks` call."""
    return getattr(_IN_WORKER, "active", False)


def num_threads(nbytes=None):
    """Threads glassnet's own blocks may use: ``ops.NUM_THREADS``, else BLAS's limit as the program
    set it (while glassnet holds BLAS at one thread, the limit it had before).

    With ``nbytes`` (the size of the work), 1 when the work is too small to be worth splitting.
    """
    if in_worker() or (nbytes is not None and nbytes < MIN_PARALLEL_BYTES):
        return 1
    if _ops.NUM_THREADS is not None:
        return max(1, int(_ops.NUM_THREADS))
    return max(1, min(blas_threads.count() or 1, _CPUS))


def _submit(run_share, shares):
    """Hand each share to a worker thread; the pool grows to ``len(shares)`` workers if needed.

    Submitted under the lock: another thread replacing a smaller pool cannot shut it down between
    this thread taking it and submitting to it. The replaced pool finishes what it was given.
    """
    with _LOCK:
        if _STATE["workers"] < len(shares):
            if _STATE["executor"] is not None:
                _STATE["executor"].shutdown(wait=False)
            _STATE["executor"] = ThreadPoolExecutor(max_workers=len(shares), thread_name_prefix="glassnet")
            _STATE["workers"] = len(shares)
        return [_STATE["executor"].submit(run_share, share) for share in shares]


def _after_fork_in_child():
    """A forked child inherits the pool but none of its threads (work handed to it would wait
    forever): forget it, so the next split call starts a new one; and a fresh lock, which a thread
    that does not exist in the child may have held at the fork."""
    global _LOCK
    _LOCK = threading.Lock()
    _STATE["executor"], _STATE["workers"] = None, 0


os.register_at_fork(after_in_child=_after_fork_in_child)


def _folded(fn, items, fold):
    """``fold(...fold(fn(items[0]), fn(items[1]))..., fn(items[-1]))`` on the calling thread."""
    total = fn(items[0])
    for item in items[1:]:
        total = fold(total, fn(item))
    return total


def add_parts(total, part):
    """A ``fold`` for :func:`run_blocks`: add one item's partial sums (a tuple of arrays, None where not
    computed) into the running totals, in place (the totals are the first item's own arrays)."""
    for running, value in zip(total, part):
        if value is not None:
            running[...] += value
    return total


def held_blas(needed=True):
    """A context that holds BLAS at one thread for its ``with`` block when glassnet's workers are
    on (and ``needed``); a no-op context otherwise.

    Every :func:`run_blocks` call inside then finds it held and leaves it alone instead of
    lowering and restoring BLAS's limit itself, and :func:`num_threads` answers with the limit
    from before. A training step wraps itself in this: all of its BLAS calls go through
    :func:`run_blocks`, so none of them loses threads by it (it saves one lower/restore pair per
    parallel call; benchmarks/NOTES.md has the measurement).
    """
    return blas_threads.held() if needed and num_threads() > 1 else contextlib.nullcontext()


def batch_shares(N, threads):
    """``threads`` contiguous slices covering range(N) as evenly as possible (none empty)."""
    threads = max(1, min(threads, N))
    return [slice(N * t // threads, N * (t + 1) // threads) for t in range(threads)]


class _InOrder:
    """The results of a split call as the threads hand them in, in any order: kept by index, or (with
    ``fold``) folded in the order of the items as soon as the next one is in, so that a folded value does
    not depend on which thread ran which item and at most a few results wait at a time."""

    def __init__(self, count, fold):
        self.fold, self.count = fold, count
        self.results, self.ready = [None] * count, [False] * count
        self.next, self.total = 0, None
        self.lock = threading.Lock()

    def put(self, index, value):
        with self.lock:
            self.results[index], self.ready[index] = value, True
            if self.fold is None:
                return
            while self.next < self.count and self.ready[self.next]:
                value, self.results[self.next] = self.results[self.next], None
                self.total = value if self.next == 0 else self.fold(self.total, value)
                self.next += 1


def _taker(fn, items, collected):
    """A worker's loop (the caller runs one too): take the next item no thread has taken, run it, hand its
    result in; until none is left. A thread the OS stops for a while then holds up one item, not a share."""
    taken = itertools.count()               # next() on it is atomic under the GIL

    def take(_=None):
        _IN_WORKER.active = True            # nested parallel calls stay sequential
        try:
            index = next(taken)
            while index < len(items):
                collected.put(index, fn(items[index]))
                index = next(taken)
        finally:
            _IN_WORKER.active = False
    return take


def run_blocks(fn, items, threads, fold=None, blas=True):
    """``[fn(item) for item in items]``, on ``threads`` worker threads when that is more than one.

    The threads take the items one at a time, each the next one nobody has taken (the calling thread
    is one of them). ``fn`` must only write to memory no other item writes to. Results come back in the
    order of ``items``; with ``fold`` (e.g. an in-place add) they are folded into one value in the order
    of the items as they come in, so that memory does not grow with the number of items and the value
    is the one a single thread would fold. ``blas=False`` says ``fn`` calls no BLAS.

    Whenever glassnet's workers are on (``num_threads() > 1``), BLAS is held at one thread for
    the duration, even when this call is too small to split and runs on the calling thread.
    """
    threads = min(threads, len(items))
    with held_blas(blas):
        if threads <= 1:
            return [fn(item) for item in items] if fold is None else _folded(fn, items, fold)
        collected = _InOrder(len(items), fold)
        take = _taker(fn, items, collected)
        # the calling thread takes items too: one thread hand-off fewer per call
        pending = _submit(take, [None] * (threads - 1))
        try:
            take()
        finally:
            for future in pending:          # never leave a worker running on this call's arrays
                future.exception()
        for future in pending:
            future.result()
    return collected.results if fold is None else collected.total


#: :func:`over_rows` cuts the rows into this many slices per thread: a thread that the OS stops for a
#: while then holds up a quarter of its share, not all of it.
SLICES_PER_THREAD = 4


def over_rows(fn, N, nbytes):
    """``fn(rows)`` for contiguous slices ``rows`` covering range(N), spread over the worker threads
    when ``nbytes`` (the memory the work touches) is worth splitting; ``fn`` calls no BLAS."""
    threads = num_threads(nbytes)
    run_blocks(fn, batch_shares(N, threads * SLICES_PER_THREAD if threads > 1 else 1), threads, blas=False)


def matmul(a, b):
    """``a @ b`` for 2-D arrays, the rows of ``a`` split between the worker threads when large.

    The layers call this instead of ``@`` so that every GEMM of a training step runs on
    glassnet's workers with single-threaded BLAS, as the convolutions do: on a busy machine a
    multi-threaded BLAS call can stall for a whole scheduler slice waiting for its second thread.
    """
    M, K = a.shape
    N = b.shape[1]
    threads = num_threads() if 2 * M * K * N >= MIN_PARALLEL_FLOPS else 1
    out = np.empty((M, N), dtype=np.result_type(a, b))

    def rows_product(rows):
        np.matmul(a[rows], b, out=out[rows])

    run_blocks(rows_product, batch_shares(M, threads), threads)
    return out
