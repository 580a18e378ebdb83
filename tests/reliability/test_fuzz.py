"""Graph fuzzing (issue 6, part 5).

Hypothesis draws small random programs over the op set (random shapes including 0-d,
size-1 and zero-size axes, broadcasting between unrelated shapes, random axes that may be
out of range) and runs them on float64 leaves. Forward must either succeed or raise one
of the documented builtin exceptions (ValueError, TypeError, IndexError, RuntimeError;
never numpy's AxisError or another foreign type), and wherever it succeeds the gradients
of every leaf must match finite differences (``tl.testing.gradcheck``). Only smooth
functions are drawn (no relu/abs/max kinks; divisions and logs are by 1 + x^2), so finite
differences are valid everywhere.
"""

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_lite as tl
from tinygrad_lite import Tensor
from tinygrad_lite.testing import gradcheck

DOCUMENTED = (ValueError, TypeError, IndexError, RuntimeError)
# Messages of Python's or numpy's internals, which say nothing actionable to the user
RAW_MESSAGES = re.compile(r"not enough values to unpack|too many values to unpack|tuple index "
                          r"out of range|list index out of range|has no attribute|unsupported "
                          r"operand|must be of integral type|object is not|NoneType|"
                          r"unhashable|takes \d+ positional")

AXIS = st.integers(-4, 3)          # sometimes out of range on purpose

# op name -> (number of tensor operands, strategy of extra parameters)
OPS = {
    "add": (2, st.just(None)), "sub": (2, st.just(None)), "mul": (2, st.just(None)),
    "div": (2, st.just(None)), "matmul": (2, st.just(None)), "cat": (2, AXIS),
    "stack": (2, AXIS), "where": (2, st.just(None)),
    "neg": (1, st.just(None)), "exp_tanh": (1, st.just(None)), "sin": (1, st.just(None)),
    "cos": (1, st.just(None)), "tanh": (1, st.just(None)), "sigmoid": (1, st.just(None)),
    "square": (1, st.just(None)), "log1p_sq": (1, st.just(None)), "sqrt1p_sq": (1, st.just(None)),
    "pow3": (1, st.just(None)), "scalar": (1, st.floats(-2, 2)),
    "sum": (1, st.one_of(st.none(), AXIS)), "mean": (1, st.one_of(st.none(), AXIS)),
    "var": (1, st.one_of(st.none(), AXIS)), "logsumexp": (1, st.one_of(st.none(), AXIS)),
    "softmax": (1, AXIS), "log_softmax": (1, AXIS),
    "reshape_flat": (1, st.just(None)), "transpose": (1, st.just(None)),
    "unsqueeze": (1, AXIS), "squeeze": (1, st.one_of(st.none(), AXIS)),
    "flatten": (1, AXIS), "expand": (1, st.integers(0, 3)),
    "slice": (1, st.tuples(st.integers(-3, 3), st.integers(1, 2))),
    "index": (1, st.integers(-3, 3)), "pad": (1, st.integers(0, 2)),
}


def _apply(name, operands, param):
    a = operands[0]
    b = operands[1] if len(operands) > 1 else None
    if name == "add":
        return a + b
    if name == "sub":
        return a - b
    if name == "mul":
        return a * b
    if name == "div":
        return a / (b * b + 1.0)
    if name == "matmul":
        return a @ b
    if name == "cat":
        return tl.cat([a, b], param)
    if name == "stack":
        return tl.stack([a, b], param)
    if name == "where":
        return tl.where(a > 0.1, a, b)
    if name == "neg":
        return -a
    if name == "exp_tanh":
        return a.tanh().exp()
    if name in ("sin", "cos", "tanh", "sigmoid"):
        return getattr(a, name)()
    if name == "square":
        return a * a
    if name == "log1p_sq":
        return (a * a + 1.0).log()
    if name == "sqrt1p_sq":
        return (a * a + 1.0).sqrt()
    if name == "pow3":
        return a ** 3
    if name == "scalar":
        return param * a + param
    if name in ("sum", "mean", "logsumexp"):
        return getattr(a, name)(param)
    if name == "var":
        return a.var(param)
    if name in ("softmax", "log_softmax"):
        return getattr(a, name)(param)
    if name == "reshape_flat":
        return a.reshape(-1)
    if name == "transpose":
        return a.T
    if name == "unsqueeze":
        return a.unsqueeze(param)
    if name == "squeeze":
        return a.squeeze(param)
    if name == "flatten":
        return a.flatten(param)
    if name == "expand":
        return a.expand(*((param,) + a.shape))
    if name == "slice":
        start, step = param
        return a[start::step]
    if name == "index":
        return a[param]
    if name == "pad":
        return a.pad([(param, 1)] * a.ndim)
    raise AssertionError(name)


def _run(program, leaves):
    pool = list(leaves)
    for name, picks, param in program:
        operands = [pool[p % len(pool)] for p in picks[:OPS[name][0]]]
        pool.append(_apply(name, operands, param))
    return pool[-1]


@st.composite
def programs(draw):
    n_leaves = draw(st.integers(1, 2))
    shapes = [draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3))
              for _ in range(n_leaves)]
    if draw(st.booleans()) and shapes[0]:   # often make the second leaf broadcastable
        shapes[-1] = draw(hnp.broadcastable_shapes(shapes[0], min_side=0, max_side=3))
    arrays = [draw(hnp.arrays(np.float64, shape, elements=st.floats(-1.5, 1.5)))
              for shape in shapes]
    program = []
    for _ in range(draw(st.integers(1, 4))):
        name = draw(st.sampled_from(sorted(OPS)))
        picks = draw(st.lists(st.integers(0, 7), min_size=2, max_size=2))
        program.append((name, picks, draw(OPS[name][1])))
    return arrays, program


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=programs())
def test_random_graphs_raise_documented_errors_or_have_correct_gradients(case):
    arrays, program = case
    leaves = [Tensor(a, requires_grad=True) for a in arrays]
    try:
        out = _run(program, leaves)
    except DOCUMENTED as error:
        # exact builtin types: numpy's AxisError subclasses ValueError *and* IndexError
        assert type(error).__module__ == "builtins", f"{type(error)}: {error}"
        assert str(error), "an exception without a message"
        assert not RAW_MESSAGES.search(str(error)), f"unhelpful message: {error}"
        return
    assert isinstance(out, Tensor) and out.dtype == np.float64
    if out.size > 60 or sum(a.size for a in arrays) > 60:
        return                                  # keep the full-Jacobian check cheap
    assert np.all(np.isfinite(out.numpy()))
    gradcheck(lambda *xs: _run(program, xs), leaves, atol=1e-5, rtol=1e-3)
    # backward through the same program also works from .backward() with a seed
    out = _run(program, leaves)
    out.backward(np.ones(out.shape))
    for leaf in leaves:
        assert leaf.grad is None or (leaf.grad.shape == leaf.shape
                                     and leaf.grad.dtype == leaf.dtype)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=programs())
def test_random_float32_graphs_keep_float32_and_backward_runs(case):
    """The same programs in float32: documented errors only, float32 results, and a
    backward that gives every leaf a float32 gradient of its own shape."""
    arrays, program = case
    leaves = [Tensor(a.astype(np.float32), requires_grad=True) for a in arrays]
    try:
        out = _run(program, leaves)
    except DOCUMENTED as error:
        assert type(error).__module__ == "builtins", f"{type(error)}: {error}"
        assert not RAW_MESSAGES.search(str(error)), f"unhelpful message: {error}"
        return
    assert out.dtype == np.float32
    out.backward(np.ones(out.shape, dtype=np.float32))
    for leaf in leaves:
        assert leaf.grad is None or (leaf.grad.shape == leaf.shape
                                     and leaf.grad.dtype == np.float32)


@pytest.mark.parametrize("name", sorted(OPS))
def test_every_fuzzed_op_is_exercised_on_a_valid_input(name):
    """Each op of the fuzzer's set has a correct gradient on one plain valid input."""
    rng = np.random.default_rng(0)
    a = Tensor(rng.uniform(-1, 1, (2, 3)), requires_grad=True)
    b = Tensor(rng.uniform(-1, 1, (3, 3) if name == "matmul" else (2, 3)), requires_grad=True)
    param = {"cat": 0, "stack": 1, "scalar": 0.7, "sum": 1, "mean": 0, "var": 1,
             "logsumexp": -1, "softmax": 1, "log_softmax": 0, "unsqueeze": 1, "squeeze": None,
             "flatten": 0, "expand": 2, "slice": (0, 2), "index": 1, "pad": 1}.get(name)
    operands = [a, b][:OPS[name][0]]
    assert gradcheck(lambda *xs: _apply(name, list(xs), param), operands)
