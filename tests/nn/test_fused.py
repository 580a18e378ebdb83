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


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cross_entropy_shifts_by_the_target_only_where_exp_cannot_overflow(dtype):
    """Class-index cross-entropy shifts the logits by the target's logit (cheaper) while
    every exp(z_c - z_t) and their sum stay finite, else by each row's maximum; both give
    the same loss and gradient, and a NaN or inf logit always takes the maximum shift."""
    backend = Tensor(0.0).backend
    limit = {"float32": 88.72, "float64": 709.78}[dtype] - np.log(4) - 1
    labels = np.array([0, 1, 2, 3, 1])
    apart = np.arange(5) * 4 + labels

    def target_shift_taken(z):
        return fused._relative_to_target(backend, z.astype(dtype), apart) is not None

    moderate = RNG.uniform(-20, 20, (5, 4))
    assert target_shift_taken(moderate)
    wide = moderate.copy()
    wide[4, 0] = wide[4, 1] + limit + 0.5  # one logit beyond the limit above its target's
    assert not target_shift_taken(wide)
    wide[4, 0] = wide[4, 1] + limit - 0.5
    assert target_shift_taken(wide)
    for bad in (np.nan, np.inf, -np.inf):
        z = moderate.copy()
        z[2, 2] = bad  # (row 2's target: -inf there makes every other shift +inf)
        assert not target_shift_taken(z)

    for z in (moderate, wide):
        losses = {}
        for name, shift in (("target", fused._relative_to_target),
                            ("maximum", lambda b, z, a: None)):
            original, fused._relative_to_target = fused._relative_to_target, shift
            try:
                logits = Tensor(z.astype(dtype), requires_grad=True)
                loss = fused.softmax_cross_entropy(logits, Tensor(labels), "none")
                loss.sum().backward()
            finally:
                fused._relative_to_target = original
            losses[name] = (loss.numpy(), logits.grad.numpy())
        rtol = 1e-5 if dtype == "float32" else 1e-13
        for a, b in zip(losses["target"], losses["maximum"]):
            np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * 1e-3)


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


ACTIVATION_NAMES = ["sigmoid", "tanh", "relu"]


def _away_from_relu_kink(x, w, b):
    """Shift b so that no pre-activation lies within 0.05 of zero (relu's kink), where a
    finite difference straddling it would disagree with the one-sided derivative."""
    z = x.numpy() @ w.numpy().T + b.numpy()
    near = np.abs(z) < 0.05
    shift = np.where(near.any(axis=0), 0.2, 0.0)
    return Tensor(b.numpy() + shift, requires_grad=True)


@pytest.mark.parametrize("activation", ACTIVATION_NAMES)
def test_linear_activation_gradients(activation):
    x, w = _t(4, 3), _t(5, 3)
    b = _away_from_relu_kink(x, w, _t(5))

    def fn(x, w, b):
        return fused.linear_activation(x, w, b, activation)

    assert gradcheck(fn, (x, w, b))
    assert gradcheck(lambda x, w: fused.linear_activation(x, w, None, activation), (x, w))
    if activation != "relu":  # relu'' is zero almost everywhere; nothing to check
        assert gradgradcheck(fn, (x, w, b))
    _both_paths_agree(fn, (x, w, b))
    x3 = _t(2, 4, 3)  # leading batch axes
    assert gradcheck(fn, (x3, w, b))
    _both_paths_agree(fn, (x3, w, b))


@pytest.mark.parametrize("activation", ACTIVATION_NAMES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_linear_activation_equals_linear_then_activation_bit_for_bit(activation, dtype):
    """The fused node computes exactly the numbers of the two separate nodes."""
    x = Tensor(RNG.standard_normal((6, 4)).astype(dtype), requires_grad=True)
    w = Tensor(RNG.standard_normal((3, 4)).astype(dtype), requires_grad=True)
    b = Tensor(RNG.standard_normal(3).astype(dtype), requires_grad=True)
    g = RNG.standard_normal((6, 3)).astype(dtype)
    separate = {"sigmoid": fused.sigmoid, "tanh": Tensor.tanh, "relu": Tensor.relu}[activation]
    results = []
    for out in (fused.linear_activation(x, w, b, activation), separate(fused.linear(x, w, b))):
        grads = tl.grad((out * Tensor(g)).sum(), [x, w, b])
        results.append([out.numpy()] + [gr.numpy() for gr in grads])
    for fused_value, separate_value in zip(*results):
        assert np.array_equal(fused_value, separate_value)


def test_sequential_fuses_linear_and_activation_into_one_node():
    model = tl.nn.Sequential(tl.nn.Linear(4, 3), tl.nn.Sigmoid(), tl.nn.Linear(3, 3),
                             tl.nn.ReLU(), tl.nn.Linear(3, 2), tl.nn.Tanh())
    x = Tensor(RNG.standard_normal((5, 4)).astype(np.float32))
    out = model(x)
    names = []
    node = out.grad_fn
    while node is not None:
        names.append(type(node).__name__)
        node = node.inputs[0].grad_fn
    assert names == ["LinearActivation"] * 3
    model.fuse_activations = False
    unfused = model(x)
    assert unfused.grad_fn.name == "Tanh"
    np.testing.assert_array_equal(out.numpy(), unfused.numpy())


def test_sequential_does_not_fuse_subclasses_or_patched_layers():
    class Swish(tl.nn.Sigmoid):  # a user's subclass: its own forward must run
        def forward(self, x):
            return x * super().forward(x)

    model = tl.nn.Sequential(tl.nn.Linear(4, 3), Swish())
    x = Tensor(RNG.standard_normal((2, 4)).astype(np.float32))
    assert model(x).grad_fn.name != "LinearActivation"
    np.testing.assert_allclose(model(x).numpy(), (lambda z: z / (1 + np.exp(-z)))(
        model[0](x).numpy()), rtol=1e-6)
    plain = tl.nn.Sequential(tl.nn.Linear(4, 3), tl.nn.Sigmoid())
    seen = []
    original = plain[1].forward
    plain[1].forward = lambda t: (seen.append(t.shape), original(t))[1]  # as tl.summary does
    plain(x)
    assert seen == [(2, 3)]
    text = tl.summary(tl.nn.Sequential(tl.nn.Linear(4, 3), tl.nn.Sigmoid(), tl.nn.Linear(3, 2)),
                      (4,), print_fn=lambda *_: None)
    assert "Sigmoid" in text


def test_linear_activation_rejects_unknown_activations_and_checks_shapes():
    x, w, b = _t(2, 3), _t(4, 3), _t(4)
    with pytest.raises(ValueError, match="activation must be one of"):
        tl.nn.functional.linear_activation(x, w, b, "gelu")
    with pytest.raises(ValueError, match="linear: input of shape"):
        tl.nn.functional.linear_activation(_t(2, 5), w, b, "relu")
    with pytest.raises(ValueError, match="expected input with last dimension 3"):
        tl.nn.Sequential(tl.nn.Linear(3, 4), tl.nn.ReLU())(_t(2, 5))
