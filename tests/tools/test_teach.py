"""tl.teach.Scalar: a micrograd-sized engine that runs on the Tensor backward loop."""

import math
import random

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite.autograd import engine
from tinygrad_lite.teach import MLP, Neuron, Scalar


def expression(a, b):
    c = a * b + b ** 3 - a / b
    d = (c * 0.5).tanh() + a.sigmoid() * (b - 4.0).relu() + (-a).exp() + (b * b).log()
    return d * d + 1 / (1 + (-d).exp()) + a.relu() + 2 * a


def test_gradients_match_tensor_engine():
    a, b = Scalar(-1.3), Scalar(2.5)
    out = expression(a, b)
    out.backward()
    ta = tl.Tensor(np.float64(-1.3), requires_grad=True)
    tb = tl.Tensor(np.float64(2.5), requires_grad=True)
    tout = expression(ta, tb)
    tout.backward()
    assert out.data == pytest.approx(tout.item(), rel=1e-12)
    assert a.grad.data == pytest.approx(ta.grad.item(), rel=1e-12)
    assert b.grad.data == pytest.approx(tb.grad.item(), rel=1e-12)


def test_uses_the_shared_backward_loop(monkeypatch):
    calls = []
    original = engine.run_backward

    def spy(*args, **kwargs):
        calls.append(args[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(engine, "run_backward", spy)
    x = Scalar(3.0)
    (x * x).backward()
    assert len(calls) == 1 and x.grad.data == 6.0
    assert isinstance((x * x).grad_fn, tl.Function)


def test_reused_value_sums_gradients_and_second_order():
    x = Scalar(3.0)
    y = x * x * x  # dy/dx = 3x^2 = 27, d2y/dx2 = 6x = 18
    y.backward(create_graph=True)
    first = x.grad
    assert first.data == 27.0
    x.grad = None
    first.backward()
    assert x.grad.data == 18.0
    a = Scalar(2.0)
    (a + a).backward()
    assert a.grad.data == 2.0


def test_second_backward_through_freed_graph_raises():
    x = Scalar(1.0)
    y = x.exp() * x
    y.backward()
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_parents_and_local_derivatives():
    a, b = Scalar(2.0, label="a"), Scalar(-3.0, label="b")
    c = a * b
    assert c.op == "Mul" and c.parents == (a, b)
    assert c.local_derivatives() == (-3.0, 2.0)
    assert "label='a'" in repr(a)


def test_anomaly_mode_names_the_op():
    with tl.detect_anomaly(), pytest.raises(ValueError, match="log"):
        Scalar(-1.0).log()
    with tl.detect_anomaly(), pytest.raises(RuntimeError, match="Exp"):
        Scalar(1000.0).exp()


def test_one_neuron_example():
    # the lecture's perceptron: o = tanh(x1 w1 + x2 w2 + b)
    x1, x2 = Scalar(2.0, requires_grad=False), Scalar(0.0, requires_grad=False)
    w1, w2, b = Scalar(-3.0), Scalar(1.0), Scalar(6.8813735870195432)
    o = (x1 * w1 + x2 * w2 + b).tanh()
    o.backward()
    assert o.data == pytest.approx(0.7071, abs=1e-4)
    assert w1.grad.data == pytest.approx(1.0, abs=1e-4)   # x1 * (1 - o^2)
    assert w2.grad.data == pytest.approx(0.0)
    assert x1.grad is None  # constants get no gradient
    neuron = Neuron(2, rng=random.Random(0))
    assert len(neuron.parameters()) == 3 and isinstance(neuron([1.0, 2.0]), Scalar)


def test_scalar_mlp_learns_xor():
    data = [([0.0, 0.0], -1.0), ([0.0, 1.0], 1.0), ([1.0, 0.0], 1.0), ([1.0, 1.0], -1.0)]
    model = MLP(2, [6, 1], seed=1)
    losses = []
    for _ in range(150):
        loss = sum(((model(x) - target) ** 2 for x, target in data), Scalar(0.0))
        model.zero_grad()
        loss.backward()
        for p in model.parameters():
            p.data -= 0.05 * p.grad.data
        losses.append(loss.data)
    assert losses[-1] < 0.05 < losses[0]
    predictions = [math.copysign(1, model(x).data) for x, _ in data]
    assert predictions == [t for _, t in data]


def test_scalar_grad_matches_finite_difference():
    def f(v):
        return expression(Scalar(v, requires_grad=False), Scalar(1.7)).data

    a = Scalar(0.4)
    expression(a, Scalar(1.7)).backward()
    eps = 1e-6
    assert a.grad.data == pytest.approx((f(0.4 + eps) - f(0.4 - eps)) / (2 * eps), rel=1e-6)
    assert np.isfinite(a.grad.data)
