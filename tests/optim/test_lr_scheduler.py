"""Learning-rate schedulers: closed forms, PyTorch, state_dict round trips."""

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import Tensor, optim
from tinygrad_lite.optim.lr_scheduler import ExponentialLR, StepLR


def _opt(lr=1.0):
    return optim.SGD([Tensor(np.ones(2), requires_grad=True)], lr=lr)


def test_step_lr():
    opt = _opt(0.5)
    scheduler = StepLR(opt, step_size=3, gamma=0.1)
    lrs = []
    for _ in range(7):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    np.testing.assert_allclose(lrs, [0.5] * 3 + [0.05] * 3 + [0.005])
    assert scheduler.get_last_lr() == [opt.param_groups[0]["lr"]]
    with pytest.raises(ValueError):
        StepLR(_opt(), step_size=0)


def test_exponential_lr_with_groups():
    p, q = Tensor(np.ones(2), requires_grad=True), Tensor(np.ones(2), requires_grad=True)
    opt = optim.SGD([{"params": [p]}, {"params": [q], "lr": 2.0}], lr=1.0)
    scheduler = ExponentialLR(opt, gamma=0.5)
    for _ in range(3):
        scheduler.step()
    assert scheduler.get_last_lr() == [0.125, 0.25]
    assert [g["initial_lr"] for g in opt.param_groups] == [1.0, 2.0]


@pytest.mark.parametrize("make", [lambda o, m: m.StepLR(o, step_size=2, gamma=0.3),
                                  lambda o, m: m.ExponentialLR(o, gamma=0.9)])
def test_schedulers_match_torch(make):
    torch = pytest.importorskip("torch")
    ours_opt = _opt(0.1)
    theirs_opt = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=0.1)
    ours, theirs = make(ours_opt, optim.lr_scheduler), make(theirs_opt,
                                                            torch.optim.lr_scheduler)
    for _ in range(6):
        theirs_opt.step()
        ours.step()
        theirs.step()
        np.testing.assert_allclose(ours.get_last_lr(), theirs.get_last_lr(), rtol=1e-12)


@pytest.mark.parametrize("through_file", [False, True])
def test_scheduler_state_dict_round_trip(through_file, tmp_path):
    opt = _opt(1.0)
    scheduler = StepLR(opt, step_size=2, gamma=0.5)
    for _ in range(3):
        scheduler.step()
    state = scheduler.state_dict()
    assert "optimizer" not in state and state["last_epoch"] == 3
    if through_file:
        tl.save(state, tmp_path / "sched.npz")
        state = tl.load(tmp_path / "sched.npz")
    other_opt = _opt(1.0)
    other = StepLR(other_opt, step_size=5, gamma=0.9)
    other.load_state_dict(state)
    assert other.step_size == 2 and other.last_epoch == 3
    for _ in range(3):
        scheduler.step()
        other.step()
        assert other.get_last_lr() == scheduler.get_last_lr()
    assert other_opt.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
