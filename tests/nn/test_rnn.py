"""Recurrent layers and cells (tinygrad_lite.nn.rnn).

* gradchecks (float64) of every step function, fused and reference, over several time
  steps, and of every cell and layer;
* second derivatives through the fused steps (their Tensor-op backward path);
* PyTorch equivalence: a PyTorch state_dict converted to numpy loads and gives the same
  outputs, final states and gradients (RNN tanh/relu, LSTM, GRU; 1 and 2 layers;
  batch_first True/False; initial state given or omitted; the cells too);
* shapes, unbatched input, sequence lengths 1 and 500 (BPTT without RecursionError),
  PyTorch's default initialisation, errors;
* the examples' models learn (quick runs).
"""

from __future__ import annotations

import importlib.util
import os
import sys

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import Tensor
from tinygrad_lite.nn import rnn
from tinygrad_lite.nn.rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from tinygrad_lite.testing import gradcheck, gradgradcheck

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RNG = np.random.default_rng(0)


def _t(*shape, requires_grad=True, scale=1.0):
    return Tensor(scale * RNG.standard_normal(shape), requires_grad=requires_grad)


def _sum_outputs(result):
    """A scalar that depends on everything a layer returns, with distinct weights."""
    output, state = result
    states = state if isinstance(state, tuple) else (state,)
    total = (output * output).sum()
    for k, s in enumerate(states):
        total = total + (s * (k + 2.0)).sum()
    return total


# ---------------------------------------------------------------- step gradchecks


def _unroll(step, gxs, h, *rest):
    """Apply ``step`` over the list of per-step inputs; return all hidden states."""
    outs = []
    for gx in gxs:
        h = step(gx, h, *rest)
        outs.append(h)
    return tl.stack(outs, 0)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu", "sigmoid"])
@pytest.mark.parametrize("fused", [True, False])
def test_rnn_step_gradcheck_over_time(nonlinearity, fused):
    B, H, T = 2, 3, 4
    gx, h0, w_t = _t(T, B, H), _t(B, H), _t(H, H, scale=0.5)
    w_rows = None

    def fn(gx, h0, w_t):
        gxs = list(rnn.Unbind.apply(gx, 0))
        if fused:
            return _unroll(lambda g, h: rnn.RNNStep.apply(g, h, w_t, nonlinearity, w_rows),
                           gxs, h0)
        return _unroll(lambda g, h: rnn.rnn_step(g, h, w_t, None, nonlinearity), gxs, h0)

    assert gradcheck(fn, (gx, h0, w_t))


@pytest.mark.parametrize("fused", [True, False])
def test_lstm_step_gradcheck_over_time(fused):
    B, H, T = 2, 3, 3
    gx, h0, c0, w_t = _t(T, B, 4 * H), _t(B, H), _t(B, H), _t(H, 4 * H, scale=0.5)

    def fn(gx, h0, c0, w_t):
        h, c, outs = h0, c0, []
        for g in rnn.Unbind.apply(gx, 0):
            if fused:
                h, c = rnn.LSTMStep.apply(g, h, c, w_t)
            else:
                h, c = rnn.lstm_step(g, h, c, w_t, None)
            outs.append(h)
        return tl.stack(outs, 0), c

    assert gradcheck(fn, (gx, h0, c0, w_t))


@pytest.mark.parametrize("fused", [True, False])
def test_gru_step_gradcheck_over_time(fused):
    B, H, T = 2, 3, 3
    gx, h0, w_t, b = _t(T, B, 3 * H), _t(B, H), _t(H, 3 * H, scale=0.5), _t(3 * H)

    def fn(gx, h0, w_t, b):
        gxs = list(rnn.Unbind.apply(gx, 0))
        if fused:
            return _unroll(lambda g, h: rnn.GRUStep.apply(g, h, w_t, b), gxs, h0)
        return _unroll(lambda g, h: rnn.gru_step(g, h, w_t, b), gxs, h0)

    assert gradcheck(fn, (gx, h0, w_t, b))


def test_fused_steps_second_derivatives():
    """create_graph=True runs the backward with Tensor ops: gradients of gradients work."""
    B, H = 2, 2
    gx, h, w_t = _t(B, H), _t(B, H), _t(H, H, scale=0.5)
    assert gradgradcheck(lambda gx, h, w: rnn.RNNStep.apply(gx, h, w, "tanh"), (gx, h, w_t))
    gx4, c, w4 = _t(B, 4 * H), _t(B, H), _t(H, 4 * H, scale=0.5)
    assert gradgradcheck(lambda gx, h, c, w: rnn.LSTMStep.apply(gx, h, c, w), (gx4, h, c, w4))
    gx3, w3, b3 = _t(B, 3 * H), _t(H, 3 * H, scale=0.5), _t(3 * H)
    assert gradgradcheck(lambda gx, h, w, b: rnn.GRUStep.apply(gx, h, w, b), (gx3, h, w3, b3))


def test_fast_and_recorded_backward_paths_agree():
    """Plain backward runs on numpy arrays; create_graph=True recomputes with Tensor ops."""
    B, H = 3, 2
    h, c = _t(B, H), _t(B, H)
    cases = [
        (lambda gx, h, c, w: rnn.RNNStep.apply(gx, h, w, "relu"), _t(B, H), _t(H, H)),
        (lambda gx, h, c, w: rnn.LSTMStep.apply(gx, h, c, w)[0] * 2.0
         + rnn.LSTMStep.apply(gx, h, c, w)[1], _t(B, 4 * H), _t(H, 4 * H)),
        (lambda gx, h, c, w: rnn.GRUStep.apply(gx, h, w, None), _t(B, 3 * H), _t(H, 3 * H)),
    ]
    for fn, gx, w in cases:
        inputs = [gx, h, c, w]
        weights = Tensor(RNG.standard_normal((B, H)))
        fast = tl.grad((fn(*inputs) * weights).sum(), inputs, allow_unused=True)
        slow = tl.grad((fn(*inputs) * weights).sum(), inputs, allow_unused=True,
                       create_graph=True)
        for a, b in zip(fast, slow):
            assert (a is None) == (b is None)
            if a is not None:
                np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("create_graph", [False, True])
def test_zero_state_shortcut(create_graph):
    """h=None (a zero initial state) skips the recurrent product but changes nothing."""
    B, H = 2, 3
    zeros = Tensor(np.zeros((B, H)))
    cases = [
        (lambda gx, h, w: rnn.RNNStep.apply(gx, h, w, "tanh"), _t(B, H), _t(H, H)),
        (lambda gx, h, w: rnn.LSTMStep.apply(gx, h, None if h is None else h * 1.0, w)[0]
         + rnn.LSTMStep.apply(gx, h, None if h is None else h * 1.0, w)[1] * 3.0,
         _t(B, 4 * H), _t(H, 4 * H)),
        (lambda gx, h, w: rnn.GRUStep.apply(gx, h, w, None), _t(B, 3 * H), _t(H, 3 * H)),
    ]
    for fn, gx, w in cases:
        results = []
        for h in (None, zeros):
            out = fn(gx, h, w)
            grads = tl.grad((out * out).sum(), [gx, w], create_graph=create_graph)
            results.append([out.numpy()] + [g.numpy() for g in grads])
        for a, b in zip(*results):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_row_major_weight_path_matches_view_path():
    """The fast backward may read W_hh row-major (``w_hh_rows``): same gradients."""
    B, H = 3, 4
    gx, h, c = _t(B, 4 * H), _t(B, H), _t(B, H)
    w = _t(4 * H, H)
    grads = []
    for rows in (None, w.data):
        h_new, c_new = rnn.LSTMStep.apply(gx, h, c, rnn.TransposeCopy.apply(w), rows)
        grads.append(tl.grad((h_new * 2.0 + c_new).sum(), [gx, h, c, w]))
    for a, b in zip(*grads):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12)
    assert gradcheck(lambda w: rnn.TransposeCopy.apply(w) * 1.0, (w,))


def test_chunk_unbind_and_stack_gradcheck():
    x = _t(3, 8)
    assert gradcheck(lambda x: rnn.Chunk.apply(x, 4)[1] * 2.0 + rnn.Chunk.apply(x, 4)[3], (x,))
    y = _t(4, 2, 3)
    assert gradcheck(lambda y: rnn.Unbind.apply(y, 0)[0] * rnn.Unbind.apply(y, 0)[2], (y,))
    assert gradcheck(lambda y: tl.stack(rnn.Unbind.apply(y, 1), 0), (y,))
    a, b = _t(2, 3), _t(2, 3)
    for axis in (0, 1, 2):
        assert gradcheck(lambda a, b, axis=axis: rnn.Stack.apply(axis, a, b, a * b), (a, b))
        np.testing.assert_array_equal(rnn.Stack.apply(axis, a, b).numpy(),
                                      np.stack([a.numpy(), b.numpy()], axis))


# ------------------------------------------------------------ cell / layer gradchecks


@pytest.mark.parametrize("cell_class", [RNNCell, LSTMCell, GRUCell])
def test_cells_gradcheck_over_several_steps(cell_class):
    tl.manual_seed(0)
    cell = cell_class(3, 2).double()
    xs, h0 = _t(4, 2, 3), _t(2, 2)

    def fn(xs, h0):
        state = (h0, h0 * 0.5) if cell_class is LSTMCell else h0
        outs = []
        for t in range(xs.shape[0]):
            state = cell(xs[t], state)
            outs.append(state[0] if isinstance(state, tuple) else state)
        return tl.stack(outs, 0)

    assert gradcheck(fn, (xs, h0))
    # parameter gradients: a finite-difference check through the module's own parameters
    fn(xs, h0).sum().backward()
    for name, param in cell.named_parameters():
        _check_param_grad(lambda: fn(xs, h0).sum().item(), param, name)


def _check_param_grad(loss_value, param, name, eps=1e-6, n=3):
    """Central differences on a few elements of ``param`` against ``param.grad``."""
    flat = param.data.reshape(-1)
    analytic = param.grad.numpy().reshape(-1)
    for index in RNG.choice(flat.size, size=min(n, flat.size), replace=False):
        original = flat[index]
        flat[index] = original + eps
        plus = loss_value()
        flat[index] = original - eps
        minus = loss_value()
        flat[index] = original
        numerical = (plus - minus) / (2 * eps)
        assert abs(analytic[index] - numerical) <= 1e-6 + 1e-4 * abs(numerical), \
            (name, index, analytic[index], numerical)


@pytest.mark.parametrize("layer_class,kwargs", [
    (RNN, {"nonlinearity": "tanh"}), (RNN, {"nonlinearity": "relu"}), (LSTM, {}), (GRU, {})])
@pytest.mark.parametrize("fused", [True, False])
def test_layers_gradcheck(layer_class, kwargs, fused):
    tl.manual_seed(1)
    layer = layer_class(2, 3, num_layers=2, **kwargs).double()
    layer.fused = fused
    x = _t(2, 3, 2)

    def fn(x):
        output, state = layer(x)
        return (output,) + (state if isinstance(state, tuple) else (state,))

    assert gradcheck(fn, (x,))
    _sum_outputs(layer(x)).backward()
    for name, param in layer.named_parameters():
        _check_param_grad(lambda: _sum_outputs(layer(x)).item(), param, name, n=2)


def test_long_sequence_gradcheck_uses_transposed_copy():
    """From 8 steps on the fused layers lay W_hh^T out row-major; gradients stay right."""
    tl.manual_seed(2)
    for layer_class in (RNN, LSTM, GRU):
        layer = layer_class(1, 2).double()
        x = _t(1, 10, 1, scale=0.5)
        assert gradcheck(lambda x, layer=layer: layer(x)[0], (x,))
        _sum_outputs(layer(x)).backward()
        for name, param in layer.named_parameters():
            _check_param_grad(lambda layer=layer, x=x: _sum_outputs(layer(x)).item(), param,
                              name, n=2)


# ------------------------------------------------------------- PyTorch equivalence


LAYER_CASES = [("RNN", {"nonlinearity": "tanh"}), ("RNN", {"nonlinearity": "relu"}),
               ("LSTM", {}), ("GRU", {})]


def _torch_state(module):
    return {k: v.detach().numpy().copy() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("name,kwargs", LAYER_CASES)
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("with_state", [False, True])
def test_matches_pytorch(name, kwargs, num_layers, batch_first, with_state):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    reference = getattr(torch.nn, name)(3, 5, num_layers=num_layers, batch_first=batch_first,
                                        **kwargs)
    ours = getattr(rnn, name)(3, 5, num_layers=num_layers, batch_first=batch_first, **kwargs)
    ours.load_state_dict(_torch_state(reference))
    assert list(dict(ours.named_parameters())) == list(dict(reference.named_parameters()))

    batch, seq = 4, 6
    shape = (batch, seq, 3) if batch_first else (seq, batch, 3)
    x = RNG.standard_normal(shape).astype(np.float32)
    state_np = None
    if with_state:
        state_np = [RNG.standard_normal((num_layers, batch, 5)).astype(np.float32)
                    for _ in range(2 if name == "LSTM" else 1)]

    def as_state(make):
        if state_np is None:
            return None
        states = tuple(make(s) for s in state_np)
        return states if name == "LSTM" else states[0]

    xt = torch.tensor(x, requires_grad=True)
    st = as_state(lambda s: torch.tensor(s, requires_grad=True))
    out_t = reference(xt) if st is None else reference(xt, st)
    xo = Tensor(x, requires_grad=True)
    so = as_state(lambda s: Tensor(s, requires_grad=True))
    out_o = ours(xo) if so is None else ours(xo, so)

    _sum_outputs(out_t).backward()
    _sum_outputs(out_o).backward()
    assert out_o[0].shape == tuple(out_t[0].shape)
    np.testing.assert_allclose(out_o[0].numpy(), out_t[0].detach().numpy(), atol=1e-5)
    states_t = out_t[1] if name == "LSTM" else (out_t[1],)
    states_o = out_o[1] if name == "LSTM" else (out_o[1],)
    for a, b in zip(states_o, states_t):
        assert a.shape == tuple(b.shape) == (num_layers, batch, 5)
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), atol=1e-5)
    np.testing.assert_allclose(xo.grad.numpy(), xt.grad.numpy(), atol=1e-4, rtol=1e-4)
    if with_state:
        for a, b in zip(so if name == "LSTM" else (so,), st if name == "LSTM" else (st,)):
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), atol=1e-4, rtol=1e-4)
    params = dict(ours.named_parameters())
    for key, param in reference.named_parameters():
        np.testing.assert_allclose(params[key].grad.numpy(), param.grad.numpy(),
                                   atol=1e-4, rtol=1e-4, err_msg=key)


@pytest.mark.parametrize("name,nonlinearity", [("RNNCell", "tanh"), ("RNNCell", "relu"),
                                               ("LSTMCell", None), ("GRUCell", None)])
def test_cells_match_pytorch(name, nonlinearity):
    torch = pytest.importorskip("torch")
    kwargs = {"nonlinearity": nonlinearity} if nonlinearity else {}
    torch.manual_seed(1)
    reference = getattr(torch.nn, name)(3, 4, **kwargs)
    ours = getattr(rnn, name)(3, 4, **kwargs)
    ours.load_state_dict(_torch_state(reference))
    xs = RNG.standard_normal((3, 2, 3)).astype(np.float32)
    h0 = RNG.standard_normal((2, 4)).astype(np.float32)
    for given in (False, True):
        state_t = None if not given else (
            (torch.tensor(h0), torch.tensor(h0 * 0.5)) if name == "LSTMCell"
            else torch.tensor(h0))
        state_o = None if not given else (
            (Tensor(h0), Tensor(h0 * 0.5)) if name == "LSTMCell" else Tensor(h0))
        for x in xs:                                # three steps, the state carried along
            state_t = reference(torch.tensor(x), state_t)
            state_o = ours(Tensor(x), state_o)
        pairs = zip(state_o, state_t) if name == "LSTMCell" else [(state_o, state_t)]
        for a, b in pairs:
            np.testing.assert_allclose(a.numpy(), b.detach().numpy(), atol=1e-5)
    # unbatched input, as PyTorch
    single_t = reference(torch.tensor(xs[0, 0]))
    single_o = ours(Tensor(xs[0, 0]))
    first_o = single_o[0] if name == "LSTMCell" else single_o
    first_t = single_t[0] if name == "LSTMCell" else single_t
    assert first_o.shape == (4,)
    np.testing.assert_allclose(first_o.numpy(), first_t.detach().numpy(), atol=1e-5)


def test_unbatched_layers_match_pytorch():
    torch = pytest.importorskip("torch")
    for name in ("RNN", "LSTM", "GRU"):
        torch.manual_seed(2)
        reference = getattr(torch.nn, name)(2, 3, num_layers=2)
        ours = getattr(rnn, name)(2, 3, num_layers=2)
        ours.load_state_dict(_torch_state(reference))
        x = RNG.standard_normal((5, 2)).astype(np.float32)
        out_t, state_t = reference(torch.tensor(x))
        out_o, state_o = ours(Tensor(x))
        assert out_o.shape == (5, 3)
        np.testing.assert_allclose(out_o.numpy(), out_t.detach().numpy(), atol=1e-5)
        h_o = state_o[0] if name == "LSTM" else state_o
        h_t = state_t[0] if name == "LSTM" else state_t
        assert h_o.shape == (2, 3)
        np.testing.assert_allclose(h_o.numpy(), h_t.detach().numpy(), atol=1e-5)


def test_long_sequence_matches_pytorch_and_backpropagates():
    """500 steps: the iterative backward has no recursion limit; gradients still agree."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)        # small matrices: threads only add contention
    try:
        _long_sequences(torch)
    finally:
        torch.set_num_threads(threads)


def _long_sequences(torch):
    for name in ("LSTM", "GRU"):
        reference = getattr(torch.nn, name)(1, 8, batch_first=True)
        ours = getattr(rnn, name)(1, 8)
        ours.load_state_dict(_torch_state(reference))
        x = RNG.standard_normal((2, 500, 1)).astype(np.float32)
        xt = torch.tensor(x, requires_grad=True)
        xo = Tensor(x, requires_grad=True)
        out_t, _ = reference(xt)
        out_o, _ = ours(xo)
        out_t[:, -1].sum().backward()
        out_o[:, -1].sum().backward()
        np.testing.assert_allclose(out_o.numpy(), out_t.detach().numpy(), atol=1e-5)
        np.testing.assert_allclose(xo.grad.numpy(), xt.grad.numpy(), atol=1e-5)


# ------------------------------------------------------------------ shapes, init, errors


@pytest.mark.parametrize("layer_class", [RNN, LSTM, GRU])
@pytest.mark.parametrize("seq", [1, 500])
def test_sequence_lengths_and_bptt(layer_class, seq):
    """A single step works, and 500 steps backpropagate (no RecursionError)."""
    tl.manual_seed(0)
    layer = layer_class(2, 4)
    x = Tensor(RNG.standard_normal((3, seq, 2)).astype(np.float32), requires_grad=True)
    limit = sys.getrecursionlimit()
    try:
        sys.setrecursionlimit(200)       # far below the graph's depth for seq=500
        output, _ = layer(x)
        output.sum().backward()
    finally:
        sys.setrecursionlimit(limit)
    assert output.shape == (3, seq, 4)
    assert x.grad.shape == x.shape and np.isfinite(x.grad.numpy()).all()
    assert np.abs(x.grad.numpy()[:, 0]).sum() > 0 and np.abs(x.grad.numpy()[:, -1]).sum() > 0
    for param in layer.parameters():
        assert param.grad is not None and param.grad.shape == param.shape


@pytest.mark.parametrize("layer_class", [RNN, LSTM, GRU])
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_output_shapes(layer_class, batch_first, num_layers):
    layer = layer_class(3, 6, num_layers=num_layers, batch_first=batch_first)
    batch, seq = 2, 5
    x = Tensor(np.zeros((batch, seq, 3) if batch_first else (seq, batch, 3), np.float32))
    output, state = layer(x)
    assert output.shape == ((batch, seq, 6) if batch_first else (seq, batch, 6))
    states = state if layer_class is LSTM else (state,)
    for s in states:
        assert s.shape == (num_layers, batch, 6)
    # the last layer's final state is the last output
    last = output[:, -1] if batch_first else output[-1]
    np.testing.assert_allclose(states[0].numpy()[-1], last.numpy())
    # an explicit zero state is the same as none
    zeros = Tensor(np.zeros((num_layers, batch, 6), np.float32))
    given = layer(x, (zeros, zeros) if layer_class is LSTM else zeros)
    np.testing.assert_allclose(given[0].numpy(), output.numpy())


def test_parameter_names_shapes_and_default_init():
    tl.manual_seed(0)
    lstm = LSTM(3, 16, num_layers=2)
    shapes = {k: v.shape for k, v in lstm.named_parameters()}
    assert shapes == {"weight_ih_l0": (64, 3), "weight_hh_l0": (64, 16), "bias_ih_l0": (64,),
                      "bias_hh_l0": (64,), "weight_ih_l1": (64, 16), "weight_hh_l1": (64, 16),
                      "bias_ih_l1": (64,), "bias_hh_l1": (64,)}
    assert GRU(3, 16).weight_ih_l0.shape == (48, 3)
    assert RNN(3, 16, bias=False).num_parameters() == 16 * 3 + 16 * 16
    assert LSTMCell(3, 16).weight_hh.shape == (64, 16)
    bound = 1 / np.sqrt(16)
    for param in lstm.parameters():
        values = param.numpy()
        assert param.dtype == np.float32
        assert values.min() >= -bound and values.max() <= bound
        assert values.std() > bound / 3         # spread over the range, not constant
    tl.manual_seed(0)
    again = LSTM(3, 16, num_layers=2)
    np.testing.assert_array_equal(again.weight_hh_l1.numpy(), lstm.weight_hh_l1.numpy())


def test_fused_and_reference_layers_agree():
    tl.manual_seed(4)
    x = Tensor(RNG.standard_normal((2, 12, 3)).astype(np.float32))
    for layer_class, kwargs in [(RNN, {"nonlinearity": "relu"}), (RNN, {"nonlinearity":
                                "sigmoid"}), (LSTM, {}), (GRU, {})]:
        layer = layer_class(3, 4, num_layers=2, **kwargs)
        results = []
        for fused in (True, False):
            layer.fused = fused
            layer.zero_grad()
            out = layer(x)
            _sum_outputs(out).backward()
            results.append([out[0].numpy()] + [p.grad.numpy() for p in layer.parameters()])
        for a, b in zip(*results):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_dropout_between_layers_only_in_training():
    tl.manual_seed(5)
    layer = LSTM(2, 8, num_layers=2, dropout=0.5)
    x = Tensor(RNG.standard_normal((2, 4, 2)).astype(np.float32))
    a, b = layer(x)[0].numpy(), layer(x)[0].numpy()
    assert not np.allclose(a, b)
    layer.eval()
    np.testing.assert_array_equal(layer(x)[0].numpy(), layer(x)[0].numpy())


def test_errors_name_the_problem():
    layer = LSTM(3, 4, num_layers=2)
    with pytest.raises(ValueError, match="features=3"):
        layer(Tensor(np.zeros((2, 5, 7), np.float32)))
    with pytest.raises(ValueError, match=r"h_0 of shape \(2, 2, 4\)"):
        layer(Tensor(np.zeros((2, 5, 3), np.float32)),
              (Tensor(np.zeros((1, 2, 4), np.float32)), Tensor(np.zeros((2, 2, 4), np.float32))))
    with pytest.raises(ValueError, match="nonlinearity"):
        RNN(3, 4, nonlinearity="softplus")
    with pytest.raises(ValueError, match="dropout"):
        GRU(3, 4, dropout=1.5)
    with pytest.raises(ValueError, match="GRUCell"):
        GRUCell(3, 4)(Tensor(np.zeros((2, 5), np.float32)))
    assert "num_layers=2" in repr(layer)


# ---------------------------------------------------------------------- docs/rnn.md


def test_docs_page_code_runs(tmp_path, capsys):
    """The python blocks of docs/rnn.md run (figures go to a temporary folder)."""
    pytest.importorskip("torch")
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    text = open(os.path.join(ROOT, "docs", "rnn.md")).read()
    blocks = [block.split("```", 1)[0] for block in text.split("```python\n")[1:]]
    assert len(blocks) >= 3
    namespace = {}
    for block in blocks:
        exec(block.replace("docs/img/", f"{tmp_path}/"), namespace)  # noqa: S102
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "(8, 30, 16) (2, 8, 16) (2, 8, 16)"
    assert float(printed[1]) < 1e-5
    assert (tmp_path / "rnn_cell_unrolled.png").exists()


# ---------------------------------------------------------------------- the examples


def _load_example(name):
    path = os.path.join(ROOT, "examples", f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"_example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_noisy_sine_example_learns(tmp_path):
    results = _load_example("noisy_sine_rnn").main(["--quick", "--out", str(tmp_path)])
    assert results["loss"][-1] < results["initial_loss"] / 3
    assert results["test_mse"] < 0.5            # the noise variance is 1/3
    assert os.path.getsize(results["figure"]) > 1000


def test_pairing_example_beats_repeating_the_last_value(tmp_path):
    results = _load_example("pairing_extrapolation").main(
        ["--quick", "--out", str(tmp_path), "--models", "rnn,lstm_2layers,dnn2_gru2"])
    baseline = results["repeat_last"]["mse"]
    for name in ("rnn", "lstm_2layers", "dnn2_gru2"):
        assert results[name]["mse"] < baseline / 5, (name, results[name]["mse"], baseline)
        assert results[name]["loss"][-1] < results[name]["loss"][0]
    assert os.path.exists(results["figure"])
