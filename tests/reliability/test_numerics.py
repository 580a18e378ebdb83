"""Numerical stability at extreme magnitudes (issue 6, part 3).

Inputs up to 1e4 in float32 and 1e300 in float64 (drawn by hypothesis, extremes and
mixed signs included) must give finite values and finite gradients for the functions
whose result is mathematically finite there: softmax, log_softmax, logsumexp,
cross_entropy, sigmoid, tanh, binary_cross_entropy(_with_logits), the log of
probabilities, var/std of a constant, and clip_grad_norm_ of all-zero gradients.
"""

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_lite as tl
import tinygrad_lite.nn.functional as F
from tinygrad_lite import Tensor, nn

LIMITS = {np.float32: 1e4, np.float64: 1e300}
DTYPES = list(LIMITS)


def _extreme_arrays(dtype, shape=None):
    big = LIMITS[dtype]
    elements = st.one_of(
        st.sampled_from([big, -big, 0.0, big / 2, -big / 3, 1.0]),
        st.floats(-big, big, allow_nan=False, allow_infinity=False,
                  width=32 if dtype is np.float32 else 64))
    shape = shape or hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=5)
    return hnp.arrays(dtype, shape, elements=elements)


def _value_and_grad(fn, array, weights=True):
    """fn(x), and d/dx of a random weighting of its outputs; numpy must not warn."""
    x = Tensor(array, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)   # overflow, 0/0, log(0)...
        y = fn(x)
        if weights:
            w = np.random.default_rng(0).uniform(0.5, 1.5, y.shape).astype(array.dtype)
            (y * Tensor(w)).sum().backward()
        else:
            y.sum().backward()
    return y.numpy(), x.grad.numpy()


def _assert_finite(value, grad):
    assert np.all(np.isfinite(value)), value
    assert np.all(np.isfinite(grad)), grad


def _labels(n, c):
    return Tensor(np.arange(n, dtype=np.int64) % c)


STABLE = {
    "softmax": lambda x: x.softmax(-1),
    "softmax-axis0": lambda x: F.softmax(x, 0),
    "log_softmax": lambda x: x.log_softmax(-1),
    "logsumexp": lambda x: x.logsumexp(-1),
    "logsumexp-all": lambda x: x.logsumexp(),
    "cross_entropy": lambda x: F.cross_entropy(x, _labels(*x.shape)),
    "cross_entropy-none": lambda x: F.cross_entropy(x, _labels(*x.shape), reduction="none"),
    "cross_entropy-probs": lambda x: F.cross_entropy(x, x.detach().softmax(-1)),
    "nll(log_softmax)": lambda x: F.nll_loss(x.log_softmax(-1), _labels(*x.shape)),
    "sigmoid": lambda x: x.sigmoid(),
    "F.sigmoid": lambda x: F.sigmoid(x),
    "tanh": lambda x: x.tanh(),
    "elu": lambda x: x.elu(),
    "bce_with_logits": lambda x: F.binary_cross_entropy_with_logits(
        x, Tensor((np.arange(x.size).reshape(x.shape) % 2).astype(x.dtype))),
    "bce(sigmoid)": lambda x: F.binary_cross_entropy(
        F.sigmoid(x), Tensor((np.arange(x.size).reshape(x.shape) % 2).astype(x.dtype))),
    "bce(sigmoid)-none": lambda x: F.binary_cross_entropy(
        F.sigmoid(x), Tensor(np.ones(x.shape, x.dtype)), reduction="none"),
    "CrossEntropyLoss": lambda x: nn.CrossEntropyLoss()(x, _labels(*x.shape)),
    "BCEWithLogitsLoss": lambda x: nn.BCEWithLogitsLoss()(x, Tensor(np.zeros(x.shape, x.dtype))),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("name", list(STABLE))
@given(data=st.data())
def test_stable_at_extreme_magnitudes(name, dtype, data):
    array = data.draw(_extreme_arrays(dtype), label="x")
    value, grad = _value_and_grad(STABLE[name], array)
    _assert_finite(value, grad)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_softmax_and_friends_at_the_exact_extremes(dtype):
    big = LIMITS[dtype]
    x = np.array([[big, -big, 0.0], [-big, -big, -big], [big, big, big]], dtype=dtype)
    p, _ = _value_and_grad(lambda t: t.softmax(-1), x)
    np.testing.assert_allclose(p, [[1, 0, 0], [1 / 3] * 3, [1 / 3] * 3], rtol=1e-6)
    lse, grad = _value_and_grad(lambda t: t.logsumexp(-1), x, weights=False)
    np.testing.assert_allclose(lse, [big, -big + np.log(3), big + np.log(3)], rtol=1e-6)
    np.testing.assert_allclose(grad, p, rtol=1e-6)  # d logsumexp / dx = softmax
    ls, _ = _value_and_grad(lambda t: t.log_softmax(-1), x)
    np.testing.assert_allclose(ls[0], [0.0, -2 * big, -big], rtol=1e-6)
    loss, grad = _value_and_grad(lambda t: F.cross_entropy(t, Tensor([0, 1, 2])), x,
                                 weights=False)
    np.testing.assert_allclose(grad, (p - np.eye(3)) / 3, atol=1e-7)


SPREAD = {np.float32: 40.0, np.float64: 300.0}  # exp(-2 spread) stays a normal number


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@given(data=st.data())
def test_log_of_probabilities_is_finite(dtype, data):
    """log(softmax(x)) is finite (and equals log_softmax) whenever no probability
    underflows to 0, however large the logits: rows are an extreme offset plus a spread
    small enough for every exp() to stay representable. (Where a probability does
    underflow, log_softmax is the finite way: tested above.) A BCE of probabilities
    exactly 0 or 1 is clamped to at most 100 per element."""
    offset = data.draw(st.floats(-LIMITS[dtype], LIMITS[dtype]), label="offset")
    spread = data.draw(hnp.arrays(dtype, (3, 4), elements=st.floats(
        -SPREAD[dtype], SPREAD[dtype], width=32 if dtype is np.float32 else 64)), label="spread")
    array = (spread + dtype(offset)).astype(dtype)
    logp, grad = _value_and_grad(lambda t: t.softmax(-1).log(), array)
    _assert_finite(logp, grad)
    ref, ref_grad = _value_and_grad(lambda t: t.log_softmax(-1), array)
    tol = 1e-3 if dtype is np.float32 else 1e-9
    np.testing.assert_allclose(logp, ref, rtol=tol, atol=tol)
    np.testing.assert_allclose(grad, ref_grad, rtol=tol, atol=tol)
    edge = np.array([0.0, 1.0, 0.0, 1.0], dtype=dtype)
    target = Tensor(np.array([0.0, 1.0, 1.0, 0.0], dtype=dtype))
    value, grad = _value_and_grad(
        lambda p: F.binary_cross_entropy(p, target, reduction="none"), edge)
    np.testing.assert_allclose(value, [0.0, 0.0, 100.0, 100.0])
    _assert_finite(value, grad)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@given(value=st.floats(-1e4, 1e4, allow_nan=False, width=32), n=st.integers(1, 6))
def test_var_and_std_of_a_constant(dtype, value, n):
    """0 up to the rounding of the mean (a few ulps of the value, squared); finite gradient."""
    array = np.full((n,), value, dtype=dtype)
    v, grad = _value_and_grad(lambda t: t.var(), array, weights=False)
    bound = (8 * np.finfo(dtype).eps * abs(value)) ** 2
    assert 0.0 <= v <= bound
    assert np.all(np.isfinite(grad)) and np.all(np.abs(grad) <= 8 * np.sqrt(bound) + 1e-30)
    s = Tensor(array).std().numpy()
    assert 0.0 <= s <= np.sqrt(bound)


@pytest.mark.parametrize("value", [1e300, -1e300, 1e-300, 3.0])
def test_var_of_a_float64_constant_at_the_extremes(value):
    v, grad = _value_and_grad(lambda t: t.var(axis=0), np.full((3, 2), value), weights=False)
    assert np.all(v == 0.0) and np.all(grad == 0.0)


@given(value=st.floats(-1e300, 1e300), n=st.integers(1, 8))
def test_var_and_std_of_a_huge_float64_constant_are_zero(value, n):
    """var centres on a (detached) sample first, so a constant is exactly 0 even where a
    rounded mean (8.38e285 * 7 / 7 is off by an ulp ~ 1e270) would square to inf."""
    v, grad = _value_and_grad(lambda t: t.var(), np.full(n, value), weights=False)
    assert v == 0.0 and np.all(grad == 0.0)
    s, grad = _value_and_grad(lambda t: t.std(), np.full(n, value), weights=False)
    assert s == 0.0 and np.all(grad == 0.0)   # std's subgradient at a constant is 0


def test_var_of_the_constant_that_used_to_overflow():
    assert Tensor(np.full(7, 8.382827037773549e285)).var().item() == 0.0


def test_std_gradient_of_a_constant_is_zero_and_elsewhere_exact():
    """At a constant std takes the subgradient 0 (PyTorch gives NaN); elsewhere it is the
    usual (x - mean) / (n std), checked by finite differences with create_graph too."""
    _, grad = _value_and_grad(lambda t: t.std(), np.full((4,), 2.5), weights=False)
    assert np.all(grad == 0.0)
    _, grad = _value_and_grad(lambda t: t.std(axis=1), np.array([[1.0, 1.0], [1.0, 3.0]]),
                              weights=False)
    np.testing.assert_allclose(grad, [[0.0, 0.0], [-0.5, 0.5]])
    x = Tensor(np.array([[0.3, -1.2, 2.0], [0.5, 0.1, -0.7]]), requires_grad=True)
    assert tl.testing.gradcheck(lambda t: t.std(axis=1, ddof=1), x)
    assert tl.testing.gradgradcheck(lambda t: t.std(axis=0), x)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_clip_grad_norm_of_zero_gradients(dtype):
    params = [nn.Parameter(tl.zeros(3, dtype=dtype)), nn.Parameter(tl.zeros(2, 2, dtype=dtype))]
    for p in params:
        p.grad = tl.zeros(*p.shape, dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        total = nn.utils.clip_grad_norm_(params, 1.0)
        total_inf = nn.utils.clip_grad_norm_(params, 1.0, norm_type=float("inf"))
    assert total.item() == 0.0 and total_inf.item() == 0.0
    for p in params:
        assert np.all(p.grad.numpy() == 0.0)


@given(scale=st.floats(1e-30, 1e30), data=st.data())
def test_clip_grad_norm_keeps_direction_and_is_finite(scale, data):
    g = data.draw(hnp.arrays(np.float64, 5, elements=st.floats(-1, 1)))
    p = nn.Parameter(tl.zeros(5, dtype="float64"))
    p.grad = Tensor(g * scale)
    total = nn.utils.clip_grad_norm_([p], 1.0).item()
    assert np.isfinite(total)
    clipped = p.grad.numpy()
    assert np.all(np.isfinite(clipped))
    assert np.linalg.norm(clipped) <= 1.0 + 1e-9
