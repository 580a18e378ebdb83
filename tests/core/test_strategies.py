"""tl.testing: the hypothesis strategies, gradcheck's errors and check_function."""

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_lite as tl
from tinygrad_lite.testing import GradcheckError, check_function, gradcheck, gradgradcheck
from tinygrad_lite.testing import strategies as tls


def test_import_tinygrad_lite_does_not_import_hypothesis():
    code = ("import sys, tinygrad_lite as tl; import tinygrad_lite.testing; "
            "tl.testing.gradcheck; print('hypothesis' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


@given(tls.shapes(min_dims=1, max_dims=3, min_side=2, max_side=4))
def test_shapes_respect_their_bounds(shape):
    assert 1 <= len(shape) <= 3 and all(2 <= n <= 4 for n in shape)


@given(st.data())
def test_broadcastable_shapes_broadcast(data):
    shape = data.draw(tls.shapes())
    other = data.draw(tls.broadcastable_shapes(shape))
    np.broadcast_shapes(shape, other)
    shapes = data.draw(tls.mutually_broadcastable_shapes(3))
    assert len(shapes) == 3
    np.broadcast_shapes(*shapes)


@given(tls.tensors(shape=(4, 3), elements=(-1.0, 1.0), avoid=[0.0, 0.5], margin=0.2,
                   requires_grad=True))
def test_tensors_keep_away_from_kinks(x):
    values = x.numpy()
    assert x.shape == (4, 3) and x.dtype == np.float64 and x.requires_grad
    assert np.all(np.abs(values) > 0.2) and np.all(np.abs(values - 0.5) > 0.2)
    assert np.all((values >= -1.0) & (values <= 1.0))


@given(tls.tensors(shape=tls.shapes(min_dims=1), distinct=True, margin=0.05))
def test_distinct_values_are_well_separated(x):
    values = np.sort(x.numpy().reshape(-1))
    assert np.all(np.diff(values) >= 0.05)


@pytest.mark.parametrize("dtype", ["float32", "int64", "bool"])
@given(data=st.data())
def test_tensor_dtypes(dtype, data):
    assert data.draw(tls.tensors(dtype=dtype)).dtype == np.dtype(dtype)


def test_all_layouts_are_drawn():
    seen = set()

    @settings(max_examples=100)
    @given(tls.tensors(shape=(3, 4)))
    def collect(x):
        data = x.data
        if 0 in data.strides:
            seen.add("broadcast")
        elif data.flags.f_contiguous and not data.flags.c_contiguous:
            seen.add("transposed")
        elif not data.flags.c_contiguous:
            seen.add("strided")
        else:
            seen.add("contiguous")

    collect()
    assert seen == {"broadcast", "transposed", "strided", "contiguous"}


@pytest.mark.parametrize("layout", ["transposed", "strided", "broadcast"])
@given(data=st.data())
def test_ops_give_the_same_answer_on_every_layout(layout, data):
    x = data.draw(tls.tensors(shape=(3, 4), layout=layout))
    dense = tl.Tensor(np.ascontiguousarray(x.numpy()))
    for op in (lambda t: t.exp() @ t.T, lambda t: t.sum(0), lambda t: t[1:, ::2] * 2,
               lambda t: t.reshape(4, 3), lambda t: t.softmax(0)):
        np.testing.assert_allclose(op(x).numpy(), op(dense).numpy(), rtol=1e-12)


def test_avoid_that_leaves_nothing_is_an_error():
    with pytest.raises(ValueError, match="leaves no values"):
        tls.elements((0.0, 1.0), avoid=[0.5], margin=1.0)


# ------------------------------------------------------------------ gradcheck


class WrongSquare(tl.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        """Wrong on purpose: should be 2 x g."""
        (x,) = ctx.saved_tensors
        return 3.0 * x * g


def test_gradcheck_names_input_element_and_values():
    x = tl.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    with pytest.raises(GradcheckError, match=r"gradient mismatch for input 0 at element "
                                             r"\(0,\) of output 0: analytic 3, numerical 2"):
        gradcheck(WrongSquare.apply, (x,))


def test_gradcheck_on_large_inputs_uses_random_directions():
    x = tl.Tensor(np.linspace(0.1, 1.0, 300).reshape(30, 10), requires_grad=True)
    w = tl.Tensor(np.linspace(-1.0, 1.0, 100).reshape(10, 10), requires_grad=True)
    assert gradcheck(lambda x, w: (x @ w).tanh(), (x, w))
    with pytest.raises(GradcheckError, match="directional derivative mismatch"):
        gradcheck(WrongSquare.apply, (x,))


def test_gradcheck_requires_float64():
    with pytest.raises(TypeError, match="float64"):
        gradcheck(lambda x: x * 2, (tl.ones(2, requires_grad=True),))


def test_gradgradcheck_catches_a_non_differentiable_backward():
    class DetachedBackward(tl.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x * x

        @staticmethod
        def backward(ctx, g):
            """Right values, but computed outside the graph: no second derivative."""
            (x,) = ctx.saved_tensors
            return (3.0 * x * x).detach() * g

    x = tl.Tensor(np.array([0.5, 1.5]), requires_grad=True)
    assert gradcheck(DetachedBackward.apply, (x,))
    with pytest.raises(GradcheckError):
        gradgradcheck(DetachedBackward.apply, (x,))


# ------------------------------------------------------------ check_function


def test_check_function_passes_a_correct_function_class():
    class Square(tl.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 2.0 * x * g

    check_function(Square, input_shapes=[(2, 3)], max_examples=5)
    check_function(Square, max_examples=5)  # shapes drawn


def test_check_function_finds_a_wrong_backward():
    with pytest.raises(GradcheckError, match="gradient mismatch"):
        check_function(WrongSquare, max_examples=5)


def test_check_function_with_strategies_broadcast_and_per_input_options():
    calls = []

    def fn(a, b):
        calls.append((a.shape, b.shape))
        assert np.all(b.numpy() > 0.5)
        return a.relu() / b

    check_function(fn, "broadcast", num_inputs=2, max_examples=6,
                   avoid=[[0.0], []], elements=[None, [(0.6, 2.0)]])
    check_function(fn, [tls.shapes(max_dims=1), (1,)], elements=[None, [(0.6, 2.0)]],
                   avoid=[[0.0], []], max_examples=6, order=1)
    assert len(calls) > 12
    shapes = {s for pair in calls for s in pair}
    assert len(shapes) > 2


def test_check_function_rejects_bad_options():
    with pytest.raises(ValueError, match="order"):
        check_function(lambda x: x, order=3)
    with pytest.raises(ValueError, match="elements has 3 entries for 2 inputs"):
        check_function(lambda a, b: a * b, elements=[None, None, None])
