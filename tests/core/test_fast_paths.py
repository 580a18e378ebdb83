"""The training step's fast paths give the same results as the general ones and keep
every safety check: the engine's creation-order sweep, `.grad` without a copy for ops
that declare `fresh_gradients`, the global in-place count that skips per-tensor version
checks, the optional in-place backend primitives, the numpy backend's short-row
reductions, the one-reduction class-range check, DataLoader batches wrapped without a
copy, and `fit` pausing the cyclic garbage collector during a step."""

import gc

import numpy as np
import pytest

import tinygrad_lite as tl
import tinygrad_lite.nn.functional as F
from tinygrad_lite import Tensor, nn, optim
from tinygrad_lite.backend.numpy_backend import NumpyBackend
from tinygrad_lite.data import DataLoader, TensorDataset

RNG = np.random.default_rng(7)


def leaf(*shape, dtype="float64"):
    return Tensor(RNG.standard_normal(shape).astype(dtype), requires_grad=True)


# ------------------------------------------------------------- the engine's order


def test_nodes_run_in_reverse_creation_order_on_a_diamond():
    # x -> a -> (b, c) -> d: a must wait for both b and c, whatever the creation order
    x = leaf(3)
    a = x.exp()
    c = a * 3.0           # created before b: the sweep must still run d, b, c, then a
    b = a.sin()
    d = (b * c).sum()
    d.backward()
    xv = x.numpy()
    av = np.exp(xv)
    expected = (np.cos(av) * 3 * av + np.sin(av) * 3) * av
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-12)


def test_several_outputs_where_one_feeds_the_other():
    x = leaf(4)
    y = x * x                     # y is an output and feeds z
    z = (y * 2.0).sum()
    gy, = tl.grad([y.sum(), z], [x])
    np.testing.assert_allclose(gy.numpy(), 2 * x.numpy() + 4 * x.numpy(), rtol=1e-12)


def test_a_node_that_gets_no_gradient_is_still_visited_and_freed():
    class Stop(tl.Function):       # passes no gradient to its input
        @staticmethod
        def forward(ctx, a):
            return Tensor._make(a.backend.mul(a.data, 1.0), a.backend)

        @staticmethod
        def backward(ctx, g):
            return None

    x = leaf(3)
    h = x.exp()
    loss = (Stop.apply(h) * 2.0).sum() + x.sum()
    exp_node = h.grad_fn
    del h
    loss.backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.ones(3))
    assert exp_node.inputs is None          # reached through Stop, and freed


# -------------------------------------------------- .grad without a private copy


def _mlp_step(model):
    x = Tensor(RNG.random((6, 4)))
    y = Tensor(RNG.integers(0, 3, 6))
    for p in model.parameters():
        p.grad = None
    F.cross_entropy(model(x), y).backward()
    return x, y


def test_fresh_gradients_of_fused_ops_match_the_composite_ops():
    tl.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.Sigmoid(), nn.Linear(5, 3)).to(dtype="float64")
    x, y = _mlp_step(model)
    fused_grads = [p.grad.numpy() for p in model.parameters()]
    w1, b1, w2, b2 = list(model.parameters())
    for p in (w1, b1, w2, b2):
        p.grad = None
    logits = ((x @ w1.T + b1).sigmoid()) @ w2.T + b2          # no fused op
    nll = -(logits.log_softmax(-1)[Tensor(np.arange(6)), y]).mean()
    nll.backward()
    for got, p in zip(fused_grads, (w1, b1, w2, b2)):
        np.testing.assert_allclose(got, p.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_grads_never_share_memory_with_each_other_or_a_hook():
    tl.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.Sigmoid(), nn.Linear(5, 3)).to(dtype="float64")
    kept = []

    def hook(grad):
        kept.append(grad)
        return grad

    model[2].weight.register_hook(hook)
    _mlp_step(model)
    grads = [p.grad.data for p in model.parameters()]
    for i, a in enumerate(grads):
        for b in grads[i + 1:]:
            assert not np.shares_memory(a, b)
    assert not np.shares_memory(model[2].weight.grad.data, kept[0].data)
    model[2].weight.grad.zero_()               # clip_grad_norm_-style in-place change
    assert np.abs(kept[0].numpy()).sum() > 0   # the hook's tensor is untouched


def test_a_shared_gradient_is_still_copied():
    class Twice(tl.Function):      # returns ONE gradient object for both inputs
        @staticmethod
        def forward(ctx, a, b):
            return Tensor._make(a.backend.add(a.data, b.data), a.backend)

        @staticmethod
        def backward(ctx, g):
            return g, g

    a, b = leaf(3), leaf(3)
    Twice.apply(a, b).sum().backward()
    assert not np.shares_memory(a.grad.data, b.grad.data)
    a.grad.zero_()
    np.testing.assert_array_equal(b.grad.numpy(), np.ones(3))


# --------------------------------------------------------- version counters


def test_an_unrelated_in_place_change_does_not_raise():
    w = leaf(3)
    x = Tensor(RNG.random(3))
    other = Tensor(RNG.random(3))
    loss = (w * x).sum()
    other.add_(1.0)                # moves the global in-place count, not x's version
    loss.backward()
    np.testing.assert_allclose(w.grad.numpy(), x.numpy())


def test_an_optimizer_step_between_forward_and_backward_raises():
    tl.manual_seed(0)
    model = nn.Linear(4, 2)
    opt = optim.SGD(model.parameters(), lr=0.1)
    loss = model(Tensor(RNG.random((3, 4)).astype(np.float32))).sum()
    for p in model.parameters():
        p.grad = Tensor(np.ones(p.shape, dtype=np.float32))
    opt.step()                     # changes the weight LinearFunction saved
    with pytest.raises(RuntimeError, match="LinearFunction.*modified in place"):
        loss.backward()


def test_a_change_through_a_view_after_the_save_raises():
    w = leaf(2, 3)
    x = Tensor(RNG.random((2, 3)))
    loss = (w * x).sum()
    x.detach().mul_(2.0)           # a view shares x's counter
    with pytest.raises(RuntimeError, match=r"Mul.*version 0 -> 1"):
        loss.backward()


# ----------------------------------------------- optional in-place primitives


def test_optional_in_place_primitives_and_their_fallbacks_agree(monkeypatch):
    def train():
        tl.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 5), nn.Sigmoid(), nn.Linear(5, 3))
        opt = optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
        x = Tensor(np.linspace(-1, 1, 24, dtype=np.float32).reshape(6, 4))
        y = Tensor(np.arange(6) % 3)
        for _ in range(3):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
        return [p.numpy() for p in model.parameters()], [p._version for p in
                                                          model.parameters()]

    fast, fast_versions = train()
    monkeypatch.setattr(NumpyBackend, "add_", None)
    monkeypatch.setattr(NumpyBackend, "sub_", None)
    slow, slow_versions = train()
    for a, b in zip(fast, slow):
        np.testing.assert_array_equal(a, b)
    assert fast_versions == slow_versions


def test_every_optional_primitive_is_defined_and_listed():
    for name in NumpyBackend.OPTIONAL_PRIMITIVES - {"OPTIONAL_PRIMITIVES"}:
        assert callable(getattr(NumpyBackend, name))
    x = np.ones((2, 3), dtype=np.float32)
    NumpyBackend.add_(x, np.arange(3))
    NumpyBackend.sub_(x, 0.5)
    np.testing.assert_array_equal(x, [[0.5, 1.5, 2.5]] * 2)
    assert x.dtype == np.float32


# ------------------------------------------------ backend: short-row reductions


@pytest.mark.parametrize("shape", [(100, 10), (40, 3), (33, 32), (5, 4), (3, 7), (64, 1)])
@pytest.mark.parametrize("keepdims", [True, False])
def test_short_row_max_and_min_equal_numpy(shape, keepdims):
    x = RNG.standard_normal(shape).astype(np.float32)
    x[1, 0] = np.nan
    x[2, -1] = -np.inf
    for ours, theirs in ((NumpyBackend.max, np.max), (NumpyBackend.min, np.min)):
        for axis in (1, -1, (1,)):
            got = ours(x, axis=axis, keepdims=keepdims)
            want = theirs(x, axis=axis, keepdims=keepdims)
            assert got.shape == want.shape and got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)


# --------------------------------------------------------------- class range


@pytest.mark.parametrize("dtype", ["int64", "int32", "int8", "uint8"])
def test_class_range_check_for_every_integer_dtype(dtype):
    z = Tensor(RNG.standard_normal((4, 3)))
    ok = Tensor(np.array([0, 2, 1, 2], dtype=dtype))
    assert np.isfinite(F.cross_entropy(z, ok).item())
    high = Tensor(np.array([0, 3, 1, 2], dtype=dtype))
    with pytest.raises(ValueError, match=r"\[0, 3\).*from 0 to 3"):
        F.cross_entropy(z, high)
    if np.dtype(dtype).kind == "i":
        low = Tensor(np.array([0, -1, 1, 2], dtype=dtype))
        with pytest.raises(ValueError, match=r"\[0, 3\).*from -1 to 2"):
            F.cross_entropy(z, low)


# ------------------------------------------------------------------ DataLoader


def test_dataloader_batches_own_their_memory():
    X = np.arange(20.0).reshape(10, 2)
    y = np.arange(10)
    batches = list(DataLoader(TensorDataset(X, y), batch_size=4, shuffle=True))
    for xb, yb in batches:
        assert not np.shares_memory(xb.data, X) and not np.shares_memory(yb.data, y)
        assert xb.data.flags["C_CONTIGUOUS"] and xb.dtype == X.dtype
        xb.add_(100.0)             # changing a batch leaves the dataset alone
    np.testing.assert_array_equal(X, np.arange(20.0).reshape(10, 2))


def test_dataloader_still_refuses_non_numeric_arrays():
    loader = DataLoader(TensorDataset(np.array(["a", "b"]), np.arange(2)), batch_size=2)
    with pytest.raises(TypeError, match="tensors hold numbers"):
        next(iter(loader))


# ------------------------------------------------------------------------ fit


def _digits_like():
    X = RNG.random((40, 4)).astype(np.float32)
    return X, (X.sum(1) > 2).astype(np.int64)


def test_fit_leaves_the_garbage_collector_as_it_found_it():
    model = nn.Linear(4, 2)
    opt = optim.SGD(model.parameters(), lr=0.1)
    assert gc.isenabled()
    tl.train.fit(model, F.cross_entropy, opt, _digits_like(), epochs=2, batch_size=8,
                 progress=False)
    assert gc.isenabled()
    gc.disable()
    try:
        tl.train.fit(model, F.cross_entropy, opt, _digits_like(), epochs=1, batch_size=8,
                     progress=False)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_fit_re_enables_the_garbage_collector_after_an_error():
    model = nn.Linear(4, 2)
    opt = optim.SGD(model.parameters(), lr=0.1)

    def broken_loss(output, target):
        raise ArithmeticError("boom")

    with pytest.raises(ArithmeticError, match="boom"):
        tl.train.fit(model, broken_loss, opt, _digits_like(), epochs=1, batch_size=8,
                     progress=False)
    assert gc.isenabled()
