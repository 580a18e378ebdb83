"""``kernels.blas.strided_gemm``: BLAS on sub-matrices of flat arrays, against numpy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("numba")
pytest.importorskip("scipy")

from tinygrad_lite.kernels.blas import strided_gemm  # noqa: E402

TOLERANCE = {np.float32: 1e-5, np.float64: 1e-12}


@st.composite
def gemm_cases(draw):
    """Shapes, transposes, offsets, leading dimensions (some larger than needed), beta."""
    m, n, k = (draw(st.integers(0, 9)) for _ in range(3))
    transpose_a, transpose_b = draw(st.booleans()), draw(st.booleans())
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    beta = draw(st.sampled_from([0.0, 1.0, 0.5]))

    def layout(rows, cols):
        ld = cols + draw(st.integers(0, 3))
        offset = draw(st.integers(0, 5))
        return offset, ld, offset + max(rows - 1, 0) * ld + cols + draw(st.integers(0, 4))

    a = layout(*((k, m) if transpose_a else (m, k)))
    b = layout(*((n, k) if transpose_b else (k, n)))
    c = layout(m, n)
    return m, n, k, transpose_a, transpose_b, a, b, c, dtype, beta, draw(st.integers(0, 99))


def matrix(flat, offset, ld, rows, cols):
    """The row-major sub-matrix of ``flat`` that ``strided_gemm`` reads."""
    return np.array([flat[offset + r * ld: offset + r * ld + cols] for r in range(rows)],
                    dtype=flat.dtype).reshape(rows, cols)


@settings(max_examples=60, deadline=None)
@given(case=gemm_cases())
def test_strided_gemm_matches_numpy(case):
    m, n, k, ta, tb, (ao, lda, asize), (bo, ldb, bsize), (co, ldc, csize), dtype, beta, seed = case
    rng = np.random.default_rng(seed)
    a, b, c = (rng.standard_normal(size).astype(dtype) for size in (asize, bsize, csize))
    op_a = matrix(a, ao, lda, *((k, m) if ta else (m, k)))
    op_b = matrix(b, bo, ldb, *((n, k) if tb else (k, n)))
    op_a, op_b = (op_a.T if ta else op_a), (op_b.T if tb else op_b)
    expected = c.copy()
    old = matrix(c, co, ldc, m, n)
    new = op_a @ op_b + (beta * old if beta else 0)
    for r in range(m):
        expected[co + r * ldc: co + r * ldc + n] = new[r]
    strided_gemm(a, ao, lda, ta, b, bo, ldb, tb, c, co, ldc, m, n, k, beta)
    tol = TOLERANCE[dtype]
    np.testing.assert_allclose(c, expected, rtol=tol, atol=tol * max(1.0, k))


def test_strided_gemm_beta_zero_ignores_old_values():
    """beta = 0 overwrites C: NaN left in it does not leak into the product."""
    a, b = np.ones(4), np.ones(4)
    c = np.full(4, np.nan)
    strided_gemm(a, 0, 2, False, b, 0, 2, False, c, 0, 2, 2, 2, 2, 0.0)
    np.testing.assert_array_equal(c, np.full(4, 2.0))


@pytest.mark.parametrize("bad", [
    dict(a_offset=1),          # A's last row runs past the end of a
    dict(lda=1),               # rows closer than a row is long
    dict(c_offset=-1),
    dict(ldb=3),               # B's last row past the end of b
])
def test_strided_gemm_refuses_sub_matrices_outside_their_arrays(bad):
    args = dict(a_offset=0, lda=2, b_offset=0, ldb=2, c_offset=0, ldc=2)
    args.update(bad)
    a, b, c = np.ones(4), np.ones(4), np.zeros(4)
    with pytest.raises(IndexError, match="outside its array"):
        strided_gemm(a, args["a_offset"], args["lda"], False, b, args["b_offset"], args["ldb"],
                     False, c, args["c_offset"], args["ldc"], 2, 2, 2, 0.0)
    np.testing.assert_array_equal(c, np.zeros(4))
