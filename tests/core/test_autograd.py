"""The autograd engine: accumulation, graph freeing, hooks, modes, custom Functions,
higher-order gradients and the regressions small frameworks keep reintroducing."""

import gc
import time
import weakref

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import Tensor


def leaf(values, dtype="float64"):
    return Tensor(np.asarray(values, dtype=dtype), requires_grad=True)


# ------------------------------------------------------- must-show regressions


def test_a_tensor_used_several_times_gets_the_summed_gradient():
    a = leaf([3.0])
    b = a + a                 # db/da = 2
    c = b * b + b             # dc/db = 2b + 1 = 13
    c.backward()
    np.testing.assert_allclose(a.grad.numpy(), [26.0])


def test_backward_twice_with_retain_graph_accumulates_exactly_twice():
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward(retain_graph=True)
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0])
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 8.0])


def test_second_backward_through_a_freed_graph_raises():
    x = leaf([1.0, 2.0])
    y = (x.exp() * x).sum()
    y.backward()
    grad_before = x.grad.numpy()
    with pytest.raises(RuntimeError, match="second time.*retain_graph=True"):
        y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), grad_before)


def test_freed_shared_subgraph_raises_from_another_output():
    x = leaf([1.0])
    h = x.exp()
    a, b = h * 2, h * 3
    a.sum().backward()
    with pytest.raises(RuntimeError, match="second time"):
        b.sum().backward()


def test_comparison_operators_do_not_break_graph_traversal():
    # == returns a tensor, so the engine must track nodes by identity, not equality.
    x = leaf([1.0, 1.0])
    y = x * 1.0
    z = x * 1.0               # equal values, different nodes
    assert (y == z).numpy().all()
    out = (y * z).sum() + (y > 0).astype("float64").sum()
    out.backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0])
    assert len({y, z, x}) == 3


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gradients_of_broadcast_inputs_have_the_input_shape_and_dtype(dtype):
    x = Tensor(np.ones((4, 3), dtype=dtype), requires_grad=True)
    bias = Tensor(np.ones(3, dtype=dtype), requires_grad=True)
    column = Tensor(np.ones((4, 1), dtype=dtype), requires_grad=True)
    scalar = Tensor(np.array(2.0, dtype=dtype), requires_grad=True)
    other = Tensor(np.ones(3, dtype="float64"), requires_grad=True)  # mixed dtype
    ((x + bias) * column * scalar + other).sum().backward()
    for t in (x, bias, column, scalar, other):
        assert t.grad.shape == t.shape and t.grad.dtype == t.dtype
    np.testing.assert_allclose(bias.grad.numpy(), [8.0, 8.0, 8.0])
    np.testing.assert_allclose(column.grad.numpy(), np.full((4, 1), 12.0))
    np.testing.assert_allclose(scalar.grad.numpy(), 24.0)


def test_a_100k_op_chain_backpropagates_without_recursion_errors():
    x = Tensor(np.array([1.0]), requires_grad=True)
    y = x
    start = time.perf_counter()
    for _ in range(100_000):
        y = y * 1.0001
    y.backward()
    assert time.perf_counter() - start < 30.0  # about 3 s on a quiet 2-core machine
    np.testing.assert_allclose(x.grad.numpy(), [1.0001 ** 100_000], rtol=1e-9)


def _live_tensors() -> int:
    return sum(isinstance(o, Tensor) for o in gc.get_objects())


def test_saved_tensors_and_intermediates_are_released_after_backward():
    x = leaf(np.ones(1000))
    h = x.exp()
    s = h.sin()
    loss = (s * h).sum()
    refs = [weakref.ref(h), weakref.ref(s)]
    del h, s
    assert all(r() is not None for r in refs)      # the graph holds them
    loss.backward()
    assert all(r() is None for r in refs)          # freed, although loss is still alive
    assert loss.grad_fn is not None


def test_retain_graph_keeps_the_graph_until_the_last_backward():
    x = leaf([1.0, 2.0])
    h = x.exp()
    ref = weakref.ref(h)
    loss = (h * h).sum()
    del h
    loss.backward(retain_graph=True)
    assert ref() is not None
    loss.backward()
    assert ref() is None


def test_no_reference_cycle_with_create_graph():
    gc.collect()
    gc.disable()  # only reference counting may free things: cycles would stay alive
    try:
        x = leaf(np.linspace(0.5, 1.5, 50))
        baseline = _live_tensors()
        for _ in range(3):
            y = (x.exp() * x.sin()).sum()
            (g,) = tl.grad(y, x, create_graph=True)
            hvp = (g * g).sum()
            hvp.backward()
            refs = [weakref.ref(g), weakref.ref(y)]
            del y, g, hvp
            assert all(r() is None for r in refs)
            x.grad = None
        assert _live_tensors() == baseline
    finally:
        gc.enable()


def test_backward_create_graph_cycle_is_broken_by_resetting_grad():
    # As in PyTorch, x.grad recorded with create_graph references x; clear it to free.
    gc.collect()
    gc.disable()
    try:
        x = leaf([1.0, 2.0])
        baseline = _live_tensors()
        (x ** 3).sum().backward(create_graph=True)
        assert x.grad.requires_grad
        x.grad = None
        assert _live_tensors() == baseline
    finally:
        gc.enable()


# ------------------------------------------------------------ backward errors


def test_backward_of_a_non_scalar_needs_a_gradient():
    x = leaf([1.0, 2.0])
    y = x * 2
    with pytest.raises(RuntimeError, match=r"one-element output, got shape \(2,\)"):
        y.backward()
    y.backward(gradient=Tensor(np.array([1.0, 10.0])))
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 20.0])
    with pytest.raises(ValueError, match="gradient shape"):
        (x * 2).backward(gradient=Tensor(np.ones(3)))


def test_backward_on_a_tensor_without_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor([1.0]).sum().backward()


def test_leaf_backward_and_numpy_gradient():
    x = leaf([1.0, 2.0])
    x.backward(np.array([3.0, 4.0]))
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 4.0])


# -------------------------------------------------------------------- tl.grad


def test_grad_returns_gradients_without_touching_dot_grad():
    x, w = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    y = (x * w).sum()
    gx, gw = tl.grad(y, [x, w])
    np.testing.assert_allclose(gx.numpy(), [3.0, 4.0])
    np.testing.assert_allclose(gw.numpy(), [1.0, 2.0])
    assert x.grad is None and w.grad is None
    assert not gx.requires_grad


def test_grad_of_an_intermediate():
    x = leaf([2.0])
    h = x * x
    y = h.exp()
    (gh,) = tl.grad(y, h)
    np.testing.assert_allclose(gh.numpy(), np.exp([4.0]))


def test_grad_unused_input():
    x, unused = leaf([1.0]), leaf([1.0])
    y = (x * 2).sum()
    with pytest.raises(RuntimeError, match="input 1 .* was not used.*allow_unused=True"):
        tl.grad(y, [x, unused], retain_graph=True)
    gx, gu = tl.grad(y, [x, unused], allow_unused=True)
    assert gu is None
    np.testing.assert_allclose(gx.numpy(), [2.0])


def test_grad_input_must_require_grad():
    x = leaf([1.0])
    with pytest.raises(RuntimeError, match="must be a tensor that requires grad"):
        tl.grad((x * 2).sum(), Tensor([1.0]))


# ---------------------------------------------------------------- grad modes


def test_no_grad_and_enable_grad():
    x = leaf([1.0])
    with tl.no_grad():
        y = x * 2
        assert not tl.is_grad_enabled()
        with tl.enable_grad():
            z = x * 2
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad and z.grad_fn is not None
    assert tl.is_grad_enabled()

    @tl.no_grad()
    def f(t):
        return t * 3

    assert not f(x).requires_grad
    with tl.set_grad_enabled(False):
        assert not (x * 2).requires_grad


def test_no_grad_is_restored_after_an_exception():
    with pytest.raises(ValueError):
        with tl.no_grad():
            raise ValueError
    assert tl.is_grad_enabled()


# ---------------------------------------------------- hooks and retain_grad


def test_hook_observes_the_gradient_of_a_leaf():
    x = leaf([1.0, 2.0])
    seen = []
    x.register_hook(lambda g: seen.append(g.numpy()))
    (x * 3).sum().backward()
    np.testing.assert_allclose(seen[0], [3.0, 3.0])
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 3.0])


def test_hook_replaces_the_gradient_on_leaves_and_intermediates():
    x = leaf([1.0, 2.0])
    h = x * 2
    handle = h.register_hook(lambda g: g * 10)
    x.register_hook(lambda g: g + 1)
    (h * 1.0).sum().backward(retain_graph=True)
    np.testing.assert_allclose(x.grad.numpy(), [21.0, 21.0])
    handle.remove()


def test_hook_needs_requires_grad():
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor([1.0]).register_hook(lambda g: g)


def test_retain_grad_on_an_intermediate():
    x = leaf([1.0, 2.0])
    h = x * x
    h.retain_grad()
    (h * 3).sum().backward()
    np.testing.assert_allclose(h.grad.numpy(), [3.0, 3.0])
    np.testing.assert_allclose(x.grad.numpy(), [6.0, 12.0])
    other = x * x
    (other * 3).sum().backward()
    assert other.grad is None     # not retained


# ---------------------------------------------------------------- anomalies


def test_detect_anomaly_names_the_op_and_the_source_line_forward():
    x = leaf([-1.0, 1.0])
    with tl.detect_anomaly():
        with np.errstate(invalid="ignore"):
            with pytest.raises(RuntimeError, match=r"forward of Log.*test_autograd.py:\d+"):
                x.log()  # a NaN here


def test_detect_anomaly_names_the_op_and_the_source_line_backward():
    x = leaf([0.0, 1.0])
    with tl.detect_anomaly():
        y = x.sqrt()  # forward is fine, d sqrt / dx = inf at 0
        with np.errstate(divide="ignore"):
            with pytest.raises(RuntimeError, match=r"backward of Sqrt \(created at .*"
                                                   r"test_autograd.py:\d+.*x\.sqrt\(\)"):
                y.sum().backward()


# ---------------------------------------------------------- custom Function


class Cube(tl.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x * x

    @staticmethod
    def backward(ctx, grad):
        """y = x^3:  dL/dx = 3 x^2 g."""
        (x,) = ctx.saved_tensors
        return 3.0 * x * x * grad


def test_custom_function_with_save_for_backward():
    x = leaf([1.0, 2.0])
    y = Cube.apply(x)
    assert isinstance(y.grad_fn, Cube)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 12.0])
    (g,) = tl.grad(Cube.apply(x).sum(), x, create_graph=True)
    (gg,) = tl.grad(g.sum(), x)           # its backward is differentiable: 6x
    np.testing.assert_allclose(gg.numpy(), [6.0, 12.0])
    assert tl.testing.gradgradcheck(Cube.apply, (leaf([0.5, -1.5]),))


def test_custom_function_modified_saved_tensor_is_detected():
    x = Tensor(np.array([1.0, 2.0]))
    w = leaf([1.0, 1.0])
    y = Cube.apply(x * w)
    saved = y.grad_fn.saved_tensors[0]
    with tl.no_grad():
        saved.add_(1.0)
    with pytest.raises(RuntimeError, match="modified in place"):
        y.sum().backward()


class TwoOutputs(tl.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2, x * 3

    @staticmethod
    def backward(ctx, g2, g3):
        return g2 * 2 + g3 * 3


def test_custom_function_with_two_outputs_and_one_used():
    x = leaf([1.0])
    a, b = TwoOutputs.apply(x)
    a.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0])


def test_wrong_gradient_count_is_reported():
    class Bad(tl.Function):
        @staticmethod
        def forward(ctx, x, y):
            return x * y

        @staticmethod
        def backward(ctx, g):
            return g

    with pytest.raises(RuntimeError, match="Bad.backward returned 1 gradients for 2 inputs"):
        Bad.apply(leaf([1.0]), leaf([2.0])).sum().backward()


# ------------------------------------------------------------- higher order


def test_hessian_vector_product():
    # f(x) = sum(x_i^2 x_j) over a fixed pattern; compare H v with the exact Hessian.
    a = np.array([[2.0, 1.0], [1.0, 3.0]])
    x = leaf([1.0, -2.0])
    v = Tensor(np.array([0.5, 1.0]))
    f = 0.5 * (x @ Tensor(a) @ x) + (x ** 3).sum()
    (g,) = tl.grad(f, x, create_graph=True)
    (hv,) = tl.grad((g * v).sum(), x)
    hessian = a + np.diag(6 * x.numpy())
    np.testing.assert_allclose(hv.numpy(), hessian @ v.numpy())


def test_newton_method_with_create_graph():
    # Newton's method on f(x) = x^4 - 2 x^2 from x = 2 converges to the minimum x = 1.
    x = leaf([2.0])
    for _ in range(8):
        y = x ** 4 - 2 * x ** 2
        y.backward(create_graph=True)
        gx = x.grad
        x.grad = None
        gx.backward()
        gx2 = x.grad
        with tl.no_grad():
            x.sub_(gx / gx2)
        x.grad = None
    np.testing.assert_allclose(x.numpy(), [1.0], rtol=1e-12)


def test_newton_step_minimises_a_quadratic_in_one_step():
    a = np.array([[3.0, 1.0], [1.0, 2.0]])
    b = np.array([1.0, -1.0])
    x = leaf([5.0, 5.0])
    f = 0.5 * (x @ Tensor(a) @ x) - (Tensor(b) * x).sum()
    (g,) = tl.grad(f, x, create_graph=True)
    rows = [tl.grad(g[i], x, retain_graph=True)[0].numpy() for i in range(2)]
    step = np.linalg.solve(np.stack(rows), g.detach().numpy())
    np.testing.assert_allclose(x.numpy() - step, np.linalg.solve(a, b))


def test_a_failing_backward_leaves_every_grad_unchanged():
    x = leaf([0.0, 1.0])
    w = leaf([2.0, 2.0])
    (x * w).sum().backward()
    before = x.grad.numpy(), w.grad.numpy()
    y = (x.sqrt() * w).sum()          # d sqrt/dx is inf at 0
    with tl.detect_anomaly(), np.errstate(divide="ignore", invalid="ignore"):
        with pytest.raises(RuntimeError, match="Sqrt"):
            y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), before[0])
    np.testing.assert_array_equal(w.grad.numpy(), before[1])


def test_every_core_op_documents_its_backward():
    import tinygrad_lite.ops as ops

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    core = [c for c in subclasses(tl.Function) if c.__module__.startswith(ops.__name__)]
    assert len(core) > 30
    missing = [c.__name__ for c in core if not (c.backward.__doc__ or "").strip()]
    assert not missing, f"backward without a docstring: {missing}"
