"""Every differentiable op against finite differences, on random shapes and values.

Each test draws shapes (broadcasting included) and float64 values with our own
strategies (``tl.testing.strategies``) and runs ``gradcheck`` and, for order 2,
``gradgradcheck``, which differentiates the recorded backward pass once more. Kinks
(relu, abs, clip, max...) are avoided with the strategies' ``avoid`` / ``distinct``
options: there the derivative does not exist and finite differences disagree rightly.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_lite as tl
from tinygrad_lite.testing import check_function, gradcheck, gradgradcheck
from tinygrad_lite.testing import strategies as tls

FEW = 8          # examples for the costlier second-order checks
POSITIVE = (0.5, 2.0)
NONZERO = [(-2.0, -0.5), (0.5, 2.0)]

# --------------------------------------------------------------- elementwise

BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "radd_scalar": lambda a, b: 2.5 + a - b * 0.5,
}


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_arithmetic_with_broadcasting(name):
    check_function(BINARY[name], "broadcast", num_inputs=2, max_examples=FEW)


def test_div_with_broadcasting():
    check_function(lambda a, b: a / b, "broadcast", num_inputs=2, max_examples=FEW,
                   elements=[None, NONZERO])


def test_rdiv_scalar():
    check_function(lambda a: 1.5 / a, elements=NONZERO, max_examples=FEW)


def test_pow_tensor_exponent_positive_base():
    check_function(lambda a, b: a ** b, "broadcast", num_inputs=2, max_examples=FEW,
                   elements=[[POSITIVE], None])


@pytest.mark.parametrize("exponent", [2, 3, 0.5, -1.5, 1.0])
def test_pow_scalar_exponent_positive_base(exponent):
    check_function(lambda a: a ** exponent, elements=POSITIVE, max_examples=FEW)


@pytest.mark.parametrize("exponent", [2, 3, -2])
def test_pow_integer_exponent_negative_base(exponent):
    check_function(lambda a: a ** exponent, elements=NONZERO, max_examples=FEW)


def test_rpow_python_base():
    check_function(lambda a: 2 ** a, max_examples=FEW)


UNARY_SMOOTH = {
    "neg": (lambda x: -x, None),
    "exp": (lambda x: x.exp(), None),
    "log": (lambda x: x.log(), POSITIVE),
    "sqrt": (lambda x: x.sqrt(), POSITIVE),
    "sin": (lambda x: x.sin(), None),
    "cos": (lambda x: x.cos(), None),
    "tanh": (lambda x: x.tanh(), None),
    "sigmoid": (lambda x: x.sigmoid(), None),
    "clone": (lambda x: x.clone(), None),
    "square": (lambda x: x.square(), None),
}


@pytest.mark.parametrize("name", sorted(UNARY_SMOOTH))
def test_smooth_unary(name):
    fn, values = UNARY_SMOOTH[name]
    check_function(fn, max_examples=FEW, elements=values)


UNARY_KINKED = {
    "abs": (lambda x: abs(x), [0.0]),
    "relu": (lambda x: x.relu(), [0.0]),
    "leaky_relu": (lambda x: x.leaky_relu(0.1), [0.0]),
    "elu": (lambda x: x.elu(0.7), [0.0]),
    "clip": (lambda x: x.clip(-0.5, 1.0), [-0.5, 1.0]),
    "clip_low_only": (lambda x: x.clip(0.25, None), [0.25]),
}


@pytest.mark.parametrize("name", sorted(UNARY_KINKED))
def test_kinked_unary_away_from_kinks(name):
    fn, kinks = UNARY_KINKED[name]
    check_function(fn, max_examples=FEW, avoid=kinks)


# Interleaved intervals: a value of `a` is never within 0.2 of a value of `b`,
# and either can be the larger one, so max/min take both branches without ties.
A_VALUES = [(-2.0, -1.2), (0.0, 0.8)]
B_VALUES = [(-1.0, -0.2), (1.0, 1.8)]


@pytest.mark.parametrize("op", ["maximum", "minimum"])
def test_maximum_minimum_with_broadcasting(op):
    check_function(lambda a, b: getattr(a, op)(b), "broadcast", num_inputs=2,
                   max_examples=FEW, elements=[A_VALUES, B_VALUES])


@settings(max_examples=FEW)
@given(st.data())
def test_where_with_broadcasting(data):
    c_shape, a_shape, b_shape = data.draw(tls.mutually_broadcastable_shapes(3))
    condition = data.draw(tls.tensors(c_shape, dtype="bool"))
    a = data.draw(tls.tensors(a_shape, requires_grad=True))
    b = data.draw(tls.tensors(b_shape, requires_grad=True))
    fn = lambda a, b: tl.where(condition, a, b)  # noqa: E731
    assert gradcheck(fn, (a, b)) and gradgradcheck(fn, (a, b))


def test_where_with_a_python_scalar_branch():
    check_function(lambda a: tl.where(a > 0, a * a, 0.5), avoid=[0.0], max_examples=FEW)


def test_astype_round_trip_gradient():
    # float64 -> float32 -> float64: the cast's backward casts the gradient back.
    check_function(lambda a: a.astype("float32").astype("float64") * 2.0, order=1,
                   max_examples=FEW, eps=1e-3, atol=1e-4, rtol=1e-3)


# ---------------------------------------------------------------- reductions

AXES = st.sampled_from([None, 0, -1, (0, 2), (1,), (0, 1, 2)])


def _reduction_check(data, fn, distinct=False, min_side=1):
    shape = data.draw(tls.shapes(min_dims=3, max_dims=3, min_side=min_side, max_side=3))
    axis, keepdims = data.draw(AXES), data.draw(st.booleans())
    x = data.draw(tls.tensors(shape, requires_grad=True, distinct=distinct))
    f = lambda x: fn(x, axis, keepdims)  # noqa: E731
    assert f(x).shape == np.sum(x.numpy(), axis=axis, keepdims=keepdims).shape
    gradcheck(f, (x,))
    gradgradcheck(f, (x,))


REDUCTIONS = {
    "sum": (lambda x, a, k: x.sum(a, k), False, 1),
    "mean": (lambda x, a, k: x.mean(a, k), False, 1),
    "var": (lambda x, a, k: x.var(a, k), False, 1),
    "logsumexp": (lambda x, a, k: x.logsumexp(a, k), False, 1),
    "max": (lambda x, a, k: x.max(a, k), True, 1),
    "min": (lambda x, a, k: x.min(a, k), True, 1),
    # two or more distinct values keep the variance away from 0, where sqrt has a kink
    "std": (lambda x, a, k: x.std(a, k), True, 2),
}


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@settings(max_examples=FEW)
@given(data=st.data())
def test_reductions_over_axes(name, data):
    _reduction_check(data, *REDUCTIONS[name])


@settings(max_examples=FEW)
@given(st.data())
def test_var_std_with_ddof(data):
    x = data.draw(tls.tensors(tls.shapes(min_dims=1, max_dims=2, min_side=2),
                              requires_grad=True, distinct=True))
    gradcheck(lambda x: x.var(ddof=1), (x,))
    gradcheck(lambda x: x.std(axis=-1, ddof=1), (x,))


# ------------------------------------------------------------------ movement


@settings(max_examples=FEW)
@given(st.data())
def test_reshape_flatten_squeeze_unsqueeze(data):
    x = data.draw(tls.tensors(tls.shapes(min_dims=1), requires_grad=True))
    ops = [
        lambda x: x.reshape(-1),
        lambda x: x.reshape(tuple(reversed(x.shape))),
        lambda x: x.reshape(1, *x.shape, 1),
        lambda x: x.flatten(),
        lambda x: x.unsqueeze(0).squeeze(0),
        lambda x: x.unsqueeze(-1),
        lambda x: x.reshape(*x.shape, 1, 1).squeeze(),
    ]
    for op in ops:
        gradcheck(op, (x,))
    gradgradcheck(ops[1], (x,))


@settings(max_examples=FEW)
@given(st.data())
def test_transpose_permute_swapaxes(data):
    shape = data.draw(tls.shapes(min_dims=2, max_dims=4, max_side=3))
    x = data.draw(tls.tensors(shape, requires_grad=True))
    axes = data.draw(st.permutations(range(len(shape))))
    a, b = data.draw(st.integers(0, len(shape) - 1)), data.draw(st.integers(-len(shape), -1))
    gradcheck(lambda x: x.transpose(*axes), (x,))
    gradcheck(lambda x: x.permute(*axes) * 2.0, (x,))
    gradcheck(lambda x: x.T.T, (x,))
    gradcheck(lambda x: x.swapaxes(a, b), (x,))
    gradgradcheck(lambda x: x.transpose() * 2.0, (x,))


@settings(max_examples=FEW)
@given(st.data())
def test_expand_broadcast_to(data):
    target = data.draw(tls.shapes(min_dims=1, max_dims=3, max_side=3))
    # the input: the target with some axes set to 1 and some leading axes dropped
    ones = data.draw(st.lists(st.booleans(), min_size=len(target), max_size=len(target)))
    drop = data.draw(st.integers(0, len(target)))
    shape = tuple(1 if o else n for o, n in zip(ones, target))[drop:]
    x = data.draw(tls.tensors(shape, requires_grad=True))
    gradcheck(lambda x: x.broadcast_to(target), (x,))
    gradcheck(lambda x: x.expand(*target) * 1.5, (x,))
    gradgradcheck(lambda x: x.expand(target) * x.expand(target), (x,))


@settings(max_examples=FEW)
@given(st.data())
def test_pad(data):
    shape = data.draw(tls.shapes(min_dims=1, max_dims=3, max_side=3))
    widths = data.draw(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2)),
                                min_size=len(shape), max_size=len(shape)))
    x = data.draw(tls.tensors(shape, requires_grad=True))
    gradcheck(lambda x: x.pad(widths, value=0.5), (x,))
    gradgradcheck(lambda x: x.pad(widths) * x.pad(widths), (x,))


INDICES = [
    2,
    -1,
    (1, 2),
    slice(None, None, 2),
    slice(3, 0, -2),
    (slice(1, None), None, Ellipsis),
    (Ellipsis, 1),
    (None, slice(None), 0),
    [0, 0, 3, 1],                      # integer list with repeats
    ([1, 1], [2, 2]),                  # paired integer arrays, repeated element
    (slice(None), [3, 0, 3]),
]


@pytest.mark.parametrize("index", INDICES, ids=repr)
def test_getitem(index):
    check_function(lambda x: x[index], [(4, 5)], max_examples=4)


def test_getitem_with_tensor_indices_and_bool_mask():
    mask = tl.Tensor(np.array([True, False, True, True]))
    rows = tl.Tensor([3, 3, 0])
    check_function(lambda x: x[mask] * x[rows], [(4, 2)], max_examples=4)
    check_function(lambda x: x[x.detach() > 0], [(3, 3)], max_examples=4, avoid=[0.0])


@settings(max_examples=FEW)
@given(st.data())
def test_cat_and_stack(data):
    shape = data.draw(tls.shapes(min_dims=1, max_dims=3, max_side=3))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    other = list(shape)
    other[axis] = data.draw(st.integers(1, 3))
    a = data.draw(tls.tensors(shape, requires_grad=True))
    b = data.draw(tls.tensors(tuple(other), requires_grad=True))
    c = data.draw(tls.tensors(shape, requires_grad=True))
    gradcheck(lambda a, b: tl.cat([a, b, a], axis), (a, b))
    gradcheck(lambda a, c: tl.stack([a, c], axis), (a, c))
    gradgradcheck(lambda a, b: tl.cat([a * a, b], axis), (a, b))


# -------------------------------------------------------------------- matmul


@settings(max_examples=FEW)
@given(st.data())
def test_matmul_2d_batched_and_1d(data):
    n, k, m = (data.draw(st.integers(1, 3)) for _ in range(3))
    batch_a, batch_b = data.draw(tls.mutually_broadcastable_shapes(2, max_dims=2, max_side=2))
    kind = data.draw(st.sampled_from(["2d", "batched", "vec-mat", "mat-vec", "vec-vec"]))
    shape_a = {"2d": (n, k), "batched": batch_a + (n, k), "vec-mat": (k,),
               "mat-vec": batch_a + (n, k), "vec-vec": (k,)}[kind]
    shape_b = {"2d": (k, m), "batched": batch_b + (k, m), "vec-mat": batch_b + (k, m),
               "mat-vec": (k,), "vec-vec": (k,)}[kind]
    a = data.draw(tls.tensors(shape_a, requires_grad=True))
    b = data.draw(tls.tensors(shape_b, requires_grad=True))
    assert (a @ b).shape == np.matmul(a.numpy(), b.numpy()).shape
    gradcheck(lambda a, b: a @ b, (a, b))
    gradgradcheck(lambda a, b: a @ b, (a, b))


# ------------------------------------------------------------------- softmax


@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
@settings(max_examples=FEW)
@given(data=st.data())
def test_softmax_log_softmax(fn, data):
    shape = data.draw(tls.shapes(min_dims=1, max_dims=3, max_side=3))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = data.draw(tls.tensors(shape, requires_grad=True, elements=(-4.0, 4.0)))
    gradcheck(lambda x: getattr(x, fn)(axis), (x,))
    gradgradcheck(lambda x: getattr(tl, fn)(x, axis), (x,))


# ------------------------------------------------------------ a composition


def test_mlp_layer_composition():
    """A 2-layer perceptron: matmul, bias broadcast, sigmoid, softmax cross-entropy."""
    def loss(x, w1, b1, w2):
        hidden = (x @ w1 + b1).sigmoid()
        return -(hidden @ w2).log_softmax(-1)[:, 0].mean()
    check_function(loss, [(3, 4), (4, 5), (5,), (5, 2)], max_examples=4)
