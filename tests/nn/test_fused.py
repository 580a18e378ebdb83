"""The fused ops of tinygrad_lite.ops.fused: float64 gradchecks of both backward paths
(the raw-array fast path, and the Tensor-op path used with create_graph=True)."""

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import Tensor
from tinygrad_lite.ops import fused
from tinygrad_lite.testing import gradcheck, gradgradcheck

RNG = np.random.default_rng(2)


def _t(*shape, requires_grad=True, low=None, high=None):
    data = RNG.standard_normal(shape) if low is None else RNG.uniform(low, high, shape)
    return Tensor(data, requires_grad=requires_grad)


def _both_paths_agree(fn, inputs):
    """The fast path (plain backward) and the differentiable path (create_graph) give
    the same gradients."""
    out = fn(*inputs)
    weights = Tensor(RNG.standard_normal(out.shape))
    wanted = [t for t in inputs if t.requires_grad]
    fast = tl.grad((out * weights).sum(), wanted)
    out = fn(*inputs)
    slow = tl.grad((out * weights).sum(), wanted, create_graph=True)
    for a, b in zip(fast, slow):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12, atol=1e-14)


def test_linear_function():
    x, w, b = _t(4, 3), _t(5, 3), _t(5)
    assert gradcheck(fused.linear, (x, w, b))
    assert gradcheck(lambda x, w: fused.linear(x, w, None), (x, w))
    assert gradgradcheck(fused.linear, (x, w, b))
    _both_paths_agree(fused.linear, (x, w, b))
    x1 = _t(3)  # a single sample without a batch axis
    assert gradcheck(fused.linear, (x1, w, b))
    assert gradgradcheck(fused.linear, (x1, w, b))
    x3 = _t(2, 4, 3)
    assert gradcheck(fused.linear, (x3, w, b))
    assert gradgradcheck(fused.linear, (x3, w, b))
    _both_paths_agree(fused.linear, (x3, w, b))


def test_linear_function_records_one_node():
    x, w, b = _t(4, 3), _t(5, 3), _t(5)
    y = fused.linear(x, w, b)
    assert type(y.grad_fn).__name__ == "LinearFunction"
    assert all(t is s for t, s in zip(y.grad_fn.inputs, (x, w, b)))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_softmax_cross_entropy(reduction):
    z = _t(5, 4)
    labels = Tensor(RNG.integers(0, 4, 5))
    probs = RNG.random((5, 4))
    y = Tensor(probs / probs.sum(1, keepdims=True), requires_grad=True)
    soft = Tensor(RNG.random((5, 4)), requires_grad=True)  # rows need not sum to 1

    def by_index(z):
        return fused.softmax_cross_entropy(z, labels, reduction)

    def by_probs(z, y):
        return fused.softmax_cross_entropy(z, y, reduction)

    for fn, inputs in ((by_index, (z,)), (by_probs, (z, y)), (by_probs, (z, soft))):
        assert gradcheck(fn, inputs)
        assert gradgradcheck(fn, inputs)
        _both_paths_agree(fn, inputs)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_binary_cross_entropy_ops(reduction):
    p, y = _t(3, 4, low=0.05, high=0.95), _t(3, 4, low=0.0, high=1.0)
    x = _t(3, 4)
    for fn, inputs in ((fused.binary_cross_entropy, (p, y)),
                       (fused.binary_cross_entropy_with_logits, (x, y))):
        def f(a, b, fn=fn):
            return fn(a, b, reduction)
        assert gradcheck(f, inputs)
        assert gradgradcheck(f, inputs)
        _both_paths_agree(f, inputs)


def test_sigmoid_function():
    x = _t(3, 5)
    assert gradcheck(fused.sigmoid, (x,))
    assert gradgradcheck(fused.sigmoid, (x,))
    _both_paths_agree(fused.sigmoid, (x,))
    np.testing.assert_allclose(fused.sigmoid(x).numpy(), 1 / (1 + np.exp(-x.numpy())),
                               rtol=1e-14)
