"""Optimisers: the first three steps against each update rule written out in numpy,
against torch.optim, state_dict round trips (also through tl.save / tl.load), groups,
zero_grad and errors."""

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import Tensor, nn, optim

RNG = np.random.default_rng(5)
SHAPES = [(3, 2), (4,)]
START = [RNG.standard_normal(s) for s in SHAPES]
GRADS = [[RNG.standard_normal(s) for s in SHAPES] for _ in range(5)]


# ------------------------------------------------- the update rules, in numpy


def sgd_rule(p, grads, lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0):
    buf, out = None, []
    for g in grads:
        g = g + weight_decay * p
        if momentum:
            buf = g.copy() if buf is None else momentum * buf + (1 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        p = p - lr * g
        out.append(p)
    return out


def adam_rule(p, grads, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
              amsgrad=False, decoupled=False):
    b1, b2 = betas
    m, v, v_max, out = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p), []
    for t, g in enumerate(grads, start=1):
        if decoupled:
            p = p * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        v_max = np.maximum(v_max, v)
        second = v_max if amsgrad else v
        p = p - lr / (1 - b1 ** t) * m / (np.sqrt(second) / np.sqrt(1 - b2 ** t) + eps)
        out.append(p)
    return out


def adamw_rule(p, grads, weight_decay=1e-2, **kwargs):
    return adam_rule(p, grads, weight_decay=weight_decay, decoupled=True, **kwargs)


def rmsprop_rule(p, grads, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False):
    s, a, buf, out = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p), []
    for g in grads:
        g = g + weight_decay * p
        s = alpha * s + (1 - alpha) * g * g
        if centered:
            a = alpha * a + (1 - alpha) * g
            d = np.sqrt(s - a * a) + eps
        else:
            d = np.sqrt(s) + eps
        if momentum > 0:
            buf = momentum * buf + g / d
            p = p - lr * buf
        else:
            p = p - lr * g / d
        out.append(p)
    return out


def adagrad_rule(p, grads, lr=1e-2, lr_decay=0.0, weight_decay=0.0,
                 initial_accumulator_value=0.0, eps=1e-10):
    s, out = np.full_like(p, initial_accumulator_value), []
    for t, g in enumerate(grads, start=1):
        g = g + weight_decay * p
        clr = lr / (1 + (t - 1) * lr_decay)
        s = s + g * g
        p = p - clr * g / (np.sqrt(s) + eps)
        out.append(p)
    return out


CASES = [
    ("SGD", sgd_rule, dict(lr=0.1)),
    ("SGD", sgd_rule, dict(lr=0.1, momentum=0.9)),
    ("SGD", sgd_rule, dict(lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.05)),
    ("SGD", sgd_rule, dict(lr=0.1, momentum=0.8, nesterov=True, weight_decay=0.1)),
    ("Adam", adam_rule, dict(lr=0.01)),
    ("Adam", adam_rule, dict(lr=0.01, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.1)),
    ("Adam", adam_rule, dict(lr=0.01, amsgrad=True)),
    ("AdamW", adamw_rule, dict(lr=0.01)),
    ("AdamW", adamw_rule, dict(lr=0.05, weight_decay=0.2, amsgrad=True)),
    ("RMSprop", rmsprop_rule, dict()),
    ("RMSprop", rmsprop_rule, dict(lr=0.01, alpha=0.9, momentum=0.5)),
    ("RMSprop", rmsprop_rule, dict(lr=0.01, centered=True)),
    ("RMSprop", rmsprop_rule, dict(lr=0.01, centered=True, momentum=0.9, weight_decay=0.1)),
    ("Adagrad", adagrad_rule, dict()),
    ("Adagrad", adagrad_rule, dict(lr=0.1, lr_decay=0.5, weight_decay=0.1,
                                   initial_accumulator_value=0.3)),
]
IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in kw.items()) or 'default'}"
       for name, _, kw in CASES]


def _params(dtype=np.float64):
    return [Tensor(p.astype(dtype), requires_grad=True) for p in START]


def _run(optimizer, params, grads):
    history = []
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = Tensor(g.astype(p.dtype))
        optimizer.step()
        history.append([p.numpy() for p in params])
    return history


@pytest.mark.parametrize("name,rule,kwargs", CASES, ids=IDS)
def test_first_three_steps_follow_the_update_rule(name, rule, kwargs):
    params = _params()
    history = _run(getattr(optim, name)(params, **kwargs), params, GRADS[:3])
    for index, start in enumerate(START):
        expected = rule(start, [g[index] for g in GRADS[:3]], **kwargs)
        for step in range(3):
            np.testing.assert_allclose(history[step][index], expected[step], rtol=1e-12,
                                       atol=1e-14, err_msg=f"step {step + 1}")


@pytest.mark.parametrize("name,rule,kwargs", CASES, ids=IDS)
def test_matches_torch_optim(name, rule, kwargs):
    torch = pytest.importorskip("torch")
    params = _params()
    history = _run(getattr(optim, name)(params, **kwargs), params, GRADS[:3])
    theirs = [torch.tensor(p, requires_grad=True) for p in START]
    opt = getattr(torch.optim, name)(theirs, **kwargs)
    for step, step_grads in enumerate(GRADS[:3]):
        for t, g in zip(theirs, step_grads):
            t.grad = torch.tensor(g)
        opt.step()
        for ours, t in zip(history[step], theirs):
            np.testing.assert_allclose(ours, t.detach().numpy(), rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("name,rule,kwargs", CASES[1::2], ids=IDS[1::2])
def test_float32_parameters_stay_float32_in_place(name, rule, kwargs):
    params = _params(np.float32)
    ids = [id(p.data) for p in params]
    _run(getattr(optim, name)(params, **kwargs), params, GRADS[:2])
    assert all(p.dtype == np.float32 for p in params)
    assert [id(p.data) for p in params] == ids  # updated in place, never rebound
    for index, start in enumerate(START):
        expected = rule(start, [g[index] for g in GRADS[:2]], **kwargs)[-1]
        np.testing.assert_allclose(params[index].numpy(), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("through_file", [False, True])
@pytest.mark.parametrize("name,rule,kwargs", CASES, ids=IDS)
def test_state_dict_round_trip_continues_identically(name, rule, kwargs, through_file,
                                                     tmp_path):
    params = _params()
    opt = getattr(optim, name)(params, **kwargs)
    _run(opt, params, GRADS[:2])
    state = opt.state_dict()
    if through_file:
        tl.save(state, tmp_path / "opt.npz")
        state = tl.load(tmp_path / "opt.npz")
    clones = [Tensor(p.numpy(), requires_grad=True) for p in params]
    other = getattr(optim, name)(clones, **dict(kwargs, lr=123.0))
    other.load_state_dict(state)
    assert other.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    a = _run(opt, params, GRADS[2:])
    b = _run(other, clones, GRADS[2:])
    for x, y in zip(a, b):
        for u, v in zip(x, y):
            np.testing.assert_array_equal(u, v)


def test_state_dict_structure_is_pytorchs():
    params = _params()
    opt = optim.Adam([{"params": params[:1]}, {"params": params[1:], "lr": 0.5}], lr=0.1)
    _run(opt, params, GRADS[:1])
    state = opt.state_dict()
    assert [g["params"] for g in state["param_groups"]] == [[0], [1]]
    assert state["param_groups"][1]["lr"] == 0.5 and state["param_groups"][0]["lr"] == 0.1
    assert state["param_groups"][0]["betas"] == (0.9, 0.999)
    assert set(state["state"]) == {0, 1}
    assert set(state["state"][0]) == {"step", "exp_avg", "exp_avg_sq"}
    assert state["state"][0]["step"] == 1
    assert np.asarray(state["state"][1]["exp_avg"]).shape == SHAPES[1]
    # a snapshot: later steps do not change it
    snapshot = np.asarray(state["state"][0]["exp_avg"]).copy()
    _run(opt, params, GRADS[1:2])
    np.testing.assert_array_equal(np.asarray(state["state"][0]["exp_avg"]), snapshot)


def test_load_state_dict_errors_change_nothing():
    params = _params()
    opt = optim.SGD(params, lr=0.1, momentum=0.9)
    _run(opt, params, GRADS[:1])
    state = opt.state_dict()
    other = optim.SGD(_params()[:1], lr=0.2, momentum=0.9)
    with pytest.raises(ValueError, match="2 parameters in the state, 1 in this optimiser"):
        other.load_state_dict(state)
    assert other.param_groups[0]["lr"] == 0.2 and other.state == {}
    bad = opt.state_dict()
    bad["state"][0]["momentum_buffer"] = np.zeros((5, 5))
    with pytest.raises(ValueError, match=r"momentum_buffer.*\(5, 5\).*\(3, 2\)"):
        optim.SGD(_params(), lr=0.1, momentum=0.9).load_state_dict(bad)
    with pytest.raises(ValueError, match="parameter groups"):
        optim.SGD(_params(), lr=0.1).load_state_dict(
            {"state": {}, "param_groups": state["param_groups"] * 2})
    with pytest.raises(KeyError, match="param_groups"):
        opt.load_state_dict({"state": {}})


def test_param_groups_zero_grad_and_missing_gradients():
    params = _params()
    opt = optim.SGD([{"params": [params[0]], "lr": 1.0}, {"params": [params[1]]}], lr=0.1)
    params[0].grad = Tensor(np.ones(SHAPES[0]))
    opt.step()  # params[1] has no gradient: skipped
    np.testing.assert_allclose(params[0].numpy(), START[0] - 1.0)
    np.testing.assert_array_equal(params[1].numpy(), START[1])
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(params[0].grad.numpy(), 0.0)
    opt.zero_grad()
    assert params[0].grad is None
    assert "Parameter Group 1" in repr(opt)


def test_step_with_closure_and_model_parameters():
    tl.manual_seed(0)
    model = nn.Linear(3, 1)
    opt = optim.SGD(model.parameters(), lr=0.1)
    x, y = Tensor(np.ones((4, 3), np.float32)), Tensor(np.zeros((4, 1), np.float32))

    def closure():
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss

    with tl.no_grad():  # the closure still records
        first = opt.step(closure).item()
    assert opt.step(closure).item() < first


def test_optimizer_argument_errors():
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="learning rate"):
        optim.SGD(_params(), lr=-1.0)
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD(_params(), lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="betas"):
        optim.Adam(_params(), betas=(0.9, 1.0))
    with pytest.raises(TypeError, match="single Tensor"):
        optim.Adam(_params()[0])
    p = _params()[0]
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.SGD([p, p], lr=0.1)
    with pytest.raises(ValueError, match="non-leaf"):
        optim.SGD([p * 2], lr=0.1)


def test_adagrad_state_exists_before_the_first_step_also_for_added_groups():
    params = _params()
    opt = optim.Adagrad(params[:1], initial_accumulator_value=0.5)
    opt.add_param_group({"params": params[1:], "initial_accumulator_value": 2.0})
    state = opt.state_dict()["state"]
    assert state[0]["step"] == 0 and state[1]["step"] == 0
    np.testing.assert_array_equal(np.asarray(state[1]["sum"]), 2.0)
