"""``tl.set_backend("numba")``: matmul, convolution and pooling run on the Numba kernels and
give the numpy backend's results; a conv net trains the same on both backends."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("numba")

import tinygrad_lite as tl  # noqa: E402
import tinygrad_lite.nn.functional as F  # noqa: E402
from tinygrad_lite import Tensor, nn  # noqa: E402
from tinygrad_lite.backend import get_backend, get_backend_name, set_backend  # noqa: E402
from tinygrad_lite.testing import gradcheck, gradgradcheck  # noqa: E402


@pytest.fixture
def numba_backend():
    """Switch to the Numba backend for one test, and always back to numpy."""
    set_backend("numba")
    try:
        yield get_backend()
    finally:
        set_backend("numpy")


def _on(backend_name, fn):
    set_backend(backend_name)
    try:
        return fn()
    finally:
        set_backend("numpy")


def test_selecting_and_restoring_the_backend(numba_backend):
    assert get_backend_name() == "numba" and numba_backend.name == "numba"
    assert numba_backend.device == "cpu"
    assert tl.randn(2, 3).backend is numba_backend
    from tinygrad_lite.kernels import cpu

    assert numba_backend.kernels is cpu


def test_import_does_not_load_numba():
    code = ("import sys, tinygrad_lite as tl; assert 'numba' not in sys.modules; "
            "tl.set_backend('numba'); assert 'numba' in sys.modules; print('ok')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


MATMUL_SHAPES = [((7, 5), (5, 9)), ((65, 70), (70, 3)), ((3, 4, 6), (3, 6, 2)),
                 ((2, 2, 3, 4), (2, 2, 4, 5)), ((5,), (5, 3)), ((2, 3, 4), (4, 2)),
                 ((0, 3), (3, 2)),
                 # above SMALL_MATMUL_FLOPS: these run on the Numba kernels
                 ((130, 140), (140, 150)), ((2, 100, 120), (2, 120, 110))]


@pytest.mark.parametrize("shape_a, shape_b", MATMUL_SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_matches_numpy(numba_backend, shape_a, shape_b, dtype):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(shape_a).astype(dtype), rng.standard_normal(shape_b).astype(dtype)
    out = numba_backend.matmul(a, b)
    assert out.dtype == dtype and out.shape == np.matmul(a, b).shape
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, np.matmul(a, b), rtol=tol, atol=tol)


def test_matmul_falls_back_for_integers_and_views(numba_backend):
    a = np.arange(6).reshape(2, 3)
    np.testing.assert_array_equal(numba_backend.matmul(a, a.T), a @ a.T)
    x = np.random.default_rng(1).standard_normal((6, 8))
    np.testing.assert_allclose(numba_backend.matmul(x.T, x[:, ::2]), x.T @ x[:, ::2],
                               rtol=1e-12)


CONV_CASES = [((2, 3, 9, 8), (4, 3, 3, 3), 1, 0), ((1, 2, 7, 7), (3, 2, 3, 2), 2, 1),
              ((100, 1, 8, 8), (10, 1, 3, 3), 1, 1)]


@pytest.mark.parametrize("x_shape, w_shape, stride, padding", CONV_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_and_pool_values_and_gradients_match_numpy(x_shape, w_shape, stride, padding,
                                                        dtype):
    rng = np.random.default_rng(2)
    x_np = rng.standard_normal(x_shape).astype(dtype)
    w_np = rng.standard_normal(w_shape).astype(dtype)
    b_np = rng.standard_normal(w_shape[0]).astype(dtype)

    def run():
        x, w, b = (Tensor(a, requires_grad=True) for a in (x_np, w_np, b_np))
        h = F.conv2d(x, w, b, stride, padding)
        out = F.max_pool2d(h, 2, 1) * 2.0 + F.avg_pool2d(h, 2, 1)
        g = np.random.default_rng(3).standard_normal(out.shape).astype(dtype)
        out.backward(Tensor(g))
        assert out.backend.name == get_backend_name()
        return [t.numpy() for t in (out, x.grad, w.grad, b.grad)]

    expected, actual = _on("numpy", run), _on("numba", run)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    for a, e in zip(actual, expected):
        assert a.dtype == e.dtype
        np.testing.assert_allclose(a, e, rtol=tol, atol=tol * max(1.0, np.abs(e).max()))


def test_gradcheck_and_gradgradcheck_on_numba(numba_backend):
    rng = np.random.default_rng(4)
    x = Tensor(rng.standard_normal((1, 2, 6, 5)), requires_grad=True)
    w = Tensor(rng.standard_normal((3, 2, 3, 3)), requires_grad=True)

    def fn(x, w):
        return F.max_pool2d(F.conv2d(x, w, stride=1, padding=1), 2)

    assert gradcheck(fn, (x, w))
    assert gradgradcheck(fn, (x, w))


def test_float16_conv_falls_back_to_the_reference(numba_backend):
    x = np.random.default_rng(5).standard_normal((1, 1, 5, 5)).astype(np.float16)
    w = np.ones((1, 1, 3, 3), dtype=np.float16)
    out = numba_backend.conv2d(x, w, 1, 0)
    assert out.dtype == np.float16 and out.shape == (1, 1, 3, 3)


def test_conv_net_trains_the_same_on_both_backends():
    """A few SGD steps of a small CNN: losses and final weights agree across backends."""
    rng = np.random.default_rng(6)
    X = rng.random((32, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 10, 32)

    def train():
        tl.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Conv2d(4, 8, 3), nn.ReLU(), nn.AvgPool2d(2),
                              nn.Flatten(), nn.Linear(8, 10))
        optimizer = tl.optim.SGD(model.parameters(), lr=0.1)
        losses = []
        for _ in range(5):
            optimizer.zero_grad()
            loss = F.cross_entropy(model(Tensor(X)), Tensor(y))
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        return losses, [p.numpy() for p in model.parameters()]

    (loss_np, params_np), (loss_nb, params_nb) = _on("numpy", train), _on("numba", train)
    np.testing.assert_allclose(loss_nb, loss_np, rtol=1e-5)
    assert loss_nb[-1] < loss_nb[0]
    for a, b in zip(params_nb, params_np):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
