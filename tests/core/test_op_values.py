"""Forward values against numpy, on random shapes, dtypes and memory layouts."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_lite as tl
from tinygrad_lite import Tensor
from tinygrad_lite.testing import strategies as tls


def _np_sigmoid(x):
    return 1 / (1 + np.exp(-x))


UNARY = {
    "neg": (lambda t: -t, np.negative),
    "exp": (lambda t: t.exp(), np.exp),
    "log": (lambda t: t.log(), np.log),
    "sqrt": (lambda t: t.sqrt(), np.sqrt),
    "abs": (lambda t: abs(t), np.abs),
    "sin": (lambda t: t.sin(), np.sin),
    "cos": (lambda t: t.cos(), np.cos),
    "tanh": (lambda t: t.tanh(), np.tanh),
    "sigmoid": (lambda t: t.sigmoid(), _np_sigmoid),
    "relu": (lambda t: t.relu(), lambda x: np.maximum(x, 0)),
    "leaky_relu": (lambda t: t.leaky_relu(0.1), lambda x: np.where(x > 0, x, 0.1 * x)),
    "elu": (lambda t: t.elu(0.5), lambda x: np.where(x > 0, x, 0.5 * np.expm1(x))),
    "clip": (lambda t: t.clip(-0.5, 0.5), lambda x: np.clip(x, -0.5, 0.5)),
    "square": (lambda t: t.square(), np.square),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@settings(max_examples=10)
@given(data=st.data())
def test_unary_matches_numpy(name, dtype, data):
    ours, reference = UNARY[name]
    values = (0.1, 3.0) if name in ("log", "sqrt") else (-3.0, 3.0)
    x = data.draw(tls.tensors(dtype=dtype, elements=values))
    out = ours(x)
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_allclose(out.numpy(), reference(x.numpy()), rtol=1e-6, atol=1e-6)


BINARY = {
    "add": (lambda a, b: a + b, np.add),
    "sub": (lambda a, b: a - b, np.subtract),
    "mul": (lambda a, b: a * b, np.multiply),
    "div": (lambda a, b: a / b, np.divide),
    "pow": (lambda a, b: abs(a) ** b, lambda a, b: np.abs(a) ** b),
    "maximum": (lambda a, b: a.maximum(b), np.maximum),
    "minimum": (lambda a, b: a.minimum(b), np.minimum),
    "matmul-free where": (lambda a, b: tl.where(a > b, a, b), np.maximum),
}


@pytest.mark.parametrize("name", sorted(BINARY))
@settings(max_examples=10)
@given(data=st.data())
def test_binary_matches_numpy_with_broadcasting(name, data):
    ours, reference = BINARY[name]
    shape_a, shape_b = data.draw(tls.mutually_broadcastable_shapes(2))
    a = data.draw(tls.tensors(shape_a, elements=[(-2.0, -0.1), (0.1, 2.0)]))
    b = data.draw(tls.tensors(shape_b, elements=[(-2.0, -0.5), (0.5, 2.0)]))
    np.testing.assert_allclose(ours(a, b).numpy(), reference(a.numpy(), b.numpy()),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("op", ["__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__"])
def test_comparisons_are_boolean_and_outside_the_graph(op):
    a = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    b = np.array([2.0, 2.0, 2.0])
    out = getattr(a, op)(Tensor(b))
    assert out.dtype == np.bool_ and not out.requires_grad and out.grad_fn is None
    np.testing.assert_array_equal(out.numpy(), getattr(a.numpy(), op)(b))
    np.testing.assert_array_equal(getattr(a, op)(2.0).numpy(), getattr(a.numpy(), op)(2.0))


REDUCTIONS = {
    "sum": (lambda t, a, k: t.sum(a, k), lambda x, a, k: x.sum(a, keepdims=k)),
    "mean": (lambda t, a, k: t.mean(a, k), lambda x, a, k: x.mean(a, keepdims=k)),
    "max": (lambda t, a, k: t.max(a, k), lambda x, a, k: x.max(a, keepdims=k)),
    "min": (lambda t, a, k: t.min(a, k), lambda x, a, k: x.min(a, keepdims=k)),
    "var": (lambda t, a, k: t.var(a, k), lambda x, a, k: x.var(a, keepdims=k)),
    "std": (lambda t, a, k: t.std(a, k), lambda x, a, k: x.std(a, keepdims=k)),
    "var_ddof1": (lambda t, a, k: t.var(a, k, ddof=1),
                  lambda x, a, k: x.var(a, keepdims=k, ddof=1)),
    "logsumexp": (lambda t, a, k: t.logsumexp(a, k),
                  lambda x, a, k: np.log(np.exp(x).sum(a, keepdims=k))),
}


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@settings(max_examples=10)
@given(data=st.data())
def test_reductions_match_numpy(name, data):
    ours, reference = REDUCTIONS[name]
    x = data.draw(tls.tensors(tls.shapes(min_dims=3, max_dims=3, min_side=2)))
    axis = data.draw(st.sampled_from([None, 0, 1, -1, (0, 2), (2, 0)]))
    keepdims = data.draw(st.booleans())
    out = ours(x, axis, keepdims)
    expected = reference(x.numpy(), axis, keepdims)
    assert out.shape == np.shape(expected)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-10, atol=1e-12)


def test_argmax_argmin():
    x = np.array([[1.0, 5.0, 2.0], [7.0, 0.0, 7.0]])
    t = Tensor(x)
    assert t.argmax().item() == 3 and t.argmin().item() == 4
    np.testing.assert_array_equal(t.argmax(1).numpy(), x.argmax(1))
    np.testing.assert_array_equal(t.argmin(0).numpy(), x.argmin(0))
    assert t.argmax(1, keepdims=True).shape == (2, 1)
    assert t.argmax(1).dtype == np.int64


@settings(max_examples=15)
@given(st.data())
def test_movement_matches_numpy(data):
    x = data.draw(tls.tensors(tls.shapes(min_dims=2, max_dims=3)))
    a = x.numpy()
    perm = data.draw(st.permutations(range(a.ndim)))
    np.testing.assert_array_equal(x.transpose(*perm).numpy(), a.transpose(perm))
    np.testing.assert_array_equal(x.T.numpy(), a.T)
    np.testing.assert_array_equal(x.swapaxes(0, -1).numpy(), a.swapaxes(0, -1))
    np.testing.assert_array_equal(x.reshape(-1).numpy(), a.reshape(-1))
    np.testing.assert_array_equal(x.flatten(1).numpy(), a.reshape(a.shape[0], -1))
    np.testing.assert_array_equal(x.unsqueeze(1).numpy(), np.expand_dims(a, 1))
    np.testing.assert_array_equal(x.pad([(1, 0)] * a.ndim, value=3.0).numpy(),
                                  np.pad(a, [(1, 0)] * a.ndim, constant_values=3.0))
    np.testing.assert_array_equal(tl.cat([x, x], axis=-1).numpy(),
                                  np.concatenate([a, a], axis=-1))
    np.testing.assert_array_equal(tl.stack([x, x], axis=1).numpy(), np.stack([a, a], axis=1))
    np.testing.assert_array_equal(x.expand(2, *a.shape).numpy(),
                                  np.broadcast_to(a, (2,) + a.shape))


INDEXES = [0, -1, (0, 1), slice(None, None, -1), (slice(1, 3), None, Ellipsis),
           (Ellipsis, 0), [2, 2, 0], (np.array([0, 1]), np.array([1, 1])),
           np.array([True, False, True])]


@pytest.mark.parametrize("index", INDEXES, ids=repr)
def test_getitem_matches_numpy(index):
    a = np.arange(3 * 4, dtype=np.float64).reshape(3, 4)
    np.testing.assert_array_equal(Tensor(a)[index].numpy(), a[index])


def test_getitem_with_tensor_index_and_mask():
    a = np.arange(6.0).reshape(3, 2)
    t = Tensor(a)
    np.testing.assert_array_equal(t[Tensor([2, 0])].numpy(), a[[2, 0]])
    np.testing.assert_array_equal(t[t > 2].numpy(), a[a > 2])


@pytest.mark.parametrize("shapes", [((2, 3), (3, 4)), ((5, 2, 3), (3, 4)),
                                    ((1, 2, 3), (4, 3, 2)), ((3,), (3, 2)), ((2, 3), (3,)),
                                    ((3,), (3,)), ((2, 1, 2, 3), (5, 3, 1))])
def test_matmul_matches_numpy(shapes):
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal(s) for s in shapes)
    out = Tensor(a) @ Tensor(b)
    np.testing.assert_allclose(out.numpy(), a @ b, rtol=1e-12)
    assert out.shape == np.shape(a @ b)


@settings(max_examples=15)
@given(tls.tensors(tls.shapes(min_dims=1), elements=(-50.0, 50.0)))
def test_softmax_and_log_softmax_are_stable(x):
    a = x.numpy()
    shifted = a - a.max(-1, keepdims=True)
    expected = np.exp(shifted) / np.exp(shifted).sum(-1, keepdims=True)
    np.testing.assert_allclose(x.softmax().numpy(), expected, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(tl.log_softmax(x).numpy(),
                               shifted - np.log(np.exp(shifted).sum(-1, keepdims=True)),
                               rtol=1e-10, atol=1e-12)


def test_softmax_of_huge_logits_is_finite():
    x = Tensor(np.array([1000.0, -1000.0, 0.0], dtype=np.float32))
    assert np.isfinite(x.softmax().numpy()).all()
    assert np.isfinite(x.log_softmax().numpy()).all()


def test_logsumexp_with_minus_infinity():
    x = Tensor(np.array([-np.inf, 0.0, 1.0]), requires_grad=True)
    out = x.logsumexp()
    np.testing.assert_allclose(out.item(), np.log(1 + np.e))
    out.backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.0, 1 / (1 + np.e), np.e / (1 + np.e)])
    with np.errstate(divide="ignore"):  # log(0) = -inf is the right answer here
        all_inf = Tensor(np.array([[-np.inf, -np.inf], [0.0, 0.0]])).logsumexp(axis=1)
    np.testing.assert_allclose(all_inf.numpy(), [-np.inf, np.log(2.0)])


def test_var_and_std_of_a_constant_are_zero():
    for dtype in ("float32", "float64"):
        x = tl.full((7,), 0.1, dtype=dtype)
        # two-pass (x - mean)^2: never negative, so sqrt never sees a rounding -1e-17
        assert 0.0 <= x.var().item() < 1e-12
        assert np.isfinite(x.std().item()) and 0.0 <= x.std().item() < 1e-6
        assert tl.zeros(3, 4).std(axis=0).numpy().tolist() == [0.0] * 4


def test_max_with_ties_splits_the_gradient():
    x = Tensor(np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]]), requires_grad=True)
    x.max(axis=1).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [[0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]])
    y = Tensor(np.array([1.0, 1.0]), requires_grad=True)
    y.maximum(Tensor(np.array([1.0, 0.0]))).sum().backward()
    np.testing.assert_allclose(y.grad.numpy(), [0.5, 1.0])


def test_pow_of_a_negative_base_with_an_integer_exponent():
    x = Tensor(np.array([-2.0, 3.0]), requires_grad=True)
    y = x ** 3
    np.testing.assert_allclose(y.numpy(), [-8.0, 27.0])
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [12.0, 27.0])


def test_pow_exponent_zero_has_zero_gradient_at_zero():
    x = Tensor(np.array([0.0, 2.0]), requires_grad=True)
    (x ** 0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0])


def test_rpow_python_base():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = 2 ** x
    np.testing.assert_allclose(y.numpy(), [2.0, 4.0])
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.log(2) * np.array([2.0, 4.0]))


def test_where_with_python_scalars():
    condition = Tensor(np.array([True, False]))
    out = tl.where(condition, 1.0, 2.0)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out.numpy(), [1.0, 2.0])
    x = Tensor(np.array([-1.0, 2.0]), requires_grad=True)
    y = tl.where(x > 0, x, 0.0)
    y.sum().backward()
    assert y.dtype == np.float64
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 1.0])
    np.testing.assert_array_equal(tl.where([1, 0], Tensor([5.0, 5.0]), 0).numpy(), [5, 0])


def test_zero_dimensional_tensors_everywhere():
    x = Tensor(np.array(2.0), requires_grad=True)
    for op in (lambda t: t.sum(), lambda t: t.sum(0), lambda t: t.mean(-1), lambda t: t.max(),
               lambda t: t.min(axis=0), lambda t: t.logsumexp(), lambda t: t.T,
               lambda t: t.reshape(1, 1).squeeze(), lambda t: t.exp() * t,
               lambda t: t.unsqueeze(0).sum()):
        out = op(x)
        assert out.shape == ()
        x.grad = None
        out.backward()
        assert x.grad.shape == ()
    assert x.flatten().shape == (1,)
    assert (Tensor([1.0, 2.0]) @ Tensor([3.0, 4.0])).shape == ()
    assert Tensor([1.0, 2.0]).sum().shape == ()


def test_zero_size_reductions():
    empty = tl.zeros(0, 3)
    assert empty.sum().item() == 0.0
    np.testing.assert_array_equal(empty.sum(0).numpy(), [0.0, 0.0, 0.0])
    assert empty.max(1).shape == (0,)
    with pytest.raises(ValueError, match="max: cannot reduce over an empty axis"):
        empty.max()
    with pytest.raises(ValueError, match="min"):
        empty.min(axis=0)
    with pytest.raises(ValueError, match="mean"):
        empty.mean(0)


def test_mean_of_an_int_tensor_is_float32():
    out = Tensor([1, 2, 4]).mean()
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.item(), 7 / 3, rtol=1e-6)


def test_rpow_gradient_with_a_non_positive_python_base_is_a_clear_error():
    x = Tensor(np.array([2.0]), requires_grad=True)
    y = (-2) ** x
    np.testing.assert_allclose(y.numpy(), [4.0])
    with pytest.raises(ValueError, match=r"pow: the gradient of -2 \*\* t .* log\(-2\)"):
        y.sum().backward()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sigmoid_keeps_relative_accuracy_in_the_tails(dtype):
    """sigmoid(x) ~ e^x for very negative x: every value above the smallest normal number
    comes out to a few ulp (not 0, as (1 + tanh(x/2)) / 2 gives once tanh rounds to -1),
    with no overflow warning where exp(-x) overflows; the upper tail rounds to 1."""
    x = np.array([-15.0, -19.0, -30.0, -40.0, -80.0, -87.0, -300.0, -700.0, -1000.0,
                  0.0, 20.0, 1000.0])
    lower = np.exp(np.minimum(x, 0.0))  # e^x where x <= 0: no overflow
    exact = np.where(x <= 0, lower / (1 + lower), 1 / (1 + np.exp(-np.abs(x))))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's default error state warns on overflow
        ours = Tensor(x.astype(dtype)).sigmoid().numpy().astype(np.float64)
    tiny = np.finfo(dtype).tiny
    normal = exact >= tiny
    np.testing.assert_allclose(ours[normal], exact[normal], rtol=8 * np.finfo(dtype).eps)
    assert np.all(ours[~normal] <= tiny)
