"""BatchNorm1d and F.batch_norm: values, running statistics vs PyTorch, gradients."""

import numpy as np
import pytest

import tinygrad_lite as tl
import tinygrad_lite.nn.functional as F
from tinygrad_lite import Tensor, nn
from tinygrad_lite.testing import gradcheck

RNG = np.random.default_rng(3)


def test_batch_norm_training_normalises_each_channel():
    x = RNG.standard_normal((8, 3)) * 5 + 2
    out = F.batch_norm(Tensor(x), None, None, training=True).numpy()
    expected = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5)
    np.testing.assert_allclose(out, expected, rtol=1e-10)


def test_batch_norm_3d_input_reduces_over_batch_and_length():
    x = RNG.standard_normal((4, 3, 5))
    w, b = RNG.standard_normal(3), RNG.standard_normal(3)
    out = F.batch_norm(Tensor(x), None, None, Tensor(w), Tensor(b), training=True).numpy()
    mean, var = x.mean((0, 2), keepdims=True), x.var((0, 2), keepdims=True)
    expected = (x - mean) / np.sqrt(var + 1e-5) * w[:, None] + b[:, None]
    np.testing.assert_allclose(out, expected, rtol=1e-10)


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5)])
def test_gradcheck_batch_norm_training(shape):
    x = Tensor(RNG.standard_normal(shape), requires_grad=True)
    w = Tensor(RNG.standard_normal(3), requires_grad=True)
    b = Tensor(RNG.standard_normal(3), requires_grad=True)
    assert gradcheck(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
                     (x, w, b))


def test_gradcheck_batch_norm_eval():
    x = Tensor(RNG.standard_normal((5, 3)), requires_grad=True)
    w = Tensor(RNG.standard_normal(3), requires_grad=True)
    mean, var = Tensor(RNG.standard_normal(3)), Tensor(RNG.random(3) + 0.5)
    assert gradcheck(lambda x, w: F.batch_norm(x, mean, var, w, None, training=False), (x, w))


def test_batch_norm_running_stats_update_with_unbiased_variance():
    x = RNG.standard_normal((10, 4))
    running_mean, running_var = tl.zeros(4, dtype="float64"), tl.ones(4, dtype="float64")
    F.batch_norm(Tensor(x), running_mean, running_var, training=True, momentum=0.2)
    np.testing.assert_allclose(running_mean.numpy(), 0.2 * x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(running_var.numpy(), 0.8 + 0.2 * x.var(0, ddof=1), rtol=1e-12)


def test_batchnorm1d_matches_torch_train_and_eval():
    torch = pytest.importorskip("torch")
    ours = nn.BatchNorm1d(3, momentum=0.3)
    theirs = torch.nn.BatchNorm1d(3, momentum=0.3)
    with torch.no_grad():
        w, b = RNG.standard_normal(3), RNG.standard_normal(3)
        theirs.weight.copy_(torch.tensor(w))
        theirs.bias.copy_(torch.tensor(b))
    ours.load_state_dict({"weight": w, "bias": b}, strict=False)
    for shape in [(8, 3), (5, 3, 4), (8, 3)]:
        x = (RNG.standard_normal(shape) * 3 + 1).astype(np.float32)
        xt = torch.tensor(x, requires_grad=True)
        xo = Tensor(x, requires_grad=True)
        out, expected = ours(xo), theirs(xt)
        np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), rtol=1e-4, atol=1e-5)
        g = RNG.standard_normal(out.shape).astype(np.float32)
        (out * Tensor(g)).sum().backward()
        (expected * torch.tensor(g)).sum().backward()
        np.testing.assert_allclose(xo.grad.numpy(), xt.grad.numpy(), rtol=1e-3, atol=1e-5)
        np.testing.assert_allclose(ours.weight.grad.numpy(), theirs.weight.grad.numpy(),
                                   rtol=1e-3, atol=1e-5)
    for name in ("running_mean", "running_var"):
        np.testing.assert_allclose(getattr(ours, name).numpy(),
                                   getattr(theirs, name).numpy(), rtol=1e-5, atol=1e-6)
    assert ours.num_batches_tracked.item() == theirs.num_batches_tracked.item() == 3
    ours.eval()
    theirs.eval()
    x = RNG.standard_normal((4, 3)).astype(np.float32)
    np.testing.assert_allclose(ours(Tensor(x)).numpy(),
                               theirs(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-6)
    assert set(ours.state_dict()) == set(theirs.state_dict())


def test_batchnorm1d_cumulative_average_and_no_running_stats():
    bn = nn.BatchNorm1d(2, momentum=None)
    batches = [RNG.standard_normal((6, 2)) for _ in range(3)]
    for x in batches:
        bn(Tensor(x.astype(np.float32)))
    np.testing.assert_allclose(bn.running_mean.numpy(), np.mean([x.mean(0) for x in batches], 0),
                               rtol=1e-5, atol=1e-6)
    free = nn.BatchNorm1d(2, affine=False, track_running_stats=False).eval()
    x = RNG.standard_normal((6, 2))
    np.testing.assert_allclose(free(Tensor(x)).numpy(),
                               (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5), rtol=1e-10)
    assert list(free.state_dict()) == [] and free.num_parameters() == 0


def test_batchnorm1d_errors_and_repr():
    bn = nn.BatchNorm1d(3)
    with pytest.raises(ValueError, match=r"BatchNorm1d\(3\).*\(4, 5\)"):
        bn(tl.zeros(4, 5))
    with pytest.raises(ValueError, match=r"2-D or 3-D.*\(2, 3, 4, 5\)"):
        bn(tl.zeros(2, 3, 4, 5))
    with pytest.raises(ValueError, match="more than one value per channel"):
        bn(tl.zeros(1, 3))
    assert "momentum=0.1" in repr(bn)
    assert [name for name, _ in bn.named_buffers()] == ["running_mean", "running_var",
                                                        "num_batches_tracked"]
