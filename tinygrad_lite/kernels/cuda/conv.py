"""2-D convolution (NCHW) on the GPU as *implicit GEMM*, forward and both backwards.

A convolution is a matrix product in disguise. Write every ``C x KH x KW`` input patch
as a column (the *im2col* matrix, ``C*KH*KW`` rows by ``N*OH*OW`` columns) and the
weights as an ``O x C*KH*KW`` matrix; their product is the output, ``O`` rows by
``N*OH*OW`` columns. Building the im2col matrix in memory costs ``KH*KW`` times the
input's size, so instead each element of a patch is read from the input tensor when
a GEMM kernel loads it (zero in the padding): *implicit GEMM*. The patch matrix then
only ever exists one shared-memory slab at a time. Two kernels do this:

* :mod:`.conv_gemm` (the default): one kernel for all three passes, whose threads keep
  their coordinates as counters and never divide; this module describes each pass to
  it with 29 integers (``_forward_geometry`` and its two siblings);
* the generic kernel of :mod:`.gemm` with *index functions* (below) that compute, for a
  logical ``(row, column)``, where that value sits (or -1 for zero padding). It divides
  per element, and serves the input gradient for strides other than 1
  (``kernel="generic"`` selects it everywhere, for comparison).

All three passes are GEMMs:

=====================  =========  ==============  ==============  ===================
pass                   M (rows)   N (columns)     K (summed)      A x B
=====================  =========  ==============  ==============  ===================
forward                ``O``      ``N*OH*OW``     ``C*KH*KW``     weights x patches
backward to input      ``C``      ``N*H*W``       ``O*KH*KW``     weights^T x grads
backward to weights    ``O``      ``C*KH*KW``     ``N*OH*OW``     grads x patches^T
=====================  =========  ==============  ==============  ===================

Thread mapping is the GEMM's: a block owns a tile of output elements and each thread
owns ``TM x TN`` of them, so each output element has exactly one writer and no pass
needs atomics:

* the input gradient is written in *gather* form: the thread owning ``dx[b, c, h, w]``
  sums over every ``(o, kh, kw)`` whose window covers ``(h, w)``; for stride ``s`` the
  index function returns -1 (zero) for the taps where ``h + pad - kh`` is not a
  multiple of ``s``.
* the weight gradient sums over ``N*OH*OW`` (large) into only ``O*C*KH*KW`` outputs
  (small), too few tiles to fill a GPU. It uses *split-K*: ``splits`` blocks per tile
  each sum one chunk of the ``k`` range into their own slice of a workspace
  ``(splits, O, C*KH*KW)``, and ``sum_slices`` adds the slices.
"""

from __future__ import annotations

import numpy as np
from numba import cuda

from .common import float_dtype, launch_1d, multiprocessor_count, returned
from .conv_gemm import GEOMETRY_FIELDS, implicit_gemm_fits, implicit_gemm_kernel, sum_slices
from .conv_gemm import launch as launch_implicit
from .elementwise import cast, contiguous
from .gemm import SMALL_TILES, GemmTiles, gemm_kernel, launch_gemm
from .launch import flat
from .views import as_view, is_device_array, is_on_device

NARROW_TILES = GemmTiles(32, 64, 8, 2, 4)
"""32 x 64 block tiles, 256 threads: flatter tiles for GEMMs with few rows (channels)."""
SLIM_TILES = GemmTiles(16, 64, 8, 1, 4)
"""16 x 64 tiles, 256 threads: for a handful of rows (the input gradient of an RGB layer)."""
SQUARE_SMALL_TILES = GemmTiles(32, 32, 8, 2, 2)
"""32 x 32 tiles, 256 threads with 2 x 2 outputs each: more blocks for small outputs."""
THIN_TILES = GemmTiles(8, 256, 8, 1, 8)
"""8 x 256 tiles for a handful of rows; slower than ``SLIM_TILES`` in every sweep."""

CONV_TILES = {
    # pass: ((most rows, tiles), ...), the first entry with rows <= most rows wins
    "forward": ((None, SMALL_TILES),),
    "backward_input": ((16, SLIM_TILES), (32, SQUARE_SMALL_TILES), (None, SMALL_TILES)),
    "backward_weight": ((32, SQUARE_SMALL_TILES), (None, SMALL_TILES)),
}
"""Default tiles of the implicit-GEMM kernel per pass and number of GEMM rows.

From two ``benchmarks/bench_cuda.py --sweep`` runs on an H200 (2026-11-26 13:48 and
13:56 UTC: ``benchmarks/results/gpu/cuda_1348.json`` and ``cuda_sweep.json``), CIFAR
layers conv1 (3 -> 32 channels) and conv2 (32 -> 64):

* forward (rows = output channels): 64 x 64 tiles were fastest or within 3% for both;
* input gradient (rows = input channels): 16 x 64 for 3 rows (0.219 against 0.267 ms
  for 32 x 64 at 13:48, 0.198 against 0.246 at 13:56). For 32 rows 32 x 32 and 32 x 64
  are within 5% of each other and swapped places between the runs (0.175 against 0.185
  ms, then 0.169 against 0.161); 32 x 32 is kept;
* weight gradient (rows = output channels, split-K): 32 x 32 for 32 rows, 64 x 64 for 64
  (fastest in both runs).
"""


def conv_tiles(rows: int, pass_name: str = "forward") -> GemmTiles:
    """Block tiles for a convolution pass whose GEMM has ``rows`` rows (see ``CONV_TILES``).

    The rows of a convolution GEMM are channels, often few (3, 16, 32), while the
    columns (batch x pixels) are many, so tiles with few rows waste fewer threads on
    rows that do not exist. ``pass_name``: "forward", "backward_input" or
    "backward_weight".
    """
    if pass_name not in CONV_TILES:
        raise ValueError(f"unknown conv pass {pass_name!r}")
    for most_rows, tiles in CONV_TILES[pass_name]:
        if most_rows is None or rows <= most_rows:
            return tiles
    raise AssertionError("every CONV_TILES entry ends with a catch-all")


def _pair(value) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)):
        return int(value), int(value)
    first, second = value
    return int(first), int(second)


def output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def _geometry(x_shape, w_shape, stride, padding):
    """The integer tuple every conv index function unpacks (see ``_unpack`` below)."""
    n, c, h, w = (int(s) for s in x_shape)
    o, wc, kh, kw = (int(s) for s in w_shape)
    if wc != c:
        raise ValueError(f"input has {c} channels but the weight expects {wc}")
    sh, sw = _pair(stride)
    ph, pw = _pair(padding)
    oh, ow = output_size(h, kh, sh, ph), output_size(w, kw, sw, pw)
    if oh <= 0 or ow <= 0:
        raise ValueError(f"kernel {(kh, kw)} does not fit input {(h, w)} with padding "
                         f"{(ph, pw)}")
    return (n, c, h, w, o, kh, kw, oh, ow, sh, sw, ph, pw)


def _float_inputs(*arrays):
    """The inputs as kernel arguments: :func:`.launch.flat` wrappers of contiguous device
    arrays of one float dtype (numpy inputs are transferred), and that dtype.

    The common case, C-contiguous device arrays that already share a float dtype, needs
    no view, copy or reshape (each of those costs a launch or tens of us).
    """
    if all(is_device_array(a) and a.is_c_contiguous() for a in arrays):
        dtypes = {np.dtype(a.dtype) for a in arrays}
        if len(dtypes) == 1 and next(iter(dtypes)) in (np.float32, np.float64):
            return [flat(a) for a in arrays], next(iter(dtypes))
    views = [as_view(a) for a in arrays]  # numpy inputs are transferred here, once
    dtype = float_dtype(*(view.dtype for view in views))
    results = []
    for view in views:
        results.append(flat(cast(view, dtype) if view.dtype != dtype else contiguous(view)))
    return results, dtype


# ------------------------------------------------------------ index functions
# geom = (N, C, H, W, O, KH, KW, OH, OW, SH, SW, PH, PW). The im2col matrix has rows
# k = (c, kh, kw) and columns n = (b, oh, ow), both numbered in C order.


@cuda.jit(device=True)
def _patch_index(geom, batch, k, n):
    """im2col[k, n] = x[b, c, oh*SH - PH + kh, ow*SW - PW + kw], or -1 in the padding."""
    N, C, H, W, O, KH, KW, OH, OW, SH, SW, PH, PW = geom
    c = k // (KH * KW)
    kh = (k // KW) % KH
    kw = k % KW
    b = n // (OH * OW)
    oh = (n // OW) % OH
    ow = n % OW
    h = oh * SH - PH + kh
    w = ow * SW - PW + kw
    if h < 0 or h >= H or w < 0 or w >= W:
        return -1
    return ((b * C + c) * H + h) * W + w


@cuda.jit(device=True)
def _weight_index(geom, batch, o, k):
    """weights[o, k]: the (O, C, KH, KW) array is already an (O, C*KH*KW) matrix."""
    N, C, H, W, O, KH, KW, OH, OW, SH, SW, PH, PW = geom
    return o * (C * KH * KW) + k


@cuda.jit(device=True)
def _output_index(geom, batch, split, o, n):
    """y[b, o, oh, ow] for column n = (b, oh, ow)."""
    N, C, H, W, O, KH, KW, OH, OW, SH, SW, PH, PW = geom
    b = n // (OH * OW)
    return (b * O + o) * (OH * OW) + n % (OH * OW)


@cuda.jit(device=True)
def _weight_t_index(geom, batch, c, k):
    """weights^T[c, k] = w[o, c, kh, kw] for k = (o, kh, kw)."""
    N, C, H, W, O, KH, KW, OH, OW, SH, SW, PH, PW = geom
    o = k // (KH * KW)
    return (o * C + c) * (KH * KW) + k % (KH * KW)


@cuda.jit(device=True)
def _grad_tap_index(geom, batch, k, n):
    """dy[b, o, oh, ow] reaching dx[b, :, h, w] through tap (kh, kw), or -1 if none.

    Row k = (o, kh, kw), column n = (b, h, w). Output (oh, ow) uses input row
    ``oh*SH - PH + kh``, so input row h is reached from ``oh = (h + PH - kh) / SH``
    when that is a whole number inside the output.
    """
    N, C, H, W, O, KH, KW, OH, OW, SH, SW, PH, PW = geom
    o = k // (KH * KW)
    kh = (k // KW) % KH
    kw = k % KW
    b = n // (H * W)
    h = (n // W) % H
    w = n % W
    th = h + PH - kh
    tw = w + PW - kw
    if th < 0 or tw < 0 or th % SH != 0 or tw % SW != 0:
        return -1
    oh = th // SH
    ow = tw // SW
    if oh >= OH or ow >= OW:
        return -1
    return ((b * O + o) * OH + oh) * OW + ow


@cuda.jit(device=True)
def _input_index(geom, batch, split, c, n):
    """dx[b, c, h, w] for column n = (b, h, w)."""
    N, C, H, W, O, KH, KW, OH, OW, SH, SW, PH, PW = geom
    b = n // (H * W)
    return (b * C + c) * (H * W) + n % (H * W)


@cuda.jit(device=True)
def _grad_row_index(geom, batch, o, k):
    """dy viewed as an (O, N*OH*OW) matrix: row o, column k = (b, oh, ow)."""
    N, C, H, W, O, KH, KW, OH, OW, SH, SW, PH, PW = geom
    b = k // (OH * OW)
    return (b * O + o) * (OH * OW) + k % (OH * OW)


@cuda.jit(device=True)
def _patch_t_index(geom, batch, k, n):
    """im2col^T[k, n] = im2col[n, k]: the forward patches, read transposed."""
    return _patch_index(geom, batch, n, k)


@cuda.jit(device=True)
def _workspace_index(geom, batch, split, o, n):
    """workspace[split, o, n] for the split-K weight gradient."""
    N, C, H, W, O, KH, KW, OH, OW, SH, SW, PH, PW = geom
    return (split * O + o) * (C * KH * KW) + n


# ----------------------------------------------------- implicit-GEMM geometry
# Each pass described in the terms of :mod:`.conv_gemm` (the field names of
# ``GEOMETRY_FIELDS``); ``geom`` is the tuple of ``_geometry`` above.


def _forward_geometry(geom) -> dict:
    """y = weights @ patches: k = (c, kh, kw), n = (b, oh, ow); B reads x."""
    n, c, h, w, o, kh, kw, oh, ow, sh, sw, ph, pw = geom
    return dict(M=o, N=n * oh * ow, K=c * kh * kw, KD1=kh, KD2=kw,
                AM=c * kh * kw, AS0=kh * kw, AS1=kw, AS2=1,
                BS0=h * w, BS1=w, BS2=1, KR=1, KC=1,
                ND1=oh, ND2=ow, NT0=c * h * w, NT1=sh * w, NT2=sw, NTC=-ph * w - pw,
                NR=sh, NR0=-ph, NC=sw, NC0=-pw, ROWS=h, COLS=w, P=oh * ow)


def _input_grad_geometry(geom) -> dict:
    """dx = weights^T @ taps (stride 1): k = (o, kh, kw), n = (b, h, w); B reads dy.

    With stride 1, input pixel ``(h, w)`` gets ``dy[b, o, h + PH - kh, w + PW - kw]``
    through tap ``(kh, kw)``: an image row that *falls* as ``kh`` rises (KR = -1).
    """
    n, c, h, w, o, kh, kw, oh, ow, sh, sw, ph, pw = geom
    return dict(M=c, N=n * h * w, K=o * kh * kw, KD1=kh, KD2=kw,
                AM=kh * kw, AS0=c * kh * kw, AS1=kw, AS2=1,
                BS0=oh * ow, BS1=-ow, BS2=-1, KR=-1, KC=-1,
                ND1=h, ND2=w, NT0=o * oh * ow, NT1=ow, NT2=1, NTC=ph * ow + pw,
                NR=1, NR0=ph, NC=1, NC0=pw, ROWS=oh, COLS=ow, P=h * w)


def _weight_grad_geometry(geom) -> dict:
    """dW = dy @ patches^T: k = (b, oh, ow), n = (c, kh, kw); A reads dy, B reads x."""
    n, c, h, w, o, kh, kw, oh, ow, sh, sw, ph, pw = geom
    return dict(M=o, N=c * kh * kw, K=n * oh * ow, KD1=oh, KD2=ow,
                AM=oh * ow, AS0=o * oh * ow, AS1=ow, AS2=1,
                BS0=c * h * w, BS1=sh * w, BS2=sw, KR=sh, KC=sw,
                ND1=kh, ND2=kw, NT0=h * w, NT1=w, NT2=1, NTC=-ph * w - pw,
                NR=1, NR0=-ph, NC=1, NC0=-pw, ROWS=h, COLS=w, P=c * kh * kw)


_GEOMETRY_CACHE: dict = {}
_GEOMETRY_CACHE_SIZE = 256


def _geometry_on_device(describe, geom, k_chunk: int, splits: int):
    """``describe(geom)`` as a device int64 array, cached per pass and problem: a training
    loop repeats its shapes, so after the first step this is one dictionary lookup."""
    key = (describe, geom, k_chunk, splits)
    array = _GEOMETRY_CACHE.get(key)
    if array is None:
        fields = {**describe(geom), "k_chunk": k_chunk, "splits": splits}
        values = np.array([fields[name] for name in GEOMETRY_FIELDS], dtype=np.int64)
        if len(_GEOMETRY_CACHE) >= _GEOMETRY_CACHE_SIZE:
            _GEOMETRY_CACHE.clear()
        array = _GEOMETRY_CACHE[key] = cuda.to_device(values)
    return array


def _use_implicit(kernel: str | None, tiles: GemmTiles, stride_ok: bool = True) -> bool:
    """Whether to run the implicit-GEMM kernel (the default) or the index-function one."""
    if kernel not in (None, "implicit", "generic"):
        raise ValueError(f"kernel must be 'implicit' or 'generic', not {kernel!r}")
    if kernel == "implicit" and not (implicit_gemm_fits(tiles) and stride_ok):
        raise ValueError(f"the implicit kernel does not support tiles {tiles}"
                         + ("" if stride_ok else " / this stride"))
    return kernel != "generic" and implicit_gemm_fits(tiles) and stride_ok


def _launch_pass(describe, index_functions, a, b, out, geom, dtype, tiles, kernel, M, N, K,
                 stride_ok=True, splits=1, k_chunk=None):
    """Run one pass: the implicit kernel with the geometry ``describe(geom)``, or the
    generic kernel with ``index_functions`` = (A, B, C index functions)."""
    k_chunk = K if k_chunk is None else k_chunk
    if _use_implicit(kernel, tiles, stride_ok):
        launch_implicit(implicit_gemm_kernel(dtype, tiles), tiles, a, b, out,
                        _geometry_on_device(describe, geom, k_chunk, splits), M, N, splits)
    else:
        generic = gemm_kernel(*index_functions, dtype, tiles)
        launch_gemm(generic, tiles, a, b, out, geom, M=M, N=N, K=K, splits=splits,
                    k_chunk=k_chunk)


# ------------------------------------------------------------------- passes


def conv2d(x, w, stride=1, padding=0, tiles: GemmTiles | None = None,
           kernel: str | None = None):
    """Cross-correlation ``(N, C, H, W) * (O, C, KH, KW) -> (N, O, OH, OW)``.

    ``stride`` and ``padding`` are ints or ``(h, w)`` pairs; zero padding. ``kernel``:
    ``"implicit"`` (:mod:`.conv_gemm`, the default) or ``"generic"`` (index functions).
    """
    host = not (is_on_device(x) or is_on_device(w))
    geom = _geometry(x.shape, w.shape, stride, padding)
    n, c, h, width, o, kh, kw, oh, ow = geom[:9]
    (x_flat, w_flat), dtype = _float_inputs(x, w)
    out = cuda.device_array((n, o, oh, ow), dtype=dtype)
    tiles = tiles or conv_tiles(o, "forward")
    M, N, K = o, n * oh * ow, c * kh * kw
    _launch_pass(_forward_geometry, (_weight_index, _patch_index, _output_index),
                 w_flat, x_flat, flat(out), geom, dtype, tiles, kernel, M, N, K)
    return returned(out, host)


def conv2d_backward_input(grad_out, w, x_shape, stride=1, padding=0,
                          tiles: GemmTiles | None = None, kernel: str | None = None):
    """Gradient of ``conv2d`` with respect to its input, shape ``x_shape``.

    The implicit kernel handles stride 1; other strides use the index-function kernel,
    whose gather form tests each tap for divisibility by the stride.
    """
    host = not (is_on_device(grad_out) or is_on_device(w))
    geom = _geometry(x_shape, w.shape, stride, padding)
    n, c, h, width, o, kh, kw, oh, ow, sh, sw = geom[:11]
    _check_grad_shape(grad_out, (n, o, oh, ow))
    (g_flat, w_flat), dtype = _float_inputs(grad_out, w)
    grad_x = cuda.device_array((n, c, h, width), dtype=dtype)
    tiles = tiles or conv_tiles(c, "backward_input")
    M, N, K = c, n * h * width, o * kh * kw
    _launch_pass(_input_grad_geometry, (_weight_t_index, _grad_tap_index, _input_index),
                 w_flat, g_flat, flat(grad_x), geom, dtype, tiles, kernel, M, N, K,
                 stride_ok=(sh, sw) == (1, 1))
    return returned(grad_x, host)


def conv2d_backward_weight(grad_out, x, w_shape, stride=1, padding=0,
                           tiles: GemmTiles | None = None, splits: int | None = None,
                           kernel: str | None = None):
    """Gradient of ``conv2d`` with respect to its weight, shape ``w_shape``.

    ``splits`` (default: enough to give the GPU about two blocks per SM) is the number
    of split-K chunks; see the module docstring.
    """
    host = not (is_on_device(grad_out) or is_on_device(x))
    geom = _geometry(x.shape, w_shape, stride, padding)
    n, c, h, width, o, kh, kw, oh, ow = geom[:9]
    _check_grad_shape(grad_out, (n, o, oh, ow))
    (g_flat, x_flat), dtype = _float_inputs(grad_out, x)
    tiles = tiles or conv_tiles(o, "backward_weight")
    M, N, K = o, c * kh * kw, n * oh * ow
    splits, k_chunk = split_k(M, N, K, tiles, splits)
    grad_w = cuda.device_array((o, c, kh, kw), dtype=dtype)
    flat_w = flat(grad_w)
    workspace = flat_w if splits == 1 else cuda.device_array(splits * M * N, dtype=dtype)
    _launch_pass(_weight_grad_geometry, (_grad_row_index, _patch_t_index, _workspace_index),
                 g_flat, x_flat, workspace, geom, dtype, tiles, kernel, M, N, K,
                 splits=splits, k_chunk=k_chunk)
    if splits > 1:  # add the slices up with one small kernel
        blocks, threads = launch_1d(M * N)
        sum_slices[blocks, threads](workspace, flat_w, splits, M * N)
    return returned(grad_w, host)


def split_k(M, N, K, tiles: GemmTiles, splits: int | None = None) -> tuple[int, int]:
    """(splits, k_chunk): how many slices the ``K`` range is cut into, and their length.

    By default, enough slices to give the GPU about two blocks per SM, but never
    slices shorter than 8 k-steps (short slices waste time on the final reduction).
    ``k_chunk`` is a whole number of k-steps.
    """
    if splits is None:
        tiles_mn = -(-M // tiles.bm) * -(-N // tiles.bn)
        wanted = -(-2 * multiprocessor_count() // tiles_mn)
        splits = min(wanted, -(-K // (8 * tiles.bk)))
    splits = max(1, min(int(splits), K))
    k_chunk = -(-K // splits)
    k_chunk = -(-k_chunk // tiles.bk) * tiles.bk
    return -(-K // k_chunk), k_chunk


def _check_grad_shape(grad_out, expected):
    if tuple(grad_out.shape) != tuple(expected):
        raise ValueError(f"grad_out has shape {tuple(grad_out.shape)}, expected {expected}")
