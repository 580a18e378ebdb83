"""The Numba CPU kernels against the numpy reference, and the reference against calculus.

* Every ``kernels.cpu`` function is compared with ``kernels.reference`` on random shapes
  drawn by hypothesis: non-square, not multiples of the 4x4 register block, batch 1,
  odd sizes, stride 1-2 and padding 0-1 (ints and ``(h, w)`` pairs), both dtypes.
  Tolerance: 1e-5 (float32) and 1e-10 (float64), relative to the largest expected value.
* The reference convolution's backward passes are checked against central finite
  differences of the reference forward pass, on tiny float64 shapes.
* Determinism: the parallel backward kernels give bit-identical results twice in a row
  and with one thread or many (no ``prange`` loop accumulates into a shared cell).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("numba")

from tinygrad_lite.kernels import cpu  # noqa: E402
from tinygrad_lite.kernels import reference as ref  # noqa: E402

TOLERANCE = {np.float32: 1e-5, np.float64: 1e-10}
DTYPES = st.sampled_from([np.float32, np.float64])
EXAMPLES = settings(max_examples=20, deadline=None)


def assert_close(actual, expected):
    """Equal within the dtype's tolerance, relative to the largest expected magnitude."""
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    tol = TOLERANCE[expected.dtype.type]
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol * scale)


def random_array(seed, shape, dtype):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


int_or_pair = st.one_of(st.integers(1, 2), st.tuples(st.integers(1, 2), st.integers(1, 2)))
padding_strategy = st.one_of(st.integers(0, 1), st.tuples(st.integers(0, 1), st.integers(0, 1)))


def draw_window(draw):
    """Filter size, stride, padding and an image height/width (<= 9) the window fits."""
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride, padding = draw(int_or_pair), draw(padding_strategy)
    ph, pw = ref.as_pair(padding)
    h = draw(st.integers(max(1, kh - 2 * ph), 9))
    w = draw(st.integers(max(1, kw - 2 * pw), 9))
    return kh, kw, stride, padding, h, w


@st.composite
def conv_cases(draw):
    """(x shape, w shape, stride, padding, dtype, seed) with the window fitting the image."""
    kh, kw, stride, padding, h, w = draw_window(draw)
    n, c, o = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 5))
    return (n, c, h, w), (o, c, kh, kw), stride, padding, draw(DTYPES), draw(st.integers(0, 99))


@st.composite
def pool_cases(draw):
    """(x shape, kernel_size, stride or None, dtype, seed)."""
    kernel = draw(st.one_of(st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    stride = draw(st.one_of(st.none(), st.integers(1, 3),
                            st.tuples(st.integers(1, 3), st.integers(1, 3))))
    kh, kw = ref.as_pair(kernel)
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3)),
             draw(st.integers(kh, 9)), draw(st.integers(kw, 9)))
    return shape, kernel, stride, draw(DTYPES), draw(st.integers(0, 99))


# ------------------------------------------------------------------------------ matmul


@contextlib.contextmanager
def gemm_kernel(kind):
    """Make ``matmul`` use the ``"inner"`` or ``"outer"`` product kernel for any shape."""
    saved = cpu.WIDE_M, cpu.SHORT_K
    cpu.WIDE_M, cpu.SHORT_K = (0, 0) if kind == "inner" else (10**9, 10**9)
    try:
        yield
    finally:
        cpu.WIDE_M, cpu.SHORT_K = saved


@EXAMPLES
@given(n=st.integers(1, 70), k=st.integers(1, 140), m=st.integers(1, 70), dtype=DTYPES,
       seed=st.integers(0, 99), kind=st.sampled_from(["inner", "outer"]))
def test_matmul_matches_numpy(n, k, m, dtype, seed, kind):
    a, b = random_array(seed, (n, k), dtype), random_array(seed + 1, (k, m), dtype)
    with gemm_kernel(kind):
        assert_close(cpu.matmul(a, b), ref.matmul(a, b))


@EXAMPLES
@given(batch=st.integers(1, 3), n=st.integers(1, 20), k=st.integers(1, 90),
       m=st.integers(1, 20), dtype=DTYPES, seed=st.integers(0, 99),
       kind=st.sampled_from(["inner", "outer"]))
def test_batched_matmul_matches_numpy(batch, n, k, m, dtype, seed, kind):
    a, b = random_array(seed, (batch, n, k), dtype), random_array(seed + 1, (batch, k, m), dtype)
    with gemm_kernel(kind):
        assert_close(cpu.batched_matmul(a, b), ref.batched_matmul(a, b))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["inner", "outer"])
def test_matmul_many_tiles_and_k_blocks(dtype, kind, monkeypatch):
    """Several tiles and k blocks (blocks made small here), ragged edges."""
    monkeypatch.setattr(cpu, "KC_BYTES", 256)
    monkeypatch.setattr(cpu, "AXPY_KC", 12)
    a, b = random_array(0, (131, 301), dtype), random_array(1, (301, 263), dtype)
    with gemm_kernel(kind):
        assert_close(cpu.matmul(a, b), ref.matmul(a, b))


def test_matmul_picks_the_kernel_by_shape(monkeypatch):
    """Each kernel where it measured faster: wide C with long k -> inner product."""
    calls = []
    for name in ("_gemm_abt", "_gemm_ab"):
        original = getattr(cpu, name)

        def spy(*args, name=name, original=original, **kwargs):
            calls.append(name)
            return original(*args, **kwargs)

        monkeypatch.setattr(cpu, name, spy)
    cpu.matmul(np.ones((8, cpu.SHORT_K)), np.ones((cpu.SHORT_K, cpu.WIDE_M + 1)))
    cpu.matmul(np.ones((8, cpu.SHORT_K)), np.ones((cpu.SHORT_K, cpu.WIDE_M)))
    assert calls == ["_gemm_abt", "_gemm_ab"]


def test_matmul_accepts_views_and_mixed_dtypes():
    a = random_array(0, (40, 30), np.float64)
    b = random_array(1, (20, 30), np.float32)
    result = cpu.matmul(a[::2], b.T)  # non-contiguous inputs are copied
    assert result.dtype == np.float64
    assert_close(result, a[::2] @ b.T.astype(np.float64))


def test_matmul_rejects_bad_arguments():
    with pytest.raises(ValueError, match="do not fit"):
        cpu.matmul(np.ones((2, 3)), np.ones((4, 2)))
    with pytest.raises(TypeError, match="float32 or float64"):
        cpu.matmul(np.ones((2, 2), dtype=np.int64), np.ones((2, 2), dtype=np.int64))
    with pytest.raises(ValueError, match="do not fit"):
        cpu.batched_matmul(np.ones((2, 2, 3)), np.ones((3, 3, 2)))


# ---------------------------------------------------------------------------- conv2d


def assert_conv_matches_reference(x_shape, w_shape, stride, padding, dtype, seed):
    """Our forward and both backward passes against the numpy reference, random data."""
    x, w = random_array(seed, x_shape, dtype), random_array(seed + 1, w_shape, dtype)
    out = ref.conv2d(x, w, stride, padding)
    grad_out = random_array(seed + 2, out.shape, dtype)
    assert_close(cpu.conv2d(x, w, stride, padding), out)
    assert_close(cpu.conv2d_backward_input(grad_out, w, x_shape, stride, padding),
                 ref.conv2d_backward_input(grad_out, w, x_shape, stride, padding))
    assert_close(cpu.conv2d_backward_weight(grad_out, x, w_shape, stride, padding),
                 ref.conv2d_backward_weight(grad_out, x, w_shape, stride, padding))


@EXAMPLES
@given(case=conv_cases(), kind=st.sampled_from(["inner", "outer"]))
def test_conv2d_and_backwards_match_reference(case, kind):
    with gemm_kernel(kind):  # matmul-style shape rules must not matter to the conv
        assert_conv_matches_reference(*case)


@EXAMPLES
@given(case=conv_cases(), filters=st.integers(8, 19), batch=st.integers(1, 6))
def test_conv2d_with_eight_row_blocks_matches_reference(case, filters, batch):
    """Enough filters (and taps) for the GEMMs' 8-row blocks plus their 2- and 1-row
    remainders, on the batch-innermost (CHWN) patch matrices."""
    x_shape, w_shape, stride, padding, dtype, seed = case
    x_shape, w_shape = (batch,) + x_shape[1:], (filters,) + w_shape[1:]
    assert_conv_matches_reference(x_shape, w_shape, stride, padding, dtype, seed)


@contextlib.contextmanager
def blas_products(on):
    """Make the convolution hand its products to BLAS (``on``) for any shape, or never."""
    saved = cpu.BLAS_MIN_TAPS, cpu.BLAS_MIN_FILTERS
    cpu.BLAS_MIN_TAPS, cpu.BLAS_MIN_FILTERS = (0, 0) if on else (10**9, 10**9)
    try:
        yield
    finally:
        cpu.BLAS_MIN_TAPS, cpu.BLAS_MIN_FILTERS = saved


@contextlib.contextmanager
def conv_layout(kind):
    """Make the convolution use the ``"image"`` (per-image) or ``"batch"`` (CHWN) layout,
    or ``"blas"`` / ``"shifted"`` (per image, products by BLAS: after im2col for
    ``"blas"``; tap-shifted views on the wide grid for ``"shifted"`` wherever the stride
    is 1, any width)."""
    saved = cpu.IMAGE_LAYOUT_PIXELS, cpu.WIDE_GRID_MAX
    cpu.IMAGE_LAYOUT_PIXELS = 0 if kind == "image" else 10**9
    cpu.WIDE_GRID_MAX = 10**9 if kind == "shifted" else 0
    try:
        with blas_products(kind in ("blas", "shifted")):
            yield
    finally:
        cpu.IMAGE_LAYOUT_PIXELS, cpu.WIDE_GRID_MAX = saved


@EXAMPLES
@given(case=conv_cases(), filters=st.integers(1, 19), batch=st.integers(1, 20),
       layout=st.sampled_from(["image", "batch", "blas", "shifted"]))
def test_conv2d_both_layouts_match_reference(case, filters, batch, layout):
    """Per-image layout (image groups of one or more images, scratch patch matrices,
    tap counts not a multiple of 4, padding and stride handled by im2col/col2im of one
    image), the whole-batch CHWN layout and the per-image BLAS kernels (two scratch
    matrices per group, used alternately; tap-shifted products for stride 1, with padding
    copied into padded planes), forced on the same random shapes."""
    x_shape, w_shape, stride, padding, dtype, seed = case
    x_shape, w_shape = (batch,) + x_shape[1:], (filters,) + w_shape[1:]
    with conv_layout(layout):
        assert_conv_matches_reference(x_shape, w_shape, stride, padding, dtype, seed)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv2d_picks_the_layout_by_output_plane(dtype, monkeypatch):
    """A 30x30 output plane (the first CIFAR layer) takes the per-image kernels, a 13x13
    one the whole-batch GEMM; both match the reference."""
    calls = []
    for name in ("_conv_images_kernel", "_im2col_kernel"):
        kernel = getattr(cpu, name)
        monkeypatch.setattr(cpu, name, lambda *a, _k=kernel, _n=name: (calls.append(_n),
                                                                         _k(*a))[1])
    for (x_shape, w_shape), expected in ((((3, 3, 32, 32), (5, 3, 3, 3)), "_conv_images_kernel"),
                                         (((3, 4, 15, 15), (5, 4, 3, 3)), "_im2col_kernel")):
        x, w = random_array(0, x_shape, dtype), random_array(1, w_shape, dtype)
        calls.clear()
        assert_close(cpu.conv2d(x, w), ref.conv2d(x, w))
        assert calls == [expected]


IM2COL_BLAS_KERNELS = ("_conv_blas_kernel", "_conv_input_blas_kernel",
                       "_conv_weight_blas_kernel")
SHIFTED_KERNELS = ("_conv_shifted_kernel", "_conv_input_shifted_kernel",
                   "_conv_weight_shifted_kernel")
BLAS_KERNELS = IM2COL_BLAS_KERNELS + SHIFTED_KERNELS
OUR_KERNELS = ("_conv_images_kernel", "_conv_input_images_kernel",
               "_conv_weight_images_kernel", "_im2col_kernel", "_col2im_kernel")


@st.composite
def blas_sized_cases(draw):
    """Shapes around the BLAS thresholds (taps = C*KH*KW near 64, filters near 32)."""
    kh, kw, stride, padding, h, w = draw_window(draw)
    c = draw(st.integers(max(1, 48 // (kh * kw)), max(2, 96 // (kh * kw))))
    n, o = draw(st.integers(1, 20)), draw(st.integers(24, 40))
    return (n, c, h, w), (o, c, kh, kw), stride, padding, draw(DTYPES), draw(st.integers(0, 99))


@EXAMPLES
@given(case=blas_sized_cases())
def test_conv2d_blas_path_by_shape_matches_reference(case):
    """With the shipped thresholds, shapes on both sides of them: the ones that take the
    BLAS kernels (many taps and filters) and the ones that do not, all three passes."""
    x_shape, w_shape, stride, padding, dtype, seed = case
    calls = []
    saved = {name: getattr(cpu, name) for name in BLAS_KERNELS + OUR_KERNELS}
    for name, kernel in saved.items():
        setattr(cpu, name, lambda *a, _k=kernel, _n=name: (calls.append(_n), _k(*a))[1])
    try:
        assert_conv_matches_reference(x_shape, w_shape, stride, padding, dtype, seed)
    finally:
        for name, kernel in saved.items():
            setattr(cpu, name, kernel)
    taps = w_shape[1] * w_shape[2] * w_shape[3]
    if taps >= cpu.BLAS_MIN_TAPS and w_shape[0] >= cpu.BLAS_MIN_FILTERS:
        (_, pw), (_, ow) = ref.as_pair(padding), ref.conv_output_hw(
            x_shape[2:], w_shape[2:], stride, padding)
        shifted = (ref.as_pair(stride) == (1, 1)
                   and x_shape[3] + 2 * pw <= cpu.WIDE_GRID_MAX * ow)
        assert calls == list(SHIFTED_KERNELS if shifted else IM2COL_BLAS_KERNELS)
    else:
        assert len(calls) == 3 and not set(calls) & set(BLAS_KERNELS)


def test_conv2d_picks_blas_for_the_cifar_32_to_64_layer_only(monkeypatch):
    """The benchmark shapes: 32 -> 64 filters (288 taps) goes to BLAS; the first CIFAR
    layer (27 taps) and the digits layer (9 taps, 10 filters) stay on our kernels."""
    calls = []
    for name in BLAS_KERNELS + OUR_KERNELS:
        kernel = getattr(cpu, name)
        monkeypatch.setattr(cpu, name, lambda *a, _k=kernel, _n=name: (calls.append(_n),
                                                                         _k(*a))[1])
    for x_shape, w_shape, blas in (((2, 32, 15, 15), (64, 32, 3, 3), True),
                                   ((2, 3, 32, 32), (32, 3, 3, 3), False),
                                   ((2, 1, 8, 8), (10, 1, 3, 3), False)):
        x, w = random_array(0, x_shape, np.float32), random_array(1, w_shape, np.float32)
        calls.clear()
        cpu.conv2d(x, w)
        assert (calls == ["_conv_shifted_kernel"]) == blas, (x_shape, calls)


def test_blas_thread_counts_are_restored():
    """Inside the BLAS kernels every BLAS library runs one thread; afterwards, and after
    an error, each has its own count back."""
    libraries = cpu._blas_libraries()
    if not libraries:
        pytest.skip("no scipy/threadpoolctl: the BLAS kernels are not used")
    before = [library.num_threads for library in libraries]
    with cpu._single_threaded_blas():
        assert all(library.num_threads == 1 for library in libraries)
        with cpu._single_threaded_blas():  # nested (or another thread's) call
            pass
        assert all(library.num_threads == 1 for library in libraries)
    assert [library.num_threads for library in libraries] == before
    with pytest.raises(RuntimeError), cpu._single_threaded_blas():
        raise RuntimeError
    assert [library.num_threads for library in libraries] == before


@pytest.mark.parametrize("layout", ["blas", "shifted"])
def test_conv2d_blas_input_gradient_with_inf_weight(layout):
    """The wide grid's zero columns would turn an infinite weight into NaN (``inf * 0``)
    on pixels the reference leaves finite: such a weight takes the im2col BLAS kernel."""
    x_shape = (3, 32, 7, 7)
    w = random_array(1, (32, 32, 3, 3), np.float64)
    w[3, 5, 1, 2] = np.inf
    grad_out = random_array(2, (3, 32, 5, 5), np.float64)
    expected = ref.conv2d_backward_input(grad_out, w, x_shape)
    with conv_layout(layout):
        actual = cpu.conv2d_backward_input(grad_out, w, x_shape)
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    finite = np.isfinite(expected)
    np.testing.assert_allclose(actual[finite], expected[finite], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("padding", [0, 1])
@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_conv2d_shifted_passes_with_non_finite_input(bad, padding):
    """A non-finite pixel also lies under the wide grid's extra columns. The forward drops
    those columns, so it stays on the tap-shifted kernel; the weight gradient would
    multiply it by their zero gradients (``inf * 0``) and takes the im2col kernel. Both
    give the reference's NaN/inf pattern and values."""
    x = random_array(0, (3, 32, 7, 7), np.float64)
    x[1, 4, 2, 0] = bad
    x[2, 31, 6, 6] = bad
    w = random_array(1, (32, 32, 3, 3), np.float64)
    grad_out = random_array(2, (3, 32, 5 + 2 * padding, 5 + 2 * padding), np.float64)
    calls = []
    kernels = {name: getattr(cpu, name) for name in BLAS_KERNELS}
    for name, kernel in kernels.items():
        setattr(cpu, name, lambda *a, _k=kernel, _n=name: (calls.append(_n), _k(*a))[1])
    try:
        with conv_layout("shifted"):
            actual = (cpu.conv2d(x, w, 1, padding),
                      cpu.conv2d_backward_weight(grad_out, x, w.shape, 1, padding))
    finally:
        for name, kernel in kernels.items():
            setattr(cpu, name, kernel)
    assert calls == ["_conv_shifted_kernel", "_conv_weight_blas_kernel"]
    expected = (ref.conv2d(x, w, 1, padding),
                ref.conv2d_backward_weight(grad_out, x, w.shape, 1, padding))
    for got, want in zip(actual, expected):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        finite = np.isfinite(want)
        np.testing.assert_array_equal(got[~finite & ~np.isnan(want)],
                                      want[~finite & ~np.isnan(want)])
        np.testing.assert_allclose(got[finite], want[finite], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv2d_blas_path_empty_batch(dtype):
    x, w = np.zeros((0, 32, 5, 5), dtype), random_array(1, (32, 32, 3, 3), dtype)
    grad_out = np.zeros((0, 32, 3, 3), dtype)
    assert cpu.conv2d(x, w).shape == (0, 32, 3, 3)
    assert cpu.conv2d_backward_input(grad_out, w, x.shape).shape == x.shape
    np.testing.assert_array_equal(cpu.conv2d_backward_weight(grad_out, x, w.shape),
                                  np.zeros(w.shape, dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv2d_cifar_like_shape(dtype):
    """A long reduction (C*KH*KW = 288) and many tiles, as in the notes' CIFAR network."""
    x, w = random_array(0, (4, 32, 11, 10), dtype), random_array(1, (24, 32, 3, 3), dtype)
    grad_out = random_array(2, (4, 24, 11, 10), dtype)
    assert_close(cpu.conv2d(x, w, 1, 1), ref.conv2d(x, w, 1, 1))
    assert_close(cpu.conv2d_backward_input(grad_out, w, x.shape, 1, 1),
                 ref.conv2d_backward_input(grad_out, w, x.shape, 1, 1))
    assert_close(cpu.conv2d_backward_weight(grad_out, x, w.shape, 1, 1),
                 ref.conv2d_backward_weight(grad_out, x, w.shape, 1, 1))


def test_conv2d_rejects_bad_arguments():
    x, w = np.ones((1, 2, 5, 5)), np.ones((3, 2, 3, 3))
    with pytest.raises(ValueError, match="channels"):
        cpu.conv2d(x, np.ones((3, 4, 3, 3)))
    with pytest.raises(ValueError, match="does not fit"):
        cpu.conv2d(np.ones((1, 2, 2, 2)), w)
    with pytest.raises(ValueError, match="int or an"):
        cpu.conv2d(x, w, stride=(1, 2, 3))
    with pytest.raises(ValueError, match="expected"):
        cpu.conv2d_backward_input(np.ones((1, 3, 2, 2)), w, x.shape)
    with pytest.raises(ValueError, match="4-D"):
        cpu.max_pool2d(np.ones((2, 2)), 2)


# --------------------------------------------------------------------------- pooling


@EXAMPLES
@given(case=pool_cases())
def test_max_pool_matches_reference(case):
    shape, kernel, stride, dtype, seed = case
    x = random_array(seed, shape, dtype)
    out, indices = cpu.max_pool2d(x, kernel, stride)
    expected_out, expected_indices = ref.max_pool2d(x, kernel, stride)
    np.testing.assert_array_equal(out, expected_out)
    np.testing.assert_array_equal(indices, expected_indices)
    grad_out = random_array(seed + 1, out.shape, dtype)
    assert_close(cpu.max_pool2d_backward(grad_out, indices, shape),
                 ref.max_pool2d_backward(grad_out, expected_indices, shape))


@EXAMPLES
@given(case=pool_cases())
def test_avg_pool_matches_reference(case):
    shape, kernel, stride, dtype, seed = case
    x = random_array(seed, shape, dtype)
    out = cpu.avg_pool2d(x, kernel, stride)
    assert_close(out, ref.avg_pool2d(x, kernel, stride))
    grad_out = random_array(seed + 1, out.shape, dtype)
    assert_close(cpu.avg_pool2d_backward(grad_out, shape, kernel, stride),
                 ref.avg_pool2d_backward(grad_out, shape, kernel, stride))


def with_ties_and_nans(x, draw_flags, seed):
    """Copy of ``x`` with some values repeated (ties), NaNs and signed zeros mixed in."""
    rng = np.random.default_rng(seed)
    x = x.copy()
    flat = x.reshape(-1)
    ties, nans, zeros = draw_flags
    if ties:
        flat[:] = np.round(flat)  # small integers: many ties in every window
    if nans:
        flat[rng.random(flat.size) < 0.15] = np.nan
    if zeros:
        flat[rng.random(flat.size) < 0.3] = rng.choice([0.0, -0.0])
    return x


@EXAMPLES
@given(n=st.integers(1, 3), c=st.integers(1, 4), h=st.integers(2, 11), w=st.integers(2, 11),
       dtype=DTYPES, seed=st.integers(0, 99), flags=st.tuples(st.booleans(), st.booleans(),
                                                              st.booleans()))
def test_max_pool_2x2_kernel_matches_reference(n, c, h, w, dtype, seed, flags):
    """The straight-line 2x2/stride-2 Numba kernel, odd sizes (a last row or column in no
    window) included, with ties, NaNs and signed zeros; and its backward."""
    shape = (n, c, h, w)
    x = with_ties_and_nans(random_array(seed, shape, dtype), flags, seed)
    out, indices = cpu.max_pool2d(x, 2)
    expected_out, expected_indices = ref._max_pool_taps(x, 2, 2, 2, 2, h // 2, w // 2)
    np.testing.assert_array_equal(out, expected_out)
    np.testing.assert_array_equal(np.signbit(out), np.signbit(expected_out))
    np.testing.assert_array_equal(indices, expected_indices)
    grad_out = random_array(seed + 1, out.shape, dtype)
    assert_close(cpu.max_pool2d_backward(grad_out, indices, shape),
                 ref.max_pool2d_backward(grad_out, expected_indices, shape))


@EXAMPLES
@given(n=st.integers(1, 3), c=st.integers(1, 3), kh=st.integers(1, 3), kw=st.integers(1, 3),
       rows=st.integers(1, 4), cols=st.integers(1, 4), extra=st.tuples(st.integers(0, 2),
                                                                        st.integers(0, 2)),
       dtype=DTYPES, seed=st.integers(0, 99), flags=st.tuples(st.booleans(), st.booleans(),
                                                              st.booleans()))
def test_reference_tiled_max_pool_matches_tap_loop(n, c, kh, kw, rows, cols, extra, dtype,
                                                   seed, flags):
    """The numpy reference's fast path (windows tiling the image exactly) against its
    general tap loop; sizes that are not multiples of the window must not take it."""
    shape = (n, c, rows * kh + extra[0], cols * kw + extra[1])
    x = with_ties_and_nans(random_array(seed, shape, dtype), flags, seed)
    tiles = shape[2] % kh == 0 and shape[3] % kw == 0
    rows, cols = shape[2] // kh, shape[3] // kw
    assert ref._tiles_exactly(shape, kh, kw, kh, kw) == tiles
    assert not ref._tiles_exactly(shape, kh, kw, kh + 1, kw)  # overlapping/gapped windows
    out, indices = ref.max_pool2d(x, (kh, kw))
    expected_out, expected_indices = ref._max_pool_taps(x, kh, kw, kh, kw, rows, cols)
    np.testing.assert_array_equal(out, expected_out)
    np.testing.assert_array_equal(np.signbit(out), np.signbit(expected_out))
    np.testing.assert_array_equal(indices, expected_indices)
    if tiles:
        tiled_out, tiled_indices = ref._max_pool_tiled(x, kh, kw)
        np.testing.assert_array_equal(tiled_out, expected_out)
        np.testing.assert_array_equal(tiled_indices, expected_indices)


def test_max_pool_backward_rejects_indices_outside_the_plane():
    grad_out, indices = np.ones((1, 2, 2, 2), np.float32), np.zeros((1, 2, 2, 2), np.int64)
    indices[0, 1, 1, 1] = 16
    with pytest.raises(ValueError, match="must lie in"):
        cpu.max_pool2d_backward(grad_out, indices, (1, 2, 4, 4))
    indices[0, 1, 1, 1] = -1
    with pytest.raises(ValueError, match="must lie in"):
        cpu.max_pool2d_backward(grad_out, indices, (1, 2, 4, 4))


@pytest.mark.parametrize("pool", [cpu.max_pool2d, ref.max_pool2d])
def test_max_pool_ties_and_nan(pool):
    """Ties go to the first position in the window; a NaN is the maximum (as in PyTorch)."""
    x = np.zeros((1, 1, 2, 4))
    x[0, 0, 1, 3] = np.nan
    out, indices = pool(x, 2)
    assert out[0, 0, 0, 0] == 0 and indices[0, 0, 0, 0] == 0
    assert np.isnan(out[0, 0, 0, 1]) and indices[0, 0, 0, 1] == 1 * 4 + 3


# ------------------------------------------------- the reference against calculus


def numerical_gradient(loss, array, eps=1e-6):
    """Central differences of the scalar ``loss()`` with respect to every entry of ``array``."""
    grad = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        saved = array[index]
        array[index] = saved + eps
        plus = loss()
        array[index] = saved - eps
        minus = loss()
        array[index] = saved
        grad[index] = (plus - minus) / (2 * eps)
    return grad


@pytest.mark.parametrize("stride, padding", [(1, 0), (2, 1), ((1, 2), (1, 0))])
def test_reference_conv_backwards_are_gradients(stride, padding):
    x, w = random_array(0, (2, 2, 5, 6), np.float64), random_array(1, (3, 2, 3, 2), np.float64)
    grad_out = random_array(2, ref.conv2d(x, w, stride, padding).shape, np.float64)

    def loss():  # L = sum(grad_out * conv(x, w)), so dL/d(out) = grad_out
        return float(np.sum(grad_out * ref.conv2d(x, w, stride, padding)))

    np.testing.assert_allclose(ref.conv2d_backward_input(grad_out, w, x.shape, stride, padding),
                               numerical_gradient(loss, x), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(ref.conv2d_backward_weight(grad_out, x, w.shape, stride, padding),
                               numerical_gradient(loss, w), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("kernel, stride", [(2, None), (3, 1), ((2, 3), (1, 2))])
def test_reference_pool_backwards_are_gradients(kernel, stride):
    x = np.random.default_rng(0).permutation(2 * 2 * 5 * 6).reshape(2, 2, 5, 6) / 7.0
    out, indices = ref.max_pool2d(x, kernel, stride)  # distinct values: max is smooth
    grad_out = random_array(1, out.shape, np.float64)
    np.testing.assert_allclose(
        ref.max_pool2d_backward(grad_out, indices, x.shape),
        numerical_gradient(lambda: float(np.sum(grad_out * ref.max_pool2d(x, kernel, stride)[0])),
                           x), atol=1e-7)
    np.testing.assert_allclose(
        ref.avg_pool2d_backward(grad_out, x.shape, kernel, stride),
        numerical_gradient(lambda: float(np.sum(grad_out * ref.avg_pool2d(x, kernel, stride))),
                           x), atol=1e-7)


# ------------------------------------------------------------------------ determinism


def _parallel_backwards(seed=0):
    """Outputs of every parallel backward kernel on shapes big enough to use many tiles."""
    x = random_array(seed, (6, 5, 13, 12), np.float32)
    w = random_array(seed + 1, (7, 5, 3, 3), np.float32)
    grad_out = random_array(seed + 2, (6, 7, 7, 6), np.float32)
    grad_pool = random_array(seed + 3, (6, 5, 12, 11), np.float32)
    _, indices = cpu.max_pool2d(x, 2, 1)
    _, indices_2x2 = cpu.max_pool2d(x, 2)
    grad_2x2 = random_array(seed + 6, (6, 5, 6, 6), np.float32)
    x_big = random_array(seed + 7, (19, 3, 17, 18), np.float32)  # 17x18 output: per image
    w_big = random_array(seed + 8, (6, 3, 3, 3), np.float32)
    grad_big = random_array(seed + 9, (19, 6, 17, 18), np.float32)
    x_blas = random_array(seed + 10, (19, 8, 9, 8), np.float32)  # 72 taps: BLAS
    w_blas = random_array(seed + 11, (33, 8, 3, 3), np.float32)
    grad_blas = random_array(seed + 12, (19, 33, 9, 8), np.float32)
    x_wide = random_array(seed + 13, (19, 8, 14, 13), np.float32)
    grad_wide = random_array(seed + 14, (19, 33, 12, 11), np.float32)
    grad_stride = random_array(seed + 15, (19, 33, 5, 4), np.float32)
    a = random_array(seed + 4, (150, 300), np.float32)
    b = random_array(seed + 5, (300, 600), np.float32)  # wide C, k = 300: inner product
    return [cpu.conv2d_backward_input(grad_out, w, x.shape, 2, 1),
            cpu.conv2d_backward_weight(grad_out, x, w.shape, 2, 1),
            cpu.max_pool2d_backward(grad_pool, indices, x.shape),
            cpu.max_pool2d_backward(grad_2x2, indices_2x2, x.shape),
            cpu.conv2d_backward_input(grad_big, w_big, x_big.shape, 1, 1),
            cpu.conv2d_backward_weight(grad_big, x_big, w_big.shape, 1, 1),
            cpu.avg_pool2d_backward(grad_pool, x.shape, 2, 1),
            cpu.conv2d(x_blas, w_blas, 1, 1),
            cpu.conv2d_backward_input(grad_blas, w_blas, x_blas.shape, 1, 1),
            cpu.conv2d_backward_weight(grad_blas, x_blas, w_blas.shape, 1, 1),
            cpu.conv2d_backward_input(grad_wide, w_blas, x_wide.shape),  # tap-shifted
            cpu.conv2d_backward_weight(grad_wide, x_wide, w_blas.shape),
            cpu.conv2d_backward_input(grad_stride, w_blas, x_blas.shape, 2, 1),  # im2col BLAS
            cpu.conv2d_backward_weight(grad_stride, x_blas, w_blas.shape, 2, 1),
            cpu.matmul(a, b), cpu.matmul(a[:, :40], b[:40])]


def test_parallel_backwards_are_bit_identical_run_to_run():
    for first, second in zip(_parallel_backwards(), _parallel_backwards()):
        np.testing.assert_array_equal(first, second)


def test_results_do_not_depend_on_the_thread_count():
    import numba

    threads = numba.get_num_threads()
    many = _parallel_backwards()
    numba.set_num_threads(1)
    try:
        one = _parallel_backwards()
    finally:
        numba.set_num_threads(threads)
    for first, second in zip(many, one):
        np.testing.assert_array_equal(first, second)


# ------------------------------------------------------------------------- packaging


def test_importing_kernels_package_loads_no_numba():
    """``tinygrad_lite.kernels`` and ``.reference`` stay numba-free; ``.cpu`` loads lazily."""
    code = ("import sys, tinygrad_lite; before = 'numba' in sys.modules\n"
            "import tinygrad_lite.kernels, tinygrad_lite.kernels.reference\n"
            "assert before or 'numba' not in sys.modules\n"
            "assert 'tinygrad_lite.kernels.cpu' not in sys.modules\n"
            "import tinygrad_lite as tl; tl.kernels.cpu.matmul\n"
            "assert 'tinygrad_lite.kernels.cpu' in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)
