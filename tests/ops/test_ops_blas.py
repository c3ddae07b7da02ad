"""glassnet.ops.blas.gemm: one accumulating GEMM call, and its NumPy fallback, against np.matmul."""
import numpy as np
import pytest

from glassnet.ops import blas


@pytest.fixture(params=["blas", "numpy"])
def path(request, monkeypatch):
    """Run each test through the bound BLAS GEMM and through the NumPy fallback."""
    blas.available(np.float32)              # bind and self-test before anything is patched
    if request.param == "blas":
        if not blas.available(np.float32) or not blas.available(np.float64):
            pytest.skip("no BLAS GEMM bound on this platform: only the NumPy fallback is in use")
    else:
        monkeypatch.setattr(blas, "_blas_gemm", lambda *args: False)
    return request.param


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("accumulate", [False, True])
def test_gemm_matches_matmul(path, dtype, transposed, accumulate):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((9, 5) if transposed else (5, 9)).astype(dtype)
    a = a.T if transposed else a
    b = rng.standard_normal((9, 4)).astype(dtype)
    out = rng.standard_normal((5, 4)).astype(dtype)
    expected = (out if accumulate else 0) + a.astype("float64") @ b.astype("float64")
    result = blas.gemm(a, b, out, accumulate=accumulate)
    assert result is out
    tolerance = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(out, expected, rtol=tolerance, atol=tolerance)


def test_gemm_reads_row_strided_and_overlapping_views(path):
    """Shifted row slices of one matrix (the row-window convolution's operands) and strided outputs."""
    rng = np.random.default_rng(1)
    base = rng.standard_normal((12, 6)).astype("float32")
    b = rng.standard_normal((6, 3)).astype("float32")
    frame = np.zeros((12, 8), dtype="float32")
    out = frame[:10, 2:5]                       # row stride 8, not the width 3
    blas.gemm(base[2:], b, out)
    blas.gemm(base[:10], b, out, accumulate=True)
    np.testing.assert_allclose(out, base[2:] @ b + base[:10] @ b, rtol=1e-5, atol=1e-6)
    assert not frame[:, :2].any() and not frame[:, 5:].any() and not frame[10:].any()


def test_gemm_falls_back_for_layouts_blas_cannot_read():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((6, 8))[:, ::2]     # column stride 2: not a BLAS operand
    b = rng.standard_normal((4, 3))
    out = np.ones((6, 3))
    blas.gemm(a, b, out, accumulate=True)
    np.testing.assert_allclose(out, 1 + a @ b, rtol=1e-12)


def test_gemm_empty_and_shape_errors():
    out = np.full((0, 3), 7.0)
    assert blas.gemm(np.ones((0, 2)), np.ones((2, 3)), out) is out
    zero_inner = np.full((2, 3), 7.0)
    blas.gemm(np.ones((2, 0)), np.ones((0, 3)), zero_inner)
    assert not zero_inner.any()
    with pytest.raises(ValueError, match="shapes"):
        blas.gemm(np.ones((2, 3)), np.ones((4, 5)), np.ones((2, 5)))


@pytest.mark.parametrize("columns", [(7, 3), (30, 20)], ids=["tiny-output-chunked", "one-call"])
@pytest.mark.parametrize("rows", [1, 1023, 1024, 5000])
def test_gemm_tall_sums_over_row_chunks(path, rows, columns):
    rng = np.random.default_rng(rows)
    a = rng.standard_normal((rows, columns[0])).astype("float32")
    b = rng.standard_normal((columns[1], rows)).astype("float32").T        # a transposed view
    out = np.full(columns, np.nan, dtype="float32")
    blas.gemm_tall(a, b, out)
    np.testing.assert_allclose(out, a.astype("float64").T @ b.astype("float64"), rtol=1e-4, atol=1e-4)


@pytest.fixture(params=["batched", "loop"])
def batch_path(request, monkeypatch):
    """Run each test through the batched BLAS call and through the loop of single GEMMs."""
    blas.available(np.float32, batch=True)  # bind and self-test before anything is patched
    if request.param == "loop":
        monkeypatch.setattr(blas, "_batch_call", lambda *args: False)
    return request.param


def _numpy_openblas_version():
    """The version of the OpenBLAS in NumPy's wheel (other packages, e.g. SciPy, bring their own)."""
    from threadpoolctl import threadpool_info
    versions = [info.get("version") for info in threadpool_info()
                if info.get("internal_api") == "openblas" and "numpy" in info.get("filepath", "")]
    return tuple(int(part) for part in versions[0].split(".")[:3]) if versions and versions[0] else None


def test_the_batched_gemm_is_bound_where_numpys_openblas_has_it():
    import scipy.linalg  # noqa: F401  (SciPy's own OpenBLAS, 0.3.30 without the batched GEMM, loaded too)
    version = _numpy_openblas_version()
    assert version is not None, "this test expects NumPy's bundled OpenBLAS (as on the CI machines)"
    assert blas.available(np.float32, batch=True) == (version in blas.BATCH_VERSIONS)
    assert "numpy" in blas._STATE["library"]


def test_the_batched_gemm_is_left_out_for_untested_openblas_versions(monkeypatch):
    import ctypes
    library = ctypes.CDLL(blas._STATE["library"] or blas._library_paths()[0])
    assert blas._openblas_version(library) == _numpy_openblas_version()
    assert blas._bind_batch(library, "s", ctypes.c_float, ctypes.c_int64) is not None
    monkeypatch.setattr(blas, "BATCH_VERSIONS", ((0, 3, 30),))
    assert blas._bind_batch(library, "s", ctypes.c_float, ctypes.c_int64) is None


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("accumulate", [False, True])
def test_gemm_batch_matches_matmul_on_shifted_windows(batch_path, dtype, accumulate):
    """The row-window convolution's operands: per image, a shifted slice of its rows (a gap between images)."""
    rng = np.random.default_rng(3)
    frames = rng.standard_normal((3, 140, 101)).astype(dtype)
    a = frames[:, 5:135]                                         # (3, 130, 101), image stride 140 rows
    b = rng.standard_normal((101, 80)).astype(dtype)
    out = rng.standard_normal((3, 130, 80)).astype(dtype)
    assert 130 * 101 * 80 > blas.BATCH_MIN_MNK                   # large enough for the batched call
    expected = (out.astype("float64") if accumulate else 0) + a.astype("float64") @ b.astype("float64")
    assert blas.gemm_batch(a, b, out, accumulate=accumulate) is out
    tolerance = 1e-4 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(out, expected, rtol=tolerance, atol=tolerance)


def test_gemm_batch_keeps_small_products_off_the_batched_call(monkeypatch):
    """Products at or below BATCH_MIN_MNK go one by one (OpenBLAS's batched small-matrix path crashed)."""
    calls = []
    monkeypatch.setattr(blas, "gemm", lambda a, b, out, accumulate=False: calls.append(a.shape) or
                        np.matmul(a, b, out=out))
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((4, 10, 7)).astype("float32"), rng.standard_normal((7, 3)).astype("float32")
    out = np.empty((4, 10, 3), dtype="float32")
    blas.gemm_batch(a, b, out)
    assert calls == [(10, 7)] * 4
    np.testing.assert_allclose(out, a @ b, rtol=1e-5, atol=1e-6)


def test_gemm_batch_shape_errors_and_empty_batches():
    with pytest.raises(ValueError, match="gemm_batch"):
        blas.gemm_batch(np.ones((2, 3, 4)), np.ones((5, 2)), np.ones((2, 3, 2)))
    out = np.ones((0, 3, 2))
    assert blas.gemm_batch(np.ones((0, 3, 4)), np.ones((4, 2)), out) is out
