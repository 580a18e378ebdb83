"""Tiled matrix multiplication on the GPU, and the generic GEMM kernel behind convolution.

The problem is ``C[m, n] = sum_k A[m, k] * B[k, n]`` with ``C`` of size ``M x N``.

Tiling (the picture to keep in mind)
------------------------------------
The output is cut into ``BM x BN`` *block tiles*; CUDA block ``(bx, by)`` computes
tile ``(by, bx)``. To do so it walks along ``k`` in steps of ``BK``: at each step its
threads copy an ``BM x BK`` slab of A and a ``BK x BN`` slab of B from global memory
into shared memory (each value is read from slow global memory once per block, then
used ``BN`` or ``BM`` times from fast shared memory), synchronise, and multiply the
slabs.

Each block has ``(BN / TN) x (BM / TM)`` threads and each thread owns ``TM x TN``
outputs (*register tiling*), accumulated in a private ``acc`` array that the
compiler keeps in registers. At each ``k`` a thread loads ``TM`` values of A and ``TN``
of B from shared memory into registers and performs ``TM * TN`` multiply-adds: with
4 x 4 that is 16 FMAs for 8 shared loads, and with 8 x 8, 64 for 16. This ratio is
what makes a GEMM fast; one output per thread would be bound by shared-memory traffic.

Thread ``(tx, ty)`` owns rows ``ty + i * (BM / TM)`` and columns ``tx + j * (BN / TN)``
(strided, not a contiguous 4 x 4 patch), so in every step the 32 threads of a warp
read 32 consecutive B values from shared memory (no bank conflicts), and write
consecutive columns of C (coalesced stores).

Loading: the block's threads, numbered ``tid``, copy slab element ``e = tid, tid + T,
...``; consecutive threads take consecutive ``k`` of A and consecutive ``n`` of B, the
directions in which a row-major array is contiguous, so global reads are coalesced.
A is stored transposed in shared memory (``a_tile[k, m]``) so that the compute loop
reads a column of A as a row; one padding column avoids bank conflicts on that store.
Elements outside the matrix (the ragged last tile when ``M``, ``N`` or ``K`` is not a
multiple of the tile) are loaded as 0 and never stored, so any size works.

Generic loaders (why this kernel also does convolution)
-------------------------------------------------------
The kernel never indexes A, B or C directly. It asks three *index functions*,
compiled device functions passed in when the kernel is built:

* ``a_index(geom, batch, m, k)``: where ``A[m, k]`` is in A's flat storage (-1: zero),
* ``b_index(geom, batch, k, n)``: likewise for ``B[k, n]``,
* ``c_index(geom, batch, split, m, n)``: where to store ``C[m, n]``.

``geom`` is a tuple of integers describing the problem. For a matrix product the
index functions are stride formulas (so transposed or broadcast operands cost no
copy); for a convolution (:mod:`.conv`) they compute the im2col patch element on the
fly: an *implicit GEMM*, with no im2col matrix in memory. ``blockIdx.z`` numbers
``batch * splits + split``: batched matmul uses the batch, and *split-K* (several
blocks each summing part of the ``k`` range into their own slice of a workspace, see
``conv2d_backward_weight``) uses the split. Every output element is written by
exactly one thread, so no atomics are needed.

The strided kernel (plain matrix products)
------------------------------------------
Generic index functions cost integer arithmetic per loaded element (a few 64-bit
multiplies, a division for convolution). For a matrix product the address of
``A[m, k]`` is affine, ``base + m * stride_m + k * stride_k``, so
:func:`strided_gemm_kernel` does better, using two more classic tricks:

* *Fixed load coordinates.* When the block's thread count is a multiple of ``BK`` and
  of ``BN``, every thread copies the same column of the A slab (``k = tid % BK``) and
  the same column of the B slab (``n = tid % BN``) at every k-step, only in rows
  ``THREADS / BK`` (``THREADS / BN``) apart. Its source addresses are computed once;
  each k-step adds ``BK * stride_k``.
* *Register prefetch (software pipelining).* A thread issues the global loads of the
  *next* slab into registers before it multiplies the current slab out of shared
  memory, so the memory latency overlaps arithmetic instead of stalling it; after the
  multiply the registers are written to shared memory for the next step.

A's shared slab is padded by ``32 / BK`` columns: thread ``tid`` stores to word
``(tid % BK) * (BM + pad) + tid // BK``, and with that padding the 32 threads of a
warp hit 32 different banks.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np
from numba import cuda

from .common import float_dtype, multiprocessor_count, returned
from .elementwise import cast, contiguous, full
from .launch import flat, lean_kernel
from .views import StridedView, as_view, expand, is_on_device


class GemmTiles(NamedTuple):
    """Tile sizes: block tile ``bm x bn``, k-step ``bk``, per-thread outputs ``tm x tn``."""

    bm: int = 64
    bn: int = 64
    bk: int = 8
    tm: int = 4
    tn: int = 4

    @property
    def threads(self) -> tuple[int, int]:
        """The CUDA block shape ``(x, y)``: x runs along columns, y along rows."""
        return self.bn // self.tn, self.bm // self.tm


SMALL_TILES = GemmTiles(64, 64, 8, 4, 4)
"""256 threads, 16 outputs each: the default."""
LARGE_TILES = GemmTiles(128, 128, 8, 8, 8)
"""256 threads, 64 outputs each: more reuse per shared-memory load, 128 registers per
thread (two blocks per SM). For large outputs, see :func:`choose_tiles`."""


def choose_tiles(m: int, n: int, dtype) -> GemmTiles:
    """The block tiles for an ``m x n`` output.

    Large 128 x 128 tiles with 8 x 8 outputs per thread do 64 FMAs for every 16
    shared-memory loads; the 64 x 64 tiles with 4 x 4 do 16 for 8. Since the k-loop is
    unrolled (see :func:`slab_multiplier`) that ratio is what limits the kernel: in the
    PTX of one k-step, FMAs are 70% of the instructions with 8 x 8 and 54% with 4 x 4
    (``python -m tinygrad_lite.kernels.cuda.compile_check --ptx-report``).
    But a 128 x 128 tile covers four times the area, so the large tiles are used only
    when the output has at least two of them per SM; smaller outputs keep the 64 x 64
    tiles, which give the GPU more blocks. ``benchmarks/bench_cuda.py --sweep`` times
    every candidate.
    """
    tiles_of_large = -(-m // LARGE_TILES.bm) * -(-n // LARGE_TILES.bn)
    return LARGE_TILES if tiles_of_large >= 2 * multiprocessor_count() else SMALL_TILES


_KERNELS: dict = {}


def gemm_kernel(a_index, b_index, c_index, dtype, tiles: GemmTiles):
    """The tiled GEMM kernel for these index functions, dtype and tiles (built once)."""
    key = (a_index, b_index, c_index, np.dtype(dtype), tiles)
    if key not in _KERNELS:
        _KERNELS[key] = _build_gemm_kernel(a_index, b_index, c_index, np.dtype(dtype), tiles)
    return _KERNELS[key]


def slab_multiplier(tiles: GemmTiles):
    """The device function both GEMM kernels run once their slabs are in shared memory.

    ``acc[i, j] += sum_kk A[ty + i * THREADS_Y, kk] * B[kk, tx + j * THREADS_X]``: per
    ``kk``, TM values of A and TN of B go to registers, then TM * TN FMAs (register
    tiling, see the module docstring). It is inlined into each kernel (the PTX has no
    call and no local memory), so sharing it costs nothing.

    Why the ``kk`` loop is written out: NVVM unrolls the small ``i``/``j`` loops but
    left ``for kk in range(BK)`` rolled, and a rolled loop recomputes its 64-bit
    shared-memory addresses every step: the PTX had about 20 integer instructions per
    16 FMAs, which capped the kernel near a third of the GPU's FMA rate. Numba has no
    unroll pragma, so :func:`_unrolled_calls` generates the straight-line sequence
    ``multiply_step(..., 0); multiply_step(..., 1); ...``; with ``kk`` a constant in
    each inlined copy, every shared-memory address folds to a fixed offset from a
    per-thread base.
    """
    _, _, BK, TM, TN = tiles
    THREADS_X, THREADS_Y = tiles.threads

    @cuda.jit(device=True)
    def multiply_step(a_tile, b_tile, acc, a_frag, b_frag, tx, ty, kk):
        for i in range(TM):
            a_frag[i] = a_tile[kk, ty + i * THREADS_Y]
        for j in range(TN):
            b_frag[j] = b_tile[kk, tx + j * THREADS_X]
        for i in range(TM):
            for j in range(TN):
                acc[i, j] += a_frag[i] * b_frag[j]

    return cuda.jit(device=True)(_unrolled_calls(
        "multiply_slabs", multiply_step, "a_tile, b_tile, acc, a_frag, b_frag, tx, ty", BK))


def _unrolled_calls(name: str, step, params: str, count: int):
    """A Python function ``name(params)`` that calls ``step(params, kk)`` for kk = 0..count-1.

    The body is generated source, one call per line (print ``fn.__source__`` to read
    it), so each call gets a literal ``kk``; see :func:`slab_multiplier` for why.
    """
    body = "".join(f"    step({params}, {kk})\n" for kk in range(count))
    source = f"def {name}({params}):\n{body}"
    namespace = {"step": step}
    exec(compile(source, f"<unrolled {name}>", "exec"), namespace)  # noqa: S102
    function = namespace[name]
    function.__source__ = source
    return function


def _build_gemm_kernel(a_index, b_index, c_index, dtype, tiles):
    """Compile-time constants (tile sizes, dtype, index functions) baked into a new kernel.

    Numba treats the closure variables below as constants, so shared and local array
    shapes are fixed at compile time and the small inner loops can be fully unrolled.
    """
    BM, BN, BK, TM, TN = tiles
    THREADS_X, THREADS_Y = tiles.threads
    THREADS = THREADS_X * THREADS_Y
    A_TILE_SHAPE = (BK, BM + 1)  # +1 column of padding: no bank conflicts on the store
    B_TILE_SHAPE = (BK, BN)
    if BM % TM or BN % TN:
        raise ValueError(f"tile sizes {tiles} do not divide evenly")
    value_type = numba.from_dtype(dtype)
    ZERO = dtype.type(0)  # a typed zero: a bare 0 would make the loads float64 and back
    multiply_slabs = slab_multiplier(tiles)

    @lean_kernel
    def gemm(a, b, c, geom, M, N, K, k_chunk, splits):
        a_tile = cuda.shared.array(A_TILE_SHAPE, value_type)
        b_tile = cuda.shared.array(B_TILE_SHAPE, value_type)
        acc = cuda.local.array((TM, TN), value_type)
        a_frag = cuda.local.array(TM, value_type)
        b_frag = cuda.local.array(TN, value_type)

        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        tid = ty * THREADS_X + tx
        row0 = cuda.blockIdx.y * BM
        col0 = cuda.blockIdx.x * BN
        batch = cuda.blockIdx.z // splits
        split = cuda.blockIdx.z % splits
        k_begin = split * k_chunk
        k_end = min(K, k_begin + k_chunk)

        for i in range(TM):
            for j in range(TN):
                acc[i, j] = 0

        for k0 in range(k_begin, k_end, BK):
            # Stage 1: the whole block copies one slab of A and one of B to shared memory.
            for e in range(tid, BM * BK, THREADS):
                m = row0 + e // BK
                k = k0 + e % BK
                src = a_index(geom, batch, m, k) if m < M and k < k_end else -1
                a_tile[e % BK, e // BK] = a[src] if src >= 0 else ZERO
            for e in range(tid, BK * BN, THREADS):
                k = k0 + e // BN
                n = col0 + e % BN
                src = b_index(geom, batch, k, n) if k < k_end and n < N else -1
                b_tile[e // BN, e % BN] = b[src] if src >= 0 else ZERO
            cuda.syncthreads()
            # Stage 2: each thread multiplies its TM values of A by its TN values of B.
            multiply_slabs(a_tile, b_tile, acc, a_frag, b_frag, tx, ty)
            cuda.syncthreads()  # the slabs are overwritten next step

        for i in range(TM):
            m = row0 + ty + i * THREADS_Y
            for j in range(TN):
                n = col0 + tx + j * THREADS_X
                if m < M and n < N:
                    c[c_index(geom, batch, split, m, n)] = acc[i, j]

    return gemm


def strided_gemm_fits(tiles: GemmTiles) -> bool:
    """Whether the strided kernel supports these tiles (fixed per-thread load columns)."""
    threads = tiles.threads[0] * tiles.threads[1]
    return (threads % tiles.bk == 0 and threads % tiles.bn == 0
            and (tiles.bm * tiles.bk) % threads == 0 and (tiles.bk * tiles.bn) % threads == 0)


class LoadPlan(NamedTuple):
    """Who loads what with *fixed load coordinates* (the strided GEMM and the conv kernel).

    Thread ``tid`` copies column ``tid % BK`` of the A slab in rows ``tid // BK + r *
    a_row_step`` (``r < a_loads``) and column ``tid % BN`` of the B slab in rows
    ``tid // BN + r * b_row_step`` (``r < b_loads``). When the slab has fewer rows than
    one pass of the threads covers, the loads are rounded up and the extra threads skip
    them. A's shared slab is padded by ``32 / BK`` columns: conflict-free stores.
    """

    a_row_step: int
    b_row_step: int
    a_loads: int
    b_loads: int
    a_tile_shape: tuple
    b_tile_shape: tuple

    @classmethod
    def of(cls, tiles: GemmTiles) -> LoadPlan:
        bm, bn, bk = tiles.bm, tiles.bn, tiles.bk
        threads = tiles.threads[0] * tiles.threads[1]
        a_row_step, b_row_step = threads // bk, threads // bn
        return cls(a_row_step, b_row_step, -(-bm // a_row_step), -(-bk // b_row_step),
                   (bk, bm + max(1, 32 // bk)), (bk, bn))


_STRIDED_KERNELS: dict = {}


def strided_gemm_kernel(dtype, tiles: GemmTiles):
    """The matrix-product GEMM for strided operands (built once per dtype and tiles).

    Launch it with ``geom = (a_offset, a_stride_batch, a_stride_m, a_stride_k,
    b_offset, b_stride_batch, b_stride_k, b_stride_n)`` and ``grid[2] = batches``;
    ``C`` is a contiguous ``(batches, M, N)`` array. See the module docstring.
    """
    return built_once(_STRIDED_KERNELS, _build_strided_gemm_kernel, dtype, tiles,
                      strided_gemm_fits, "strided GEMM")


def built_once(cache: dict, build, dtype, tiles: GemmTiles, fits, name: str):
    """``build(dtype, tiles)``, compiled on first use and kept in ``cache``; tiles that
    ``fits`` rejects raise a ValueError naming the kernel."""
    key = (np.dtype(dtype), tiles)
    kernel = cache.get(key)
    if kernel is None:
        if not fits(tiles):
            raise ValueError(f"the {name} kernel does not support tiles {tiles}")
        kernel = cache[key] = build(np.dtype(dtype), tiles)
    return kernel


def _build_strided_gemm_kernel(dtype, tiles):
    """Compile-time constants for the strided kernel (as in ``_build_gemm_kernel``)."""
    BM, BN, BK, TM, TN = tiles
    THREADS_X, THREADS_Y = tiles.threads
    plan = LoadPlan.of(tiles)
    A_ROW_STEP, B_ROW_STEP, A_LOADS, B_LOADS = (plan.a_row_step, plan.b_row_step,
                                                plan.a_loads, plan.b_loads)
    A_TILE_SHAPE, B_TILE_SHAPE = plan.a_tile_shape, plan.b_tile_shape
    value_type = numba.from_dtype(dtype)
    ZERO = dtype.type(0)  # a typed zero: a bare 0 would make the loads float64 and back
    multiply_slabs = slab_multiplier(tiles)

    @cuda.jit(device=True)
    def load_slabs(a, b, a_next, b_next, a_src, b_src, a_row_step, b_row_step,
                   a_rows_left, b_rows_left, a_k_ok, n_ok):
        """Copy this thread's share of the next A and B slabs into registers (0 outside)."""
        for r in range(A_LOADS):
            inside = a_k_ok and r * A_ROW_STEP < a_rows_left
            a_next[r] = a[a_src + r * a_row_step] if inside else ZERO
        for r in range(B_LOADS):
            inside = n_ok and r * B_ROW_STEP < b_rows_left
            b_next[r] = b[b_src + r * b_row_step] if inside else ZERO

    @lean_kernel
    def gemm(a, b, c, geom, M, N, K):
        a_tile = cuda.shared.array(A_TILE_SHAPE, value_type)
        b_tile = cuda.shared.array(B_TILE_SHAPE, value_type)
        acc = cuda.local.array((TM, TN), value_type)
        a_frag = cuda.local.array(TM, value_type)
        b_frag = cuda.local.array(TN, value_type)
        a_next = cuda.local.array(A_LOADS, value_type)
        b_next = cuda.local.array(B_LOADS, value_type)

        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        tid = ty * THREADS_X + tx
        row0 = cuda.blockIdx.y * BM
        col0 = cuda.blockIdx.x * BN
        batch = cuda.blockIdx.z
        # This thread copies A[row0 + a_m + r * A_ROW_STEP, k0 + a_k] and
        # B[k0 + b_k + r * B_ROW_STEP, col0 + b_n] for r = 0, 1, ... at every k-step.
        a_k = tid % BK
        a_m = tid // BK
        b_n = tid % BN
        b_k = tid // BN
        a_src = geom[0] + batch * geom[1] + (row0 + a_m) * geom[2] + a_k * geom[3]
        b_src = geom[4] + batch * geom[5] + b_k * geom[6] + (col0 + b_n) * geom[7]
        a_row_step = A_ROW_STEP * geom[2]
        b_row_step = B_ROW_STEP * geom[6]
        a_k_step = BK * geom[3]  # how far the sources move per k-step
        b_k_step = BK * geom[6]
        a_rows_left = M - row0 - a_m  # rows r * A_ROW_STEP below this are inside A
        n_ok = col0 + b_n < N

        for i in range(TM):
            for j in range(TN):
                acc[i, j] = 0

        load_slabs(a, b, a_next, b_next, a_src, b_src, a_row_step, b_row_step,
                   a_rows_left, K - b_k, a_k < K, n_ok)
        for k0 in range(0, K, BK):
            for r in range(A_LOADS):
                a_tile[a_k, a_m + r * A_ROW_STEP] = a_next[r]
            for r in range(B_LOADS):
                b_tile[b_k + r * B_ROW_STEP, b_n] = b_next[r]
            cuda.syncthreads()
            k1 = k0 + BK
            if k1 < K:  # start fetching the next slabs; they arrive while we compute
                a_src += a_k_step
                b_src += b_k_step
                load_slabs(a, b, a_next, b_next, a_src, b_src, a_row_step, b_row_step,
                           a_rows_left, K - k1 - b_k, k1 + a_k < K, n_ok)
            multiply_slabs(a_tile, b_tile, acc, a_frag, b_frag, tx, ty)
            cuda.syncthreads()  # the slabs are overwritten next step

        c_base = batch * M * N
        for i in range(TM):
            m = row0 + ty + i * THREADS_Y
            for j in range(TN):
                n = col0 + tx + j * THREADS_X
                if m < M and n < N:
                    c[c_base + m * N + n] = acc[i, j]

    return gemm


def launch_gemm(kernel, tiles, a, b, c, geom, M, N, K, batches=1, splits=1, k_chunk=None):
    """Launch a GEMM kernel over an ``M x N`` output for each batch and K-split."""
    if M == 0 or N == 0 or batches == 0:
        return
    k_chunk = K if k_chunk is None else k_chunk
    grid = ((N + tiles.bn - 1) // tiles.bn, (M + tiles.bm - 1) // tiles.bm, batches * splits)
    kernel[grid, tiles.threads](a, b, c, geom, M, N, K, k_chunk, splits)


# ------------------------------------------------------------ matrix products


@cuda.jit(device=True)
def _matmul_a_index(geom, batch, m, k):
    """A[batch, m, k] in A's storage: offset + batch*stride0 + m*stride1 + k*stride2."""
    return geom[0] + batch * geom[1] + m * geom[2] + k * geom[3]


@cuda.jit(device=True)
def _matmul_b_index(geom, batch, k, n):
    """B[batch, k, n] in B's storage."""
    return geom[4] + batch * geom[5] + k * geom[6] + n * geom[7]


@cuda.jit(device=True)
def _matmul_c_index(geom, batch, split, m, n):
    """C[batch, m, n] in a contiguous (batches, M, N) output; geom[8], geom[9] = M, N."""
    return (batch * geom[8] + m) * geom[9] + n


def _as_float_views(a, b):
    """Both operands as StridedViews of one float dtype (casting the narrower one)."""
    views = [as_view(a), as_view(b)]  # numpy inputs are transferred here, once
    dtype = float_dtype(*(view.dtype for view in views))
    return [v if v.dtype == dtype else as_view(cast(v, dtype)) for v in views], dtype


def batched_matmul(a, b, tiles: GemmTiles | None = None, out=None, kernel: str | None = None):
    """``(B, n, k) @ (B, k, m) -> (B, n, m)`` in float32 or float64.

    Operands may be numpy arrays, contiguous device arrays or StridedViews (so a
    transposed or batch-broadcast operand, stride 0 on the batch axis, needs no copy).
    Host inputs give a host result, device inputs a device array. ``out``, if given,
    is a contiguous device array of the result's shape and dtype to write into.
    ``kernel``: ``"strided"`` (the default where the tiles allow it) or ``"generic"``
    (the index-function kernel that convolution uses), see the module docstring.
    """
    host = not (is_on_device(a) or is_on_device(b))
    (va, vb), dtype = _as_float_views(a, b)
    if va.ndim != 3 or vb.ndim != 3 or va.shape[0] != vb.shape[0] or va.shape[2] != vb.shape[1]:
        raise ValueError(f"batched_matmul shapes {va.shape} and {vb.shape} do not match")
    batches, M, K = va.shape
    N = vb.shape[2]
    if out is None:
        out = cuda.device_array((batches, M, N), dtype=dtype)
    elif tuple(out.shape) != (batches, M, N) or np.dtype(out.dtype) != dtype:
        raise ValueError(f"out must be a {dtype} array of shape {(batches, M, N)}")
    tiles = tiles or choose_tiles(M, N, dtype)
    kernel = kernel or ("strided" if strided_gemm_fits(tiles) else "generic")
    if kernel not in ("strided", "generic"):
        raise ValueError(f"kernel must be 'strided' or 'generic', not {kernel!r}")
    if K == 0:  # an empty sum: all zeros
        full((batches, M, N), 0, dtype, out=out)
    elif out.size and kernel == "strided":
        geom = (va.offset, *va.strides, vb.offset, *vb.strides)
        grid = ((N + tiles.bn - 1) // tiles.bn, (M + tiles.bm - 1) // tiles.bm, batches)
        strided_gemm_kernel(dtype, tiles)[grid, tiles.threads](
            va.storage, vb.storage, flat(out), geom, M, N, K)
    elif out.size:
        geom = (va.offset, *va.strides, vb.offset, *vb.strides, M, N)
        generic = gemm_kernel(_matmul_a_index, _matmul_b_index, _matmul_c_index, dtype, tiles)
        launch_gemm(generic, tiles, va.storage, vb.storage, flat(out), geom,
                    M, N, K, batches=batches)
    return returned(out, host)


def matmul(a, b, tiles: GemmTiles | None = None, out=None, kernel: str | None = None):
    """``(n, k) @ (k, m) -> (n, m)`` with the tiled shared-memory kernel (float32/float64).

    Also accepts stacks with numpy ``matmul`` broadcasting, e.g. ``(B, n, k) @ (k, m)``,
    and 1-D operands as numpy does. ``out``: an optional contiguous device array of the
    result's shape to write into (saves an allocation in a loop). ``kernel``: as for
    :func:`batched_matmul`.
    """
    host = not (is_on_device(a) or is_on_device(b))
    va, vb = as_view(a), as_view(b)
    if va.ndim < 1 or vb.ndim < 1:
        raise ValueError("matmul needs arrays with at least one dimension")
    squeeze_a, squeeze_b = va.ndim == 1, vb.ndim == 1
    if squeeze_a:
        va = va._replace(shape=(1, va.shape[0]), strides=(0, va.strides[0]))
    if squeeze_b:
        vb = vb._replace(shape=(vb.shape[0], 1), strides=(vb.strides[0], 0))
    if va.shape[-1] != vb.shape[-2]:
        raise ValueError(f"matmul shapes {va.shape} and {vb.shape} do not match")
    stack = tuple(np.broadcast_shapes(va.shape[:-2], vb.shape[:-2]))
    batches = int(np.prod(stack, dtype=np.int64))
    shape = stack + ((va.shape[-2],) if not squeeze_a else ()) + (
        (vb.shape[-1],) if not squeeze_b else ())
    batched_out = None
    if out is not None:
        if tuple(out.shape) != shape:
            raise ValueError(f"out has shape {tuple(out.shape)}, the result has shape {shape}")
        batched_out = out.reshape((batches, va.shape[-2], vb.shape[-1]))
    result = batched_matmul(_stacked(va, stack, batches), _stacked(vb, stack, batches), tiles,
                            out=batched_out, kernel=kernel)
    return out if out is not None else returned(result.reshape(shape), host)


def _stacked(view: StridedView, stack, batches) -> StridedView:
    """View an ``(*stack, r, c)`` operand as ``(batches, r, c)``; copies only if needed."""
    view = expand(view, stack + view.shape[-2:])
    if len(stack) == 1:
        return view
    if not stack:
        return view._replace(shape=(1, *view.shape), strides=(0, *view.strides))
    # Several stack axes: they fold into one batch axis if their strides allow it,
    # which is always true for a contiguous or fully broadcast stack.
    strides = view.strides[:-2]
    foldable = all(strides[i] == strides[i + 1] * stack[i + 1] for i in range(len(stack) - 1))
    if not foldable:
        view = as_view(contiguous(view))
        strides = view.strides[:-2]
    return view._replace(shape=(batches, *view.shape[-2:]),
                         strides=(strides[-1], *view.strides[-2:]))
