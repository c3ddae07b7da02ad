"""NumPy's BLAS thread count: read it, and hold it at one thread while glassnet's workers run.

Why a hold at all: glassnet's worker threads (:mod:`glassnet.ops.parallel`) each run their GEMMs
on one core; a multi-threaded BLAS under them would run n * n threads on n cores. NumPy's
wheels bundle an OpenBLAS built with pthreads, which has ONE thread count for the whole process
and no per-thread limit. Measured with NumPy 2.4.6 and its OpenBLAS 0.3.31
(``scripts/blas_threads_probe.py``):

- ``openblas_set_num_threads(n)`` called from any thread sets the count of every thread, at once,
  and the next GEMM of any thread runs with it;
- ``openblas_set_num_threads_local(n)`` is the same global setter in this build (it returns the
  old count, and a GEMM on another thread runs with the new one), so it gives no per-thread limit;
- threadpoolctl (3.8) lets only the first thread that calls its ``set_num_threads`` change such a
  library and silently ignores every other thread while that one lives. Through it, a hold taken
  on a worker thread of the program did nothing (its GEMMs ran on two BLAS threads, and summed
  in another order: 6.9e-5 apart in float32) and a limit lowered on one thread and put back from
  another stayed at 1 for the rest of the process.

So glassnet calls OpenBLAS's own getter and setter (bound with :mod:`ctypes`) under its own
lock, and the hold is a count: the first :func:`hold` saves the count and lowers it to 1, the
last :func:`release` puts the saved count back, whatever threads they run on, and :func:`count`
answers with the saved count meanwhile. The count is restored when the last hold ends, even by an
exception (callers release in ``finally``), and in a child forked during a hold (the child has
none of its parent's threads, so none of their holds). While a hold lasts, BLAS runs on one thread
for every thread of the process: a matrix product the program computes meanwhile on another
thread runs single-threaded too. A count set by the program during a hold is kept, unless it is 1
(the value of the hold itself, which cannot be told apart).

Only a pthreads OpenBLAS that NumPy itself uses is held (the one in NumPy's wheel folder, or,
for a NumPy built on OpenBLAS, the one threadpoolctl sees). With any other BLAS (MKL, BLIS,
Accelerate, an OpenMP OpenBLAS) :func:`count` is None, glassnet runs its work on the calling
thread and never changes the BLAS's settings. Other copies (SciPy's own OpenBLAS) are left alone.
"""
import contextlib
import ctypes
import glob
import itertools
import os
import threading

import numpy as np

#: ``openblas_get_parallel()`` of a build that runs its own pthreads server.
_PTHREADS = 1

_LOCK = threading.Lock()
_STATE = {"library": False, "holds": 0, "saved": None, "generation": 0}


class OpenBLASThreads:
    """One loaded pthreads OpenBLAS, its process-wide thread count read and set through ctypes."""

    def __init__(self, path, getter, setter):
        self.path = path
        self._get = getter
        self._set = setter

    def get(self):
        """The thread count BLAS calls use now."""
        return int(self._get())

    def set(self, threads):
        """Set the thread count for every thread of the process."""
        self._set(int(threads))


def wheel_library_paths():
    """Paths of the OpenBLAS in NumPy's wheel folders (Linux ``numpy.libs``, macOS ``.dylibs``)."""
    root = os.path.dirname(np.__file__)
    folders = [os.path.join(root, os.pardir, "numpy.libs"), os.path.join(root, ".dylibs")]
    paths = [path for folder in folders for path in sorted(glob.glob(os.path.join(folder, "*openblas*")))]
    return [os.path.normpath(path) for path in paths]


def loaded_openblas_paths():
    """Paths of the OpenBLAS libraries threadpoolctl sees loaded ([] without threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_info
        return [info["filepath"] for info in threadpool_info() if info.get("internal_api") == "openblas"]
    except Exception:              # threadpoolctl is optional
        return []


def _numpy_uses_openblas():
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except Exception:              # an older NumPy without the dict form
        return False
    return "openblas" in str(blas.get("name", "")).lower()


def _bind(path):
    """:class:`OpenBLASThreads` for the pthreads OpenBLAS at ``path``, or None."""
    try:
        library = ctypes.CDLL(path)
    except OSError:
        return None
    for prefix, suffix in itertools.product(("scipy_", ""), ("64_", "_64", "")):
        names = [f"{prefix}openblas_{verb}{suffix}" for verb in ("get_num_threads", "set_num_threads", "get_parallel")]
        getter, setter, parallel = (getattr(library, name, None) for name in names)
        if None in (getter, setter, parallel):
            continue
        getter.restype, getter.argtypes = ctypes.c_int, []
        parallel.restype, parallel.argtypes = ctypes.c_int, []
        setter.restype, setter.argtypes = None, [ctypes.c_int]
        return OpenBLASThreads(path, getter, setter) if parallel() == _PTHREADS else None
    return None


def library():
    """NumPy's pthreads OpenBLAS as :class:`OpenBLASThreads`, or None (another BLAS, or none found)."""
    if _STATE["library"] is False:
        paths = wheel_library_paths() or (loaded_openblas_paths() if _numpy_uses_openblas() else [])
        found = next(filter(None, map(_bind, paths[:1])), None)
        with _LOCK:
            if _STATE["library"] is False:
                _STATE["library"] = found
    return _STATE["library"]


def count():
    """BLAS's thread count as the program set it (the saved one while glassnet holds BLAS), or
    None when glassnet cannot hold this BLAS."""
    blas = library()
    if blas is None:
        return None
    with _LOCK:
        return _STATE["saved"] if _STATE["holds"] else blas.get()


def hold():
    """Lower BLAS to one thread until the matching :func:`release` (counted: nested and concurrent
    holds share one lowering). Returns the token to give :func:`release`."""
    blas = library()
    with _LOCK:
        if blas is not None and _STATE["holds"] == 0:
            saved = blas.get()
            if saved != 1:
                blas.set(1)
            _STATE["saved"] = saved
        _STATE["holds"] += 1
        return _STATE["generation"]


def release(token):
    """End a :func:`hold`; the last one puts the saved count back (unless the program changed it
    meanwhile). A token from before a fork is ignored in the child (the fork ended its holds)."""
    with _LOCK:
        if token != _STATE["generation"] or _STATE["holds"] == 0:
            return
        _STATE["holds"] -= 1
        if _STATE["holds"] == 0:
            _restore()


def _restore():
    """Put back the count saved by the first hold, if BLAS is still at the hold's one thread."""
    blas, saved = _STATE["library"], _STATE["saved"]
    _STATE["saved"] = None
    if blas and saved not in (None, 1) and blas.get() == 1:
        blas.set(saved)


@contextlib.contextmanager
def held():
    """``with held():`` BLAS at one thread for the block (see :func:`hold`)."""
    token = hold()
    try:
        yield
    finally:
        release(token)


def holds():
    """How many holds are active now (0: BLAS is at the program's own setting)."""
    return _STATE["holds"]


def _after_fork_in_child():
    """A forked child has only the thread that forked: no other thread's hold can end there. Put
    the program's count back now, and make the parent's tokens stale; a fresh lock too (the
    parent's may have been held by a thread that does not exist here)."""
    global _LOCK
    _LOCK = threading.Lock()
    if _STATE["holds"]:
        with contextlib.suppress(Exception):
            _restore()
    _STATE["holds"] = 0
    _STATE["saved"] = None
    _STATE["generation"] += 1


os.register_at_fork(after_in_child=_after_fork_in_child)
