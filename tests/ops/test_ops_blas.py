"""glassnet.ops.blas.gemm: one accumulating GEMM call, and its NumPy fallback, against np.matmul."""
import numpy as np
import pytest

from glassnet.ops import blas


@pytest.fixture(params=["blas", "numpy"])
def path(request, monkeypatch):
    """Run each test through the bound BLAS GEMM and through the NumPy fallback."""
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
