"""Layers as modules: Linear's initialisation and PyTorch layout, state dicts (strict
loading, errors, save/load round trips), activation and loss modules, gradient clipping,
and a small end-to-end training run."""

import math

import numpy as np
import pytest

import tinygrad_lite as tl
import tinygrad_lite.nn.functional as F
from tinygrad_lite import Tensor, nn, optim

RNG = np.random.default_rng(4)


def _mlp():
    return nn.Sequential(nn.Linear(64, 50), nn.Sigmoid(), nn.Linear(50, 10))


def test_linear_default_init_statistics():
    tl.manual_seed(0)
    layer = nn.Linear(400, 300)
    w, b = layer.weight.numpy(), layer.bias.numpy()
    bound = 1 / math.sqrt(400)
    assert w.shape == (300, 400) and b.shape == (300,) and w.dtype == np.float32
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    np.testing.assert_allclose(w.std(), bound / math.sqrt(3), rtol=0.02)  # U(-b, b)
    assert abs(w.mean()) < 0.01 * bound  # about 6 standard errors
    tl.manual_seed(0)
    np.testing.assert_array_equal(nn.Linear(400, 300).weight.numpy(), w)


def test_linear_loads_torch_state_dict():
    torch = pytest.importorskip("torch")
    theirs = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Sigmoid(),
                                 torch.nn.Linear(5, 3))
    ours = nn.Sequential(nn.Linear(6, 5), nn.Sigmoid(), nn.Linear(5, 3))
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    x = RNG.standard_normal((4, 6)).astype(np.float32)
    np.testing.assert_allclose(ours(Tensor(x)).numpy(),
                               theirs(torch.tensor(x)).detach().numpy(), rtol=1e-6, atol=1e-6)


def test_state_dict_names_and_strict_loading_errors():
    model = _mlp()
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    before = {k: v.numpy() for k, v in model.state_dict().items()}
    good = {k: np.zeros_like(v) for k, v in before.items()}

    missing = dict(good)
    del missing["2.bias"]
    with pytest.raises(KeyError, match="missing keys.*2.bias"):
        model.load_state_dict(missing)
    with pytest.raises(KeyError, match="unexpected keys.*extra"):
        model.load_state_dict({**good, "extra": np.zeros(3)})
    misshaped = {**good, "2.weight": np.zeros((10, 49))}
    with pytest.raises(ValueError, match=r"2\.weight.*\(10, 49\).*\(10, 50\)"):
        model.load_state_dict(misshaped)
    for key, value in model.state_dict().items():  # every failed load changed nothing
        np.testing.assert_array_equal(value.numpy(), before[key])

    missing_keys, unexpected = model.load_state_dict({"0.bias": np.ones(50), "x": 1},
                                                     strict=False)
    assert "0.weight" in missing_keys and unexpected == ["x"]
    np.testing.assert_array_equal(model[0].bias.numpy(), 1.0)


def test_state_dict_round_trip_through_save_and_load(tmp_path):
    tl.manual_seed(1)
    model = nn.Sequential(nn.Linear(8, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 2))
    model(Tensor(RNG.standard_normal((5, 8)).astype(np.float32)))  # move running stats
    model.eval()
    x = Tensor(RNG.standard_normal((3, 8)).astype(np.float32))
    expected = model(x).numpy()
    path = tmp_path / "model.npz"
    tl.save(model.state_dict(), path)
    tl.manual_seed(2)
    clone = nn.Sequential(nn.Linear(8, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 2))
    clone.load_state_dict(tl.load(path))
    clone.eval()
    np.testing.assert_array_equal(clone(x).numpy(), expected)
    assert clone[1].num_batches_tracked.item() == 1


def test_activation_and_loss_module_reprs():
    assert repr(nn.LeakyReLU(0.2)) == "LeakyReLU(negative_slope=0.2)"
    assert repr(nn.ELU()) == "ELU(alpha=1.0)"
    assert repr(nn.Softmax(1)) == "Softmax(axis=1)"
    assert nn.Softmax(dim=0).axis == 0
    assert repr(nn.CrossEntropyLoss()) == "CrossEntropyLoss(reduction='mean')"
    assert "Sigmoid()" in repr(_mlp())


def test_clip_grad_norm_matches_hand_computation():
    params = [Tensor(RNG.standard_normal((3, 4)), requires_grad=True),
              Tensor(RNG.standard_normal(5), requires_grad=True)]
    grads = [RNG.standard_normal((3, 4)), RNG.standard_normal(5)]
    for p, g in zip(params, grads):
        p.grad = Tensor(g.copy())
    total = np.sqrt(sum((g ** 2).sum() for g in grads))
    norm = nn.utils.clip_grad_norm_(params, max_norm=0.5)
    assert np.isclose(norm.item(), total)
    for p, g in zip(params, grads):
        np.testing.assert_allclose(p.grad.numpy(), g * 0.5 / (total + 1e-6), rtol=1e-12)
    # under the limit: unchanged; other norms
    for p, g in zip(params, grads):
        p.grad = Tensor(g.copy())
    norm = nn.utils.clip_grad_norm_(params, max_norm=1e6, norm_type=1)
    assert np.isclose(norm.item(), sum(np.abs(g).sum() for g in grads))
    np.testing.assert_array_equal(params[0].grad.numpy(), grads[0])
    norm = nn.utils.clip_grad_norm_(params, max_norm=0.1, norm_type=float("inf"))
    inf_norm = max(np.abs(g).max() for g in grads)
    assert np.isclose(norm.item(), inf_norm)
    np.testing.assert_allclose(params[1].grad.numpy(), grads[1] * 0.1 / (inf_norm + 1e-6))


def test_clip_grad_norm_matches_torch():
    torch = pytest.importorskip("torch")
    grads = [RNG.standard_normal((3, 4)), RNG.standard_normal(5)]
    ours = [Tensor(g.copy() * 0, requires_grad=True) for g in grads]
    theirs = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for p, t, g in zip(ours, theirs, grads):
        p.grad, t.grad = Tensor(g.copy()), torch.tensor(g.copy())
    a = nn.utils.clip_grad_norm_(ours, 1.0, norm_type=3.0)
    b = torch.nn.utils.clip_grad_norm_(theirs, 1.0, norm_type=3.0)
    assert np.isclose(a.item(), b.item())
    for p, t in zip(ours, theirs):
        np.testing.assert_allclose(p.grad.numpy(), t.grad.numpy(), rtol=1e-10)


def test_clip_grad_norm_zero_and_missing_gradients():
    p = Tensor(np.ones(3), requires_grad=True)
    q = Tensor(np.ones(2), requires_grad=True)  # no gradient at all
    p.grad = Tensor(np.zeros(3))
    norm = nn.utils.clip_grad_norm_([p, q], 1.0)
    assert norm.item() == 0.0 and np.all(np.isfinite(p.grad.numpy()))
    assert nn.utils.clip_grad_norm_([q], 1.0).item() == 0.0


def test_clip_grad_value():
    p = Tensor(np.ones(4), requires_grad=True)
    p.grad = Tensor(np.array([-3.0, -0.5, 0.2, 9.0]))
    nn.utils.clip_grad_value_([p], 1.0)
    np.testing.assert_array_equal(p.grad.numpy(), [-1.0, -0.5, 0.2, 1.0])
    with pytest.raises(ValueError):
        nn.utils.clip_grad_value_([p], -1.0)


def test_mlp_learns_digits_like_problem():
    """The lecture notes' 64-50-10 sigmoid network fits a small separable problem."""
    tl.manual_seed(0)
    centres = RNG.standard_normal((10, 64)) * 2
    labels = RNG.integers(0, 10, 300)
    x = (centres[labels] + RNG.standard_normal((300, 64))).astype(np.float32)
    model = _mlp()
    opt = optim.SGD(model.parameters(), lr=0.5)
    X, y = Tensor(x), Tensor(labels)
    first = None
    for _ in range(60):
        opt.zero_grad()
        loss = F.cross_entropy(model(X), y)
        loss.backward()
        opt.step()
        first = loss.item() if first is None else first
    accuracy = (model(X).numpy().argmax(1) == labels).mean()
    assert loss.item() < 0.3 * first and accuracy > 0.9
