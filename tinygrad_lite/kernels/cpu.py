"""Numba CPU kernels: tiled matrix multiply, convolution and pooling (NCHW), array in/out.

Every public function checks its arguments in plain Python (shapes, float32/float64,
contiguity, int-or-pair stride/padding) and then calls ``@njit(parallel=True)`` kernels.
Signatures and results match ``kernels.reference``, the numpy oracle the tests use.

Who writes what
---------------
A ``prange`` loop hands each thread a contiguous chunk of its iterations. Every parallel
loop here runs over pieces of the *output* that one iteration owns outright (a tile of C,
a row of the patch matrix, an image row or plane): no two iterations write the same
element, so there are no races and no atomics, and each element is summed in a fixed
order. Two runs give bit-identical results. Tile shapes depend only on the problem
shape, not on the number of threads, so the results do not depend on it either.

Two matrix-multiply kernels
---------------------------
* **Inner-product GEMM** (``_dot_*``), ``C = A @ Bt.T``: every C element is a dot
  product of two contiguous rows. ``B`` is *packed* first (``Bt = B.T``, a blocked
  transpose). The micro-kernel computes a 4x4 block of C as sixteen dot products at
  once with sixteen scalar accumulators; with ``fastmath`` re-association LLVM
  vectorises the loop over k and keeps every accumulator in a SIMD register: each step
  loads 8 vectors and issues 16 fused multiply-adds. The k loop is cut into ``KC``-long
  blocks so the 8 rows being streamed stay in L1. Best when k is long (>= ~64): each
  4x4 block ends with 16 horizontal (across-lane) sums, which a short k cannot amortise.
* **Outer-product GEMM** (``_axpy_*``), ``C = A @ B``: a row of C is built as a sum of
  rows of B scaled by entries of A, eight rows of C and four rows of B per pass
  (``c_r += a_r0*b0 + a_r1*b1 + a_r2*b2 + a_r3*b3``), vectorised along the row. C lives
  in L1 rather than in registers, so it needs more loads and stores per FMA than the
  inner-product kernel, but its speed does not depend on k and it needs no packing.
  Used for the convolution's forward and input-gradient products (k = ``C*KH*KW``, 27
  for an RGB 3x3 filter, or O) and for matmuls whose C is at most ``WIDE_M`` wide or
  whose k is short.

A convolution is im2col plus these, with the batch folded into the columns: the patch
matrix ``P (C*KH*KW, OH*OW*N)`` has one row per filter tap ``(c, i, j)`` and one column
per (output pixel, image), the image index innermost (built from the input in CHWN
layout, so every copy is a long contiguous run). With the weight ``W (O, C*KH*KW)`` and
the output gradient as ``G (O, OH*OW*N)``: forward ``Y = W @ P``, input gradient
``dP = W.T @ G`` (then col2im), weight gradient ``dW = G @ P.T`` (inner product, k =
``OH*OW*N``). One GEMM per pass for the whole batch, with rows of C ``OH*OW*N`` long
(per image they would be ``OH*OW``, 169 for the CIFAR 32 -> 64 layer: too short to
vectorise well). See ``docs/kernels.md`` for the measurements.
"""

from __future__ import annotations

import os

import numba
import numpy as np
from numba import njit, prange

from .reference import as_pair, check_conv_shapes, conv_output_hw

# Re-association lets LLVM split a sum over SIMD lanes; contraction fuses a*b+c into one
# FMA. No "nnan"/"ninf": NaN and inf must flow through the kernels as they do in numpy.
FASTMATH = {"reassoc", "contract", "nsz", "arcp"}
_PARALLEL = {"parallel": True, "cache": True, "fastmath": FASTMATH}
_SERIAL = {"cache": True, "fastmath": FASTMATH}

KC_BYTES = 8192
"""Inner-product k-block in bytes (2048 float32 or 1024 float64 values per row)."""
DOT_TILE = (64, 256)
"""Output tile (rows x columns of C) one ``prange`` iteration owns, inner-product GEMM."""
AXPY_TILE = (32, 512)
"""The same for the outer-product GEMM (its C rows must fit in L1)."""
AXPY_KC = 128
"""Outer-product k-block: the ``AXPY_KC x 512`` block of B stays in L2 across C rows."""
WIDE_M, SHORT_K = 512, 256
"""``matmul`` uses the inner-product kernel when C is wider than ``WIDE_M`` columns and
k is at least ``SHORT_K``, the outer-product kernel otherwise: with C rows that short,
the outer-product kernel's block of B stays in L2 and it is the faster of the two
(measured on a 2-core AVX-512 machine; see ``docs/kernels.md``)."""

__all__ = [
    "matmul", "batched_matmul", "conv2d", "conv2d_backward_input", "conv2d_backward_weight",
    "max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward",
    "limit_blas_threads", "GOMP_SPINCOUNT", "FASTMATH",
]


# =============================================================== thread-pool management
#
# numpy's BLAS (OpenBLAS) and Numba each keep their own pool of worker threads, one per
# core. When a call ends, OpenBLAS's workers keep polling for more work for about 0.1 s,
# and the GNU OpenMP workers behind Numba's "omp" threading layer spin for 300 000
# iterations (milliseconds) before either goes to sleep. Called in turn, each library
# finds the cores held by the other's waiting threads and its own threads must wait for
# a scheduler time slice. On a 2-core machine a loop alternating a 512x512 numpy matmul
# with one of these kernels ran at 40% of the speed of its two parts run alone.
#
# What this module does, and what it leaves to the user (``benchmarks/bench_kernels.py``
# section "alternating" measures every option; the table is in ``docs/kernels.md``):
#
# * Numba's side, on import: ``GOMP_SPINCOUNT=1000`` (libgomp's own choice when it finds
#   more threads than cores) lets Numba's workers sleep a few microseconds after a
#   parallel region, yet stay awake across back-to-back launches: the loop above goes
#   from 40% to 55-75%. OMP_WAIT_POLICY=PASSIVE (sleep at once) does no better and adds
#   ~40 us to every launch; Numba's "workqueue" layer likewise, and it aborts the process
#   when two Python threads launch kernels at once. The variable is read when Numba
#   loads libgomp, at the first parallel launch, so it is set before that.
# * numpy's side, up to the user: OpenBLAS's polling workers remain, and slow our
#   kernels right after a numpy product. Starting Python with ``OPENBLAS_THREAD_TIMEOUT=4``
#   (read once, when numpy loads OpenBLAS) brings the loop to 98-100% at no cost;
#   :func:`limit_blas_threads` (numpy's BLAS on one thread) to 86-98%, at the cost of
#   numpy's own products running on one core. Limiting BLAS only around each of our
#   kernels does not help: workers that are already polling keep polling.

GOMP_SPINCOUNT = "1000"
"""Spin count set on import for Numba's OpenMP workers (unless ``GOMP_SPINCOUNT`` or
``OMP_WAIT_POLICY`` is set, or a Numba parallel kernel has already run)."""


def _short_openmp_spin():
    """Set ``GOMP_SPINCOUNT`` before Numba starts its OpenMP pool; True if set here.

    No effect when the user set either variable, when Numba's pool already runs, or when
    this process loaded the same libgomp earlier (it read its environment back then).
    """
    if "GOMP_SPINCOUNT" in os.environ or "OMP_WAIT_POLICY" in os.environ:
        return False
    try:
        numba.threading_layer()  # raises ValueError until the first parallel launch
        return False
    except ValueError:
        os.environ["GOMP_SPINCOUNT"] = GOMP_SPINCOUNT
        return True


SET_GOMP_SPINCOUNT = _short_openmp_spin()
"""True when importing this module set ``GOMP_SPINCOUNT`` (the benchmark removes it again
for PyTorch's process, so PyTorch is timed with its own defaults)."""


def limit_blas_threads(limit=1):
    """Run numpy's BLAS on ``limit`` threads, so its idle workers never poll a core.

    Worth it when numpy matrix products alternate with these kernels and the kernels
    dominate the time (e.g. training on the Numba backend, where numpy's BLAS serves only
    leftovers). Returns the ``threadpoolctl`` limiter: use it in a ``with`` block, or
    call its ``restore_original_limits()`` to undo.
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=limit, user_api="blas")


# ================================================================== argument helpers


def _float_arrays(*arrays):
    """C-contiguous float32/float64 versions of ``arrays`` in one common dtype.

    Copies only what is not already contiguous or of that dtype; mixed float32/float64
    inputs give float64, as everywhere in the library.
    """
    arrays = [np.asarray(a) for a in arrays]
    dtype = np.result_type(*arrays)
    if dtype not in (np.float32, np.float64):
        raise TypeError("the Numba CPU kernels take float32 or float64 arrays, got "
                        + ", ".join(str(a.dtype) for a in arrays))
    return [np.ascontiguousarray(a, dtype=dtype) for a in arrays]


@njit(**_SERIAL)
def _cdiv(a, b):
    """Ceiling division ``ceil(a / b)`` for positive ints (also callable from Python)."""
    return -(-a // b)


def _tile_shape(batch, n, m, tile):
    """``tile``, halved (largest side first, down to 4x4) until the ``batch`` stacked
    ``n x m`` outputs give at least 8 tiles, so that small products still spread over
    the threads. Depends only on the shape, so results do not depend on the thread count.
    """
    tile_m, tile_n = tile
    # -(-a // b) is ceil(a / b); plain Python here: calling the jitted _cdiv from Python
    # costs microseconds, which small products (the digits layers) notice.
    while batch * -(-n // tile_m) * -(-m // tile_n) < 8 and max(tile_m, tile_n) > 4:
        if tile_n >= tile_m:
            tile_n //= 2
        else:
            tile_m //= 2
    return tile_m, tile_n


# ========================================================== packing: blocked transpose


@njit(**_PARALLEL)
def _transpose_kernel(src, dst):
    """``dst[b] = src[b].T`` for a stack of matrices, in 32x32 blocks.

    A naive transpose reads along rows and writes down columns, touching a new cache
    line on every write. A 32x32 block touches 32 source and 32 destination lines, which
    all stay in L1, so each line is fetched once. Blocks are independent: ``prange``.
    """
    batch, rows, cols = src.shape
    block = 32
    block_rows, block_cols = _cdiv(rows, block), _cdiv(cols, block)
    for t in prange(batch * block_rows * block_cols):
        b = t // (block_rows * block_cols)
        r0 = t // block_cols % block_rows * block
        c0 = t % block_cols * block
        for r in range(r0, min(r0 + block, rows)):
            for c in range(c0, min(c0 + block, cols)):
                dst[b, c, r] = src[b, r, c]


def _transposed(x):
    """``x.swapaxes(-1, -2)`` of a 2-D or 3-D array, as a new C-contiguous array."""
    stack = x.reshape((-1,) + x.shape[-2:])
    out = np.empty((stack.shape[0], stack.shape[2], stack.shape[1]), dtype=x.dtype)
    _transpose_kernel(stack, out)
    return out.reshape(x.shape[:-2] + out.shape[1:])


# ======================================================== inner-product GEMM: A @ Bt.T


@njit(**_SERIAL)
def _dot_4x4(a, bt, c, i, j, p0, p1):
    """``c[i:i+4, j:j+4] += a[i:i+4, p0:p1] @ bt[j:j+4, p0:p1].T`` with 16 accumulators.

    Each accumulator is a scalar updated once per ``p``; LLVM vectorises the ``p`` loop,
    turning each into a SIMD register of partial sums. The rows are sliced first so the
    loop index starts at 0: Numba then knows it is non-negative and drops the negative-
    index wraparound check, which would otherwise turn every load into a gather.
    """
    a0, a1, a2, a3 = a[i, p0:p1], a[i + 1, p0:p1], a[i + 2, p0:p1], a[i + 3, p0:p1]
    b0, b1, b2, b3 = bt[j, p0:p1], bt[j + 1, p0:p1], bt[j + 2, p0:p1], bt[j + 3, p0:p1]
    c00, c01, c02, c03 = c[i, j], c[i, j + 1], c[i, j + 2], c[i, j + 3]
    c10, c11, c12, c13 = c[i + 1, j], c[i + 1, j + 1], c[i + 1, j + 2], c[i + 1, j + 3]
    c20, c21, c22, c23 = c[i + 2, j], c[i + 2, j + 1], c[i + 2, j + 2], c[i + 2, j + 3]
    c30, c31, c32, c33 = c[i + 3, j], c[i + 3, j + 1], c[i + 3, j + 2], c[i + 3, j + 3]
    for p in range(p1 - p0):
        x0, x1, x2, x3 = a0[p], a1[p], a2[p], a3[p]
        y0, y1, y2, y3 = b0[p], b1[p], b2[p], b3[p]
        c00 += x0 * y0
        c01 += x0 * y1
        c02 += x0 * y2
        c03 += x0 * y3
        c10 += x1 * y0
        c11 += x1 * y1
        c12 += x1 * y2
        c13 += x1 * y3
        c20 += x2 * y0
        c21 += x2 * y1
        c22 += x2 * y2
        c23 += x2 * y3
        c30 += x3 * y0
        c31 += x3 * y1
        c32 += x3 * y2
        c33 += x3 * y3
    c[i, j], c[i, j + 1], c[i, j + 2], c[i, j + 3] = c00, c01, c02, c03
    c[i + 1, j], c[i + 1, j + 1], c[i + 1, j + 2], c[i + 1, j + 3] = c10, c11, c12, c13
    c[i + 2, j], c[i + 2, j + 1], c[i + 2, j + 2], c[i + 2, j + 3] = c20, c21, c22, c23
    c[i + 3, j], c[i + 3, j + 1], c[i + 3, j + 2], c[i + 3, j + 3] = c30, c31, c32, c33


@njit(**_SERIAL)
def _dot_1x1(a, bt, c, i, j, p0, p1):
    """``c[i, j] += a[i, p0:p1] . bt[j, p0:p1]``, for the last (< 4) rows and columns."""
    row, col = a[i, p0:p1], bt[j, p0:p1]
    total = c[i, j]
    for p in range(p1 - p0):
        total += row[p] * col[p]
    c[i, j] = total


@njit(**_SERIAL)
def _dot_tile(a, bt, c, i0, i1, j0, j1, kc):
    """``c[i0:i1, j0:j1] += a[i0:i1] @ bt[j0:j1].T`` on one thread.

    Loop order: k block (``kc`` long) -> 4 rows of A -> 4 rows of Bt -> 4x4 micro-kernel.
    The 4 rows of A (4 x kc) stay in L1 while the loop walks along the tile's rows of
    Bt, and the tile's Bt block ((j1 - j0) x kc) stays in L2 for every group of A rows.
    """
    k = a.shape[1]
    i4 = i0 + (i1 - i0) // 4 * 4
    j4 = j0 + (j1 - j0) // 4 * 4
    for p0 in range(0, k, kc):
        p1 = min(p0 + kc, k)
        for i in range(i0, i4, 4):
            for j in range(j0, j4, 4):
                _dot_4x4(a, bt, c, i, j, p0, p1)
            for j in range(j4, j1):
                for r in range(i, i + 4):
                    _dot_1x1(a, bt, c, r, j, p0, p1)
        for i in range(i4, i1):
            for j in range(j0, j1):
                _dot_1x1(a, bt, c, i, j, p0, p1)


@njit(**_PARALLEL)
def _dot_gemm_kernel(a, bt, c, tile_m, tile_n, kc):
    """``c[e] += a[e] @ bt[e].T`` for a batch: ``prange`` over (batch, row tile, col tile).

    Each iteration owns one tile of one ``c[b]`` and computes it completely (all of k),
    so no two threads touch the same element of C. An operand with batch size 1 is
    shared by every entry; when ``c`` has batch size 1 the products of all entries are
    *summed* into it, entry after entry inside the tile's own iteration (this is how a
    convolution's weight gradient sums over the images without a race).
    """
    batch = max(a.shape[0], bt.shape[0])
    n, m = c.shape[1], c.shape[2]
    tiles_i, tiles_j = _cdiv(n, tile_m), _cdiv(m, tile_n)
    for t in prange(c.shape[0] * tiles_i * tiles_j):
        b = t // (tiles_i * tiles_j)
        i0 = t // tiles_j % tiles_i * tile_m
        j0 = t % tiles_j * tile_n
        i1, j1 = min(i0 + tile_m, n), min(j0 + tile_n, m)
        for e in range(b, batch, c.shape[0]):
            _dot_tile(a[e % a.shape[0]], bt[e % bt.shape[0]], c[b], i0, i1, j0, j1, kc)


def _gemm_abt(a, bt, sum_batch=False):
    """Inner-product GEMM on stacks ``a (B, n, k)``, ``bt (B, m, k)`` -> ``(B, n, m)``.

    A batch of 1 in ``a`` or ``bt`` is broadcast; ``sum_batch=True`` returns the sum of
    the products, shape ``(1, n, m)``.
    """
    batch = 1 if sum_batch else max(a.shape[0], bt.shape[0])
    c = np.zeros((batch, a.shape[1], bt.shape[1]), dtype=a.dtype)
    tile_m, tile_n = _tile_shape(*c.shape, DOT_TILE)
    _dot_gemm_kernel(a, bt, c, tile_m, tile_n, max(16, KC_BYTES // a.itemsize))
    return c


# ========================================================= outer-product GEMM: A @ B


@njit(**_SERIAL)
def _axpy_row(a, b, c, i, j0, j1, p0, p1):
    """``c[i, j0:j1] += a[i, p0:p1] @ b[p0:p1, j0:j1]``: one row, for an odd row count."""
    c_row, a_row = c[i, j0:j1], a[i]
    for p in range(p0, p1):
        scale, b_row = a_row[p], b[p, j0:j1]
        for j in range(j1 - j0):
            c_row[j] += scale * b_row[j]


@njit(**_SERIAL)
def _axpy_rows8(a, b, c, i, j0, j1, p0, p1):
    """``c[i:i+8, j0:j1] += a[i:i+8, p0:p1] @ b[p0:p1, j0:j1]``: eight rows of C at once.

    Per pass, four rows of B are loaded once along the columns and each feeds all eight
    rows of C: every vector of B serves eight FMAs and every load/store of C four, so
    the loop is bound by the FMA units rather than by loads and stores (two rows at a
    time, the L1 traffic of C and B capped it at ~45 GFLOP/s on one core; eight rows
    reach ~80). The 32 scalars of A stay in registers or are broadcast from L1.
    """
    c0, c1, c2, c3 = c[i, j0:j1], c[i + 1, j0:j1], c[i + 2, j0:j1], c[i + 3, j0:j1]
    c4, c5, c6, c7 = c[i + 4, j0:j1], c[i + 5, j0:j1], c[i + 6, j0:j1], c[i + 7, j0:j1]
    p4 = p0 + (p1 - p0) // 4 * 4
    for p in range(p0, p4, 4):
        b0, b1, b2, b3 = b[p, j0:j1], b[p + 1, j0:j1], b[p + 2, j0:j1], b[p + 3, j0:j1]
        x00, x01, x02, x03 = a[i, p], a[i, p + 1], a[i, p + 2], a[i, p + 3]
        x10, x11, x12, x13 = a[i + 1, p], a[i + 1, p + 1], a[i + 1, p + 2], a[i + 1, p + 3]
        x20, x21, x22, x23 = a[i + 2, p], a[i + 2, p + 1], a[i + 2, p + 2], a[i + 2, p + 3]
        x30, x31, x32, x33 = a[i + 3, p], a[i + 3, p + 1], a[i + 3, p + 2], a[i + 3, p + 3]
        x40, x41, x42, x43 = a[i + 4, p], a[i + 4, p + 1], a[i + 4, p + 2], a[i + 4, p + 3]
        x50, x51, x52, x53 = a[i + 5, p], a[i + 5, p + 1], a[i + 5, p + 2], a[i + 5, p + 3]
        x60, x61, x62, x63 = a[i + 6, p], a[i + 6, p + 1], a[i + 6, p + 2], a[i + 6, p + 3]
        x70, x71, x72, x73 = a[i + 7, p], a[i + 7, p + 1], a[i + 7, p + 2], a[i + 7, p + 3]
        for j in range(j1 - j0):
            v0, v1, v2, v3 = b0[j], b1[j], b2[j], b3[j]
            c0[j] += x00 * v0 + x01 * v1 + x02 * v2 + x03 * v3
            c1[j] += x10 * v0 + x11 * v1 + x12 * v2 + x13 * v3
            c2[j] += x20 * v0 + x21 * v1 + x22 * v2 + x23 * v3
            c3[j] += x30 * v0 + x31 * v1 + x32 * v2 + x33 * v3
            c4[j] += x40 * v0 + x41 * v1 + x42 * v2 + x43 * v3
            c5[j] += x50 * v0 + x51 * v1 + x52 * v2 + x53 * v3
            c6[j] += x60 * v0 + x61 * v1 + x62 * v2 + x63 * v3
            c7[j] += x70 * v0 + x71 * v1 + x72 * v2 + x73 * v3
    for r in range(i, i + 8):
        _axpy_row(a, b, c, r, j0, j1, p4, p1)


@njit(**_SERIAL)
def _axpy_tile(a, b, c, i0, i1, j0, j1, kc):
    """``c[i0:i1, j0:j1] += a[i0:i1] @ b[:, j0:j1]`` on one thread, eight rows of C at a time.

    Loop order: k block (``kc`` rows of B) -> rows i..i+7 of C -> 4 rows of B -> columns.
    The innermost loop, along contiguous rows, vectorises:
    ``c_r += x_r0*b0 + x_r1*b1 + x_r2*b2 + x_r3*b3`` for each of the eight rows r. Each
    vector of B loaded feeds eight rows of C, and each load/store of C serves four FMAs.
    The ``kc x (j1 - j0)`` block of B stays in L2 and is reused for every group of rows;
    the last ``(i1 - i0) % 8`` rows go two at a time, then one.
    """
    k = a.shape[1]
    i8 = i0 + (i1 - i0) // 8 * 8
    i2 = i8 + (i1 - i8) // 2 * 2
    for p0 in range(0, k, kc):
        p1 = min(p0 + kc, k)
        p4 = p0 + (p1 - p0) // 4 * 4
        for i in range(i0, i8, 8):
            _axpy_rows8(a, b, c, i, j0, j1, p0, p1)
        for i in range(i8, i2, 2):
            c0, c1, r0, r1 = c[i, j0:j1], c[i + 1, j0:j1], a[i], a[i + 1]
            for p in range(p0, p4, 4):
                x0, x1, x2, x3 = r0[p], r0[p + 1], r0[p + 2], r0[p + 3]
                y0, y1, y2, y3 = r1[p], r1[p + 1], r1[p + 2], r1[p + 3]
                b0, b1 = b[p, j0:j1], b[p + 1, j0:j1]
                b2, b3 = b[p + 2, j0:j1], b[p + 3, j0:j1]
                for j in range(j1 - j0):
                    v0, v1, v2, v3 = b0[j], b1[j], b2[j], b3[j]
                    c0[j] += x0 * v0 + x1 * v1 + x2 * v2 + x3 * v3
                    c1[j] += y0 * v0 + y1 * v1 + y2 * v2 + y3 * v3
            for p in range(p4, p1):
                x0, y0, b0 = r0[p], r1[p], b[p, j0:j1]
                for j in range(j1 - j0):
                    c0[j] += x0 * b0[j]
                    c1[j] += y0 * b0[j]
        if i2 < i1:
            _axpy_row(a, b, c, i2, j0, j1, p0, p1)


@njit(**_PARALLEL)
def _axpy_gemm_kernel(a, b, c, tile_m, tile_n, kc):
    """``c[e] += a[e] @ b[e]``: ``prange`` over (batch, row tile, col tile), each
    iteration owning its tile. An ``a`` with batch size 1 is shared by every entry."""
    batch, n, m = c.shape
    tiles_i, tiles_j = _cdiv(n, tile_m), _cdiv(m, tile_n)
    for t in prange(batch * tiles_i * tiles_j):
        e = t // (tiles_i * tiles_j)
        i0 = t // tiles_j % tiles_i * tile_m
        j0 = t % tiles_j * tile_n
        i1, j1 = min(i0 + tile_m, n), min(j0 + tile_n, m)
        _axpy_tile(a[e % a.shape[0]], b[e], c[e], i0, i1, j0, j1, kc)


def _gemm_ab(a, b):
    """Outer-product GEMM on stacks ``a (B or 1, n, k)``, ``b (B, k, m)`` -> ``(B, n, m)``."""
    c = np.zeros((b.shape[0], a.shape[1], b.shape[2]), dtype=b.dtype)
    tile_m, tile_n = _tile_shape(*c.shape, AXPY_TILE)
    _axpy_gemm_kernel(a, b, c, tile_m, tile_n, AXPY_KC)
    return c


# ============================================================================ matmul


def _stack_product(a, b):
    """``a @ b`` for stacks ``(B, n, k) @ (B, k, m)``, picking the kernel by shape."""
    if b.shape[2] > WIDE_M and b.shape[1] >= SHORT_K:
        return _gemm_abt(a, _transposed(b))
    return _gemm_ab(a, b)


def matmul(a, b):
    """``(n, k) @ (k, m)`` for float32/float64: packed, register- and cache-blocked, parallel.

    Wide C and long k (see ``WIDE_M``): pack ``Bt = b.T`` so every column of ``b`` is
    contiguous, cut C into tiles that ``prange`` shares out, walk k in ``KC``-long blocks
    and compute each 4x4 block of C with sixteen register accumulators. Otherwise the
    outer-product kernel builds C eight rows at a time (see the module docstring).

    What limits it: the micro-kernel needs 8 vector loads per 16 FMAs and finishes each
    k block with 16 horizontal sums, and LLVM (not a person) schedules its instructions.
    OpenBLAS's hand-written kernels (outer products held in 24-32 vector registers, with
    software prefetch) keep the FMA units busier; we reach roughly half to three-quarters
    of its speed at n = 1024 (``docs/kernels.md`` has the measured table).
    """
    a, b = _float_arrays(a, b)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not fit (n, k) @ (k, m)")
    return _stack_product(a[None], b[None])[0]


def batched_matmul(a, b):
    """``(B, n, k) @ (B, k, m) -> (B, n, m)``: :func:`matmul` with the batch in the tiling."""
    a, b = _float_arrays(a, b)
    if a.ndim != 3 or b.ndim != 3 or a.shape[0] != b.shape[0] or a.shape[2] != b.shape[1]:
        raise ValueError(f"batched_matmul: shapes {a.shape} and {b.shape} do not fit "
                         "(B, n, k) @ (B, k, m)")
    return _stack_product(a, b)


# ======================================================================= convolution


@njit(**_PARALLEL)
def _im2col_kernel(xc, kh, kw, sh, sw, oh, ow, patches):
    """``patches[(c, i, j), r, (q, n)] = xc[c, r*sh + i, q*sw + j, n]``.

    ``xc`` is the zero-padded batch in CHWN layout (the image index innermost). Row
    ``(c, i, j)`` of the patch matrix is what tap ``(i, j)`` of channel ``c`` sees at
    every output pixel of every image. With the images innermost, the values for one
    output row are ``OW`` runs of N contiguous numbers (for stride 1, a single run of
    ``OW*N``), so each copy is long and vectorised; in NCHW they would be runs of ``OW``
    (13 for the CIFAR layer), which left the copy loop scalar and 4x slower.
    ``prange`` over (tap, output row) pieces; each fills its own piece.
    """
    images, channels = xc.shape[3], xc.shape[0]
    taps = channels * kh * kw
    for t in prange(taps * oh):
        tap, r = t // oh, t % oh
        c, i, j = tap // (kh * kw), tap // kw % kh, tap % kw
        dst = patches[tap, r]
        for q in range(ow):
            src, run = xc[c, r * sh + i, q * sw + j], dst[q * images : (q + 1) * images]
            for m in range(images):
                run[m] = src[m]


@njit(**_PARALLEL)
def _col2im_kernel(grad_patches, kh, kw, sh, sw, oh, ow, grad_xc):
    """The adjoint of ``_im2col_kernel``: add every patch-matrix entry back onto its pixel.

    Patches overlap, so several entries land on one pixel. ``prange`` over the image
    rows ``(c, h)`` of ``grad_xc``: the one iteration owning a row gathers everything
    that lands on it (every tap row ``i`` and output row ``r`` with ``r*sh + i = h``)
    in a fixed order, so there is no race and no run-to-run variation.
    """
    channels, height, images = grad_xc.shape[0], grad_xc.shape[1], grad_xc.shape[3]
    for t in prange(channels * height):
        c, h = t // height, t % height
        for i in range(kh):
            r = (h - i) // sh
            if h < i or r * sh != h - i or r >= oh:
                continue
            for j in range(kw):
                src = grad_patches[(c * kh + i) * kw + j, r]
                for q in range(ow):
                    dst, run = grad_xc[c, h, q * sw + j], src[q * images : (q + 1) * images]
                    for m in range(images):
                        dst[m] += run[m]


def _images_last(x):
    """``(N, ...) -> (..., N)``: a C-contiguous copy with the image index innermost."""
    return np.ascontiguousarray(np.moveaxis(x, 0, -1))


def _images_first(x):
    """``(..., N) -> (N, ...)``: the inverse of :func:`_images_last`."""
    return np.ascontiguousarray(np.moveaxis(x, -1, 0))


def _conv_setup(x_shape, w_shape, stride, padding):
    """Normalised ``(sh, sw), (ph, pw), (oh, ow)`` of an NCHW convolution."""
    check_conv_shapes(x_shape, w_shape)
    (sh, sw), (ph, pw) = as_pair(stride, "stride"), as_pair(padding, "padding")
    oh, ow = conv_output_hw(x_shape[2:], w_shape[2:], (sh, sw), (ph, pw))
    return (sh, sw), (ph, pw), (oh, ow)


def _patch_matrix(x, kh, kw, stride, padding, out_hw):
    """im2col of the zero-padded batch: ``(1, C*KH*KW, OH*OW*N)``, pixel-major, image-minor."""
    (sh, sw), (ph, pw), (oh, ow) = stride, padding, out_hw
    xc = _images_last(x)  # (C, H, W, N)
    if ph or pw:
        xc = np.pad(xc, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
    patches = np.empty((x.shape[1] * kh * kw, oh, ow * x.shape[0]), dtype=x.dtype)
    _im2col_kernel(xc, kh, kw, sh, sw, oh, ow, patches)
    return patches.reshape(1, patches.shape[0], -1)


def _check_grad_shape(name, grad_out, expected):
    if grad_out.shape != tuple(expected):
        raise ValueError(f"{name}: grad_out has shape {grad_out.shape}, expected "
                         f"{tuple(expected)}")


def conv2d(x, w, stride=1, padding=0):
    """NCHW convolution (cross-correlation): ``x (N, C, H, W)``, ``w (O, C, KH, KW)``.

    Returns ``(N, O, OH, OW)``. One GEMM for the whole batch: ``Y = W @ P`` with the
    weight as ``W (O, C*KH*KW)`` and the patch matrix ``P (C*KH*KW, OH*OW*N)`` (im2col
    with the image index innermost), on the outer-product kernel, whose rows of C are
    then ``OH*OW*N`` long. ``Y (O, OH, OW, N)`` is moved back to NCHW at the end.
    """
    x, w = _float_arrays(x, w)
    stride, padding, (oh, ow) = _conv_setup(x.shape, w.shape, stride, padding)
    n, filters, kh, kw = x.shape[0], w.shape[0], w.shape[2], w.shape[3]
    patches = _patch_matrix(x, kh, kw, stride, padding, (oh, ow))
    out = _gemm_ab(w.reshape(1, filters, -1), patches)  # (1, O, OH*OW*N)
    return _images_first(out.reshape(filters, oh, ow, n))


def conv2d_backward_input(grad_out, w, x_shape, stride=1, padding=0):
    """``dL/dx (N, C, H, W)`` of :func:`conv2d`, given ``dL/dout (N, O, OH, OW)``.

    ``dP = W.T @ G`` (outer-product GEMM, k = O, with ``G (O, OH*OW*N)`` the output
    gradient with the image index moved innermost) is the gradient of every entry of
    the patch matrix; col2im adds the entries back onto the zero-padded images, which
    are then cropped and moved back to NCHW.
    """
    grad_out, w = _float_arrays(grad_out, w)
    x_shape = tuple(int(s) for s in x_shape)
    (sh, sw), (ph, pw), (oh, ow) = _conv_setup(x_shape, w.shape, stride, padding)
    n, c, h, width = x_shape
    filters, kh, kw = w.shape[0], w.shape[2], w.shape[3]
    _check_grad_shape("conv2d_backward_input", grad_out, (n, filters, oh, ow))
    grads = _images_last(grad_out).reshape(1, filters, -1)
    w_t = _transposed(w.reshape(1, filters, -1))  # (1, C*KH*KW, O)
    grad_patches = _gemm_ab(w_t, grads).reshape(c * kh * kw, oh, ow * n)
    grad_xc = np.zeros((c, h + 2 * ph, width + 2 * pw, n), dtype=grad_out.dtype)
    _col2im_kernel(grad_patches, kh, kw, sh, sw, oh, ow, grad_xc)
    return _images_first(grad_xc[:, ph : ph + h, pw : pw + width])


def conv2d_backward_weight(grad_out, x, w_shape, stride=1, padding=0):
    """``dL/dw (O, C, KH, KW)`` of :func:`conv2d`, given ``dL/dout (N, O, OH, OW)``.

    ``dW = G @ P.T`` with ``G (O, OH*OW*N)`` and ``P (C*KH*KW, OH*OW*N)``: both have one
    contiguous row per filter / tap running over every pixel of every image, so this is
    the inner-product GEMM with a long k = N*OH*OW, the sum over the batch included.
    """
    grad_out, x = _float_arrays(grad_out, x)
    w_shape = tuple(int(s) for s in w_shape)
    stride, padding, (oh, ow) = _conv_setup(x.shape, w_shape, stride, padding)
    n, filters = x.shape[0], w_shape[0]
    _check_grad_shape("conv2d_backward_weight", grad_out, (n, filters, oh, ow))
    grads = _images_last(grad_out).reshape(1, filters, -1)
    patches = _patch_matrix(x, w_shape[2], w_shape[3], stride, padding, (oh, ow))
    return _gemm_abt(grads, patches).reshape(w_shape)


# =========================================================================== pooling


@njit(parallel=True, cache=True)
def _max_pool_kernel(x, kh, kw, sh, sw, out, indices):
    """Window maxima of every plane; ``prange`` over planes (image, channel).

    ``indices`` holds ``h * W + w`` of each maximum (first one on ties; a NaN counts
    as the maximum). No fastmath here: comparisons must see NaN as NaN.
    """
    planes, _, width = x.shape
    oh, ow = out.shape[1], out.shape[2]
    for t in prange(planes):
        for r in range(oh):
            for q in range(ow):
                best_h, best_w = r * sh, q * sw
                best = x[t, best_h, best_w]
                for i in range(kh):
                    for j in range(kw):
                        value = x[t, r * sh + i, q * sw + j]
                        if value > best or (value != value and best == best):
                            best, best_h, best_w = value, r * sh + i, q * sw + j
                out[t, r, q] = best
                indices[t, r, q] = best_h * width + best_w


@njit(parallel=True, cache=True)
def _max_pool_backward_kernel(grad_out, indices, grad_x):
    """``grad_x[t].flat[indices[t, k]] += grad_out[t, k]``; ``prange`` over planes, so
    overlapping windows of one plane are summed by the one thread that owns it."""
    planes, outputs = grad_out.shape
    for t in prange(planes):
        for k in range(outputs):
            grad_x[t, indices[t, k]] += grad_out[t, k]


@njit(parallel=True, cache=True)
def _avg_pool_kernel(x, kh, kw, sh, sw, out):
    """Window means of every plane; ``prange`` over planes."""
    planes = x.shape[0]
    oh, ow = out.shape[1], out.shape[2]
    for t in prange(planes):
        for r in range(oh):
            for q in range(ow):
                total = out[t, r, q]
                for i in range(kh):
                    for j in range(kw):
                        total += x[t, r * sh + i, q * sw + j]
                out[t, r, q] = total / (kh * kw)


@njit(parallel=True, cache=True)
def _avg_pool_backward_kernel(grad_out, kh, kw, sh, sw, grad_x):
    """Each window spreads ``grad / (kh * kw)`` over its pixels; ``prange`` over planes."""
    planes, oh, ow = grad_out.shape
    for t in prange(planes):
        for r in range(oh):
            for q in range(ow):
                share = grad_out[t, r, q] / (kh * kw)
                for i in range(kh):
                    for j in range(kw):
                        grad_x[t, r * sh + i, q * sw + j] += share


def _pool_setup(x, kernel_size, stride):
    (x,) = _float_arrays(x)
    if x.ndim != 4:
        raise ValueError(f"pooling expects a 4-D (N, C, H, W) array, got shape {x.shape}")
    kh, kw = as_pair(kernel_size, "kernel_size")
    sh, sw = as_pair(kernel_size if stride is None else stride, "stride")
    oh, ow = conv_output_hw(x.shape[2:], (kh, kw), (sh, sw), 0)
    return x, (kh, kw), (sh, sw), (oh, ow)


def max_pool2d(x, kernel_size, stride=None):
    """Max pooling (no padding) -> ``(out, indices)``; ``stride`` defaults to the window."""
    x, (kh, kw), (sh, sw), (oh, ow) = _pool_setup(x, kernel_size, stride)
    n, c, h, w = x.shape
    out = np.empty((n * c, oh, ow), dtype=x.dtype)
    indices = np.empty((n * c, oh, ow), dtype=np.int64)
    _max_pool_kernel(x.reshape(n * c, h, w), kh, kw, sh, sw, out, indices)
    return out.reshape(n, c, oh, ow), indices.reshape(n, c, oh, ow)


def max_pool2d_backward(grad_out, indices, x_shape):
    """``dL/dx`` of :func:`max_pool2d`: each gradient goes back to its window's maximum."""
    (grad_out,) = _float_arrays(grad_out)
    indices = np.ascontiguousarray(indices, dtype=np.int64)
    n, c, h, w = (int(s) for s in x_shape)
    if grad_out.ndim != 4 or indices.shape != grad_out.shape or grad_out.shape[:2] != (n, c):
        raise ValueError(f"max_pool2d_backward: grad_out {grad_out.shape} and indices "
                         f"{indices.shape} do not match input {(n, c, h, w)}")
    if indices.size and (indices.min() < 0 or indices.max() >= h * w):
        raise ValueError(f"max_pool2d_backward: indices must lie in [0, {h * w}) for a "
                         f"{h}x{w} input (the kernels do not bounds-check)")
    grad_x = np.zeros((n * c, h * w), dtype=grad_out.dtype)
    _max_pool_backward_kernel(grad_out.reshape(n * c, -1), indices.reshape(n * c, -1),
                              grad_x)
    return grad_x.reshape(n, c, h, w)


def avg_pool2d(x, kernel_size, stride=None):
    """Average pooling (no padding); ``stride`` defaults to the window size."""
    x, (kh, kw), (sh, sw), (oh, ow) = _pool_setup(x, kernel_size, stride)
    n, c, h, w = x.shape
    out = np.zeros((n * c, oh, ow), dtype=x.dtype)
    _avg_pool_kernel(x.reshape(n * c, h, w), kh, kw, sh, sw, out)
    return out.reshape(n, c, oh, ow)


def avg_pool2d_backward(grad_out, x_shape, kernel_size, stride=None):
    """``dL/dx`` of :func:`avg_pool2d`: every window spreads its gradient evenly."""
    (grad_out,) = _float_arrays(grad_out)
    n, c, h, w = (int(s) for s in x_shape)
    kh, kw = as_pair(kernel_size, "kernel_size")
    sh, sw = as_pair(kernel_size if stride is None else stride, "stride")
    oh, ow = conv_output_hw((h, w), (kh, kw), (sh, sw), 0)
    if grad_out.shape != (n, c, oh, ow):
        raise ValueError(f"avg_pool2d_backward: grad_out has shape {grad_out.shape}, "
                         f"expected {(n, c, oh, ow)}")
    grad_x = np.zeros((n * c, h, w), dtype=grad_out.dtype)
    _avg_pool_backward_kernel(grad_out.reshape(n * c, oh, ow), kh, kw, sh, sw, grad_x)
    return grad_x.reshape(n, c, h, w)
