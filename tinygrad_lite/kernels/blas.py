"""BLAS ``?gemm`` on sub-matrices of flat arrays, callable from Numba kernels.

Numba lowers ``np.dot`` of two contiguous 2-D arrays to a BLAS call, but only for whole
contiguous matrices. BLAS itself takes any *strided* matrix: a start pointer plus a
leading dimension (the distance between rows). That is what the tap-shifted
convolution kernels in :mod:`tinygrad_lite.kernels.cpu` need: with stride 1 the input
pixels that filter tap ``(i, j)`` reads for a whole (wide) output plane are one
contiguous run per channel, ``x[c].flat[i*W + j :]``, so for every channel at once they
form a ``(C, OH*W)`` matrix with leading dimension ``H*W``, a *view* of the image. No
im2col copy is needed.

:func:`strided_gemm` calls the same BLAS Numba uses for ``np.dot`` (scipy's OpenBLAS,
``sgemm``/``dgemm`` through Numba's own C helper ``numba_xxgemm``), so compiled kernels
stay cacheable (the helper is found by name when the cached code is loaded). Every call
first checks that the three sub-matrices lie inside their arrays: a wrong offset raises
``IndexError`` instead of writing over someone else's memory.

Caching caveat: Numba invalidates a cached kernel only when *its own* source file
changes. The kernels in ``cpu.py`` compile this module's code into themselves, so after
editing this file alone, delete ``tinygrad_lite/kernels/__pycache__``.
"""

from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np import linalg as _numba_linalg

__all__ = ["strided_gemm"]

_CHAR = ir.IntType(8)


@intrinsic
def _xxgemm(typingctx, a, a_offset, lda, transpose_a, b, b_offset, ldb, transpose_b,
            c, c_offset, ldc, m, n, k, beta):
    """Unchecked ``C = op(A) @ op(B) + beta * C`` (row-major) through ``numba_xxgemm``."""
    _numba_linalg.ensure_blas()
    arrays = (a, b, c)
    if not all(isinstance(t, types.Array) and t.ndim == 1 and t.layout == "C"
               for t in arrays):
        return None
    dtype = c.dtype
    if dtype not in (types.float32, types.float64) or a.dtype != dtype or b.dtype != dtype:
        return None
    intp = types.intp
    sig = types.void(a, intp, intp, types.boolean, b, intp, intp, types.boolean,
                     c, intp, intp, intp, intp, intp, types.float64)

    def codegen(context, builder, signature, args):
        (a_arg, a_off, lda_, ta, b_arg, b_off, ldb_, tb, c_arg, c_off, ldc_,
         m_, n_, k_, beta_) = args
        void_p = _CHAR.as_pointer()
        size_t = context.get_value_type(intp)
        fnty = ir.FunctionType(ir.IntType(32), [
            _CHAR, _CHAR, _CHAR,                  # kind, transa, transb
            size_t, size_t, size_t,               # m, n, k (column-major)
            void_p, void_p, size_t,               # alpha, a, lda
            void_p, size_t, void_p,               # b, ldb, beta
            void_p, size_t])                      # c, ldc
        fn = cgutils.get_or_insert_function(builder.module, fnty, "numba_xxgemm")

        def pointer(position, value, offset):
            array = context.make_array(signature.args[position])(context, builder, value)
            return builder.bitcast(builder.gep(array.data, [offset]), void_p)

        alpha = _numba_linalg.make_constant_slot(context, builder, dtype, 1.0)
        beta_value = context.cast(builder, beta_, types.float64, dtype)
        beta_slot = cgutils.alloca_once_value(builder, beta_value)
        flag_t, flag_n = ir.Constant(_CHAR, ord("t")), ir.Constant(_CHAR, ord("n"))
        kind = ir.Constant(_CHAR, ord(_numba_linalg.get_blas_kind(dtype)))
        # BLAS is column-major. A row-major matrix read column-major is its transpose,
        # so the row-major C = op(A) op(B) is the column-major C' = op(B)' op(A)':
        # B goes first, each with its own flag, and m and n swap places.
        status = builder.call(fn, (
            kind, builder.select(tb, flag_t, flag_n), builder.select(ta, flag_t, flag_n),
            n_, m_, k_, builder.bitcast(alpha, void_p),
            pointer(4, b_arg, b_off), ldb_, pointer(0, a_arg, a_off), lda_,
            builder.bitcast(beta_slot, void_p), pointer(8, c_arg, c_off), ldc_))
        _numba_linalg.check_blas_return(context, builder, status)
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True)
def _inside(size, offset, rows, cols, ld):
    """True when the ``rows x cols`` matrix at ``offset`` with row stride ``ld`` lies in
    ``[0, size)`` (and ``ld`` is at least ``cols``, as BLAS requires). An empty matrix
    reads nothing (``strided_gemm`` then never calls BLAS)."""
    if rows == 0 or cols == 0:
        return offset >= 0 and ld >= 0
    return offset >= 0 and ld >= cols and offset + (rows - 1) * ld + cols <= size


@njit(cache=True)
def strided_gemm(a, a_offset, lda, transpose_a, b, b_offset, ldb, transpose_b,
                 c, c_offset, ldc, m, n, k, beta):
    """``C = op(A) @ op(B) + beta * C`` on row-major sub-matrices of flat arrays.

    ``A`` is the matrix of ``a`` (1-D, contiguous) starting at ``a_offset`` with rows
    ``lda`` apart: ``(m, k)``, or ``(k, m)`` read transposed when ``transpose_a``; the
    same for ``B`` (``(k, n)``, or ``(n, k)`` transposed) and ``C`` (``(m, n)``).
    float32 or float64, all three alike. ``beta`` 0 overwrites C (its old values, even
    NaN, are not read); 1 accumulates. Raises ``IndexError`` when a sub-matrix does not
    fit its array. Single-threaded or not as the BLAS library is set
    (see ``cpu._single_threaded_blas``).
    """
    a_rows, a_cols = (k, m) if transpose_a else (m, k)
    b_rows, b_cols = (n, k) if transpose_b else (k, n)
    if not (_inside(a.size, a_offset, a_rows, a_cols, lda)
            and _inside(b.size, b_offset, b_rows, b_cols, ldb)
            and _inside(c.size, c_offset, m, n, ldc)):
        raise IndexError("strided_gemm: a sub-matrix lies outside its array")
    if m == 0 or n == 0:
        return
    if k == 0:  # BLAS would scale C by beta; do the same without it
        for r in range(m):
            row = c[c_offset + r * ldc: c_offset + r * ldc + n]
            for q in range(n):
                row[q] = 0.0 if beta == 0.0 else row[q] * beta
        return
    _xxgemm(a, a_offset, lda, transpose_a, b, b_offset, ldb, transpose_b,
            c, c_offset, ldc, m, n, k, beta)
