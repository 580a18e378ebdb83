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

A convolution is im2col plus these GEMMs, in one of two layouts chosen per shape (the
section "convolution" below has the details):

* **whole batch, CHWN** (output planes under ``IMAGE_LAYOUT_PIXELS`` pixels: the CIFAR
  32 -> 64 layer's 13x13, the digits' 8x8): the batch is folded into the columns, the
  patch matrix ``P (C*KH*KW, OH*OW*N)`` has one row per filter tap ``(c, i, j)`` and one
  column per (output pixel, image), the image index innermost (built from the input in
  CHWN layout, so every copy is a long contiguous run). With the weight
  ``W (O, C*KH*KW)`` and the output gradient as ``G (O, OH*OW*N)``: forward ``Y = W @ P``,
  input gradient ``dP = W.T @ G`` (then col2im), weight gradient ``dW = G @ P.T`` (inner
  product, k = ``OH*OW*N``). One GEMM per pass, with rows of C ``OH*OW*N`` long (per
  image they would be ``OH*OW``, 169 or 64: too short to vectorise well).
* **per image, NCHW** (larger planes: the first CIFAR layer's 30x30): ``prange`` over
  fixed groups of images; each group pushes its images one at a time through an
  L2-resident scratch patch matrix ``P[n] (C*KH*KW, OH*OW)`` and the same GEMM kernels
  write straight into the image's NCHW planes (col2im straight into ``grad_x[n]``). No
  batch-sized patch matrix and no NCHW <-> CHWN transposes (7 MB each for that layer).
  The weight gradient sums each group's images into the group's own partial, and the
  partials are added in group order.
* **per image, products by BLAS** (many taps and filters: the CIFAR 32 -> 64 layer,
  288 x 64): the per-image structure, but the products are single-threaded BLAS calls
  (scipy's OpenBLAS sgemm/dgemm, the library Numba uses for ``np.dot``) inside our
  ``prange`` over image groups. With stride 1 there is no im2col at all: on a *wide
  grid* the pixels one filter tap reads form a strided view of the image, and each
  pass is one BLAS product per tap on such views (``_conv_*shifted_kernel``, through
  :func:`~tinygrad_lite.kernels.blas.strided_gemm`). Other strides: im2col of one image
  into a scratch matrix and one ``np.dot`` (``_conv_*blas_kernel``).

See ``docs/kernels.md`` for the measurements.
"""

from __future__ import annotations

import contextlib
import os
import threading

import numba
import numpy as np
from numba import njit, prange

from .blas import strided_gemm
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
    A k-block ending in 3 rows of B (27 taps: a 3x3 convolution of 3 channels) takes
    one more eight-row pass with three rows of B; 1 or 2 leftover rows go row by row.
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
    if p1 - p4 == 3:  # the last 1-3 rows of B in one more pass over the eight C rows
        b0, b1, b2 = b[p4, j0:j1], b[p4 + 1, j0:j1], b[p4 + 2, j0:j1]
        x00, x01, x02 = a[i, p4], a[i, p4 + 1], a[i, p4 + 2]
        x10, x11, x12 = a[i + 1, p4], a[i + 1, p4 + 1], a[i + 1, p4 + 2]
        x20, x21, x22 = a[i + 2, p4], a[i + 2, p4 + 1], a[i + 2, p4 + 2]
        x30, x31, x32 = a[i + 3, p4], a[i + 3, p4 + 1], a[i + 3, p4 + 2]
        x40, x41, x42 = a[i + 4, p4], a[i + 4, p4 + 1], a[i + 4, p4 + 2]
        x50, x51, x52 = a[i + 5, p4], a[i + 5, p4 + 1], a[i + 5, p4 + 2]
        x60, x61, x62 = a[i + 6, p4], a[i + 6, p4 + 1], a[i + 6, p4 + 2]
        x70, x71, x72 = a[i + 7, p4], a[i + 7, p4 + 1], a[i + 7, p4 + 2]
        for j in range(j1 - j0):
            v0, v1, v2 = b0[j], b1[j], b2[j]
            c0[j] += x00 * v0 + x01 * v1 + x02 * v2
            c1[j] += x10 * v0 + x11 * v1 + x12 * v2
            c2[j] += x20 * v0 + x21 * v1 + x22 * v2
            c3[j] += x30 * v0 + x31 * v1 + x32 * v2
            c4[j] += x40 * v0 + x41 * v1 + x42 * v2
            c5[j] += x50 * v0 + x51 * v1 + x52 * v2
            c6[j] += x60 * v0 + x61 * v1 + x62 * v2
            c7[j] += x70 * v0 + x71 * v1 + x72 * v2
    else:
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


# The CPU convolution has two layouts and picks one per shape (``_use_image_layout``):
#
# * **per image** (output planes of at least ``IMAGE_LAYOUT_PIXELS`` pixels, e.g. the
#   first CIFAR layer, 30x30): everything stays NCHW. The batch is cut into at most
#   ``IMAGE_GROUPS`` groups of consecutive images (the cut depends on the batch size
#   only); ``prange`` runs over the groups, and each group owns one scratch patch matrix
#   ``(C*KH*KW, OH*OW)`` that stays in L2 while its images pass through it one by one:
#   im2col of image n, then a GEMM straight into ``out[n]`` (or, backwards, a GEMM into
#   the scratch and col2im straight into ``grad_x[n]``). Nothing batch-sized is
#   written besides the result, and no NCHW <-> CHWN transposes are needed: for the
#   3 -> 32 CIFAR layer those two 7 MB copies cost more than the GEMM itself.
# * **whole batch, CHWN** (small planes: the 32 -> 64 CIFAR layer's 13x13, the digits'
#   8x8): one GEMM per pass over all images, with the image index innermost in the
#   patch matrix so its rows are ``OH*OW*N`` long (per image they would be 169 or 64
#   values, too short to vectorise). The batch moves NCHW -> CHWN and back with
#   ``_to_images_last`` / ``_to_images_first``, parallel blocked transposes that also
#   pad and crop in the same pass (replacing ``np.moveaxis`` + ``np.pad`` copies).

IMAGE_LAYOUT_PIXELS = 256
"""Output planes with at least this many pixels (``OH*OW``) use the per-image layout."""
IMAGE_GROUPS = 16
"""At most this many image groups (``prange`` iterations, scratch buffers and partial
weight gradients) in the per-image layout. A constant, so the weight gradient's
summation order (and its bits) depend on the batch size only, not on the thread count."""
IMAGE_COLS = 512
"""Per-image GEMMs build C in column blocks this wide (8 rows of C stay in L1)."""


# --------------------------------------------------- whole-batch (CHWN) layout


@njit(**_PARALLEL)
def _to_images_last(x, ph, pw, out):
    """``out[c, h + ph, w + pw, n] = x[n, c, h, w]``: NCHW -> zero-padded CHWN.

    ``out`` comes zeroed where it is padding. ``prange`` over image rows ``(c, h)``; an
    iteration owns the ``W x N`` block ``out[c, h + ph, pw:pw + W]`` (a few KiB, in L1)
    and fills it image by image: each image's row is read contiguously and scattered
    down one column of the block. Padding happens in the same pass. Single-thread:
    0.02 ms for the digits batch (``np.moveaxis`` copy 0.04, plus ``np.pad``), 0.07 for
    the 3-channel CIFAR batch (0.55), 0.19 for the 32-channel one (0.16); used for
    padded inputs only (see :func:`_chwn`).
    """
    images, channels, height, width = x.shape
    for t in prange(channels * height):
        c, h = t // height, t % height
        dst = out[c, h + ph, pw : pw + width]
        for n in range(images):
            src = x[n, c, h]
            for w in range(width):
                dst[w, n] = src[w]


@njit(**_PARALLEL)
def _to_images_first(src, ph, pw, out):
    """``out[n, c, h, w] = src[c, h + ph, w + pw, n]``: (padded) CHWN -> cropped NCHW.

    ``prange`` over image rows ``(c, h)``; the ``W x N`` block of the source row is read
    (it stays in L1) once per image, each time writing W contiguous values of ``out``.
    Cropping happens in the same pass. Single-thread, the 32 -> 64 CIFAR layer's output
    (2.8 MB): 0.22 ms against 0.62 for ``np.moveaxis`` + a contiguous copy.
    """
    images, channels, height, width = out.shape
    for t in prange(channels * height):
        c, h = t // height, t % height
        block = src[c, h + ph, pw : pw + width]
        for n in range(images):
            dst = out[n, c, h]
            for w in range(width):
                dst[w] = block[w, n]


def _chwn(x, ph=0, pw=0):
    """``(N, C, H, W) -> (C, H + 2ph, W + 2pw, N)``, zero-padded, C-contiguous.

    Without padding, numpy's own transposing copy: for the 32 -> 64 CIFAR input the
    kernel's copy alone is about as fast (0.18 vs 0.16 ms), yet the im2col + GEMM after
    it measured 0.1-0.5 ms slower, end to end (the cause was not found; for the digits
    batch the kernel was 0.02 ms faster, too little to special-case). With padding, the
    kernel pads in the same pass and saves ``np.pad``'s second copy.
    """
    if not (ph or pw):
        return np.ascontiguousarray(np.moveaxis(x, 0, -1))
    n, c, h, w = x.shape
    out = np.zeros((c, h + 2 * ph, w + 2 * pw, n), dtype=x.dtype)
    _to_images_last(x, ph, pw, out)
    return out


def _nchw(src, ph=0, pw=0):
    """``(C, H + 2ph, W + 2pw, N) -> (N, C, H, W)``: the inverse of :func:`_chwn`."""
    c, hp, wp, n = src.shape
    out = np.empty((n, c, hp - 2 * ph, wp - 2 * pw), dtype=src.dtype)
    _to_images_first(src, ph, pw, out)
    return out


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


def _patch_matrix(x, kh, kw, stride, padding, out_hw):
    """im2col of the zero-padded batch: ``(1, C*KH*KW, OH*OW*N)``, pixel-major, image-minor."""
    (sh, sw), (ph, pw), (oh, ow) = stride, padding, out_hw
    xc = _chwn(x, ph, pw)  # (C, H + 2ph, W + 2pw, N)
    patches = np.empty((x.shape[1] * kh * kw, oh, ow * x.shape[0]), dtype=x.dtype)
    _im2col_kernel(xc, kh, kw, sh, sw, oh, ow, patches)
    return patches.reshape(1, patches.shape[0], -1)


# -------------------------------------------------------------- per-image layout


@njit(**_SERIAL)
def _valid_cols(j, sw, pw, ow, width):
    """Output columns ``q0 <= q < q1`` whose tap-``j`` input column ``q*sw + j - pw`` lies
    inside the ``width``-wide image (the others read zero padding)."""
    q0 = 0 if j >= pw else -(-(pw - j) // sw)
    q1 = (width - 1 + pw - j) // sw + 1 if width - 1 + pw - j >= 0 else 0
    q0 = min(q0, ow)
    return q0, max(q0, min(q1, ow))


@njit(**_SERIAL)
def _im2col_image(x, kh, kw, sh, sw, ph, pw, oh, ow, patches):
    """``patches[(c, i, j), r*OW + q] = x[c, r*sh + i - ph, q*sw + j - pw]`` (0 outside).

    One image ``x (C, H, W)`` into a ``(C*KH*KW, OH*OW)`` matrix, serial (the caller
    runs one image per thread). Loop order: tap row -> output row -> a zero-filled
    left border, one copy of ``q1 - q0`` input values (contiguous for stride 1), a
    zero-filled right border: no per-pixel bounds test in the copy loop.
    """
    channels, height, width = x.shape
    for c in range(channels):
        for i in range(kh):
            for j in range(kw):
                row = patches[(c * kh + i) * kw + j]
                q0, q1 = _valid_cols(j, sw, pw, ow, width)
                w0 = q0 * sw + j - pw
                for r in range(oh):
                    dst = row[r * ow : (r + 1) * ow]
                    h = r * sh + i - ph
                    if h < 0 or h >= height:
                        dst[:] = 0
                        continue
                    dst[:q0] = 0
                    dst[q1:] = 0
                    run = dst[q0:q1]
                    if sw == 1:
                        src = x[c, h, w0 : w0 + (q1 - q0)]
                        for q in range(q1 - q0):
                            run[q] = src[q]
                    else:
                        src = x[c, h, w0:]
                        for q in range(q1 - q0):
                            run[q] = src[q * sw]


@njit(**_SERIAL)
def _col2im_image(grad_patches, kh, kw, sh, sw, ph, pw, oh, ow, grad_x):
    """The adjoint of ``_im2col_image``: ``grad_x[c, h, w] += grad_patches[...]`` for
    every entry that im2col copied from ``(c, h, w)`` (padding entries are dropped).

    Serial, one image; every pixel receives its terms in the same (tap, row) order.
    """
    channels, height, width = grad_x.shape
    for c in range(channels):
        for i in range(kh):
            for j in range(kw):
                row = grad_patches[(c * kh + i) * kw + j]
                q0, q1 = _valid_cols(j, sw, pw, ow, width)
                w0 = q0 * sw + j - pw
                for r in range(oh):
                    h = r * sh + i - ph
                    if h < 0 or h >= height:
                        continue
                    run = row[r * ow + q0 : r * ow + q1]
                    if sw == 1:
                        dst = grad_x[c, h, w0 : w0 + (q1 - q0)]
                        for q in range(q1 - q0):
                            dst[q] += run[q]
                    else:
                        dst = grad_x[c, h, w0:]
                        for q in range(q1 - q0):
                            dst[q * sw] += run[q]


@njit(**_PARALLEL)
def _conv_images_kernel(x, wm, kh, kw, sh, sw, ph, pw, oh, ow, scratch, kc, out):
    """``out[n] (O, OH*OW) += wm (O, C*KH*KW) @ im2col(x[n])`` for every image.

    ``prange`` over image groups (``scratch.shape[0]`` of them); a group's images go
    through its own scratch patch matrix, which stays in L2 between im2col and the GEMM.
    The GEMM is the outer-product tile kernel, ``IMAGE_COLS`` columns at a time, writing
    straight into the image's NCHW output planes. Each image belongs to one group.
    """
    images, groups = x.shape[0], scratch.shape[0]
    filters, pixels = wm.shape[0], oh * ow
    for g in prange(groups):
        patches = scratch[g]
        for n in range(g * images // groups, (g + 1) * images // groups):
            _im2col_image(x[n], kh, kw, sh, sw, ph, pw, oh, ow, patches)
            for j0 in range(0, pixels, IMAGE_COLS):
                _axpy_tile(wm, patches, out[n], 0, filters, j0, min(j0 + IMAGE_COLS, pixels),
                           kc)


@njit(**_PARALLEL)
def _conv_input_images_kernel(grads, wt, kh, kw, sh, sw, ph, pw, oh, ow, scratch, kc,
                              grad_x):
    """``grad_x[n] += col2im(wt (C*KH*KW, O) @ grads[n] (O, OH*OW))`` for every image.

    ``prange`` over image groups as in ``_conv_images_kernel``: the patch gradient of
    one image is built in the group's scratch matrix (outer-product GEMM, k = O) and
    added onto that image's own plane of ``grad_x``, which no other iteration touches.
    """
    images, groups = grads.shape[0], scratch.shape[0]
    taps, pixels = wt.shape[0], oh * ow
    for g in prange(groups):
        patches = scratch[g]
        for n in range(g * images // groups, (g + 1) * images // groups):
            patches[:taps] = 0
            for j0 in range(0, pixels, IMAGE_COLS):
                _axpy_tile(wt, grads[n], patches, 0, taps, j0, min(j0 + IMAGE_COLS, pixels),
                           kc)
            _col2im_image(patches, kh, kw, sh, sw, ph, pw, oh, ow, grad_x[n])


@njit(**_PARALLEL)
def _conv_weight_images_kernel(grads, x, kh, kw, sh, sw, ph, pw, oh, ow, scratch, kc,
                               partial):
    """``partial[g] += grads[n] (O, OH*OW) @ im2col(x[n]).T`` over the images n of group g.

    The inner-product GEMM with k = OH*OW (both operands have contiguous rows). Each
    group sums its own images, in order, into its own partial weight gradient; the
    caller adds the partials in group order. Scratch rows past ``C*KH*KW`` stay zero:
    they round the tap count up to a multiple of 4 so every column of the partial goes
    through the 4x4 micro-kernel (their columns of ``partial`` are dropped).
    """
    images, groups = x.shape[0], scratch.shape[0]
    filters, rows = partial.shape[1], partial.shape[2]
    for g in prange(groups):
        patches, acc = scratch[g], partial[g]
        for n in range(g * images // groups, (g + 1) * images // groups):
            _im2col_image(x[n], kh, kw, sh, sw, ph, pw, oh, ow, patches)
            _dot_tile(grads[n], patches, acc, 0, filters, 0, rows, kc)



# ------------------------------------------------- per-image layout, BLAS products
#
# For a convolution with many taps and many filters (the CIFAR 32 -> 64 layer:
# 288 x 64) the GEMM is nearly all of the time, and there our kernels reach ~70 GFLOP/s
# per core against ~83-88 for OpenBLAS's hand-written sgemm on these shapes (the
# library scipy ships, which Numba calls for ``np.dot`` on contiguous 2-D float32/64
# arrays). These kernels keep the per-image structure above (im2col/col2im of one image
# into its group's scratch matrix) and hand only the product to BLAS, one
# single-threaded call per image inside the ``prange`` over image groups: the
# parallelism stays ours, and so do the bits (each image's product is one BLAS call on
# one thread, with shapes that depend only on the problem). See ``_blas_conv`` for the
# shape rule and ``_single_threaded_blas`` for why BLAS must not start threads here.
#
# Each group has *two* scratch matrices, used by alternate images. With one, writing
# image n + 1's patches over the matrix that sgemm had just read for image n made the
# forward pass ~20% slower single-threaded (7.2 ms against 6.0 for the 32 -> 64 layer;
# measured, cause not pinned down); with two, im2col writes the matrix read one call
# earlier and the cost is gone.


@njit(**_PARALLEL)
def _conv_blas_kernel(x, wm, kh, kw, sh, sw, ph, pw, oh, ow, scratch, out):
    """``out[n] (O, OH*OW) = wm (O, C*KH*KW) @ im2col(x[n])``, the product by BLAS.

    Loop order: ``prange`` over image groups -> image -> im2col into the group's scratch
    (L2-resident) -> one ``np.dot`` writing straight into the image's NCHW planes.
    """
    images, groups = x.shape[0], scratch.shape[0]
    for g in prange(groups):
        for n in range(g * images // groups, (g + 1) * images // groups):
            patches = scratch[g, n % 2]
            _im2col_image(x[n], kh, kw, sh, sw, ph, pw, oh, ow, patches)
            np.dot(wm, patches, out[n])


@njit(**_PARALLEL)
def _conv_input_blas_kernel(grads, wt, kh, kw, sh, sw, ph, pw, oh, ow, scratch, grad_x):
    """``grad_x[n] = col2im(wt (C*KH*KW, O) @ grads[n] (O, OH*OW))``, the product by BLAS.

    ``prange`` over image groups; per image one ``np.dot`` overwrites the group's scratch
    with the patch gradient, and col2im adds it onto ``grad_x[n]`` (zeroed by the caller),
    which no other iteration touches.
    """
    images, groups = grads.shape[0], scratch.shape[0]
    for g in prange(groups):
        for n in range(g * images // groups, (g + 1) * images // groups):
            patches = scratch[g, n % 2]
            np.dot(wt, grads[n], patches)
            _col2im_image(patches, kh, kw, sh, sw, ph, pw, oh, ow, grad_x[n])


@njit(**_PARALLEL)
def _conv_weight_blas_kernel(grads, x, kh, kw, sh, sw, ph, pw, oh, ow, scratch, products,
                             partial):
    """``partial[g] = sum over the images n of group g of im2col(x[n]) @ grads[n].T``.

    The weight gradient transposed, ``(C*KH*KW, O)``: ``P[n] @ G[n].T`` ran sgemm ~5%
    faster than ``G[n] @ P[n].T`` here (M = 288, N = 64 rather than the reverse, with
    k = OH*OW = 169 either way); the caller transposes the 72 KiB result once.
    ``prange`` over image groups; per image: im2col into the group's scratch, one
    ``np.dot`` into the group's ``products[g]``, added onto ``partial[g]`` image by
    image, in order. The caller adds the partials in group order.

    Tried and dropped: the group's images side by side along k (one call with
    k = 4*169): single-threaded 9.0 ms against 7.7, as the group's patch matrix (780 KB)
    and gradients no longer stay in L2 next to sgemm's own packing buffers.
    """
    images, groups = x.shape[0], scratch.shape[0]
    for g in prange(groups):
        product, acc = products[g], partial[g]
        for n in range(g * images // groups, (g + 1) * images // groups):
            patches = scratch[g, n % 2]
            _im2col_image(x[n], kh, kw, sh, sw, ph, pw, oh, ow, patches)
            np.dot(patches, grads[n].T, product)
            for f in range(acc.shape[0]):
                dst, src = acc[f], product[f]
                for t in range(dst.shape[0]):
                    dst[t] += src[t]



# ------------------------------------ per image, tap-shifted BLAS products (stride 1)
#
# With stride 1, im2col is not needed at all. Compute each image's output on a *wide
# grid*: ``OH x Wp`` columns instead of ``OH x OW`` (``Hp, Wp``: the padded input's
# height and width), so that output column ``t = r*Wp + q`` of tap ``(i, j)`` reads
# input pixel ``t + i*Wp + j`` of the flat padded plane. For one tap the pixels read by
# every wide column of every channel then form a ``(C, cols)`` *view* of the image with
# rows ``Hp*Wp`` apart: a strided matrix BLAS takes as it is (``strided_gemm``). The
# convolution is nine accumulating products per image (one per tap of a 3x3 filter):
#
#     forward          Y_wide (O, cols)    += W_ij (O, C)  @ X_ij (C, cols)
#     input gradient   dX_ij  (C, cols)    += W_ij.T (C, O) @ G_wide (O, cols)
#     weight gradient  dW_ij  (O, C)       += G_wide (O, cols) @ X_ij.T (cols, C)
#
# where ``X_ij`` starts at offset ``i*Wp + j`` and ``cols = OH*Wp - (KW - 1)`` (the last
# wide row is cut where it would run past the plane). The ``Wp - OW`` extra columns of
# each wide row are the price: ``Wp/OW`` more GEMM work (15/13 for the CIFAR 32 -> 64
# layer), against an im2col copy of ``C*KH*KW`` runs of ``OW`` values per output row
# saved (13 values: too short to copy fast). Their forward values are dropped by the
# crop to ``OH x OW``; in the gradients ``G_wide`` holds zeros there, so the input
# gradient adds ``W.T @ 0`` (the caller checks that W is finite: ``inf * 0`` is NaN) and
# the weight gradient ``0 * x`` (the caller checks that x is finite). A development
# measurement on the 32 -> 64 layer, two threads, against the im2col BLAS kernels in one
# process: forward 2.8-3.0 ms against 4.7-5.3, input gradient 2.7-3.0 against 3.7-3.9,
# weight gradient 4.1-4.5 against 5.1-5.6. The shipped figures: bench_kernels.py.


@njit(**_SERIAL)
def _padded_plane(x, ph, pw, padded):
    """Image ``x (C, H, W)`` as one flat array of zero-padded planes.

    Without padding the image itself, flattened (a view). With padding its rows are
    copied into ``padded``, whose borders are zero and never written.
    """
    channels, height, width = x.shape
    if ph == 0 and pw == 0:
        return x.reshape(-1)
    hp, wp = height + 2 * ph, width + 2 * pw
    for c in range(channels):
        for r in range(height):
            src, dst = x[c, r], padded[(c * hp + r + ph) * wp + pw:]
            for q in range(width):
                dst[q] = src[q]
    return padded


@njit(**_SERIAL)
def _spread_to_wide(grad, oh, ow, wp, wide):
    """``wide[f, r*Wp + q] = grad[f, r*OW + q]`` for ``q < OW``; the other columns of
    ``wide`` (zero from the allocation) are never written, so they stay zero."""
    for f in range(grad.shape[0]):
        src, dst = grad[f], wide[f]
        for r in range(oh):
            run_in, run_out = src[r * ow:(r + 1) * ow], dst[r * wp:r * wp + ow]
            for q in range(ow):
                run_out[q] = run_in[q]


@njit(**_SERIAL)
def _crop_from_wide(wide, oh, ow, wp, out):
    """The inverse of ``_spread_to_wide``: ``out[f, r*OW + q] = wide[f, r*Wp + q]``."""
    for f in range(out.shape[0]):
        src, dst = wide[f], out[f]
        for r in range(oh):
            run_in, run_out = src[r * wp:r * wp + ow], dst[r * ow:(r + 1) * ow]
            for q in range(ow):
                run_out[q] = run_in[q]


@njit(**_PARALLEL)
def _conv_shifted_kernel(x, w_taps, kh, kw, ph, pw, oh, ow, padded, wide, out):
    """``out[n] = crop(sum over taps of W_ij @ X_ij)``, nine BLAS products per image.

    ``w_taps (KH*KW, O, C)``: the weight tap by tap. ``prange`` over image groups; per
    image: the padded plane (a view without padding), one ``strided_gemm`` per tap into
    the group's wide output (the first overwrites, the others accumulate), then the
    ``OH x OW`` crop copied into ``out[n] (O, OH*OW)``.
    """
    images, channels = x.shape[0], x.shape[1]
    groups, filters = wide.shape[0], w_taps.shape[1]
    hp, wp = x.shape[2] + 2 * ph, x.shape[3] + 2 * pw
    cols = oh * wp - (kw - 1)
    weights = w_taps.reshape(-1)
    for g in prange(groups):
        acc = wide[g]
        acc_flat = acc.reshape(-1)
        for n in range(g * images // groups, (g + 1) * images // groups):
            plane = _padded_plane(x[n], ph, pw, padded[g])
            for i in range(kh):
                for j in range(kw):
                    tap = i * kw + j
                    strided_gemm(weights, tap * filters * channels, channels, False,
                                 plane, i * wp + j, hp * wp, False,
                                 acc_flat, 0, oh * wp, filters, cols, channels,
                                 0.0 if tap == 0 else 1.0)
            _crop_from_wide(acc, oh, ow, wp, out[n])


@njit(**_PARALLEL)
def _conv_input_shifted_kernel(grads, w_taps_t, kh, kw, ph, pw, oh, ow, padded, wide,
                               grad_x):
    """``grad_x[n] = crop(sum over taps of W_ij.T @ G_wide)``, nine products per image.

    ``w_taps_t (KH*KW, C, O)``. Per image: ``G[n]`` spread onto the group's wide grid,
    then one accumulating ``strided_gemm`` per tap straight into the flat gradient
    planes at offset ``i*Wp + j``: ``grad_x[n]`` itself without padding (zeroed by the
    caller), else the group's padded planes, zeroed per image and cropped after.
    Overlapping taps are added one after the other, on one thread: no race.
    """
    images, filters = grads.shape[0], grads.shape[1]
    channels, height, width = grad_x.shape[1], grad_x.shape[2], grad_x.shape[3]
    groups = wide.shape[0]
    hp, wp = height + 2 * ph, width + 2 * pw
    cols = oh * wp - (kw - 1)
    weights = w_taps_t.reshape(-1)
    for g in prange(groups):
        acc = wide[g]
        acc_flat = acc.reshape(-1)
        for n in range(g * images // groups, (g + 1) * images // groups):
            _spread_to_wide(grads[n], oh, ow, wp, acc)
            if ph == 0 and pw == 0:
                target = grad_x[n].reshape(-1)
            else:
                target = padded[g]
                target[:] = 0
            for i in range(kh):
                for j in range(kw):
                    tap = i * kw + j
                    strided_gemm(weights, tap * channels * filters, filters, False,
                                 acc_flat, 0, oh * wp, False,
                                 target, i * wp + j, hp * wp, channels, cols, filters, 1.0)
            if ph != 0 or pw != 0:
                for c in range(channels):
                    for r in range(height):
                        src, dst = target[(c * hp + r + ph) * wp + pw:], grad_x[n, c, r]
                        for q in range(width):
                            dst[q] = src[q]


@njit(**_PARALLEL)
def _conv_weight_shifted_kernel(grads, x, kh, kw, ph, pw, oh, ow, padded, wide, partial):
    """``partial[g, tap] (O, C) += G_wide @ X_ij.T`` over the images of group g, in order.

    Per image: ``G[n]`` spread onto the group's wide grid, the padded plane, one
    accumulating ``strided_gemm`` per tap (k = ``cols``). The caller adds the partials
    in group order and reorders ``(KH*KW, O, C)`` to ``(O, C, KH, KW)``. ``G @ X.T``
    here ran faster than ``X @ G.T`` (4.3 ms against 4.9 on two threads).
    """
    images, channels = x.shape[0], x.shape[1]
    groups, filters = wide.shape[0], grads.shape[1]
    hp, wp = x.shape[2] + 2 * ph, x.shape[3] + 2 * pw
    cols = oh * wp - (kw - 1)
    for g in prange(groups):
        acc = wide[g]
        acc_flat, sums = acc.reshape(-1), partial[g].reshape(-1)
        for n in range(g * images // groups, (g + 1) * images // groups):
            _spread_to_wide(grads[n], oh, ow, wp, acc)
            plane = _padded_plane(x[n], ph, pw, padded[g])
            for i in range(kh):
                for j in range(kw):
                    tap = i * kw + j
                    strided_gemm(acc_flat, 0, oh * wp, False,
                                 plane, i * wp + j, hp * wp, True,
                                 sums, tap * filters * channels, channels,
                                 filters, channels, cols, 1.0)


@njit(parallel=True, cache=True)
def _all_finite(x):
    """True when no entry of ``x`` is inf or NaN (no fastmath: it must see them)."""
    flat = x.reshape(-1)
    bad = 0
    for t in prange(flat.shape[0]):
        value = flat[t]
        bad += not (value - value == 0)
    return bad == 0



BLAS_MIN_TAPS, BLAS_MIN_FILTERS = 64, 32
"""Convolutions with at least this many taps (``C*KH*KW``) and filters use the BLAS
kernels above (see :func:`_blas_conv`)."""
WIDE_GRID_MAX = 1.25
"""Stride-1 convolutions that take BLAS use the tap-shifted kernels (wide grid of
``OH x Wp`` columns instead of ``OH x OW``) when ``Wp <= WIDE_GRID_MAX * OW``, the
im2col ones otherwise (``_shifted_conv``)."""
_BLAS_LIBRARIES = None


def _blas_libraries():
    """threadpoolctl controllers of every loaded BLAS library, [] without scipy.

    Numba's ``np.dot`` calls the BLAS behind ``scipy.linalg.cython_blas``, so that module
    is imported first (it loads scipy's OpenBLAS, a library separate from numpy's in the
    pip wheels; a conda install may share one). Looked up once: a fresh threadpoolctl
    scan of the loaded libraries costs about a millisecond.
    """
    global _BLAS_LIBRARIES
    if _BLAS_LIBRARIES is None:
        try:
            import scipy.linalg.cython_blas  # noqa: F401
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _BLAS_LIBRARIES = []
        else:
            _BLAS_LIBRARIES = ThreadpoolController().select(user_api="blas").lib_controllers
    return _BLAS_LIBRARIES


def _blas_conv(taps, filters):
    """True: the convolution's products go to BLAS (``_conv_*blas_kernel``).

    Only where the GEMM is big on both sides (the CIFAR 32 -> 64 layer: 288 taps, 64
    filters); with 9 or 27 taps (the digits layer, the first CIFAR layer) our kernels are
    as fast or faster and need no library call per image. Needs scipy (Numba's BLAS).
    """
    return taps >= BLAS_MIN_TAPS and filters >= BLAS_MIN_FILTERS and bool(_blas_libraries())


def _blas_scratch(n, taps, pixels, dtype):
    """Two ``(taps, pixels)`` patch matrices per image group, used alternately."""
    return np.empty((min(n, IMAGE_GROUPS), 2, taps, pixels), dtype=dtype)


def _shifted_conv(taps, filters, stride, padded_width, ow):
    """True: the tap-shifted BLAS kernels (``_conv_*shifted_kernel``) take the pass.

    Stride 1, a BLAS-sized GEMM (``_blas_conv``), and a wide grid at most
    ``WIDE_GRID_MAX`` times wider than the output (a 3x3 filter on a 15-pixel-wide
    image: 15/13; on a 6-pixel one the waste would be 6/4).
    """
    return (stride == (1, 1) and _blas_conv(taps, filters)
            and padded_width <= WIDE_GRID_MAX * ow)


def _shifted_scratch(n, filters, oh, x_shape, padding, dtype):
    """Per image group: a zeroed wide grid ``(O, OH*Wp)`` and zeroed padded planes
    ``(C*Hp*Wp,)`` (empty without padding: the kernels then read the image itself)."""
    (ph, pw), (_, c, h, w) = padding, x_shape
    groups = min(n, IMAGE_GROUPS)
    plane = c * (h + 2 * ph) * (w + 2 * pw) if ph or pw else 0
    wide = np.zeros((groups, filters, oh * (w + 2 * pw)), dtype=dtype)
    return wide, np.zeros((groups, plane), dtype=dtype)


_BLAS_LOCK = threading.Lock()
_BLAS_USERS = [0, []]  # calls inside _single_threaded_blas, thread counts to restore


@contextlib.contextmanager
def _single_threaded_blas():
    """Run every BLAS library on one thread inside the block, then restore its count.

    Each ``prange`` iteration calls BLAS on its own thread; an OpenBLAS left at its
    default would start its own workers inside every call (2 threads x 2 = 4 on 2
    cores). Setting the count is one ``openblas_set_num_threads`` call per library
    (microseconds); under the Numba backend, which limits BLAS to one thread already,
    nothing changes. Python threads running convolutions at once share one limit: the
    first to enter sets it, the last to leave restores it.
    """
    libraries = _blas_libraries()
    with _BLAS_LOCK:
        if _BLAS_USERS[0] == 0:
            _BLAS_USERS[1] = [library.num_threads for library in libraries]
            for library, threads in zip(libraries, _BLAS_USERS[1]):
                if threads != 1:
                    library.set_num_threads(1)
        _BLAS_USERS[0] += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _BLAS_USERS[0] -= 1
            if _BLAS_USERS[0] == 0:
                for library, threads in zip(libraries, _BLAS_USERS[1]):
                    if threads != 1:
                        library.set_num_threads(threads)

def _conv_setup(x_shape, w_shape, stride, padding):
    """Normalised ``(sh, sw), (ph, pw), (oh, ow)`` of an NCHW convolution."""
    check_conv_shapes(x_shape, w_shape)
    (sh, sw), (ph, pw) = as_pair(stride, "stride"), as_pair(padding, "padding")
    oh, ow = conv_output_hw(x_shape[2:], w_shape[2:], (sh, sw), (ph, pw))
    return (sh, sw), (ph, pw), (oh, ow)


def _use_image_layout(oh, ow):
    """Per-image layout for large output planes, whole-batch CHWN for small ones."""
    return oh * ow >= IMAGE_LAYOUT_PIXELS


def _image_scratch(n, taps, pixels, dtype):
    """Zeroed ``(groups, taps rounded up to 4, pixels)`` scratch patch matrices."""
    groups = min(n, IMAGE_GROUPS)
    return np.zeros((groups, -(-taps // 4) * 4, pixels), dtype=dtype)


def _check_grad_shape(name, grad_out, expected):
    if grad_out.shape != tuple(expected):
        raise ValueError(f"{name}: grad_out has shape {grad_out.shape}, expected "
                         f"{tuple(expected)}")


def conv2d(x, w, stride=1, padding=0):
    """NCHW convolution (cross-correlation): ``x (N, C, H, W)``, ``w (O, C, KH, KW)``.

    Returns ``(N, O, OH, OW)``: ``Y = W @ P`` with the weight as ``W (O, C*KH*KW)``.
    Large output planes (per-image layout): ``Y[n] = W @ P[n]`` image by image, each
    thread running im2col of one image into an L2-resident scratch matrix and the
    outer-product GEMM straight into ``out[n]``. Small planes (whole-batch layout): one
    GEMM with ``P (C*KH*KW, OH*OW*N)`` (im2col with the image index innermost, rows
    ``OH*OW*N`` long), and ``Y (O, OH, OW, N)`` transposed back to NCHW.
    """
    x, w = _float_arrays(x, w)
    (sh, sw), (ph, pw), (oh, ow) = _conv_setup(x.shape, w.shape, stride, padding)
    n, filters, kh, kw = x.shape[0], w.shape[0], w.shape[2], w.shape[3]
    wm = w.reshape(filters, -1)
    if _shifted_conv(wm.shape[1], filters, (sh, sw), x.shape[3] + 2 * pw, ow):
        by_tap = w.transpose(2, 3, 0, 1).reshape(kh * kw, filters, w.shape[1])  # small copy
        w_taps = np.ascontiguousarray(by_tap)
        out = np.empty((n, filters, oh * ow), dtype=x.dtype)
        wide, padded = _shifted_scratch(n, filters, oh, x.shape, (ph, pw), x.dtype)
        with _single_threaded_blas():
            _conv_shifted_kernel(x, w_taps, kh, kw, ph, pw, oh, ow, padded, wide, out)
        return out.reshape(n, filters, oh, ow)
    if _blas_conv(wm.shape[1], filters):
        out = np.empty((n, filters, oh * ow), dtype=x.dtype)
        scratch = _blas_scratch(n, wm.shape[1], oh * ow, x.dtype)
        with _single_threaded_blas():
            _conv_blas_kernel(x, wm, kh, kw, sh, sw, ph, pw, oh, ow, scratch, out)
        return out.reshape(n, filters, oh, ow)
    if _use_image_layout(oh, ow):
        out = np.zeros((n, filters, oh * ow), dtype=x.dtype)
        scratch = _image_scratch(n, wm.shape[1], oh * ow, x.dtype)
        _conv_images_kernel(x, wm, kh, kw, sh, sw, ph, pw, oh, ow, scratch, AXPY_KC, out)
        return out.reshape(n, filters, oh, ow)
    patches = _patch_matrix(x, kh, kw, (sh, sw), (ph, pw), (oh, ow))
    out = _gemm_ab(wm[None], patches)  # (1, O, OH*OW*N)
    return _nchw(out.reshape(filters, oh, ow, n))


def conv2d_backward_input(grad_out, w, x_shape, stride=1, padding=0):
    """``dL/dx (N, C, H, W)`` of :func:`conv2d`, given ``dL/dout (N, O, OH, OW)``.

    ``dP = W.T @ G`` (outer-product GEMM, k = O) is the gradient of every entry of the
    patch matrix, and col2im adds the entries back onto their pixels. Per-image layout:
    image by image in a scratch matrix, col2im straight into ``grad_x[n]``. Whole-batch
    layout: ``G (O, OH*OW*N)`` is ``grad_out`` moved to CHWN, col2im fills a padded CHWN
    gradient, and one transpose crops it back to NCHW.
    """
    grad_out, w = _float_arrays(grad_out, w)
    x_shape = tuple(int(s) for s in x_shape)
    (sh, sw), (ph, pw), (oh, ow) = _conv_setup(x_shape, w.shape, stride, padding)
    n, c, h, width = x_shape
    filters, kh, kw = w.shape[0], w.shape[2], w.shape[3]
    _check_grad_shape("conv2d_backward_input", grad_out, (n, filters, oh, ow))
    w_t = np.ascontiguousarray(w.reshape(filters, -1).T)  # (C*KH*KW, O), small
    if (_shifted_conv(w_t.shape[0], filters, (sh, sw), width + 2 * pw, ow)
            and np.isfinite(w_t).all()):
        w_taps_t = np.ascontiguousarray(w.transpose(2, 3, 1, 0)).reshape(kh * kw, c, filters)
        grad_x = np.zeros(x_shape, dtype=grad_out.dtype)
        wide, padded = _shifted_scratch(n, filters, oh, x_shape, (ph, pw), grad_out.dtype)
        with _single_threaded_blas():
            _conv_input_shifted_kernel(grad_out.reshape(n, filters, oh * ow), w_taps_t, kh, kw,
                                       ph, pw, oh, ow, padded, wide, grad_x)
        return grad_x
    if _blas_conv(w_t.shape[0], filters):
        grad_x = np.zeros(x_shape, dtype=grad_out.dtype)
        scratch = _blas_scratch(n, w_t.shape[0], oh * ow, grad_out.dtype)
        with _single_threaded_blas():
            _conv_input_blas_kernel(grad_out.reshape(n, filters, oh * ow), w_t, kh, kw, sh, sw,
                                    ph, pw, oh, ow, scratch, grad_x)
        return grad_x
    if _use_image_layout(oh, ow):
        grad_x = np.zeros(x_shape, dtype=grad_out.dtype)
        scratch = _image_scratch(n, w_t.shape[0], oh * ow, grad_out.dtype)
        _conv_input_images_kernel(grad_out.reshape(n, filters, -1), w_t, kh, kw, sh, sw,
                                  ph, pw, oh, ow, scratch, AXPY_KC, grad_x)
        return grad_x
    grads = _chwn(grad_out).reshape(1, filters, -1)
    grad_patches = _gemm_ab(w_t[None], grads).reshape(c * kh * kw, oh, ow * n)
    grad_xc = np.zeros((c, h + 2 * ph, width + 2 * pw, n), dtype=grad_out.dtype)
    _col2im_kernel(grad_patches, kh, kw, sh, sw, oh, ow, grad_xc)
    return _nchw(grad_xc, ph, pw)


def conv2d_backward_weight(grad_out, x, w_shape, stride=1, padding=0):
    """``dL/dw (O, C, KH, KW)`` of :func:`conv2d`, given ``dL/dout (N, O, OH, OW)``.

    ``dW = G @ P.T``, the inner-product GEMM (both operands have one contiguous row per
    filter / tap). Whole-batch layout: ``G (O, OH*OW*N)``, ``P (C*KH*KW, OH*OW*N)``, one
    GEMM with k = N*OH*OW, the sum over the batch included. Per-image layout: each image
    group sums ``G[n] @ P[n].T`` (k = OH*OW) into its own partial; the partials are
    added in group order (a fixed order: the same bits for any thread count).
    """
    grad_out, x = _float_arrays(grad_out, x)
    w_shape = tuple(int(s) for s in w_shape)
    (sh, sw), (ph, pw), (oh, ow) = _conv_setup(x.shape, w_shape, stride, padding)
    n, filters, kh, kw = x.shape[0], w_shape[0], w_shape[2], w_shape[3]
    _check_grad_shape("conv2d_backward_weight", grad_out, (n, filters, oh, ow))
    kc = max(16, KC_BYTES // x.itemsize)
    taps = x.shape[1] * kh * kw
    if _shifted_conv(taps, filters, (sh, sw), x.shape[3] + 2 * pw, ow) and _all_finite(x):
        wide, padded = _shifted_scratch(n, filters, oh, x.shape, (ph, pw), x.dtype)
        partial = np.zeros((wide.shape[0], kh * kw, filters, x.shape[1]), dtype=x.dtype)
        with _single_threaded_blas():
            _conv_weight_shifted_kernel(grad_out.reshape(n, filters, oh * ow), x, kh, kw, ph,
                                        pw, oh, ow, padded, wide, partial)
        grad_w = partial[0]
        for g in range(1, partial.shape[0]):  # in group order: the same bits for any thread count
            grad_w += partial[g]
        by_tap = grad_w.reshape(kh, kw, filters, x.shape[1])
        return np.ascontiguousarray(by_tap.transpose(2, 3, 0, 1))
    if _blas_conv(taps, filters):
        groups = min(n, IMAGE_GROUPS)
        scratch = _blas_scratch(n, taps, oh * ow, x.dtype)
        products = np.empty((groups, taps, filters), dtype=x.dtype)
        partial = np.zeros((max(groups, 1), taps, filters), dtype=x.dtype)
        with _single_threaded_blas():
            _conv_weight_blas_kernel(grad_out.reshape(n, filters, oh * ow), x, kh, kw, sh, sw,
                                     ph, pw, oh, ow, scratch, products, partial)
        grad_w = partial[0]
        for g in range(1, groups):  # in group order: the same bits for any thread count
            grad_w += partial[g]
        return np.ascontiguousarray(grad_w.T).reshape(w_shape)
    if _use_image_layout(oh, ow):
        taps = x.shape[1] * kh * kw
        scratch = _image_scratch(n, taps, oh * ow, x.dtype)
        partial = np.zeros((scratch.shape[0], filters, scratch.shape[1]), dtype=x.dtype)
        _conv_weight_images_kernel(grad_out.reshape(n, filters, -1), x, kh, kw, sh, sw, ph,
                                   pw, oh, ow, scratch, kc, partial)
        grad_w = partial[0]
        for g in range(1, partial.shape[0]):
            grad_w += partial[g]
        return np.ascontiguousarray(grad_w[:, :taps]).reshape(w_shape)
    grads = _chwn(grad_out).reshape(1, filters, -1)
    patches = _patch_matrix(x, kh, kw, (sh, sw), (ph, pw), (oh, ow))
    return _gemm_abt(grads, patches).reshape(w_shape)


# =========================================================================== pooling


@njit(parallel=True, cache=True)
def _max_pool_kernel(x, kh, kw, sh, sw, out, indices):
    """Window maxima of any window and stride; ``prange`` over planes (image, channel).

    ``indices`` holds ``h * W + w`` of each maximum (first one on ties; a NaN counts
    as the maximum). No fastmath here: comparisons must see NaN as NaN. The 2x2,
    stride-2 case has its own kernel, ``_max_pool_2x2_kernel``.
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
def _max_pool_2x2_kernel(x, out, indices):
    """2x2 windows, stride 2 (the notes' ``MaxPooling2D(2)``): straight-line code.

    ``prange`` over output rows ``(plane, r)``; each iteration reads input rows ``2r``
    and ``2r + 1`` (sliced first, so every index is a non-negative offset) and, per
    window ``a b / c d``, picks the larger of ``a, b`` and of ``c, d`` and then the larger
    of the two, with strict ``>`` so ties keep the earlier (row-major) position. The
    body is selects only, no branches, and LLVM vectorises it: ~10x faster than the
    same code with the NaN tests inside (three unpredictable branches per window).
    NaN: ``>`` never picks a NaN, so the loop also ORs ``v != v`` over the four values;
    a row that held a NaN is redone with the sequential rule of ``_max_pool_kernel``
    (a later value wins if larger, or if it is NaN and the best so far is not). A last
    odd row or column of the input is in no window. No fastmath: ``v != v`` must stay.
    """
    planes, width = x.shape[0], x.shape[2]
    oh, ow = out.shape[1], out.shape[2]
    for t in prange(planes * oh):
        p, r = t // oh, t % oh
        top, bottom = x[p, 2 * r], x[p, 2 * r + 1]
        dst, where = out[p, r], indices[p, r]
        base = 2 * r * width
        has_nan = False
        for q in range(ow):
            a, b, c, d = top[2 * q], top[2 * q + 1], bottom[2 * q], bottom[2 * q + 1]
            has_nan = has_nan | (a != a) | (b != b) | (c != c) | (d != d)
            right_top, right_bottom = b > a, d > c
            upper = b if right_top else a
            lower = d if right_bottom else c
            below = lower > upper
            dst[q] = lower if below else upper
            where[q] = base + 2 * q + (width + right_bottom if below else right_top)
        if has_nan:
            for q in range(ow):
                best, k = top[2 * q], 0
                value = top[2 * q + 1]
                if value > best or (value != value and best == best):
                    best, k = value, 1
                value = bottom[2 * q]
                if value > best or (value != value and best == best):
                    best, k = value, width
                value = bottom[2 * q + 1]
                if value > best or (value != value and best == best):
                    best, k = value, width + 1
                dst[q] = best
                where[q] = base + 2 * q + k


@njit(parallel=True, cache=True)
def _max_pool_backward_kernel(grad_out, indices, grad_x, bad):
    """``grad_x[t] = 0; grad_x[t].flat[indices[t, k]] += grad_out[t, k]``.

    ``prange`` over planes: each iteration zeroes the plane it owns and adds its
    gradients in order, so overlapping windows of one plane are summed by one thread
    (no race, fixed order). An index outside the plane is skipped and flagged in
    ``bad[t]`` (the caller raises): checking here costs nothing extra, where a separate
    ``indices.min()``/``max()`` pass cost more than the scatter itself.
    """
    planes, outputs = grad_out.shape
    size = grad_x.shape[1]
    for t in prange(planes):
        dst, src, where = grad_x[t], grad_out[t], indices[t]
        for i in range(size):
            dst[i] = 0
        for k in range(outputs):
            i = where[k]
            if i < 0 or i >= size:
                bad[t] = True
            else:
                dst[i] += src[k]


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
    """Max pooling (no padding) -> ``(out, indices)``; ``stride`` defaults to the window.

    2x2 windows with stride 2 run ``_max_pool_2x2_kernel``, every other window and
    stride the generic ``_max_pool_kernel``.
    """
    x, (kh, kw), (sh, sw), (oh, ow) = _pool_setup(x, kernel_size, stride)
    n, c, h, w = x.shape
    out = np.empty((n * c, oh, ow), dtype=x.dtype)
    indices = np.empty((n * c, oh, ow), dtype=np.int64)
    if kh == kw == sh == sw == 2:
        _max_pool_2x2_kernel(x.reshape(n * c, h, w), out, indices)
    else:
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
    grad_x = np.empty((n * c, h * w), dtype=grad_out.dtype)
    bad = np.zeros(n * c, dtype=np.bool_)
    _max_pool_backward_kernel(grad_out.reshape(n * c, -1), indices.reshape(n * c, -1),
                              grad_x, bad)
    if bad.any():
        raise ValueError(f"max_pool2d_backward: indices must lie in [0, {h * w}) for a "
                         f"{h}x{w} input")
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
