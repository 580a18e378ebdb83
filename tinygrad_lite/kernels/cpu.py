"""Numba CPU kernels: tiled matrix multiply, convolution and pooling (NCHW), array in/out.

Every public function checks its arguments in plain Python (shapes, float32/float64,
contiguity, int-or-pair stride/padding) and then calls ``@njit(parallel=True)`` kernels.
Signatures and results match ``kernels.reference``, the numpy oracle the tests use.

Who writes what
---------------
A ``prange`` loop hands each thread a contiguous chunk of its iterations. Every parallel
loop here runs over pieces of the *output* that one iteration owns outright (a tile of C,
a row of the patch matrix, an (image, channel) plane): no two iterations write the same
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
  rows of B scaled by entries of A, four rows of B per pass (``c += a0*b0 + a1*b1 +
  a2*b2 + a3*b3``), vectorised along the row. C lives in L1 rather than in registers, so
  it needs more loads and stores per FMA, but its speed does not depend on k and it needs
  no packing. Used for the convolution (whose k, ``C*KH*KW``, is 27 for an RGB 3x3
  filter) and for matmuls whose C is at most ``WIDE_M`` wide or whose k is short.

A convolution is im2col plus these: with image n's patch matrix ``P[n]`` (one row per
filter tap ``(c, i, j)``, one column per output pixel ``(r, q)``), the weight
``W (O, C*KH*KW)`` and the output gradient ``G[n] (O, OH*OW)`` (``grad_out`` as it is):
forward ``Y[n] = W @ P[n]``, input gradient ``dP[n] = W.T @ G[n]`` (then col2im),
weight gradient ``dW = sum_n G[n] @ P[n].T``. Every operand is used in its natural
NCHW layout. See ``docs/kernels.md`` for the measurements.
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
    while batch * _cdiv(n, tile_m) * _cdiv(m, tile_n) < 8 and max(tile_m, tile_n) > 4:
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
def _axpy_tile(a, b, c, i0, i1, j0, j1, kc):
    """``c[i0:i1, j0:j1] += a[i0:i1] @ b[:, j0:j1]`` on one thread, two rows of C at a time.

    Loop order: k block (``kc`` rows of B) -> rows i, i+1 of C -> 4 rows of B -> columns.
    The innermost loop, along contiguous rows, vectorises:
    ``c0 += x0*b0 + x1*b1 + x2*b2 + x3*b3`` and the same for ``c1`` with row i+1's
    scalars ``y``. Each vector of B loaded feeds two rows of C, and each load/store of C
    serves four FMAs. The ``kc x (j1 - j0)`` block of B is reused for every row pair.
    """
    k = a.shape[1]
    i2 = i0 + (i1 - i0) // 2 * 2
    for p0 in range(0, k, kc):
        p1 = min(p0 + kc, k)
        p4 = p0 + (p1 - p0) // 4 * 4
        for i in range(i0, i2, 2):
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
    outer-product kernel builds C two rows at a time (see the module docstring).

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
def _im2col_kernel(xp, kh, kw, sh, sw, oh, ow, patches):
    """``patches[n, (c, i, j), (r, q)] = xp[n, c, r*sh + i, q*sw + j]``.

    Row ``(c, i, j)`` of image n's patch matrix is what tap ``(i, j)`` of channel ``c``
    sees at every output pixel: a shifted, strided copy of that channel's plane.
    ``prange`` over (image, tap) rows; each iteration fills its own row in order.
    """
    images, channels = xp.shape[0], xp.shape[1]
    taps = channels * kh * kw
    for t in prange(images * taps):
        n, tap = t // taps, t % taps
        c, i, j = tap // (kh * kw), tap // kw % kh, tap % kw
        for r in range(oh):
            src = xp[n, c, r * sh + i, j : j + (ow - 1) * sw + 1 : sw]
            dst = patches[n, tap, r * ow : (r + 1) * ow]
            for q in range(ow):
                dst[q] = src[q]


@njit(**_PARALLEL)
def _im2col_rows_kernel(xp, kh, kw, sh, sw, oh, ow, patches_t):
    """``patches_t[n, (r, q), (c, i, j)] = xp[n, c, r*sh + i, q*sw + j]``: the transposed
    patch matrices, one output pixel's whole patch per (contiguous) row.

    ``prange`` over (image, output row) pairs; each fills its own ``ow`` rows in order.
    """
    images, channels = xp.shape[0], xp.shape[1]
    for t in prange(images * oh):
        n, r = t // oh, t % oh
        for q in range(ow):
            row = patches_t[n, r * ow + q]
            for c in range(channels):
                for i in range(kh):
                    src = xp[n, c, r * sh + i, q * sw : q * sw + kw]
                    dst = row[(c * kh + i) * kw : (c * kh + i + 1) * kw]
                    for j in range(kw):
                        dst[j] = src[j]


@njit(**_PARALLEL)
def _col2im_kernel(grad_patches, kh, kw, sh, sw, oh, ow, grad_xp):
    """The adjoint of ``_im2col_kernel``: add every patch-matrix entry back onto its pixel.

    Patches overlap, so several entries land on one pixel. ``prange`` over (image,
    channel) planes: the one iteration owning a plane adds all of its entries in a
    fixed order (tap, row, column), so there is no race and no run-to-run variation.
    """
    images, channels = grad_xp.shape[0], grad_xp.shape[1]
    for t in prange(images * channels):
        n, c = t // channels, t % channels
        for i in range(kh):
            for j in range(kw):
                tap = (c * kh + i) * kw + j
                for r in range(oh):
                    dst = grad_xp[n, c, r * sh + i, j : j + (ow - 1) * sw + 1 : sw]
                    src = grad_patches[n, tap, r * ow : (r + 1) * ow]
                    for q in range(ow):
                        dst[q] += src[q]


def _conv_setup(x_shape, w_shape, stride, padding):
    """Normalised ``(sh, sw), (ph, pw), (oh, ow)`` of an NCHW convolution."""
    check_conv_shapes(x_shape, w_shape)
    (sh, sw), (ph, pw) = as_pair(stride, "stride"), as_pair(padding, "padding")
    oh, ow = conv_output_hw(x_shape[2:], w_shape[2:], (sh, sw), (ph, pw))
    return (sh, sw), (ph, pw), (oh, ow)


def _patch_matrices(x, kh, kw, stride, padding, out_hw, transposed=False):
    """im2col of the zero-padded batch: ``(N, C*KH*KW, OH*OW)``, one matrix per image,
    or with ``transposed`` ``(N, OH*OW, C*KH*KW)``."""
    (sh, sw), (ph, pw), (oh, ow) = stride, padding, out_hw
    xp = x if ph == pw == 0 else np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    taps, pixels = x.shape[1] * kh * kw, oh * ow
    if transposed:
        patches_t = np.empty((x.shape[0], pixels, taps), dtype=x.dtype)
        _im2col_rows_kernel(xp, kh, kw, sh, sw, oh, ow, patches_t)
        return patches_t
    patches = np.empty((x.shape[0], taps, pixels), dtype=x.dtype)
    _im2col_kernel(xp, kh, kw, sh, sw, oh, ow, patches)
    return patches


def _check_grad_shape(name, grad_out, expected):
    if grad_out.shape != tuple(expected):
        raise ValueError(f"{name}: grad_out has shape {grad_out.shape}, expected "
                         f"{tuple(expected)}")


def conv2d(x, w, stride=1, padding=0):
    """NCHW convolution (cross-correlation): ``x (N, C, H, W)``, ``w (O, C, KH, KW)``.

    Returns ``(N, O, OH, OW)``: ``Y[n] = W @ P[n]`` for every image, ``W`` shared by the
    batch, and ``Y (N, O, OH*OW)`` is already NCHW. The kernel is picked by the length
    of the reduction k = ``C*KH*KW``: short (27 for an RGB 3x3 layer), the outer-product
    GEMM on the patch matrices; at least ``SHORT_K`` (288 for 32 channels), the inner-
    product GEMM on their transposes (built directly by a second im2col kernel), which
    measured about 30% faster there.
    """
    x, w = _float_arrays(x, w)
    stride, padding, (oh, ow) = _conv_setup(x.shape, w.shape, stride, padding)
    filters, kh, kw = w.shape[0], w.shape[2], w.shape[3]
    weights = w.reshape(1, filters, -1)
    if weights.shape[2] >= SHORT_K:
        patches_t = _patch_matrices(x, kh, kw, stride, padding, (oh, ow), transposed=True)
        out = _gemm_abt(weights, patches_t)
    else:
        out = _gemm_ab(weights, _patch_matrices(x, kh, kw, stride, padding, (oh, ow)))
    return out.reshape(x.shape[0], filters, oh, ow)


def conv2d_backward_input(grad_out, w, x_shape, stride=1, padding=0):
    """``dL/dx (N, C, H, W)`` of :func:`conv2d`, given ``dL/dout (N, O, OH, OW)``.

    ``dP[n] = W.T @ G[n]`` (outer-product GEMM, k = O) is the gradient of every entry of
    image n's patch matrix; col2im adds the entries back onto the zero-padded image,
    which is then cropped.
    """
    grad_out, w = _float_arrays(grad_out, w)
    x_shape = tuple(int(s) for s in x_shape)
    (sh, sw), (ph, pw), (oh, ow) = _conv_setup(x_shape, w.shape, stride, padding)
    n, c, h, width = x_shape
    filters, kh, kw = w.shape[0], w.shape[2], w.shape[3]
    _check_grad_shape("conv2d_backward_input", grad_out, (n, filters, oh, ow))
    grad_xp = np.zeros((n, c, h + 2 * ph, width + 2 * pw), dtype=grad_out.dtype)
    w_t = _transposed(w.reshape(1, filters, -1))  # (1, C*KH*KW, O)
    grad_patches = _gemm_ab(w_t, grad_out.reshape(n, filters, oh * ow))
    _col2im_kernel(grad_patches, kh, kw, sh, sw, oh, ow, grad_xp)
    if ph == pw == 0:
        return grad_xp
    return np.ascontiguousarray(grad_xp[:, :, ph : ph + h, pw : pw + width])


def conv2d_backward_weight(grad_out, x, w_shape, stride=1, padding=0):
    """``dL/dw (O, C, KH, KW)`` of :func:`conv2d`, given ``dL/dout (N, O, OH, OW)``.

    ``dW = sum over n of G[n] @ P[n].T``: ``G[n] (O, OH*OW)`` and ``P[n]`` both have
    one contiguous row per filter / tap, so this is the inner-product GEMM (k = OH*OW),
    each tile of ``dW`` summing the images in order inside one ``prange`` iteration.
    """
    grad_out, x = _float_arrays(grad_out, x)
    w_shape = tuple(int(s) for s in w_shape)
    stride, padding, (oh, ow) = _conv_setup(x.shape, w_shape, stride, padding)
    n, filters = x.shape[0], w_shape[0]
    _check_grad_shape("conv2d_backward_weight", grad_out, (n, filters, oh, ow))
    patches = _patch_matrices(x, w_shape[2], w_shape[3], stride, padding, (oh, ow))
    grad_w = _gemm_abt(grad_out.reshape(n, filters, oh * ow), patches, sum_batch=True)
    return grad_w.reshape(w_shape)


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
