"""The implicit-GEMM convolution kernel: every conv pass as one tiled GEMM, no divisions.

:mod:`.conv` explains why each convolution pass is a matrix product ``C = A @ B`` whose
``B`` (the im2col patch matrix, or its relatives) is never stored: each element is
read straight from the input tensor. The first version of that idea asked an *index
function* for the address of every loaded element, and an index function turns
``k = (c, kh, kw)`` and ``n = (b, oh, ow)`` back into coordinates with six 64-bit
divisions. Those divisions, not the multiply-adds, were the kernel's running time.

This kernel loads elements at *fixed coordinates*, as :func:`.gemm.strided_gemm_kernel`
does: thread ``tid`` always copies slab column ``a_k = tid % BK`` of A and slab column
``b_n = tid % BN`` of B, in rows a fixed step apart, and every k-step moves all its
``k`` indices forward by ``BK``. So

* a thread's column ``n`` of B never changes: it is split into its three coordinates
  once, at the start;
* each ``k`` the thread reads is kept as a *mixed-radix counter* of three digits
  (``(c, kh, kw)`` in the forward pass), and adding ``BK`` to it is two compares and
  carries, the way an odometer advances. The addresses are then sums of products of
  small integers.

One kernel serves all three passes, because in each of them (see the table in
:mod:`.conv`) the addresses have the same shape; only the numbers differ:

* ``k`` has digits ``(d0, d1, d2)``, the last two with radices ``KD1`` and ``KD2``;
* ``A[m, k]`` is at ``m * AM + d0 * AS0 + d1 * AS1 + d2 * AS2`` (always inside);
* ``n`` has digits ``(e0, e1, e2)`` with radices ``ND1`` and ``ND2``;
* ``B[k, n]`` is at ``(e0 * NT0 + e1 * NT1 + e2 * NT2 + NTC) + (d0 * BS0 + d1 * BS1 +
  d2 * BS2)``. It lies in the padding (reads as 0) unless its image row
  ``e1 * NR + NR0 + d1 * KR`` is in ``[0, ROWS)`` and its column
  ``e2 * NC + NC0 + d2 * KC`` is in ``[0, COLS)``;
* ``C[m, n]`` is stored at ``split * M * N + (n // P) * M * P + m * P + n % P``: an
  ``(images, M, P)`` tensor (``P`` pixels per image), or, with ``P = N``, slice
  ``split`` of the split-K workspace.

These 29 integers, the *geometry*, are computed on the host by :mod:`.conv` for each
pass and problem, copied to the GPU once and cached there: a launch passes one small
device array instead of 29 scalars (each scalar costs a conversion on every launch).
Blocks along ``z`` are split-K slices, as in :mod:`.gemm`.
"""

from __future__ import annotations

import numba
from numba import cuda

from .gemm import GemmTiles, LoadPlan, built_once, slab_multiplier
from .launch import lean_kernel

# Positions in the geometry array (module-level ints are compile-time constants).
M_, N_, K_, K_CHUNK, SPLITS = 0, 1, 2, 3, 4
KD1, KD2, AM, AS0, AS1, AS2 = 5, 6, 7, 8, 9, 10
BS0, BS1, BS2, KR, KC = 11, 12, 13, 14, 15
ND1, ND2, NT0, NT1, NT2, NTC = 16, 17, 18, 19, 20, 21
NR, NR0, NC, NC0, ROWS, COLS, P = 22, 23, 24, 25, 26, 27, 28
GEOMETRY_FIELDS = ("M", "N", "K", "k_chunk", "splits", "KD1", "KD2", "AM", "AS0", "AS1",
                   "AS2", "BS0", "BS1", "BS2", "KR", "KC", "ND1", "ND2", "NT0", "NT1", "NT2",
                   "NTC", "NR", "NR0", "NC", "NC0", "ROWS", "COLS", "P")
"""The geometry array's fields, in order (see the module docstring)."""


def implicit_gemm_fits(tiles: GemmTiles) -> bool:
    """Whether these tiles allow fixed load columns (threads a multiple of BK and BN)."""
    threads = tiles.threads[0] * tiles.threads[1]
    return threads % tiles.bk == 0 and threads % tiles.bn == 0


@cuda.jit(device=True)
def split_digits(value, radix1, radix2):
    """``value`` as mixed-radix digits: ``value = (d0 * radix1 + d1) * radix2 + d2``."""
    d2 = value % radix2
    rest = value // radix2
    return rest // radix1, rest % radix1, d2


@cuda.jit(device=True)
def advance_digits(d0, d1, d2, q0, q1, q2, radix1, radix2):
    """The digits of ``value + step``, given those of ``value`` and of ``step``.

    Each digit sum is below twice its radix, so one compare-and-subtract per digit
    carries it: no division.
    """
    d2 += q2
    carry = 0
    if d2 >= radix2:
        d2 -= radix2
        carry = 1
    d1 += q1 + carry
    carry = 0
    if d1 >= radix1:
        d1 -= radix1
        carry = 1
    return d0 + q0 + carry, d1, d2


_KERNELS: dict = {}


def implicit_gemm_kernel(dtype, tiles: GemmTiles):
    """The kernel for this dtype and these tiles (built once); launch it with
    ``grid = (ceil(N / BN), ceil(M / BM), splits)`` and ``block = tiles.threads`` on
    ``(a, b, c, geometry)``, all flat device arrays."""
    return built_once(_KERNELS, _build_kernel, dtype, tiles, implicit_gemm_fits,
                      "implicit-GEMM conv")


def _build_kernel(dtype, tiles):
    """Compile-time constants (tiles, dtype) baked into a new kernel, as in :mod:`.gemm`."""
    BM, BN, BK, TM, TN = tiles
    THREADS_X, THREADS_Y = tiles.threads
    plan = LoadPlan.of(tiles)  # with few rows, some threads load nothing (see LoadPlan)
    A_ROW_STEP, B_ROW_STEP, A_LOADS, B_LOADS = (plan.a_row_step, plan.b_row_step,
                                                plan.a_loads, plan.b_loads)
    A_TILE_SHAPE, B_TILE_SHAPE = plan.a_tile_shape, plan.b_tile_shape
    value_type = numba.from_dtype(dtype)
    ZERO = dtype.type(0)
    multiply_slabs = slab_multiplier(tiles)

    @cuda.jit(device=True)
    def load_slabs(a, b, a_map, b_map, a_next, b_next, k0, k_end, row0, M, a_m, a_k, b_k,
                   a_d0, a_d1, a_d2, b_d0, b_d1, b_d2, n_ok, n_offset, n_row, n_col):
        """Copy this thread's share of the slabs at ``k0`` into registers (0 outside)."""
        am, as0, as1, as2 = a_map
        bs0, bs1, bs2, kr, kc, rows, cols = b_map
        a_offset = a_d0 * as0 + a_d1 * as1 + a_d2 * as2
        for r in range(A_LOADS):
            m = a_m + r * A_ROW_STEP
            inside = m < BM and row0 + m < M and k0 + a_k < k_end
            a_next[r] = a[(row0 + m) * am + a_offset] if inside else ZERO
        for r in range(B_LOADS):
            k = b_k + r * B_ROW_STEP
            row = n_row + b_d1[r] * kr
            col = n_col + b_d2[r] * kc
            inside = k < BK and n_ok and k0 + k < k_end and 0 <= row < rows and 0 <= col < cols
            b_next[r] = (b[n_offset + b_d0[r] * bs0 + b_d1[r] * bs1 + b_d2[r] * bs2]
                         if inside else ZERO)

    @lean_kernel
    def conv_gemm(a, b, c, geometry):
        # The same slabs and registers as the strided GEMM's. They are declared here, not
        # shared through a helper: Numba allocates shared and local arrays per kernel, and
        # a device function cannot return a local array.
        a_tile = cuda.shared.array(A_TILE_SHAPE, value_type)
        b_tile = cuda.shared.array(B_TILE_SHAPE, value_type)
        acc = cuda.local.array((TM, TN), value_type)
        a_frag = cuda.local.array(TM, value_type)
        b_frag = cuda.local.array(TN, value_type)
        a_next = cuda.local.array(A_LOADS, value_type)
        b_next = cuda.local.array(B_LOADS, value_type)
        b_d0 = cuda.local.array(B_LOADS, numba.int64)  # one k counter per B load
        b_d1 = cuda.local.array(B_LOADS, numba.int64)
        b_d2 = cuda.local.array(B_LOADS, numba.int64)

        M, N, K = geometry[M_], geometry[N_], geometry[K_]
        radix1, radix2 = geometry[KD1], geometry[KD2]
        # The address maps, read once into registers (see the module docstring).
        a_map = (geometry[AM], geometry[AS0], geometry[AS1], geometry[AS2])
        b_map = (geometry[BS0], geometry[BS1], geometry[BS2], geometry[KR], geometry[KC],
                 geometry[ROWS], geometry[COLS])
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        tid = ty * THREADS_X + tx
        row0 = cuda.blockIdx.y * BM
        col0 = cuda.blockIdx.x * BN
        split = cuda.blockIdx.z
        k_begin = split * geometry[K_CHUNK]
        k_end = min(K, k_begin + geometry[K_CHUNK])

        # The k-step BK as digits, and this thread's fixed load coordinates.
        q0, q1, q2 = split_digits(BK, radix1, radix2)
        a_k = tid % BK
        a_m = tid // BK
        b_n = tid % BN
        b_k = tid // BN
        a_d0, a_d1, a_d2 = split_digits(k_begin + a_k, radix1, radix2)
        for r in range(B_LOADS):
            b_d0[r], b_d1[r], b_d2[r] = split_digits(k_begin + b_k + r * B_ROW_STEP,
                                                     radix1, radix2)
        # Column n of B is fixed: its offset, image row and image column, once.
        n = col0 + b_n
        n_ok = n < N
        e0, e1, e2 = split_digits(n, geometry[ND1], geometry[ND2])
        n_offset = e0 * geometry[NT0] + e1 * geometry[NT1] + e2 * geometry[NT2] + geometry[NTC]
        n_row = e1 * geometry[NR] + geometry[NR0]
        n_col = e2 * geometry[NC] + geometry[NC0]

        for i in range(TM):
            for j in range(TN):
                acc[i, j] = ZERO

        load_slabs(a, b, a_map, b_map, a_next, b_next, k_begin, k_end, row0, M, a_m, a_k, b_k,
                   a_d0, a_d1, a_d2, b_d0, b_d1, b_d2, n_ok, n_offset, n_row, n_col)
        k0 = k_begin
        while k0 < k_end:
            for r in range(A_LOADS):
                if a_m + r * A_ROW_STEP < BM:
                    a_tile[a_k, a_m + r * A_ROW_STEP] = a_next[r]
            for r in range(B_LOADS):
                if b_k + r * B_ROW_STEP < BK:
                    b_tile[b_k + r * B_ROW_STEP, b_n] = b_next[r]
            cuda.syncthreads()
            k0 += BK
            if k0 < k_end:  # fetch the next slabs; they arrive while we multiply
                # Every counter moves BK forward, the way an odometer turns.
                a_d0, a_d1, a_d2 = advance_digits(a_d0, a_d1, a_d2, q0, q1, q2, radix1, radix2)
                for r in range(B_LOADS):
                    b_d0[r], b_d1[r], b_d2[r] = advance_digits(b_d0[r], b_d1[r], b_d2[r],
                                                               q0, q1, q2, radix1, radix2)
                load_slabs(a, b, a_map, b_map, a_next, b_next, k0, k_end, row0, M, a_m, a_k, b_k,
                           a_d0, a_d1, a_d2, b_d0, b_d1, b_d2, n_ok, n_offset, n_row, n_col)
            multiply_slabs(a_tile, b_tile, acc, a_frag, b_frag, tx, ty)
            cuda.syncthreads()  # the slabs are overwritten next step

        pixels = geometry[P]
        c_base = split * M * N
        for j in range(TN):
            n = col0 + tx + j * THREADS_X
            if n < N:
                image = n // pixels
                c_column = c_base + image * M * pixels + (n - image * pixels)
                for i in range(TM):
                    m = row0 + ty + i * THREADS_Y
                    if m < M:
                        c[c_column + m * pixels] = acc[i, j]

    return conv_gemm


def launch(kernel, tiles: GemmTiles, a, b, c, geometry, M: int, N: int, splits: int = 1):
    """Launch ``kernel`` over an ``M x N`` output with ``splits`` split-K slices."""
    if M == 0 or N == 0:
        return
    grid = ((N + tiles.bn - 1) // tiles.bn, (M + tiles.bm - 1) // tiles.bm, splits)
    kernel[grid, tiles.threads](a, b, c, geometry)


@lean_kernel
def sum_slices(workspace, out, splits, size):
    """``out[i] = sum_s workspace[s * size + i]``: the split-K slices added up."""
    i = cuda.grid(1)
    if i < size:
        total = workspace[i]
        for s in range(1, splits):
            total += workspace[s * size + i]
        out[i] = total
