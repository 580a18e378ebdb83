"""Losses: values against hand-computed numpy and PyTorch, every reduction, gradients
(float64 gradcheck), edge cases and error messages."""

import numpy as np
import pytest

import tinygrad_lite.nn.functional as F
from tinygrad_lite import Tensor, nn
from tinygrad_lite.testing import gradcheck, gradgradcheck

RNG = np.random.default_rng(1)
REDUCTIONS = ["mean", "sum", "none"]


def _reduce(values, reduction):
    return {"mean": np.mean, "sum": np.sum, "none": lambda v: v}[reduction](values)


def _log_softmax(z):
    m = z.max(1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(1, keepdims=True))


def _data():
    logits = RNG.standard_normal((6, 4)) * 3
    labels = RNG.integers(0, 4, 6)
    probs = RNG.random((6, 4))
    probs /= probs.sum(1, keepdims=True)
    return logits, labels, probs


# ----------------------------------------------------------------- values (numpy)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_class_indices(reduction):
    logits, labels, _ = _data()
    expected = _reduce(-_log_softmax(logits)[np.arange(6), labels], reduction)
    out = F.cross_entropy(Tensor(logits), Tensor(labels), reduction=reduction)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12)
    module = nn.CrossEntropyLoss(reduction=reduction)
    np.testing.assert_allclose(module(Tensor(logits), labels).numpy(), expected, rtol=1e-12)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_probabilities_and_one_hot(reduction):
    logits, labels, probs = _data()
    expected = _reduce(-(probs * _log_softmax(logits)).sum(1), reduction)
    out = F.cross_entropy(Tensor(logits), Tensor(probs), reduction=reduction)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12)
    one_hot = np.eye(4)[labels]
    np.testing.assert_allclose(
        F.cross_entropy(Tensor(logits), Tensor(one_hot), reduction).numpy(),
        F.cross_entropy(Tensor(logits), Tensor(labels), reduction).numpy(), rtol=1e-12)


def test_cross_entropy_is_stable_for_huge_logits():
    logits = Tensor(np.array([[1000.0, 0.0, -1000.0], [-1e4, 1e4, 0.0]], np.float32),
                    requires_grad=True)
    loss = F.cross_entropy(logits, Tensor(np.array([2, 1])))
    loss.backward()
    assert np.isclose(loss.item(), 1000.0)
    assert np.all(np.isfinite(logits.grad.numpy()))


def test_cross_entropy_matches_log_softmax_composition_float32():
    logits, labels, _ = _data()
    z = Tensor(logits.astype(np.float32), requires_grad=True)
    F.cross_entropy(z, Tensor(labels)).backward()
    z2 = Tensor(logits.astype(np.float32), requires_grad=True)
    F.nll_loss(F.log_softmax(z2, 1), Tensor(labels)).backward()
    np.testing.assert_allclose(z.grad.numpy(), z2.grad.numpy(), rtol=1e-5, atol=1e-7)
    assert z.grad.dtype == np.float32


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_loss(reduction):
    logits, labels, _ = _data()
    log_p = _log_softmax(logits)
    expected = _reduce(-log_p[np.arange(6), labels], reduction)
    np.testing.assert_allclose(
        F.nll_loss(Tensor(log_p), Tensor(labels), reduction).numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(nn.NLLLoss(reduction)(Tensor(log_p), labels).numpy(), expected,
                               rtol=1e-12)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_loss(reduction):
    a, b = RNG.standard_normal((3, 5)), RNG.standard_normal((3, 5))
    expected = _reduce((a - b) ** 2, reduction)
    np.testing.assert_allclose(F.mse_loss(Tensor(a), Tensor(b), reduction).numpy(), expected,
                               rtol=1e-12)
    np.testing.assert_allclose(nn.MSELoss(reduction)(Tensor(a), b).numpy(), expected,
                               rtol=1e-12)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy(reduction):
    p, y = RNG.uniform(0.01, 0.99, (4, 3)), RNG.integers(0, 2, (4, 3)).astype(float)
    expected = _reduce(-(y * np.log(p) + (1 - y) * np.log(1 - p)), reduction)
    np.testing.assert_allclose(F.binary_cross_entropy(Tensor(p), Tensor(y), reduction).numpy(),
                               expected, rtol=1e-12)
    np.testing.assert_allclose(nn.BCELoss(reduction)(Tensor(p), y).numpy(), expected,
                               rtol=1e-12)


def test_binary_cross_entropy_clamps_log_at_minus_100():
    p = Tensor(np.array([0.0, 1.0, 0.0, 1.0]), requires_grad=True)
    y = Tensor(np.array([1.0, 0.0, 0.0, 1.0]))
    loss = F.binary_cross_entropy(p, y, reduction="none")
    np.testing.assert_allclose(loss.numpy(), [100.0, 100.0, 0.0, 0.0])
    loss.sum().backward()
    assert np.all(np.isfinite(p.grad.numpy()))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy_with_logits(reduction):
    x, y = RNG.standard_normal((4, 3)) * 4, RNG.random((4, 3))
    s = 1 / (1 + np.exp(-x))
    expected = _reduce(-(y * np.log(s) + (1 - y) * np.log(1 - s)), reduction)
    np.testing.assert_allclose(
        F.binary_cross_entropy_with_logits(Tensor(x), Tensor(y), reduction).numpy(), expected,
        rtol=1e-10)
    np.testing.assert_allclose(nn.BCEWithLogitsLoss(reduction)(Tensor(x), y).numpy(),
                               expected, rtol=1e-10)


def test_binary_cross_entropy_with_logits_is_stable_and_exact_at_zero():
    x = Tensor(np.array([-1000.0, 0.0, 1000.0]), requires_grad=True)
    y = Tensor(np.array([1.0, 0.25, 0.0]))
    loss = F.binary_cross_entropy_with_logits(x, y, reduction="sum")
    np.testing.assert_allclose(loss.item(), 2000.0 + np.log(2.0))
    loss.backward()
    np.testing.assert_allclose(x.grad.numpy(), [-1.0, 0.25, 1.0])  # sigmoid(x) - y


# -------------------------------------------------------------------- PyTorch


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_losses_match_torch_values_and_gradients(reduction):
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    logits, labels, probs = _data()
    p = RNG.uniform(0.01, 0.99, (6, 4))
    cases = [
        (lambda a: F.cross_entropy(a, Tensor(labels), reduction),
         lambda a: tf.cross_entropy(a, torch.tensor(labels), reduction=reduction), logits),
        (lambda a: F.cross_entropy(a, Tensor(probs), reduction),
         lambda a: tf.cross_entropy(a, torch.tensor(probs), reduction=reduction), logits),
        (lambda a: F.nll_loss(a, Tensor(labels), reduction),
         lambda a: tf.nll_loss(a, torch.tensor(labels), reduction=reduction), logits),
        (lambda a: F.mse_loss(a, Tensor(probs), reduction),
         lambda a: tf.mse_loss(a, torch.tensor(probs), reduction=reduction), logits),
        (lambda a: F.binary_cross_entropy(a, Tensor(probs), reduction),
         lambda a: tf.binary_cross_entropy(a, torch.tensor(probs), reduction=reduction), p),
        (lambda a: F.binary_cross_entropy_with_logits(a, Tensor(probs), reduction),
         lambda a: tf.binary_cross_entropy_with_logits(a, torch.tensor(probs),
                                                       reduction=reduction), logits),
    ]
    for ours, theirs, data in cases:
        a = Tensor(data, requires_grad=True)
        t = torch.tensor(data, requires_grad=True)
        out, expected = ours(a), theirs(t)
        np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), rtol=1e-10,
                                   atol=1e-12)
        weights = RNG.standard_normal(out.shape)
        (out * Tensor(weights)).sum().backward()
        (expected * torch.tensor(weights)).sum().backward()
        np.testing.assert_allclose(a.grad.numpy(), t.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_soft_target_gradient_matches_torch():
    torch = pytest.importorskip("torch")
    logits, _, probs = _data()
    for ours, theirs in [(F.cross_entropy, torch.nn.functional.cross_entropy),
                         (F.binary_cross_entropy_with_logits,
                          torch.nn.functional.binary_cross_entropy_with_logits)]:
        z, y = Tensor(logits), Tensor(probs, requires_grad=True)
        tz, ty = torch.tensor(logits), torch.tensor(probs, requires_grad=True)
        ours(z, y).backward()
        theirs(tz, ty).backward()
        np.testing.assert_allclose(y.grad.numpy(), ty.grad.numpy(), rtol=1e-10)


# ------------------------------------------------------------------ gradcheck


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck_every_loss(reduction):
    logits, labels, probs = _data()
    z = Tensor(logits, requires_grad=True)
    y = Tensor(probs, requires_grad=True)
    p = Tensor(RNG.uniform(0.05, 0.95, (6, 4)), requires_grad=True)
    t = Tensor(labels)
    assert gradcheck(lambda z: F.cross_entropy(z, t, reduction), (z,))
    assert gradcheck(lambda z, y: F.cross_entropy(z, y, reduction), (z, y))
    assert gradcheck(lambda z: F.nll_loss(z, t, reduction), (z,))
    assert gradcheck(lambda z, y: F.mse_loss(z, y, reduction), (z, y))
    assert gradcheck(lambda p, y: F.binary_cross_entropy(p, y, reduction), (p, y))
    assert gradcheck(lambda z, y: F.binary_cross_entropy_with_logits(z, y, reduction), (z, y))


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_gradgradcheck_fused_losses(reduction):
    logits, labels, probs = _data()
    z = Tensor(logits[:3], requires_grad=True)
    y = Tensor(probs[:3], requires_grad=True)
    p = Tensor(RNG.uniform(0.05, 0.95, (3, 4)), requires_grad=True)
    t = Tensor(labels[:3])
    assert gradgradcheck(lambda z: F.cross_entropy(z, t, reduction), (z,))
    assert gradgradcheck(lambda z, y: F.cross_entropy(z, y, reduction), (z, y))
    assert gradgradcheck(lambda p, y: F.binary_cross_entropy(p, y, reduction), (p, y))
    assert gradgradcheck(lambda z, y: F.binary_cross_entropy_with_logits(z, y, reduction),
                         (z, y))


# ------------------------------------------------------------------- errors


def test_loss_errors_name_the_loss_and_shapes():
    z = Tensor(RNG.standard_normal((3, 4)))
    with pytest.raises(ValueError, match=r"cross_entropy.*\(3,\).*\(2,\)"):
        F.cross_entropy(z, Tensor(np.array([0, 1])))
    with pytest.raises(ValueError, match=r"cross_entropy.*\[0, 4\).*4"):
        F.cross_entropy(z, Tensor(np.array([0, 1, 4])))
    with pytest.raises(ValueError, match=r"cross_entropy.*\[0, 4\).*-1"):
        F.cross_entropy(z, Tensor(np.array([0, -1, 2])))
    with pytest.raises(ValueError, match=r"cross_entropy.*\(3, 4\).*\(3, 5\)"):
        F.cross_entropy(z, Tensor(np.ones((3, 5))))
    with pytest.raises(ValueError, match="cross_entropy.*dtype bool"):
        F.cross_entropy(z, Tensor(np.array([True, False, True])))
    with pytest.raises(ValueError, match=r"cross_entropy.*\(N, C\)"):
        F.cross_entropy(Tensor(np.ones(4)), Tensor(np.array([1])))
    with pytest.raises(ValueError, match=r"nll_loss.*\[0, 4\)"):
        F.nll_loss(z, Tensor(np.array([0, 1, 7])))
    with pytest.raises(ValueError, match="nll_loss.*int64"):
        F.nll_loss(z, Tensor(np.ones(3)))
    with pytest.raises(ValueError, match=r"mse_loss.*\(3, 4\).*\(4, 3\)"):
        F.mse_loss(z, Tensor(np.ones((4, 3))))
    with pytest.raises(ValueError, match=r"binary_cross_entropy.*\[0, 1\]"):
        F.binary_cross_entropy(z, Tensor(np.ones((3, 4))))
    with pytest.raises(ValueError, match="binary_cross_entropy_with_logits.*floating"):
        F.binary_cross_entropy_with_logits(z, Tensor(np.ones((3, 4), np.int64)))
    with pytest.raises(ValueError, match="reduction"):
        F.mse_loss(z, z, reduction="average")
    with pytest.raises(ValueError, match="reduction"):
        nn.CrossEntropyLoss(reduction="max")


def test_integer_inputs_are_rejected():
    ints = Tensor(np.ones((2, 3), np.int64))
    with pytest.raises(ValueError, match=r"cross_entropy: the input must be floating.*\(2, 3\)"):
        F.cross_entropy(ints, Tensor(np.array([0, 1])))
    with pytest.raises(ValueError, match="mse_loss: the input must be floating"):
        F.mse_loss(ints, ints)
