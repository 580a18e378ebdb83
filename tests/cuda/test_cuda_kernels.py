"""The CUDA kernels against small numpy oracles written here.

Runs on a GPU or in the Numba CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``), which
executes every CUDA thread as a Python thread: shapes stay tiny (at most 6 per
dimension), and the GEMM-based kernels are mostly tested with *tiny tiles* so that
even these shapes span several block tiles, ragged edges and several k-steps. The
production tile sizes get a few fixed cases of their own.

Tolerances: 1e-5 relative for float32, 1e-10 for float64 (plus the same absolute
amount times the size of the values, for results that cancel to near zero).
"""

import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("numba.cuda", reason="numba-cuda is not installed")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

import tinygrad_lite.kernels.cuda as K  # noqa: E402
from tinygrad_lite.kernels.cuda import reductions as reduce_module  # noqa: E402
from tinygrad_lite.kernels.cuda.conv import (  # noqa: E402
    NARROW_TILES,
    SLIM_TILES,
    SQUARE_SMALL_TILES,
    THIN_TILES,
    conv_tiles,
)
from tinygrad_lite.kernels.cuda.gemm import (  # noqa: E402
    LARGE_TILES,
    SMALL_TILES,
    GemmTiles,
    strided_gemm_fits,
)

pytestmark = pytest.mark.cuda

FEW = settings(max_examples=6, deadline=None, derandomize=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
"""Hypothesis settings for simulator-sized tests: a handful of fixed examples."""

TINY_TILES = [GemmTiles(4, 4, 2, 2, 2), GemmTiles(4, 8, 4, 1, 2), GemmTiles(8, 4, 2, 2, 1)]
"""Tile shapes small enough that 6 x 6 problems span several tiles and k-steps."""

DTYPES = [np.float32, np.float64]
RTOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-10}


def host(x):
    """A kernel result as numpy (device arrays are copied back)."""
    return x.copy_to_host() if hasattr(x, "copy_to_host") else np.asarray(x)


def check(got, want, dtype=None):
    """Compare with the dtype's tolerance; shapes must match exactly."""
    got, want = host(got), np.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    rtol = RTOL[np.dtype(dtype or got.dtype)]
    scale = 1.0 + (np.nanmax(np.abs(want)) if want.size else 0.0)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale)


def randn(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


# ------------------------------------------------------------------ numpy oracles


def conv2d_oracle(x, w, stride, padding):
    """Direct cross-correlation in float64: one einsum per kernel tap."""
    (sh, sw), (ph, pw) = stride, padding
    n, c, h, width = x.shape
    o, _, kh, kw = w.shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    oh, ow = (h + 2 * ph - kh) // sh + 1, (width + 2 * pw - kw) // sw + 1
    out = np.zeros((n, o, oh, ow))
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw]
            out += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j])
    return out


def conv2d_grads_oracle(x, w, grad, stride, padding):
    """Input and weight gradients of sum(conv2d(x, w) * grad), tap by tap."""
    (sh, sw), (ph, pw) = stride, padding
    h, width = x.shape[2:]
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    grad_xp = np.zeros_like(xp)
    grad_w = np.zeros(w.shape)
    oh, ow = grad.shape[2:]
    for i in range(w.shape[2]):
        for j in range(w.shape[3]):
            rows, cols = slice(i, i + sh * oh, sh), slice(j, j + sw * ow, sw)
            window = (slice(None), slice(None), rows, cols)
            grad_w[:, :, i, j] = np.einsum("nchw,nohw->oc", xp[window], grad)
            grad_xp[window] += np.einsum("nohw,oc->nchw", grad, w[:, :, i, j])
    return grad_xp[:, :, ph:ph + h, pw:pw + width], grad_w


def pool_windows(x, kernel, stride):
    """All pooling windows as an (N, C, OH, OW, KH*KW) array, plus their top-left corners."""
    (kh, kw), (sh, sw) = kernel, stride
    n, c, h, w = x.shape
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    windows = np.empty((n, c, oh, ow, kh * kw), dtype=x.dtype)
    for i in range(oh):
        for j in range(ow):
            windows[:, :, i, j] = x[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw].reshape(n, c, -1)
    return windows


def max_pool_oracle(x, kernel, stride):
    kw, (sh, sw) = kernel[1], stride
    windows = pool_windows(x, kernel, stride)
    best = windows.argmax(-1)
    oh, ow = windows.shape[2:4]
    rows = np.arange(oh)[:, None] * sh + best // kw
    cols = np.arange(ow)[None, :] * sw + best % kw
    return windows.max(-1), rows * x.shape[3] + cols


def max_pool_backward_oracle(grad, indices, x_shape):
    n, c, h, w = x_shape
    grad_x = np.zeros((n * c, h * w))
    for plane in range(n * c):
        np.add.at(grad_x[plane], indices.reshape(n * c, -1)[plane], grad.reshape(n * c, -1)[plane])
    return grad_x.reshape(x_shape)


def avg_pool_backward_oracle(grad, x_shape, kernel, stride):
    (kh, kw), (sh, sw) = kernel, stride
    grad_x = np.zeros(x_shape)
    for i in range(grad.shape[2]):
        for j in range(grad.shape[3]):
            grad_x[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw] += (
                grad[:, :, i:i + 1, j:j + 1] / (kh * kw))
    return grad_x


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


# ----------------------------------------------------------------------- basics


def test_is_available_under_the_simulator_or_a_gpu():
    assert K.is_available()


def test_host_inputs_give_host_results_and_device_inputs_stay_on_device():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert isinstance(K.add(a, a), np.ndarray)
    on_device = K.add(K.to_device(a), a)
    assert hasattr(on_device, "copy_to_host")
    check(on_device, a + a)


# -------------------------------------------------------------------- matmul

dims = st.integers(1, 6)


KERNELS = [None, "generic"]
"""The default matmul kernel (strided where the tiles allow it) and the generic one."""


@FEW
@given(n=dims, k=dims, m=dims, tiles=st.sampled_from(TINY_TILES),
       dtype=st.sampled_from(DTYPES), kernel=st.sampled_from(KERNELS),
       seed=st.integers(0, 2**16))
def test_matmul_matches_numpy_across_tiles_and_ragged_edges(n, k, m, tiles, dtype, kernel,
                                                            seed):
    rng = np.random.default_rng(seed)
    a, b = randn(rng, (n, k), dtype), randn(rng, (k, m), dtype)
    got = K.matmul(a, b, tiles=tiles, kernel=kernel)
    assert got.dtype == dtype
    check(got, a.astype(np.float64) @ b, dtype)


@pytest.mark.parametrize("tiles", TINY_TILES[:2])
@pytest.mark.parametrize("shape", [(1, 1, 1), (4, 2, 4), (9, 7, 11), (8, 12, 8), (3, 13, 5)])
def test_strided_kernel_ragged_edges_and_many_k_steps(tiles, shape):
    """Every (M, K, N) remainder against the tile: prefetch and bounds of the last step."""
    assert strided_gemm_fits(tiles)
    n, k, m = shape
    rng = np.random.default_rng(sum(shape))
    a, b = randn(rng, (n, k), np.float64), randn(rng, (k, m), np.float64)
    check(K.matmul(a, b, tiles=tiles, kernel="strided"), a @ b)
    a_t = K.permute(K.as_view(a.T.copy()), (1, 0))  # A as a transposed view: stride_k != 1
    check(K.matmul(a_t, b, tiles=tiles, kernel="strided"), a @ b)


def test_strided_kernel_refuses_tiles_it_cannot_load_and_unknown_names():
    assert not strided_gemm_fits(TINY_TILES[2])
    a = np.ones((3, 3))
    check(K.matmul(a, a, tiles=TINY_TILES[2]), a @ a)  # falls back to the generic kernel
    with pytest.raises(ValueError, match="does not support tiles"):
        K.matmul(a, a, tiles=TINY_TILES[2], kernel="strided")
    with pytest.raises(ValueError, match="kernel must be"):
        K.matmul(a, a, kernel="fast")


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("tiles, dtype", [(SMALL_TILES, np.float32), (SMALL_TILES, np.float64),
                                          (LARGE_TILES, np.float32)])
def test_matmul_production_tiles(tiles, dtype, kernel):
    rng = np.random.default_rng(0)
    a, b = randn(rng, (5, 6), dtype), randn(rng, (6, 3), dtype)
    check(K.matmul(a, b, tiles=tiles, kernel=kernel), a.astype(np.float64) @ b, dtype)


@FEW
@given(batch=st.integers(1, 3), n=dims, k=dims, m=dims, dtype=st.sampled_from(DTYPES),
       seed=st.integers(0, 2**16))
def test_batched_matmul_matches_numpy(batch, n, k, m, dtype, seed):
    rng = np.random.default_rng(seed)
    a, b = randn(rng, (batch, n, k), dtype), randn(rng, (batch, k, m), dtype)
    check(K.batched_matmul(a, b, tiles=TINY_TILES[0]), a.astype(np.float64) @ b, dtype)


@pytest.mark.parametrize("kernel", KERNELS)
def test_matmul_reads_transposed_and_broadcast_operands_without_copies(kernel):
    rng = np.random.default_rng(1)
    x, w = randn(rng, (4, 5), np.float64), randn(rng, (3, 5), np.float64)
    w_t = K.permute(K.as_view(w), (1, 0))  # a (5, 3) view with strides (1, 5)
    got = K.matmul(x, w_t, tiles=TINY_TILES[1], kernel=kernel)
    assert hasattr(got, "copy_to_host")
    check(got, x @ w.T)
    x_t = K.permute(K.as_view(randn(rng, (5, 4), np.float64)), (1, 0))  # A transposed too
    check(K.matmul(x_t, w_t, tiles=TINY_TILES[1], kernel=kernel), host(K.contiguous(x_t)) @ w.T)
    stack = randn(rng, (2, 1, 3, 4), np.float64)
    right = randn(rng, (3, 4, 2), np.float64)
    check(K.matmul(stack, right, tiles=TINY_TILES[0], kernel=kernel), stack @ right)
    check(K.matmul(stack[0, 0, 0], right, tiles=TINY_TILES[0], kernel=kernel),
          stack[0, 0, 0] @ right)


def test_matmul_mixed_precision_and_empty_inner_dimension():
    a = np.ones((2, 3), np.float32)
    b = np.ones((3, 2), np.float64)
    got = K.matmul(a, b, tiles=TINY_TILES[0])
    assert got.dtype == np.float64
    check(got, a @ b)
    check(K.matmul(np.zeros((2, 0)), np.zeros((0, 3))), np.zeros((2, 3)))
    with pytest.raises(ValueError):
        K.matmul(np.ones((2, 3)), np.ones((2, 3)))
    with pytest.raises(TypeError):
        K.matmul(np.ones((2, 2), np.int64), np.ones((2, 2), np.int64))


# ---------------------------------------------------------------- convolution


@st.composite
def conv_problems(draw):
    n, c, o = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = draw(st.sampled_from([1, 2, (1, 2), (2, 1)]))
    padding = draw(st.sampled_from([0, 1, (0, 1)]))
    sh, sw = pair(stride)
    ph, pw = pair(padding)
    h = draw(st.integers(max(1, kh - 2 * ph), 6))
    w = draw(st.integers(max(1, kw - 2 * pw), 6))
    return (n, c, h, w), (o, c, kh, kw), stride, padding


@pytest.mark.parametrize("kernel", ["implicit", "generic"])
@pytest.mark.parametrize("dtype", DTYPES)
@FEW
@given(problem=conv_problems(), tiles=st.sampled_from(TINY_TILES),
       splits=st.sampled_from([None, 1, 2, 3]), seed=st.integers(0, 2**16))
def test_conv2d_forward_and_backward_match_oracle(kernel, dtype, problem, tiles, splits, seed):
    x_shape, w_shape, stride, padding = problem
    rng = np.random.default_rng(seed)
    x, w = randn(rng, x_shape, dtype), randn(rng, w_shape, dtype)
    want = conv2d_oracle(x, w, pair(stride), pair(padding))
    got = K.conv2d(x, w, stride, padding, tiles=tiles, kernel=kernel)
    assert got.dtype == dtype
    check(got, want, dtype)
    grad = randn(rng, want.shape, dtype)
    want_x, want_w = conv2d_grads_oracle(x, w, grad, pair(stride), pair(padding))
    # The implicit kernel's input gradient is for stride 1 (others use index functions).
    input_kernel = kernel if pair(stride) == (1, 1) else None
    check(K.conv2d_backward_input(grad, w, x_shape, stride, padding, tiles=tiles,
                                  kernel=input_kernel), want_x, dtype)
    check(K.conv2d_backward_weight(grad, x, w_shape, stride, padding, tiles=tiles, splits=splits,
                                   kernel=kernel), want_w, dtype)


def test_conv2d_kernel_choice_is_checked():
    x, w = np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3))
    with pytest.raises(ValueError, match="kernel must be"):
        K.conv2d(x, w, kernel="im2col")
    with pytest.raises(ValueError, match="does not support"):
        K.conv2d_backward_input(np.ones((1, 1, 1, 1)), w, x.shape, 2, kernel="implicit")
    # Tiles whose thread count is not a multiple of the k-step fall back, unless forced.
    odd = GemmTiles(6, 4, 4, 2, 2)  # 2 x 3 = 6 threads, not a multiple of BK = 4
    check(K.conv2d(x, w, tiles=odd), conv2d_oracle(x, w, (1, 1), (0, 0)))
    with pytest.raises(ValueError, match="does not support"):
        K.conv2d(x, w, tiles=odd, kernel="implicit")


def implicit_gemm_reference(a, b, fields, out_size):
    """What the implicit-GEMM kernel computes from a geometry, in plain numpy (the
    address formulas of conv_gemm's docstring, for all (m, k, n) at once)."""
    f = fields
    m, k, n = np.arange(f["M"]), np.arange(f["K"]), np.arange(f["N"])
    d0, d1, d2 = k // (f["KD1"] * f["KD2"]), (k // f["KD2"]) % f["KD1"], k % f["KD2"]
    e0, e1, e2 = n // (f["ND1"] * f["ND2"]), (n // f["ND2"]) % f["ND1"], n % f["ND2"]
    a_matrix = a[m[:, None] * f["AM"] + (d0 * f["AS0"] + d1 * f["AS1"] + d2 * f["AS2"])]
    rows = (d1 * f["KR"])[:, None] + (e1 * f["NR"] + f["NR0"])
    cols = (d2 * f["KC"])[:, None] + (e2 * f["NC"] + f["NC0"])
    inside = (rows >= 0) & (rows < f["ROWS"]) & (cols >= 0) & (cols < f["COLS"])
    address = ((d0 * f["BS0"] + d1 * f["BS1"] + d2 * f["BS2"])[:, None]
               + (e0 * f["NT0"] + e1 * f["NT1"] + e2 * f["NT2"] + f["NTC"]))
    b_matrix = np.where(inside, b[np.where(inside, address, 0)], 0.0)
    out = np.zeros(out_size)
    image, pixel = n // f["P"], n % f["P"]
    out[image * f["M"] * f["P"] + m[:, None] * f["P"] + pixel] = a_matrix @ b_matrix
    return out


@pytest.mark.parametrize("stride, padding", [((1, 1), (1, 0)), ((2, 1), (0, 1)), ((1, 2), (1, 1))])
def test_conv_geometries_describe_the_three_passes(stride, padding):
    """The geometry of each pass, run through the numpy reference of the kernel's
    address formulas, gives the oracle's result: checks conv.py's numbers apart
    from the kernel."""
    from tinygrad_lite.kernels.cuda import conv as conv_module

    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((2, 3, 5, 4)), rng.standard_normal((2, 3, 3, 2))
    geom = conv_module._geometry(x.shape, w.shape, stride, padding)
    y = conv2d_oracle(x, w, stride, padding)
    grad = rng.standard_normal(y.shape)
    want_x, want_w = conv2d_grads_oracle(x, w, grad, stride, padding)
    forward = conv_module._forward_geometry(geom)
    check(implicit_gemm_reference(w.ravel(), x.ravel(), forward, y.size).reshape(y.shape), y)
    weight = conv_module._weight_grad_geometry(geom)
    check(implicit_gemm_reference(grad.ravel(), x.ravel(), weight, w.size).reshape(w.shape),
          want_w)
    if stride == (1, 1):  # the implicit input gradient is for stride 1 only
        data = conv_module._input_grad_geometry(geom)
        check(implicit_gemm_reference(w.ravel(), grad.ravel(), data, x.size).reshape(x.shape),
              want_x)


@pytest.mark.parametrize("tiles", [None, NARROW_TILES, SMALL_TILES, SLIM_TILES,
                                   SQUARE_SMALL_TILES, THIN_TILES],
                         ids=["default", "narrow", "square", "slim", "square-small", "thin"])
def test_conv2d_production_tiles_on_device_arrays(tiles):
    rng = np.random.default_rng(2)
    x, w = randn(rng, (2, 2, 5, 4), np.float32), randn(rng, (3, 2, 3, 3), np.float32)
    dx, dw = K.to_device(x), K.to_device(w)
    y = K.conv2d(dx, dw, 1, 1, tiles=tiles)
    assert hasattr(y, "copy_to_host")
    check(y, conv2d_oracle(x, w, (1, 1), (1, 1)))
    grad = randn(rng, y.shape, np.float32)
    want_x, want_w = conv2d_grads_oracle(x, w, grad, (1, 1), (1, 1))
    check(K.conv2d_backward_input(K.to_device(grad), dw, x.shape, 1, 1, tiles=tiles), want_x)
    check(K.conv2d_backward_weight(K.to_device(grad), dx, w.shape, 1, 1, tiles=tiles), want_w)


def test_conv_tiles_suit_the_pass_and_the_channel_count():
    assert conv_tiles(3) == conv_tiles(64) == SMALL_TILES  # forward
    assert conv_tiles(3, "backward_input") == SLIM_TILES
    assert conv_tiles(32, "backward_input") == SQUARE_SMALL_TILES
    assert conv_tiles(64, "backward_input") == SMALL_TILES
    assert conv_tiles(32, "backward_weight") == SQUARE_SMALL_TILES
    assert conv_tiles(64, "backward_weight") == SMALL_TILES
    with pytest.raises(ValueError, match="unknown conv pass"):
        conv_tiles(3, "sideways")


def test_conv2d_rejects_bad_shapes():
    with pytest.raises(ValueError):
        K.conv2d(np.ones((1, 2, 4, 4)), np.ones((1, 3, 3, 3)))
    with pytest.raises(ValueError):
        K.conv2d(np.ones((1, 1, 2, 2)), np.ones((1, 1, 3, 3)))


def test_split_k_chunks_cover_k_in_whole_steps():
    from tinygrad_lite.kernels.cuda.conv import split_k

    for K_, splits in [(1, None), (100, None), (100, 3), (7, 50), (4096, None)]:
        count, chunk = split_k(64, 64, K_, SMALL_TILES, splits)
        assert chunk % SMALL_TILES.bk == 0
        assert (count - 1) * chunk < K_ <= count * chunk


# -------------------------------------------------------------------- pooling


@st.composite
def pool_problems(draw):
    kernel = draw(st.sampled_from([1, 2, 3, (2, 3), (3, 1)]))
    stride = draw(st.sampled_from([None, 1, 2, (1, 2)]))
    kh, kw = pair(kernel)
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 2)),
             draw(st.integers(kh, 6)), draw(st.integers(kw, 6)))
    return shape, kernel, stride


@pytest.mark.parametrize("dtype", DTYPES)
@FEW
@given(problem=pool_problems(), seed=st.integers(0, 2**16))
def test_max_pool2d_forward_and_both_backward_forms(dtype, problem, seed):
    shape, kernel, stride = problem
    rng = np.random.default_rng(seed)
    x = randn(rng, shape, dtype)
    k2, s2 = pair(kernel), pair(kernel if stride is None else stride)
    want, want_idx = max_pool_oracle(x, k2, s2)
    out, idx = K.max_pool2d(x, kernel, stride)
    check(out, want, dtype)
    assert idx.dtype == np.int64 and np.array_equal(idx, want_idx)
    grad = randn(rng, want.shape, dtype)
    want_x = max_pool_backward_oracle(grad, want_idx, shape)
    check(K.max_pool2d_backward(grad, idx, shape), want_x, dtype)  # atomic scatter
    check(K.max_pool2d_backward(grad, idx, shape, kernel, stride), want_x, dtype)  # gather


@pytest.mark.parametrize("dtype", DTYPES)
@FEW
@given(problem=pool_problems(), seed=st.integers(0, 2**16))
def test_avg_pool2d_forward_and_backward(dtype, problem, seed):
    shape, kernel, stride = problem
    rng = np.random.default_rng(seed)
    x = randn(rng, shape, dtype)
    k2, s2 = pair(kernel), pair(kernel if stride is None else stride)
    want = pool_windows(x.astype(np.float64), k2, s2).mean(-1)
    check(K.avg_pool2d(x, kernel, stride), want, dtype)
    grad = randn(rng, want.shape, dtype)
    check(K.avg_pool2d_backward(grad, shape, kernel, stride),
          avg_pool_backward_oracle(grad, shape, k2, s2), dtype)


def test_max_pool_ties_go_to_the_first_position():
    x = np.zeros((1, 1, 2, 2), np.float32)
    _, idx = K.max_pool2d(x, 2)
    assert idx.ravel().tolist() == [0]


# -------------------------------------------------------------- elementwise

UNARY_ORACLES = {
    "neg": np.negative, "exp": np.exp, "log": np.log, "sqrt": np.sqrt, "abs": np.abs,
    "sign": np.sign, "sin": np.sin, "cos": np.cos, "tanh": np.tanh,
    "sigmoid": lambda x: 1 / (1 + np.exp(-x.astype(np.float64))),
    "relu": lambda x: np.maximum(x, 0),
    "log1p": np.log1p, "expm1": np.expm1,
}
BINARY_ORACLES = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.true_divide,
    "pow": np.power, "maximum": np.maximum, "minimum": np.minimum, "eq": np.equal,
    "ne": np.not_equal, "lt": np.less, "le": np.less_equal, "gt": np.greater,
    "ge": np.greater_equal,
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(UNARY_ORACLES))
def test_unary_ops(name, dtype):
    rng = np.random.default_rng(3)
    x = randn(rng, (3, 5), dtype) * 3
    x[0, 0] = 0
    if name in ("log", "sqrt"):
        x = np.abs(x) + np.asarray(0.1, dtype)
    if name == "log1p":
        x = np.abs(x) - np.asarray(0.9, dtype)  # above -1, some of it near 0
    if name in ("log1p", "expm1"):
        x[0, 1] = np.asarray(1e-20, dtype)  # tiny: where log(1 + x) and e^x - 1 give 0
    got = K.UNARY[name](x)
    assert got.dtype == dtype
    check(got, UNARY_ORACLES[name](x.astype(np.float64)), dtype)


def test_sigmoid_is_stable_at_extremes():
    x = np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0])
    got = K.sigmoid(x)
    assert np.all(np.isfinite(got))
    check(got, [0.0, 1 / (1 + np.exp(50.0)), 0.5, 1 / (1 + np.exp(-50.0)), 1.0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_unary_ops_return_numpy_special_values_instead_of_raising(dtype):
    x = np.array([0.0, -1.0, np.nan, np.inf, 1000.0], dtype)
    with np.errstate(all="ignore"):
        for name in ("log", "sqrt", "exp", "sin", "cos", "tanh", "sigmoid", "log1p", "expm1"):
            want = UNARY_ORACLES[name](x.astype(np.float64)).astype(dtype)
            got = host(K.UNARY[name](x))
            # NaN and infinities exactly where numpy has them; finite values to the
            # dtype's tolerance (the GPU's libdevice math may differ in the last ulp).
            assert np.array_equal(np.isnan(got), np.isnan(want)), name
            assert np.array_equal(got[np.isinf(want)], want[np.isinf(want)]), name
            finite = np.isfinite(want)
            np.testing.assert_allclose(got[finite], want[finite], rtol=RTOL[np.dtype(dtype)],
                                       err_msg=name)


def test_unary_ops_on_integers_follow_numpy_dtypes():
    x = np.array([-2, 0, 3])
    assert K.neg(x).dtype == np.int64 and K.neg(x).tolist() == [2, 0, -3]
    assert K.exp(x).dtype == np.float64
    assert K.sign(x).tolist() == [-1, 0, 1]
    assert np.isnan(K.sign(np.array([np.nan]))[0])


@pytest.mark.parametrize("name", sorted(BINARY_ORACLES))
@settings(max_examples=3, deadline=None, derandomize=True)
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=4),
       dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**16))
def test_binary_ops_broadcast_like_numpy(name, shapes, dtype, seed):
    rng = np.random.default_rng(seed)
    a_shape, b_shape = shapes.input_shapes
    # small integers as floats, so comparisons see ties and pow stays finite
    a = rng.integers(-3, 4, a_shape).astype(dtype)
    b = rng.integers(-3, 4, b_shape).astype(dtype)
    if name == "pow":
        a = np.abs(a) + 1
    if name == "div":
        b[b == 0] = 2
    got, want = K.BINARY[name](a, b), BINARY_ORACLES[name](a, b)
    assert host(got).dtype == want.dtype
    if want.dtype == np.bool_:
        assert np.array_equal(host(got), want)
    else:
        check(got, want, dtype)


def test_binary_ops_with_python_scalars_keep_the_array_dtype():
    x = np.array([1.0, 2.0, 3.0], np.float32)
    assert K.mul(x, 2.0).dtype == np.float32
    check(K.sub(1.0, x), 1.0 - x)
    check(K.div(np.array([1, 2]), 4), [0.25, 0.5], np.float64)


def test_maximum_and_minimum_propagate_nan():
    a = np.array([np.nan, 1.0, 2.0])
    b = np.array([0.0, np.nan, 1.0])
    assert np.array_equal(K.maximum(a, b), np.maximum(a, b), equal_nan=True)
    assert np.array_equal(K.minimum(a, b), np.minimum(a, b), equal_nan=True)


@FEW
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=3, max_dims=3, max_side=4),
       seed=st.integers(0, 2**16))
def test_where_broadcasts_all_three_operands(shapes, seed):
    rng = np.random.default_rng(seed)
    c_shape, a_shape, b_shape = shapes.input_shapes
    cond = rng.random(c_shape) > 0.5
    a, b = randn(rng, a_shape, np.float32), randn(rng, b_shape, np.float64)
    got = K.where(cond, a, b)
    assert got.dtype == np.float64
    check(got, np.where(cond, a, b))


def test_strided_views_and_out_views():
    rng = np.random.default_rng(4)
    a = randn(rng, (3, 4), np.float64)
    view = K.as_view(a)
    transposed = K.permute(view, (1, 0))
    reversed_cols = K.basic_index(view, (slice(None), slice(None, None, -2)))
    check(K.add(transposed, 1.0), a.T + 1)
    check(K.copy_strided(reversed_cols), a[:, ::-2])
    check(K.mul(K.expand(K.basic_index(view, (0, None)), (2, 4)), 2.0),
          np.broadcast_to(a[0] * 2, (2, 4)))
    target = K.to_device(np.zeros((3, 4)))
    K.exp(np.ones(4), out=K.basic_index(K.as_view(target), (1,)))
    want = np.zeros((3, 4))
    want[1] = np.e
    check(target, want)
    with pytest.raises(ValueError):
        K.add(np.ones(3), np.ones(2))


def test_views_reshape_and_shape_inference():
    view = K.as_view(np.arange(12.0))
    assert K.reshape_view(view, (3, -1)).shape == (3, 4)
    assert K.reshape_view(K.permute(K.as_view(np.ones((2, 3))), (1, 0)), -1) is None
    with pytest.raises(ValueError):
        K.reshape_view(view, (5, -1))
    with pytest.raises(ValueError):
        K.expand(view, (2, 3))
    with pytest.raises(ValueError):
        K.permute(view, (1,))


def test_cast_full_and_contiguous():
    x = np.array([-1.7, 0.2, 2.9])
    assert K.cast(x, np.int64).tolist() == [-1, 0, 2]
    assert K.cast(x, np.bool_).tolist() == [True, True, True]
    assert K.cast(np.array([0, 2]), np.float32).dtype == np.float32
    check(K.full((2, 3), 1.5, np.float32), np.full((2, 3), 1.5, np.float32))
    check(K.zeros(4, np.float64), np.zeros(4))
    d = K.to_device(np.arange(12.0).reshape(3, 4))
    same = K.contiguous(d)
    assert same.shape == (3, 4)
    check(K.contiguous(K.permute(K.as_view(d), (1, 0))), np.arange(12.0).reshape(3, 4).T)


# ----------------------------------------------------------------- reductions


@st.composite
def reduce_problems(draw):
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=4))
    axes = draw(st.one_of(st.none(), st.lists(st.integers(0, max(0, len(shape) - 1)),
                                              unique=True, max_size=len(shape)).map(tuple)))
    if axes is not None and len(shape) == 0:
        axes = None
    return shape, axes, draw(st.booleans()), draw(st.sampled_from(["sum", "max", "min"]))


@pytest.fixture(params=["block", "thread"])
def reduce_strategy(request, monkeypatch):
    """Force one of the two thread mappings so both are exercised on tiny shapes."""
    if request.param == "block":
        monkeypatch.setattr(reduce_module, "SHORT_REDUCTION", 0)
        monkeypatch.setattr(reduce_module, "THREAD_PER_OUTPUT_MIN", 10**9)
    else:
        monkeypatch.setattr(reduce_module, "SHORT_REDUCTION", 10**9)
    return request.param


@settings(FEW, suppress_health_check=[HealthCheck.function_scoped_fixture])  # fixture is constant
@given(problem=reduce_problems(), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**16))
def test_reductions_over_any_axes(reduce_strategy, problem, dtype, seed):
    shape, axes, keepdims, op = problem
    rng = np.random.default_rng(seed)
    x = randn(rng, shape, dtype)
    want = getattr(np, op)(x.astype(np.float64), axis=axes, keepdims=keepdims)
    got = K.reduce(x, op, axis=axes, keepdims=keepdims)
    assert host(got).dtype == dtype
    check(got, want, dtype)


def test_reduction_of_a_transposed_view_and_long_rows(reduce_strategy):
    rng = np.random.default_rng(5)
    x = randn(rng, (3, 40), np.float64)
    view = K.permute(K.as_view(x), (1, 0))
    check(K.reduce_sum(view, axis=0), x.sum(axis=1))
    check(K.reduce_max(x, axis=1, keepdims=True), x.max(axis=1, keepdims=True))


def test_reduction_dtypes_and_edge_cases():
    assert host(K.reduce_sum(np.array([True, True, False]))) == 2
    assert host(K.reduce_sum(np.array([1, 2], np.int32))).dtype == np.int64
    check(K.reduce_sum(np.zeros((0, 3)), axis=0), np.zeros(3))
    assert K.reduce_max(np.array([[1, 5], [7, 2]]), axis=1).tolist() == [5, 7]
    with pytest.raises(ValueError):
        K.reduce_max(np.zeros((0, 3)), axis=0)
    with pytest.raises(ValueError):
        K.reduce_sum(np.zeros((2, 3)), axis=(0, 0))
    assert np.isnan(host(K.reduce_max(np.array([1.0, np.nan, 3.0]))))


@FEW
@given(x=hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=5),
                    elements=st.integers(-2, 2).map(float)),
       data=st.data())
def test_argmax_and_argmin_match_numpy_including_ties(x, data):
    axis = data.draw(st.one_of(st.none(), st.integers(-x.ndim, x.ndim - 1)))
    keepdims = data.draw(st.booleans())
    assert np.array_equal(K.argmax(x, axis, keepdims), np.argmax(x, axis, keepdims=keepdims))
    assert np.array_equal(K.argmin(x, axis, keepdims), np.argmin(x, axis, keepdims=keepdims))


def test_argmax_nan_counts_as_largest_and_long_axes_use_the_tree():
    x = np.array([[1.0, np.nan, 5.0, np.nan], [3.0, 3.0, 1.0, 0.0]])
    assert K.argmax(x, 1).tolist() == [1, 0]
    assert K.argmin(x, 1).tolist() == [1, 3]
    long = np.random.default_rng(6).standard_normal((2, 70)).astype(np.float32)
    assert np.array_equal(K.argmax(long, 1), long.argmax(1))
    assert K.argmax(long).item() == long.argmax()


# ------------------------------------------------------------------- indexing

KEYS = [
    (1,), (slice(1, None), [0, 2]), ([0, 0, 2],), (Ellipsis, None, 1),
    ([[0, 1], [2, 2]], slice(None, None, -2)), (slice(None), -1), (np.array([2, 0]), 1),
]


@pytest.mark.parametrize("key", KEYS, ids=str)
def test_getitem_matches_numpy(key):
    a = np.arange(12.0).reshape(3, 4)
    got = K.getitem(a, key)
    assert np.array_equal(got, a[key])


def test_fortran_ordered_index_arrays_are_sent_in_c_order():
    """``a[1:, [0, 2]]`` makes numpy return F-ordered indices; the device copy must be C."""
    from tinygrad_lite.kernels.cuda.indexing import _index_array, flat_indices

    indices = flat_indices((3, 4), (slice(1, None), [0, 2]))
    device = _index_array(indices, 12)
    assert device.is_c_contiguous()
    assert host(device).reshape(-1).tolist() == [4, 6, 8, 10]


def test_getitem_with_a_boolean_mask_and_a_view():
    a = np.random.default_rng(7).standard_normal((3, 4))
    assert np.array_equal(K.getitem(a, a > 0), a[a > 0])
    view = K.permute(K.as_view(a), (1, 0))
    assert np.array_equal(host(K.getitem(view, ([3, 0], [2, 1]))), a.T[[3, 0], [2, 1]])


def test_gather_and_scatter_add_with_repeated_indices():
    x = np.arange(10.0) * 2
    idx = np.array([[3, 3], [0, 9]])
    assert np.array_equal(K.gather(x, idx), x[idx])
    values = np.array([[1.0, 2.0], [3.0, 4.0]])
    want = np.zeros(10)
    np.add.at(want, idx, values)
    check(K.scatter_add(10, idx, values), want)
    check(K.scatter_add((2, 5), idx, 1.0), np.bincount(idx.ravel(), minlength=10).reshape(2, 5))
    with pytest.raises(IndexError):
        K.gather(x, np.array([10]))


def test_indexing_gradient_round_trip():
    """gather's gradient is scatter_add of the output gradient at the same flat indices."""
    shape, key = (3, 4), ([0, 2, 0], slice(1, 3))
    flat = K.flat_indices(shape, key)
    grad_out = np.ones(flat.shape)
    want = np.zeros(shape)
    np.add.at(want, key, grad_out)
    check(K.scatter_add(shape, flat, grad_out), want)


def test_setitem_pad_and_concatenate():
    a = np.arange(12.0).reshape(3, 4)
    d = K.to_device(a)
    K.setitem(d, (slice(None), 1), -1.0)
    K.setitem(d, ([0, 2], [3, 0]), np.array([7.0, 8.0]))
    want = a.copy()
    want[:, 1] = -1
    want[[0, 2], [3, 0]] = [7, 8]
    check(d, want)
    check(K.pad(a, [(1, 0), (0, 2)], -1.0), np.pad(a, [(1, 0), (0, 2)], constant_values=-1))
    check(K.concatenate([a, a[:1]], axis=0), np.concatenate([a, a[:1]]))
    check(K.concatenate([a, a[:, :2]], axis=-1), np.concatenate([a, a[:, :2]], axis=-1))


# --------------------------------------------------- compiled for a real GPU


def _ptx_toolchain_found() -> bool:
    from tinygrad_lite.kernels.cuda import compile_check

    return compile_check.find_libdevice() is not None


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("NUMBA_ENABLE_CUDASIM") != "1",
                    reason="simulator only: on a real GPU the tests above compile every kernel")
def test_every_kernel_compiles_to_ptx():
    """The simulator runs kernels as Python and never type-checks them: compile them all.

    Runs ``python -m tinygrad_lite.kernels.cuda.compile_check`` in a process without
    the simulator; needs NVVM and libdevice (a CUDA toolkit), not a GPU.
    """
    if not _ptx_toolchain_found():
        pytest.skip("no CUDA toolkit (libnvvm + libdevice) to compile PTX with")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    result = subprocess.run([sys.executable, "-m", "tinygrad_lite.kernels.cuda.compile_check"],
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("NUMBA_ENABLE_CUDASIM") != "1",
                    reason="simulator only (the report compiles offline)")
def test_ptx_report_shows_the_unrolled_k_step():
    """``compile_check --ptx-report``: the GEMM's k-step holds BK * TM * TN FMAs (the
    k-loop is unrolled) and they are most of its instructions with 8 x 8 tiles."""
    if not _ptx_toolchain_found():
        pytest.skip("no CUDA toolkit (libnvvm + libdevice) to compile PTX with")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    result = subprocess.run([sys.executable, "-m", "tinygrad_lite.kernels.cuda.compile_check",
                             "--ptx-report"], env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    large = next(line for line in result.stdout.splitlines()
                 if "strided GEMM (128, 128, 8, 8, 8)" in line)
    assert " 512 FMA" in large  # 8 k-steps x 8 x 8 outputs: every kk unrolled
    share = int(large.split("FMA (")[1].split("%")[0])
    assert share >= 60, large



# ----------------------------------------------------- elementwise fast path

FAST_SHAPES = [(7,), (3, 5), (1, 1), (300,)]


@pytest.mark.parametrize("shape", FAST_SHAPES)
@pytest.mark.parametrize("name", ["add", "mul", "div", "maximum", "lt", "pow"])
def test_elementwise_fast_path_matches_the_general_path(shape, name):
    """Contiguous 1-D/2-D device arrays of one shape (and scalars) take the fast path;
    passing the same data as StridedViews forces the general one: same values, dtypes."""
    from tinygrad_lite.kernels.cuda import elementwise

    rng = np.random.default_rng(len(shape) * 7 + len(name))
    op = K.BINARY[name]
    for a_dtype, b_dtype in [(np.float32, np.float32), (np.float64, np.float32),
                             (np.int64, np.float32), (np.int64, np.int64)]:
        a = np.abs(randn(rng, shape, np.float64)).astype(a_dtype) + 1
        b = np.abs(randn(rng, shape, np.float64)).astype(b_dtype) + 1
        da, db = K.to_device(a), K.to_device(b)
        assert elementwise._fast_operands([da, db], None, elementwise.promote) is not None
        for left, right in [(da, db), (da, 2.5), (3, db), (da, True)]:
            fast = op(left, right)
            general = op(K.as_view(left) if hasattr(left, "copy_to_host") else left,
                         K.as_view(right) if hasattr(right, "copy_to_host") else right)
            assert fast.dtype == general.dtype, (name, left, right)
            np.testing.assert_array_equal(host(fast), host(general))


@pytest.mark.parametrize("name", ["exp", "neg", "relu", "sigmoid", "abs"])
def test_unary_fast_path_matches_numpy_and_casts(name):
    x = np.random.default_rng(3).standard_normal((4, 6)).astype(np.float32)
    got = K.UNARY[name](K.to_device(x))
    want = UNARY_ORACLES[name](x.astype(np.float64)).astype(np.float32)
    np.testing.assert_allclose(host(got), want, rtol=1e-6, atol=1e-7)
    cast = K.cast(K.to_device(x), np.float64)  # the copy kernel with a dtype
    assert cast.dtype == np.float64 and np.array_equal(host(cast), x.astype(np.float64))


def test_fast_path_declines_views_broadcasts_and_other_ranks():
    from tinygrad_lite.kernels.cuda import elementwise

    a = K.to_device(np.ones((2, 3)))
    for inputs in ([a, K.to_device(np.ones(3))],             # broadcasting
                   [K.as_view(a), a],                         # a view
                   [K.to_device(np.ones((2, 3, 4)))],         # 3-D
                   [K.to_device(np.ones((0, 3)))],            # empty
                   [np.ones((2, 3)), a],                      # host data
                   [2.0, 3.0]):                               # no array at all
        assert elementwise._fast_operands(inputs, None, elementwise.promote) is None
    np.testing.assert_array_equal(host(K.add(a, K.to_device(np.arange(3.0)))),
                                  np.ones((2, 3)) + np.arange(3.0))
