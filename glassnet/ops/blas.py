"""``out += a @ b`` in one BLAS call, through the BLAS library NumPy itself uses.

NumPy's ``matmul`` always overwrites its output, so a sum of products ``a1 @ b1 + a2 @ b2 + ...``
costs a temporary and an extra pass over memory per term. BLAS's GEMM computes
``C = alpha * op(A) @ B + beta * C`` and accumulates for free with ``beta = 1``. The
row-window convolution (:mod:`glassnet.ops.conv.row_windows`) is such a sum, with one term per
kernel row, so it calls GEMM directly.

The GEMM comes from the OpenBLAS that NumPy's wheels bundle (``scipy_cblas_sgemm64_`` and
``scipy_cblas_dgemm64_``, 64-bit integers; or the 32-bit ``scipy_cblas_sgemm``). It is bound with
:mod:`ctypes` the first time it is needed and checked against ``np.matmul`` on a small product;
when no such library is found, or the check fails, :func:`gemm` falls back to NumPy (a
temporary and an add) and gives the same results. ``available()`` says which one is in use.

:func:`gemm_batch` runs one product per image of a batch in a single call, through OpenBLAS's
``cblas_?gemm_batch_strided`` (new in 0.3.30; bound for the versions in :data:`BATCH_VERSIONS`
and checked the same way; a loop of :func:`gemm` calls without it). Many small calls cost more
than their ctypes overhead: measured on 2 cores, 16 products of 576x96 by 96x64 ran at 119
GFLOP/s as one batch call and at 101 as 16 calls, and from two threads at once at 229 against
141 (every call releases and retakes the GIL, and waits for it while the other thread holds it).
"""
import ctypes
import os
import threading

import numpy as np

from glassnet.ops.blas_threads import loaded_openblas_paths, wheel_library_paths
from glassnet.ops.parallel import in_worker

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112
_SYMBOLS = (("scipy_cblas_{}gemm64_", ctypes.c_int64), ("scipy_cblas_{}gemm", ctypes.c_int32))
_LOCK = threading.Lock()
_BATCH_SYMBOLS = {ctypes.c_int64: ("scipy_cblas_{}gemm_batch_strided64_", "cblas_{}gemm_batch_strided"),
                  ctypes.c_int32: ("scipy_cblas_{}gemm_batch_strided",)}
_STATE = {"loaded": False, "library": None, "gemm": {}, "batch": {}}


def _library_paths():
    """Paths of the OpenBLAS NumPy loaded, its own first: the ones in NumPy's wheel folders, then
    any other that threadpoolctl (when installed) sees loaded, such as a system OpenBLAS that a
    distribution's NumPy links (another package's copy, like SciPy's, may be loaded too)."""
    return wheel_library_paths() + loaded_openblas_paths()


def _bind(library, dtype_char):
    """The row-major cblas GEMM for ``dtype_char`` ('s' or 'd') in ``library`` and its batched
    form (None where missing), or None."""
    scalar = ctypes.c_float if dtype_char == "s" else ctypes.c_double
    for pattern, integer in _SYMBOLS:
        function = getattr(library, pattern.format(dtype_char), None)
        if function is None:
            continue
        function.restype = None
        function.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, integer, integer, integer, scalar,
                             ctypes.c_void_p, integer, ctypes.c_void_p, integer, scalar, ctypes.c_void_p, integer]
        return function, _bind_batch(library, dtype_char, scalar, integer)
    return None


#: OpenBLAS versions whose batched GEMM glassnet uses. Its guard (:data:`BATCH_MIN_MNK`) rests on
#: the small-matrix threshold in OpenBLAS's interface code, read for these versions only: another
#: version could send larger products down the path that crashed, so it gets the loop instead.
BATCH_VERSIONS = ((0, 3, 31),)


def _openblas_version(library):
    """(major, minor, patch) from the library's ``openblas_get_config``, or None."""
    for name in ("scipy_openblas_get_config64_", "scipy_openblas_get_config", "openblas_get_config"):
        function = getattr(library, name, None)
        if function is not None:
            function.restype, function.argtypes = ctypes.c_char_p, []
            words = (function() or b"").decode("ascii", "replace").split()
            parts = words[1].split(".")[:3] if len(words) > 1 and words[0] == "OpenBLAS" else []
            return tuple(int(part) for part in parts) if len(parts) == 3 and all(map(str.isdigit, parts)) else None
    return None


def _bind_batch(library, dtype_char, scalar, integer):
    """``cblas_?gemm_batch_strided`` with the integer width of the library's GEMM, or None (also
    for an OpenBLAS not in :data:`BATCH_VERSIONS`)."""
    if _openblas_version(library) not in BATCH_VERSIONS:
        return None
    for name in _BATCH_SYMBOLS[integer]:
        function = getattr(library, name.format(dtype_char), None)
        if function is not None:
            function.restype = None
            # order, transa, transb, M, N, K, alpha, A, lda, stride_a, B, ldb, stride_b, beta, C, ldc,
            # stride_c, count
            function.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, integer, integer, integer, scalar,
                                 ctypes.c_void_p, integer, integer, ctypes.c_void_p, integer, integer, scalar,
                                 ctypes.c_void_p, integer, integer, integer]
            return function
    return None


def _self_test(dtype):
    """True when the bound GEMM accumulates a transposed and a plain product as NumPy computes them."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(7, 5)).astype(dtype), rng.normal(size=(7, 3)).astype(dtype)
    out = rng.normal(size=(5, 3)).astype(dtype)
    expected = out + a.T @ b
    _blas_gemm(a.T, b, out, True)
    c = rng.normal(size=(4, 7)).astype(dtype)
    expected2 = c @ b
    out2 = np.full((4, 3), np.nan, dtype=dtype)
    _blas_gemm(c, b, out2, False)
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    return np.allclose(out, expected, rtol=tolerance, atol=tolerance) and np.allclose(out2, expected2, rtol=tolerance,
                                                                                      atol=tolerance)


def _self_test_batch(dtype):
    """True when the bound batched GEMM accumulates a strided batch of products as NumPy does."""
    # small integers: every sum is exact in float32, whatever order BLAS adds in
    rng = np.random.default_rng(1)
    a = rng.integers(-3, 4, size=(2, 130, 101)).astype(dtype)[:, 1:]      # a gap between the matrices
    b, out = rng.integers(-3, 4, size=(101, 80)).astype(dtype), rng.integers(-9, 10, size=(2, 129, 80)).astype(dtype)
    expected = out + np.einsum("nmk,kf->nmf", a.astype(np.int64), b.astype(np.int64))
    return _batch_call(a, b, out, True) and np.array_equal(out, expected)


def _load():
    if _STATE["loaded"]:               # every GEMM call passes here: no lock once loaded
        return
    with _LOCK:
        if _STATE["loaded"]:
            return
        for path in _library_paths():
            try:
                library = ctypes.CDLL(path)
            except OSError:
                continue
            bound = {np.dtype(np.float32): _bind(library, "s"), np.dtype(np.float64): _bind(library, "d")}
            if all(bound.values()):
                _STATE["library"] = path
                _STATE["gemm"] = {dtype: pair[0] for dtype, pair in bound.items()}
                _STATE["batch"] = {dtype: pair[1] for dtype, pair in bound.items() if pair[1] is not None}
                break
        for dtype in list(_STATE["gemm"]):
            if not _self_test(dtype):
                _STATE["gemm"].pop(dtype)
                _STATE["batch"].pop(dtype, None)
        for dtype in list(_STATE["batch"]):
            if not _self_test_batch(dtype):
                _STATE["batch"].pop(dtype)
        _STATE["loaded"] = True            # only now: the unlocked check above must see tested functions


def _after_fork_in_child():
    """A fresh lock in a forked child: a thread of the parent may have held it at the fork."""
    global _LOCK
    _LOCK = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def available(dtype=np.float32, batch=False):
    """Whether :func:`gemm` (with ``batch``: :func:`gemm_batch` in one call) calls BLAS directly
    for ``dtype`` (else it goes through NumPy, or a loop of :func:`gemm` calls)."""
    _load()
    return np.dtype(dtype) in _STATE["batch" if batch else "gemm"]


def _operand(a):
    """(transpose flag, leading dimension) of a 2-D array BLAS can read in place, or None."""
    item = a.itemsize
    row, col = a.strides
    if col == item and row % item == 0 and row // item >= max(1, a.shape[1]):
        return _NO_TRANS, row // item
    if row == item and col % item == 0 and col // item >= max(1, a.shape[0]):
        return _TRANS, col // item
    return None


def _blas_gemm(a, b, out, accumulate):
    """``out (+)= a @ b`` by one GEMM call; False when an operand's layout does not allow it."""
    function = _STATE["gemm"].get(out.dtype)
    layouts = [_operand(a), _operand(b)]
    if (function is None or None in layouts or layouts[1][0] != _NO_TRANS or a.dtype != out.dtype
            or b.dtype != out.dtype or out.strides[1] != out.itemsize or out.strides[0] % out.itemsize
            or out.strides[0] // out.itemsize < out.shape[1] or not out.flags.writeable):
        return False
    (M, K), N = a.shape, b.shape[1]
    (trans_a, lda), (_, ldb) = layouts
    function(_ROW_MAJOR, trans_a, _NO_TRANS, M, N, K, 1.0, a.ctypes.data, lda, b.ctypes.data, ldb,
             1.0 if accumulate else 0.0, out.ctypes.data, out.strides[0] // out.itemsize)
    return True


def gemm(a, b, out, accumulate=False):
    """``out[...] = a @ b``, or ``out += a @ b`` with ``accumulate``, with no temporary where BLAS allows.

    Parameters
    ----------
    a : ndarray, shape (M, K)
        C-contiguous rows (any row stride) or a transposed view of such an array.
    b : ndarray, shape (K, N)
        C-contiguous rows (any row stride).
    out : ndarray, shape (M, N)
        Written in place; same dtype as ``a`` and ``b``.
    accumulate : bool
        Add the product to ``out`` instead of overwriting it.
    """
    if a.shape[0] != out.shape[0] or b.shape[1] != out.shape[1] or a.shape[1] != b.shape[0]:
        raise ValueError(f"gemm: shapes {a.shape} @ {b.shape} do not give out's shape {out.shape}")
    if a.shape[0] == 0 or b.shape[1] == 0:
        return out
    _load()
    if a.shape[1] and _blas_gemm(a, b, out, accumulate):
        return out
    if accumulate:
        out += a @ b
    else:
        np.matmul(a, b, out=out)
    return out


#: Rows of the two tall operands of :func:`gemm_tall` per call: (P + Q) * rows * 4 bytes near 512 KiB
#: keeps both in cache. For a tiny output (P * Q <= :data:`TALL_TINY_OUTPUT`: a first layer's
#: weight gradient such as 25 x 6) OpenBLAS's own blocking ran 1.15-1.5x slower; for larger outputs
#: chunking made no difference (measured 2026-11-30), so they go in one call. So do the products of
#: glassnet's worker threads: there every call also hands the GIL over to the other thread, which
#: costs more than the cache gains (measurements in benchmarks/NOTES.md).
TALL_CHUNK_BYTES = 512 * 2 ** 10
TALL_TINY_OUTPUT = 512


def gemm_tall(a, b, out):
    """``out[...] = a.T @ b`` for tall ``a`` (R, P) and ``b`` (R, Q): the sum over R, in chunks of
    rows when the output is tiny and the call runs on one thread (see :data:`TALL_CHUNK_BYTES`).

    ``a`` and ``b`` are 2-D with unit stride along their rows' values or transposed views (as
    :func:`gemm` takes); ``out`` is (P, Q).
    """
    rows = len(a)
    if a.shape[1] * b.shape[1] > TALL_TINY_OUTPUT or in_worker():
        return gemm(a.T, b, out)
    chunk = max(1024, 1 << int(np.log2(max(2, TALL_CHUNK_BYTES // (4 * (a.shape[1] + b.shape[1]))))))
    gemm(a[:chunk].T, b[:chunk], out)
    for start in range(chunk, rows, chunk):
        gemm(a[start:start + chunk].T, b[start:start + chunk], out, accumulate=True)
    return out


#: Batched calls only for products with M * N * K above this. OpenBLAS sends smaller ones to its
#: small-matrix kernels, and in the batched interface that path crashed (OpenBLAS 0.3.31, NumPy
#: 2.4's wheel: a segmentation fault for every such size tried); the larger ones take its ordinary
#: GEMM path and match NumPy exactly.
BATCH_MIN_MNK = 100 * 100 * 100


def _batch_call(a, b, out, accumulate):
    """``out[i] (+)= a[i] @ b`` for every i by one batched GEMM call; False when not possible."""
    function = _STATE["batch"].get(out.dtype)
    if (function is None or a.ndim != 3 or out.ndim != 3 or a.dtype != out.dtype or b.dtype != out.dtype
            or not out.flags.writeable or len(a) != len(out)):
        return False
    layouts = [_operand(a[0]), _operand(b), _operand(out[0])]
    if (None in layouts or layouts[0][0] != _NO_TRANS or layouts[1][0] != _NO_TRANS or layouts[2][0] != _NO_TRANS
            or a.strides[0] % a.itemsize or out.strides[0] % out.itemsize):
        return False
    (count, M, K), N = a.shape, b.shape[1]
    if M * N * K <= BATCH_MIN_MNK:
        return False
    function(_ROW_MAJOR, _NO_TRANS, _NO_TRANS, M, N, K, 1.0, a.ctypes.data, layouts[0][1], a.strides[0] // a.itemsize,
             b.ctypes.data, layouts[1][1], 0, 1.0 if accumulate else 0.0, out.ctypes.data, layouts[2][1],
             out.strides[0] // out.itemsize, count)
    return True


def gemm_batch(a, b, out, accumulate=False):
    """``out[i] = a[i] @ b`` (or ``+=`` with ``accumulate``) for every i, in one BLAS call where
    possible (see the module notes).

    Parameters
    ----------
    a : ndarray, shape (n, M, K)
        Each ``a[i]`` with C-contiguous rows (any row stride); any stride between them.
    b : ndarray, shape (K, N)
        C-contiguous rows (any row stride); shared by all products.
    out : ndarray, shape (n, M, N)
        Written in place; same dtype as ``a`` and ``b``. Must not overlap between products.
    accumulate : bool
    """
    if a.shape[:2] != out.shape[:2] or a.shape[2] != b.shape[0] or b.shape[1] != out.shape[2]:
        raise ValueError(f"gemm_batch: shapes {a.shape} @ {b.shape} do not give out's shape {out.shape}")
    if a.size == 0 or out.size == 0:
        return out
    _load()
    if not _batch_call(a, b, out, accumulate):
        for a_i, out_i in zip(a, out):
            gemm(a_i, b, out_i, accumulate)
    return out
