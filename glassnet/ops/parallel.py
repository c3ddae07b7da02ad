"""Spread independent blocks of work over threads (NumPy releases the GIL inside its loops).

BLAS already runs each GEMM on several threads, but everything around the GEMMs (im2col copies,
slab additions, pooling) runs on one. Here the blocks of a convolution or of a pooling layer go
to a small pool of worker threads instead, each running its GEMMs single-threaded, so all of the
work, not just the GEMMs, is spread over the cores.

How many threads: ``glassnet.ops.NUM_THREADS`` when set, else as many as NumPy's BLAS may use
right now (``threadpoolctl.threadpool_limits(n)``, ``OPENBLAS_NUM_THREADS``, ...), read through
threadpoolctl when it is installed; without threadpoolctl glassnet stays on one thread.
While the workers run, BLAS is limited to one thread (and put back afterwards), so n workers
use n cores, not n * n; a training step holds that limit from start to end (:func:`held_blas`).
The BLAS setting is process-wide: another thread of the program calling BLAS meanwhile runs
single-threaded too, and so does a matrix product that a custom layer computes with ``@``
inside a training step (use :func:`glassnet.ops.matmul`, which runs on the workers).
``glassnet.ops.NUM_THREADS = 1`` turns all of this off.
"""
import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from glassnet.ops import config as _ops

#: Work smaller than this (bytes touched) stays on the calling thread: handing it to the workers
#: costs ~0.1 ms, more than splitting it saves.
MIN_PARALLEL_BYTES = 1 << 20

#: The same threshold for :func:`matmul`, in floating-point operations.
MIN_PARALLEL_FLOPS = 50_000_000

_CPUS = os.cpu_count() or 1
_LOCK = threading.Lock()
_STATE = {"blas": None, "executor": None, "workers": 0, "active": 0, "saved": []}
_IN_WORKER = threading.local()


def _blas_controllers():
    """threadpoolctl's handles on the BLAS libraries NumPy loaded ([] without threadpoolctl)."""
    if _STATE["blas"] is None:
        try:
            from threadpoolctl import ThreadpoolController
            controllers = [c for c in ThreadpoolController().lib_controllers if c.user_api == "blas"]
        except Exception:          # not installed, or an unknown BLAS: stay single-threaded
            controllers = []
        _STATE["blas"] = controllers
    return _STATE["blas"]


def in_worker():
    """Whether the calling thread is running one share of a split :func:`run_blocks` call."""
    return getattr(_IN_WORKER, "active", False)


def num_threads(nbytes=None):
    """Threads glassnet's own blocks may use: ``ops.NUM_THREADS``, else BLAS's limit (while
    glassnet holds BLAS at one thread, the limit it had before).

    With ``nbytes`` (the size of the work), 1 when the work is too small to be worth splitting.
    """
    if in_worker() or (nbytes is not None and nbytes < MIN_PARALLEL_BYTES):
        return 1
    if _ops.NUM_THREADS is not None:
        return max(1, int(_ops.NUM_THREADS))
    blas = _blas_controllers()
    if not blas:
        return 1
    held = _STATE["active"]              # read before "saved", which is set before "active" rises
    saved = _STATE["saved"]
    return max(1, min(saved[0] if held and saved else blas[0].get_num_threads(), _CPUS))


def _executor(workers):
    with _LOCK:
        if _STATE["workers"] < workers:
            if _STATE["executor"] is not None:
                _STATE["executor"].shutdown(wait=True)
            _STATE["executor"] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="glassnet")
            _STATE["workers"] = workers
        return _STATE["executor"]


def _run_share(fn, share, fold):
    """``fn`` over the items of one share: all results, or (with ``fold``) one folded value."""
    if fold is None:
        return [fn(item) for item in share]
    return [_folded(fn, share, fold)]


def _folded(fn, items, fold):
    total = fn(items[0])
    for item in items[1:]:
        total = fold(total, fn(item))
    return total


def _worker(fn, fold):
    """Run ``fn`` over one share of the items as a worker (the caller's share too)."""
    def run(share):
        _IN_WORKER.active = True           # nested parallel calls stay sequential
        try:
            return _run_share(fn, share, fold)
        finally:
            _IN_WORKER.active = False
    return run


def _limit_blas(entering):
    """Hold BLAS at one thread while any run_blocks call is active (nested or concurrent ones too)."""
    with _LOCK:
        blas = _blas_controllers()
        if entering:
            if _STATE["active"] == 0:
                _STATE["saved"] = [c.get_num_threads() for c in blas]
                _STATE["active"] = 1             # before the limit drops: num_threads() reads "saved" now
                try:
                    for c, n in zip(blas, _STATE["saved"]):
                        if n != 1:
                            c.set_num_threads(1)
                except BaseException:            # not held after all: put back what was lowered, if it can be
                    _STATE["active"] = 0
                    with contextlib.suppress(Exception):
                        _restore_blas(blas)
                    raise
            else:
                _STATE["active"] += 1
        else:
            if _STATE["active"] == 1:
                _restore_blas(blas)
            _STATE["active"] -= 1


def _restore_blas(blas):
    """Give the BLAS libraries back the limits saved when glassnet first held them."""
    for c, n in zip(blas, _STATE["saved"]):
        if n != 1:
            c.set_num_threads(n)


@contextlib.contextmanager
def held_blas():
    """Hold BLAS at one thread for the whole ``with`` block, when glassnet's workers are on.

    Every :func:`run_blocks` call inside then finds it held and leaves it alone instead of
    lowering and restoring BLAS's limit itself (3 us a time through threadpoolctl, 13 times in a
    LeNet-5 training step), and :func:`num_threads` answers with the limit from before. A training
    step wraps itself in this: all of its BLAS calls go through :func:`run_blocks`, so none of
    them loses threads by it. (LeNet-5's 2-thread step: 0.6% and 1.6% faster, medians of 8
    alternated fresh processes in either order; within the noise.)
    """
    limit = num_threads() > 1
    if limit:
        _limit_blas(True)
    try:
        yield
    finally:
        if limit:
            _limit_blas(False)


def batch_shares(N, threads):
    """``threads`` contiguous slices covering range(N) as evenly as possible (none empty)."""
    threads = max(1, min(threads, N))
    return [slice(N * t // threads, N * (t + 1) // threads) for t in range(threads)]


def run_blocks(fn, items, threads, fold=None, blas=True):
    """``[fn(item) for item in items]``, on ``threads`` worker threads when that is more than one.

    Each thread takes one contiguous share of the items. ``fn`` must only write to memory no
    other item writes to. Results come back in the order of ``items``; with ``fold`` (e.g. an
    in-place add) they are folded into one value as they come, shares in order, so memory does
    not grow with the number of items. ``blas=False`` says ``fn`` calls no BLAS.

    Whenever glassnet's workers are on (``num_threads() > 1``), BLAS is held at one thread for
    the duration, even when this call is too small to split and runs on the calling thread.
    """
    threads = min(threads, len(items))
    limit = blas and num_threads() > 1
    if limit:
        _limit_blas(True)
    try:
        if threads <= 1:
            return _run_share(fn, items, None) if fold is None else _folded(fn, items, fold)
        bounds = [len(items) * t // threads for t in range(threads + 1)]
        shares = [items[bounds[t]:bounds[t + 1]] for t in range(threads)]
        run_share = _worker(fn, fold)
        # the calling thread takes the first share itself: one thread hand-off fewer per call
        pending = [_executor(threads - 1).submit(run_share, share) for share in shares[1:]]
        parts = [run_share(shares[0])] + [future.result() for future in pending]
        results = [result for part in parts for result in part]
    finally:
        if limit:
            _limit_blas(False)
    return results if fold is None else _folded(lambda r: r, results, fold)


def over_rows(fn, N, nbytes):
    """``fn(rows)`` for contiguous slices ``rows`` covering range(N), spread over the worker threads
    when ``nbytes`` (the memory the work touches) is worth splitting; ``fn`` calls no BLAS."""
    threads = num_threads(nbytes)
    run_blocks(fn, batch_shares(N, threads), threads, blas=False)


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
