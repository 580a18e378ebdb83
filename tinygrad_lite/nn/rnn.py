"""Recurrent layers: ``RNN``, ``LSTM``, ``GRU`` and their single-step cells.

A recurrent layer applies the *same* cell at every time step, feeding each step's
hidden state into the next::

    h_0 ──cell──> h_1 ──cell──> h_2 ──cell──> ... ──cell──> h_T
           ^             ^             ^                 ^
          x_1           x_2           x_3               x_T

Here the loop is written out in Python: every step adds its Tensor ops to the graph,
so after ``T`` steps the graph *is* the unrolled network above, and ``loss.backward()``
on it is backpropagation through time (BPTT) with nothing extra to write. The
gradient of a shared weight is the sum of its gradients at every step, which is what
the engine's accumulation of gradients reaching a tensor along several paths does.

What keeps the unrolled graph lean (``docs/rnn.md`` has the measurements):

* the input projection ``x_t W_ih^T + b`` does not depend on the hidden state, so it
  is computed for all time steps at once with one big matmul before the loop;
* inside the loop, all gates of a step come from *one* matmul ``h W_hh^T`` whose
  result is cut into the gates, and each cell's step is one fused graph node
  (:class:`LSTMStep`, :class:`GRUStep`, :class:`RNNStep`) whose forward and backward
  are written next to each other with the cell equations. The same equations written
  with ordinary Tensor ops (:func:`lstm_step` ...) are the readable reference the
  fused steps are tested against (``layer.fused = False`` unrolls with them);
* a zero initial state is passed to the steps as ``None``, so the first step skips its
  recurrent matmul, and for longer sequences W_hh^T is laid out row-major once.

Parameter names, layouts, gate order and initialisation follow PyTorch
(``weight_ih_l0`` of shape ``(gates * hidden, input)``, LSTM gates i, f, g, o; GRU
gates r, z, n; everything uniform in ``(-1/sqrt(hidden), 1/sqrt(hidden))``), so a
PyTorch ``state_dict`` loads and gives the same outputs.
"""

from __future__ import annotations

import math

import numpy as np

from ..autograd.function import Function
from ..autograd.mode import is_grad_enabled
from ..autograd.tensor import Tensor
from ..ops import creation, movement
from ..ops._common import wrap
from . import functional as F
from . import init
from .module import Module
from .parameter import Parameter

__all__ = ["RNNCell", "LSTMCell", "GRUCell", "RNN", "LSTM", "GRU",
           "rnn_step", "lstm_step", "gru_step", "RNNStep", "LSTMStep", "GRUStep",
           "Chunk", "Unbind", "Stack", "TransposeCopy"]

_ACTIVATIONS = ("tanh", "relu", "sigmoid")
#: From this many time steps on, W_hh^T is laid out row-major once per sequence.
_COPY_TRANSPOSE_MIN_STEPS = 8


# --------------------------------------------------------------------------- helpers


class Chunk(Function):
    """Cut ``x`` into ``chunks`` equal pieces along its last axis (one graph node).

    Used to split the stacked gate pre-activations ``(batch, 4 * hidden)`` into the
    four gates. Slicing four times would make four nodes whose backwards each
    scatter into a full-size zero array; one ``Chunk`` node concatenates the four
    gate gradients instead.
    """

    @staticmethod
    def forward(ctx, x, chunks):
        size = x.shape[-1] // chunks
        ctx.chunks = chunks
        return tuple(wrap(x.backend.getitem(x.data, (Ellipsis, slice(k * size, (k + 1) * size))),
                          x.backend) for k in range(chunks))

    @staticmethod
    def backward(ctx, *grads):
        """y_k = x[..., k*s:(k+1)*s]:  dL/dx = cat(dL/dy_0, ..., dL/dy_{K-1})."""
        return movement.cat(grads, -1), None


class Unbind(Function):
    """Split ``x`` along ``axis`` into its slices (one graph node for all time steps).

    ``x[t]`` in a loop would add one indexing node per step whose backward scatters
    into a zero array of the *whole* sequence: O(T^2) work for T steps. ``Unbind``
    does it in one node whose backward stacks the T gradients.
    """

    @staticmethod
    def forward(ctx, x, axis):
        ctx.axis = axis
        index = (slice(None),) * axis
        return tuple(wrap(x.backend.getitem(x.data, index + (t,)), x.backend)
                     for t in range(x.shape[axis]))

    @staticmethod
    def backward(ctx, *grads):
        """y_t = x[t]:  dL/dx = stack(dL/dy_0, ..., dL/dy_{T-1})."""
        return Stack.apply(ctx.axis, *grads), None


class Stack(Function):
    """Join equally shaped tensors along a new ``axis`` (one node; the inverse of Unbind).

    ``tl.stack`` adds an ``unsqueeze`` node per tensor before concatenating; the layers
    stack one hidden state per time step, so this saves T nodes each way.
    """

    @staticmethod
    def forward(ctx, axis, *tensors):
        ctx.axis = axis
        be = tensors[0].backend
        shape = tensors[0].shape
        expanded = shape[:axis] + (1,) + shape[axis:]
        return wrap(be.concatenate([be.reshape(t.data, expanded) for t in tensors], axis), be)

    @staticmethod
    def backward(ctx, g):
        """y = stack(x_0, ..., x_{T-1}):  dL/dx_t = (dL/dy)[t] along ``axis``."""
        return (None,) + tuple(Unbind.apply(g, ctx.axis))



# ------------------------------------------------------- reference steps (Tensor ops)
#
# ``gx`` is the input projection x_t W_ih^T + b_ih, computed before the loop; ``w_hh_t``
# is W_hh^T (transposed once per sequence, not once per step).


def rnn_step(gx: Tensor, h: Tensor, w_hh_t: Tensor, b_hh: Tensor | None,
             nonlinearity: str = "tanh") -> Tensor:
    """Elman RNN:  h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh)."""
    pre = gx + h @ w_hh_t
    if b_hh is not None:
        pre = pre + b_hh
    return getattr(pre, nonlinearity)()


def lstm_step(gx: Tensor, h: Tensor, c: Tensor, w_hh_t: Tensor,
              b_hh: Tensor | None) -> tuple[Tensor, Tensor]:
    """LSTM (gate order i, f, g, o as in PyTorch)::

        i = sigmoid(W_ii x + b_ii + W_hi h + b_hi)     input gate
        f = sigmoid(W_if x + b_if + W_hf h + b_hf)     forget gate
        g = tanh(W_ig x + b_ig + W_hg h + b_hg)        candidate cell
        o = sigmoid(W_io x + b_io + W_ho h + b_ho)     output gate
        c' = f * c + i * g
        h' = o * tanh(c')
    """
    gates = gx + h @ w_hh_t
    if b_hh is not None:
        gates = gates + b_hh
    i, f, g, o = Chunk.apply(gates, 4)
    i, f, g, o = i.sigmoid(), f.sigmoid(), g.tanh(), o.sigmoid()
    c_new = f * c + i * g
    return o * c_new.tanh(), c_new


def gru_step(gx: Tensor, h: Tensor, w_hh_t: Tensor, b_hh: Tensor | None) -> Tensor:
    """GRU (gate order r, z, n and PyTorch's formula)::

        r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)     reset gate
        z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)     update gate
        n = tanh(W_in x + b_in + r * (W_hn h + b_hn))  candidate
        h' = (1 - z) * n + z * h
    """
    gh = h @ w_hh_t
    if b_hh is not None:
        gh = gh + b_hh
    x_r, x_z, x_n = Chunk.apply(gx, 3)
    h_r, h_z, h_n = Chunk.apply(gh, 3)
    r = (x_r + h_r).sigmoid()
    z = (x_z + h_z).sigmoid()
    n = (x_n + r * h_n).tanh()
    return (1.0 - z) * n + z * h


def _lstm_gates(gx, h, c, w_hh_t):
    """The LSTM's gates and tanh(c') with Tensor ops (the fused step's recorded backward)."""
    a_i, a_f, a_g, a_o = Chunk.apply(gx + h @ w_hh_t, 4)
    i, f, g, o = a_i.sigmoid(), a_f.sigmoid(), a_g.tanh(), a_o.sigmoid()
    return i, f, g, o, (f * c + i * g).tanh()


def _gru_gates(gx, h, w_hh_t, b_hh):
    """The GRU's r, z, n and gh_n with Tensor ops (the fused step's recorded backward)."""
    gh = h @ w_hh_t
    if b_hh is not None:
        gh = gh + b_hh
    x_r, x_z, x_n = Chunk.apply(gx, 3)
    h_r, h_z, h_n = Chunk.apply(gh, 3)
    r, z = (x_r + h_r).sigmoid(), (x_z + h_z).sigmoid()
    return r, z, (x_n + r * h_n).tanh(), h_n


# ------------------------------------------------------------ fused steps (one node)
#
# The same equations as above, but each time step is one graph node: forward works on
# the backend arrays directly, and backward is the chain rule through the equations
# written out by hand. Bias b_hh is folded into gx by the layers (it is added at the
# same place every step), except for the GRU's b_hn, which sits inside r * (...).
#
# Each backward formula is written once, in a helper that only uses + - * @ and .T, so
# it runs on two kinds of operands:
#   * plain numpy arrays (the usual case): the activations saved by forward are reused
#     and there is no graph bookkeeping per multiplication, which is most of the cost
#     of a small step (see docs/rnn.md);
#   * Tensors, when the backward is itself being recorded (create_graph=True): the
#     activations are recomputed from the step's inputs with Tensor ops, so that the
#     gradient is a differentiable function of the inputs and gradients of gradients
#     work.


def _fast_path(*tensors) -> bool:
    """True when the backward may run on raw numpy arrays: nothing records it
    (no create_graph) and the data lives on the CPU."""
    return not is_grad_enabled() and all(isinstance(t.data, np.ndarray) for t in tensors)


def _raw(*tensors) -> list:
    return [None if t is None else t.data for t in tensors]


def _zero_state(gx: Tensor, w_hh_t: Tensor) -> Tensor:
    """Zeros of a hidden state's shape: the recorded backward's stand-in for ``h=None``."""
    return creation.zeros(gx.shape[0], w_hh_t.shape[0], dtype=gx.dtype, device=gx.device)


def _as_tensors(values, like: Tensor, ctx) -> tuple:
    """Wrap the raw arrays of the fast path back into Tensors (None stays None), with a
    None for each remaining (non-differentiable) input of the node."""
    values = tuple(values) + (None,) * (len(ctx.inputs) - len(values))
    return tuple(v if v is None or isinstance(v, Tensor) else wrap(v, like.backend)
                 for v in values)


def _sigmoid(be, a):
    """sigmoid(a) = (1 + tanh(a / 2)) / 2: stable for any a, one transcendental call."""
    return be.mul(be.add(be.tanh(be.mul(a, 0.5)), 1.0), 0.5)


class TransposeCopy(Function):
    """W^T of a 2-D weight as a new row-major array (one node, once per sequence).

    numpy's matmul reads a row-major right operand about twice as fast as a transposed
    view, and ``h @ W_hh^T`` runs at every step, so the layers lay W_hh^T out once.
    """

    @staticmethod
    def forward(ctx, w):
        be = w.backend
        return wrap(be.contiguous(be.transpose(w.data, (1, 0))), be)

    @staticmethod
    def backward(ctx, g):
        """y = W^T:  dL/dW = (dL/dy)^T."""
        return g.T


def _recurrent_product(g, w_hh_t, w_hh_rows):
    """g W_hh (the gradient reaching h through h W_hh^T), reading W_hh row-major if given."""
    if w_hh_rows is not None and not isinstance(g, Tensor):
        return g @ w_hh_rows
    return g @ w_hh_t.T


def _weight_grad(h, dgates, w_hh_t):
    """dL/dW_hh^T = h^T dgates; zeros for a zero initial state (h=None), as PyTorch gives."""
    if h is None:
        if isinstance(dgates, Tensor):
            return creation.zeros_like(w_hh_t)
        return np.zeros(w_hh_t.shape, dgates.dtype)
    return h.T @ dgates


def _activation_grad(g, y, nonlinearity):
    """dL/da for y = act(a), from the output y: tanh' = 1 - y^2, sigmoid' = y (1 - y),
    relu' = [y > 0]."""
    if nonlinearity == "tanh":
        return g * (1.0 - y * y)
    if nonlinearity == "sigmoid":
        return g * (y * (1.0 - y))
    return g * (y > 0).astype(y.dtype)


class RNNStep(Function):
    """h' = act(gx + h W_hh^T), act in {tanh, relu, sigmoid}, as one graph node.

    ``RNNStep.apply(gx, h, W_hh^T, nonlinearity, w_hh_rows=None)``: ``h=None`` means a
    zero state; ``w_hh_rows`` (W_hh's array, optional) lets the backward read W_hh
    row-major.
    """

    @staticmethod
    def forward(ctx, gx, h, w_hh_t, nonlinearity, w_hh_rows=None):
        be = gx.backend
        ctx.w_hh_rows = w_hh_rows
        # h=None is a zero initial state: the recurrent product is skipped.
        pre = gx.data if h is None else be.add(gx.data, be.matmul(h.data, w_hh_t.data))
        if nonlinearity == "sigmoid":
            out = _sigmoid(be, pre)
        else:
            out = be.tanh(pre) if nonlinearity == "tanh" else be.relu(pre)
        y = wrap(out, be)
        ctx.nonlinearity = nonlinearity
        ctx.save_for_backward(gx, h, w_hh_t, y)
        return y

    @staticmethod
    def backward(ctx, g):
        """With a = gx + h W_hh^T and h' = act(a):  da = g * act'(a), then
        dgx = da,  dh = da W_hh,  dW_hh^T = h^T da."""
        g_tensor = g
        gx, h, w_hh_t, y = ctx.saved_tensors
        if _fast_path(g, gx):
            g, h, w_hh_t, y = _raw(g, h, w_hh_t, y)
        else:  # recorded backward: recompute y with Tensor ops, so it joins the new graph
            h = _zero_state(gx, w_hh_t) if h is None else h
            y = rnn_step(gx, h, w_hh_t, None, ctx.nonlinearity)
        da = _activation_grad(g, y, ctx.nonlinearity)
        _, need_h, need_w = ctx.needs_input_grad[:3]
        grads = (da, _recurrent_product(da, w_hh_t, ctx.w_hh_rows) if need_h else None,
                 _weight_grad(h, da, w_hh_t) if need_w else None)
        return _as_tensors(grads, g_tensor, ctx)


def _lstm_grads(g_h, g_c, c, i, f, g, o, tanh_c, cat):
    """Chain rule through the LSTM equations, from dL/dh' and dL/dc' to the gates::

        dc' = g_c + g_h * o * (1 - tanh(c')^2)       (c' also reaches h')
        da_i = dc' * g * i (1 - i)                   (a_*: pre-activations)
        da_f = dc' * c * f (1 - f)
        da_g = dc' * i * (1 - g^2)
        da_o = g_h * tanh(c') * o (1 - o)
        dc = dc' * f
    Returns ``(dgates, dc)`` with dgates = [da_i | da_f | da_g | da_o].
    """
    dc_new = g_c + g_h * o * (1.0 - tanh_c * tanh_c)
    da_i = dc_new * g * i * (1.0 - i)
    da_f = dc_new * c * f * (1.0 - f)
    da_g = dc_new * i * (1.0 - g * g)
    da_o = g_h * tanh_c * o * (1.0 - o)
    return cat([da_i, da_f, da_g, da_o], -1), dc_new * f


class LSTMStep(Function):
    """One LSTM step as one node: ``(h', c') = LSTMStep(gx, h, c, W_hh^T)``.

    gates = gx + h W_hh^T = [a_i | a_f | a_g | a_o];  i, f, o = sigmoid(a_i, a_f, a_o),
    g = tanh(a_g);  c' = f * c + i * g;  h' = o * tanh(c').
    ``LSTMStep.apply(gx, h, c, W_hh^T, w_hh_rows=None)``; ``h = c = None`` is a zero state.
    """

    @staticmethod
    def forward(ctx, gx, h, c, w_hh_t, w_hh_rows=None):
        be = gx.backend
        ctx.w_hh_rows = w_hh_rows
        # h=None and c=None are a zero initial state: the recurrent product is skipped.
        gates = gx.data if h is None else be.add(gx.data, be.matmul(h.data, w_hh_t.data))
        n = gates.shape[-1] // 4
        i_f = _sigmoid(be, be.getitem(gates, (Ellipsis, slice(0, 2 * n))))
        i = be.getitem(i_f, (Ellipsis, slice(0, n)))
        f = be.getitem(i_f, (Ellipsis, slice(n, 2 * n)))
        g = be.tanh(be.getitem(gates, (Ellipsis, slice(2 * n, 3 * n))))
        o = _sigmoid(be, be.getitem(gates, (Ellipsis, slice(3 * n, 4 * n))))
        c_new = be.mul(i, g) if c is None else be.add(be.mul(f, c.data), be.mul(i, g))
        tanh_c = be.tanh(c_new)
        h_new = be.mul(o, tanh_c)
        ctx.save_for_backward(gx, h, c, w_hh_t, *(wrap(a, be) for a in (i, f, g, o, tanh_c)))
        return wrap(h_new, be), wrap(c_new, be)

    @staticmethod
    def backward(ctx, g_h, g_c):
        """dgates and dc from :func:`_lstm_grads`; then, as for any x W^T product,
        dgx = dgates,  dh = dgates W_hh,  dW_hh^T = h^T dgates."""
        like = g_h
        gx, h, c, w_hh_t, i, f, g, o, tanh_c = ctx.saved_tensors
        if _fast_path(g_h, g_c, gx):
            g_h, g_c, h, c, w_hh_t, i, f, g, o, tanh_c = _raw(g_h, g_c, h, c, w_hh_t, i, f, g,
                                                             o, tanh_c)
            cat = np.concatenate
        else:  # recorded backward: recompute the gates with Tensor ops
            h = _zero_state(gx, w_hh_t) if h is None else h
            c = _zero_state(gx, w_hh_t) if c is None else c
            i, f, g, o, tanh_c = _lstm_gates(gx, h, c, w_hh_t)
            cat = movement.cat
        dgates, dc = _lstm_grads(g_h, g_c, 0.0 if c is None else c, i, f, g, o, tanh_c, cat)
        _, need_h, need_c, need_w = ctx.needs_input_grad[:4]
        grads = (dgates, _recurrent_product(dgates, w_hh_t, ctx.w_hh_rows) if need_h else None,
                 dc if need_c else None, _weight_grad(h, dgates, w_hh_t) if need_w else None)
        return _as_tensors(grads, like, ctx)


def _gru_grads(g_h, h, r, z, n, gh_n, cat):
    """Chain rule through the GRU equations (a_r, a_z, a_n: pre-activations)::

        da_n = g_h * (1 - z) * (1 - n^2)
        da_r = da_n * gh_n * r (1 - r)          (a_n = gx_n + r * gh_n)
        da_z = g_h * (h - n) * z (1 - z)
        dgx = [da_r | da_z | da_n],   dgh = [da_r | da_z | da_n * r]
        dh (direct path through z * h) = g_h * z
    Returns ``(dgx, dgh, dh_direct)``.
    """
    da_n = g_h * (1.0 - z) * (1.0 - n * n)
    da_r = da_n * gh_n * r * (1.0 - r)
    da_z = g_h * (h - n) * z * (1.0 - z)
    return cat([da_r, da_z, da_n], -1), cat([da_r, da_z, da_n * r], -1), g_h * z


class GRUStep(Function):
    """One GRU step as one node: ``h' = GRUStep(gx, h, W_hh^T, b_hh)``.

    gh = h W_hh^T + b_hh;  r = sigmoid(gx_r + gh_r);  z = sigmoid(gx_z + gh_z);
    n = tanh(gx_n + r * gh_n);  h' = (1 - z) * n + z * h = n + z * (h - n).
    ``GRUStep.apply(gx, h, W_hh^T, b_hh, w_hh_rows=None)``; ``h=None`` is a zero state.
    """

    @staticmethod
    def forward(ctx, gx, h, w_hh_t, b_hh, w_hh_rows=None):
        be = gx.backend
        ctx.w_hh_rows = w_hh_rows
        # h=None is a zero initial state: the recurrent product is skipped.
        if h is None:
            gh = be.zeros(gx.shape, gx.dtype)
        else:
            gh = be.matmul(h.data, w_hh_t.data)
        if b_hh is not None:
            gh = be.add(gh, b_hh.data)
        k = gh.shape[-1] // 3
        first, last = (Ellipsis, slice(0, 2 * k)), (Ellipsis, slice(2 * k, 3 * k))
        rz = _sigmoid(be, be.add(be.getitem(gx.data, first), be.getitem(gh, first)))
        r = be.getitem(rz, (Ellipsis, slice(0, k)))
        z = be.getitem(rz, (Ellipsis, slice(k, 2 * k)))
        gh_n = be.getitem(gh, last)
        n = be.tanh(be.add(be.getitem(gx.data, last), be.mul(r, gh_n)))
        h_new = be.add(n, be.mul(z, be.sub(0.0 if h is None else h.data, n)))
        ctx.b_hh = b_hh
        ctx.save_for_backward(gx, h, w_hh_t, *(wrap(a, be) for a in (r, z, n, gh_n)))
        return wrap(h_new, be)

    @staticmethod
    def backward(ctx, g_h):
        """dgx, dgh from :func:`_gru_grads`; then dh = g_h * z + dgh W_hh,
        dW_hh^T = h^T dgh,  db_hh = dgh (summed over the batch by the engine)."""
        like = g_h
        gx, h, w_hh_t, r, z, n, gh_n = ctx.saved_tensors
        if _fast_path(g_h, gx):
            g_h, h, w_hh_t, r, z, n, gh_n = _raw(g_h, h, w_hh_t, r, z, n, gh_n)
            cat = np.concatenate
        else:  # recorded backward: recompute the gates with Tensor ops
            h = _zero_state(gx, w_hh_t) if h is None else h
            r, z, n, gh_n = _gru_gates(gx, h, w_hh_t, ctx.b_hh)
            cat = movement.cat
        dgx, dgh, dh_direct = _gru_grads(g_h, 0.0 if h is None else h, r, z, n, gh_n, cat)
        _, need_h, need_w, need_b = ctx.needs_input_grad[:4]
        grads = (dgx,
                 dh_direct + _recurrent_product(dgh, w_hh_t, ctx.w_hh_rows) if need_h else None,
                 _weight_grad(h, dgh, w_hh_t) if need_w else None, dgh if need_b else None)
        return _as_tensors(grads, like, ctx)


# ----------------------------------------------------------------------------- cells


def _check_nonlinearity(nonlinearity):
    if nonlinearity not in _ACTIVATIONS:
        raise ValueError(f"nonlinearity must be one of {_ACTIVATIONS}, got {nonlinearity!r}")


def _reset_uniform(module: Module, hidden_size: int) -> None:
    """PyTorch's default for every recurrent weight and bias: U(-1/sqrt(H), 1/sqrt(H))."""
    bound = 1.0 / math.sqrt(hidden_size)
    for param in module.parameters():
        init.uniform_(param, -bound, bound)


class _CellBase(Module):
    """Shared parameters of the cells: W_ih ``(G*H, I)``, W_hh ``(G*H, H)``, b_ih, b_hh."""

    gates = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 dtype=None, device: str = "cpu"):
        super().__init__()
        if input_size <= 0 or hidden_size <= 0:
            raise ValueError(f"{type(self).__name__}: sizes must be positive, got "
                             f"input_size={input_size}, hidden_size={hidden_size}")
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        rows = self.gates * hidden_size
        self.weight_ih = Parameter(creation.zeros(rows, input_size, dtype=dtype, device=device))
        self.weight_hh = Parameter(creation.zeros(rows, hidden_size, dtype=dtype, device=device))
        if bias:
            self.bias_ih = Parameter(creation.zeros(rows, dtype=dtype, device=device))
            self.bias_hh = Parameter(creation.zeros(rows, dtype=dtype, device=device))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _reset_uniform(self, self.hidden_size)

    def _prepare(self, x: Tensor):
        """Check shapes; add a batch axis to unbatched input; return ``(x, gx, unbatched)``."""
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_size:
            raise ValueError(f"{type(self).__name__}: expected input of shape (batch, "
                             f"{self.input_size}) or ({self.input_size},), got {x.shape}")
        unbatched = x.ndim == 1
        if unbatched:
            x = x.unsqueeze(0)
        return x, F.linear(x, self.weight_ih, self.bias_ih), unbatched

    def _state(self, state, x: Tensor, unbatched: bool) -> Tensor:
        if state is None:
            return creation.zeros(x.shape[0], self.hidden_size, dtype=x.dtype, device=x.device)
        if unbatched:
            state = state.unsqueeze(0)
        if state.shape != (x.shape[0], self.hidden_size):
            raise ValueError(f"{type(self).__name__}: expected a state of shape "
                             f"{(x.shape[0], self.hidden_size)}, got {state.shape}")
        return state

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


class RNNCell(_CellBase):
    """Elman cell: ``h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)`` (or relu).

    ``cell(x, h=None)``: x ``(batch, input_size)`` or ``(input_size,)``, h of the same
    batch shape with ``hidden_size`` features (zeros when omitted). Returns h'.
    ``nonlinearity="sigmoid"`` is an extension (PyTorch has tanh and relu; Keras'
    SimpleRNN in the lecture notes also uses sigmoid).
    """

    gates = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", dtype=None, device: str = "cpu"):
        _check_nonlinearity(nonlinearity)
        super().__init__(input_size, hidden_size, bias, dtype, device)
        self.nonlinearity = nonlinearity

    def forward(self, x: Tensor, h: Tensor | None = None) -> Tensor:
        x, gx, unbatched = self._prepare(x)
        h = self._state(h, x, unbatched)
        out = rnn_step(gx, h, self.weight_hh.T, self.bias_hh, self.nonlinearity)
        return out.squeeze(0) if unbatched else out

    def extra_repr(self) -> str:
        return super().extra_repr() + f", nonlinearity={self.nonlinearity!r}"


class LSTMCell(_CellBase):
    """LSTM cell: ``h', c' = cell(x, (h, c))``; the equations are in :func:`lstm_step`.

    Weights stack the gates in PyTorch's order i, f, g, o: ``weight_ih`` is
    ``(4 * hidden, input)``. ``(h, c)`` default to zeros.
    """

    gates = 4

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor] | None = None):
        x, gx, unbatched = self._prepare(x)
        h, c = (None, None) if state is None else state
        h, c = self._state(h, x, unbatched), self._state(c, x, unbatched)
        h_new, c_new = lstm_step(gx, h, c, self.weight_hh.T, self.bias_hh)
        if unbatched:
            return h_new.squeeze(0), c_new.squeeze(0)
        return h_new, c_new


class GRUCell(_CellBase):
    """GRU cell: ``h' = cell(x, h)``; the equations are in :func:`gru_step`.

    Weights stack the gates in PyTorch's order r, z, n: ``weight_ih`` is
    ``(3 * hidden, input)``.
    """

    gates = 3

    def forward(self, x: Tensor, h: Tensor | None = None) -> Tensor:
        x, gx, unbatched = self._prepare(x)
        h = self._state(h, x, unbatched)
        out = gru_step(gx, h, self.weight_hh.T, self.bias_hh)
        return out.squeeze(0) if unbatched else out


# ---------------------------------------------------------------------------- layers


class _RNNBase(Module):
    """A stack of ``num_layers`` recurrent layers unrolled over the sequence.

    Parameters of layer ``l`` are ``weight_ih_l{l}``, ``weight_hh_l{l}``,
    ``bias_ih_l{l}``, ``bias_hh_l{l}`` as in PyTorch; layer 0 reads ``input_size``
    features, the others the ``hidden_size`` outputs of the layer below.
    """

    gates = 1
    has_cell_state = False
    #: One fused graph node per time step (fast). Set to False on an instance to unroll
    #: with the reference Tensor-op steps instead (rnn_step, lstm_step, gru_step).
    fused = True

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = True, dropout: float = 0.0,
                 dtype=None, device: str = "cpu"):
        super().__init__()
        if input_size <= 0 or hidden_size <= 0 or num_layers <= 0:
            raise ValueError(f"{type(self).__name__}: input_size, hidden_size and num_layers "
                             f"must be positive, got {input_size}, {hidden_size}, {num_layers}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"{type(self).__name__}: dropout must be in [0, 1), got {dropout}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        rows = self.gates * hidden_size
        for layer in range(num_layers):
            width = input_size if layer == 0 else hidden_size
            setattr(self, f"weight_ih_l{layer}",
                    Parameter(creation.zeros(rows, width, dtype=dtype, device=device)))
            setattr(self, f"weight_hh_l{layer}",
                    Parameter(creation.zeros(rows, hidden_size, dtype=dtype, device=device)))
            if bias:
                setattr(self, f"bias_ih_l{layer}",
                        Parameter(creation.zeros(rows, dtype=dtype, device=device)))
                setattr(self, f"bias_hh_l{layer}",
                        Parameter(creation.zeros(rows, dtype=dtype, device=device)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _reset_uniform(self, self.hidden_size)

    def _weights(self, layer: int):
        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        return tuple(getattr(self, f"{name}_l{layer}", None) for name in names)

    # ------------------------------------------------------------------ forward
    def _check_input(self, x: Tensor):
        if x.ndim not in (2, 3) or x.shape[-1] != self.input_size:
            layout = "(batch, seq, features)" if self.batch_first else "(seq, batch, features)"
            raise ValueError(f"{type(self).__name__}: expected input of shape {layout} or "
                             f"(seq, features) with features={self.input_size}, got {x.shape}")
        if x.shape[-2 if x.ndim == 2 else (1 if self.batch_first else 0)] == 0:
            raise ValueError(f"{type(self).__name__}: the sequence is empty (shape {x.shape})")

    def _initial(self, state, batch: int, unbatched: bool, like: Tensor, what: str):
        """The initial state as a list of ``(batch, hidden)`` tensors, one per layer."""
        if state is None:
            if self.fused:          # the fused steps read None as a zero state, for free
                return [None] * self.num_layers
            zero = creation.zeros(batch, self.hidden_size, dtype=like.dtype, device=like.device)
            return [zero] * self.num_layers
        if unbatched:
            state = state.unsqueeze(1)
        expected = (self.num_layers, batch, self.hidden_size)
        if state.shape != expected:
            raise ValueError(f"{type(self).__name__}: expected {what} of shape {expected} "
                             f"(num_layers, batch, hidden_size), got {state.shape}")
        return list(Unbind.apply(state, 0)) if self.num_layers > 1 else [state.squeeze(0)]

    def forward(self, x: Tensor, state=None):
        """Run the whole sequence; returns ``(output, h_n)`` (LSTM: ``(output, (h_n, c_n))``).

        x: ``(batch, seq, input_size)`` when ``batch_first`` (the default here, as in
        Keras), ``(seq, batch, input_size)`` otherwise, or unbatched ``(seq, input_size)``.
        output: the last layer's hidden state at every step, in the input's layout.
        h_n (and c_n): ``(num_layers, batch, hidden_size)``, the final states of every layer.
        """
        self._check_input(x)
        unbatched = x.ndim == 2
        # The layout is kept as given (no transposes): time is axis 1 when batch_first.
        if unbatched:
            seq, time_axis = x.unsqueeze(1), 0              # (seq, 1, features)
        else:
            seq, time_axis = x, (1 if self.batch_first else 0)
        batch = seq.shape[1 - time_axis]
        if self.has_cell_state:
            h0, c0 = (None, None) if state is None else state
            hs = self._initial(h0, batch, unbatched, x, "h_0")
            cs = self._initial(c0, batch, unbatched, x, "c_0")
        else:
            hs = self._initial(state, batch, unbatched, x, "h_0")
            cs = [None] * self.num_layers

        layer_input = seq
        final_h, final_c = [], []
        for layer in range(self.num_layers):
            if layer > 0 and self.dropout > 0.0 and self.training:
                layer_input = _dropout(layer_input, self.dropout)
            outputs, h_last, c_last = self._run_layer(layer, layer_input, time_axis, hs[layer],
                                                      cs[layer])
            layer_input = Stack.apply(time_axis, *outputs)      # the input's layout
            final_h.append(h_last)
            final_c.append(c_last)

        output = layer_input
        h_n = Stack.apply(0, *final_h)
        c_n = Stack.apply(0, *final_c) if self.has_cell_state else None
        if unbatched:
            output, h_n = output.squeeze(1), h_n.squeeze(1)
            c_n = c_n.squeeze(1) if c_n is not None else None
        return output, ((h_n, c_n) if self.has_cell_state else h_n)

    def _input_projection(self, layer: int, seq: Tensor, time_axis: int,
                          fold_hh_bias: bool) -> list:
        """x_t W_ih^T + b for every step at once: one ``(..., in) @ (in, G*H)`` matmul.

        With ``fold_hh_bias`` the recurrent bias b_hh is added here too (it is added at
        the same place at every step). Returns the per-step projections, each
        ``(batch, G*H)``, cut out along ``time_axis`` by one :class:`Unbind` node.
        """
        w_ih, _, b_ih, b_hh = self._weights(layer)
        bias = b_ih + b_hh if fold_hh_bias and b_ih is not None else b_ih
        gx = F.linear(seq, w_ih, bias)                  # (first, second, G*H), one node
        return list(Unbind.apply(gx, time_axis))

    def _recurrent_weight(self, w_hh: Tensor, steps: int):
        """(W_hh^T, W_hh's raw array or None) for the steps.

        For a long fused sequence W_hh^T is copied into row-major order once (it pays
        back after a few steps); for a short one, or the reference steps, it is a view.
        """
        if self.fused and steps >= _COPY_TRANSPOSE_MIN_STEPS:
            return TransposeCopy.apply(w_hh), w_hh.data
        return w_hh.T, None

    def _run_layer(self, layer, seq, time_axis, h, c):  # pragma: no cover - abstract
        raise NotImplementedError

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            text += f", num_layers={self.num_layers}"
        if not self.bias:
            text += ", bias=False"
        if not self.batch_first:
            text += ", batch_first=False"
        if self.dropout:
            text += f", dropout={self.dropout}"
        return text


def _dropout(x: Tensor, p: float) -> Tensor:
    """Inverted dropout between stacked layers (training only)."""
    keep = creation.rand(*x.shape, dtype=x.dtype, device=x.device).data >= p
    mask = wrap(x.backend.astype(keep, x.dtype), x.backend)
    return x * mask * (1.0 / (1.0 - p))


class RNN(_RNNBase):
    """Elman RNN: ``h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)`` (or relu).

    ``RNN(input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
    batch_first=True, dropout=0.0)``; ``rnn(x, h_0=None) -> (output, h_n)``. This is the
    lecture notes' (Keras) ``SimpleRNN``; its ``return_sequences=False`` output is
    ``output[:, -1]`` (or ``h_n[-1]``). ``nonlinearity="sigmoid"`` is an extension.
    """

    gates = 1

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = True,
                 dropout: float = 0.0, dtype=None, device: str = "cpu"):
        _check_nonlinearity(nonlinearity)
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         dtype, device)
        self.nonlinearity = nonlinearity

    def _run_layer(self, layer, seq, time_axis, h, c):
        w_hh = self._weights(layer)[1]
        w_hh_t, rows = self._recurrent_weight(w_hh, seq.shape[time_axis])
        outputs = []
        for gx in self._input_projection(layer, seq, time_axis, fold_hh_bias=True):
            if self.fused:
                h = RNNStep.apply(gx, h, w_hh_t, self.nonlinearity, rows)
            else:
                h = rnn_step(gx, h, w_hh_t, None, self.nonlinearity)
            outputs.append(h)
        return outputs, h, None

    def extra_repr(self) -> str:
        return super().extra_repr() + f", nonlinearity={self.nonlinearity!r}"


class LSTM(_RNNBase):
    """Long short-term memory: ``lstm(x, (h_0, c_0)=None) -> (output, (h_n, c_n))``.

    The cell equations (gate order i, f, g, o) are in :func:`lstm_step`; each step
    runs as one :class:`LSTMStep` node.
    """

    gates = 4
    has_cell_state = True

    def _run_layer(self, layer, seq, time_axis, h, c):
        w_hh = self._weights(layer)[1]
        w_hh_t, rows = self._recurrent_weight(w_hh, seq.shape[time_axis])
        outputs = []
        for gx in self._input_projection(layer, seq, time_axis, fold_hh_bias=True):
            if self.fused:
                h, c = LSTMStep.apply(gx, h, c, w_hh_t, rows)
            else:
                h, c = lstm_step(gx, h, c, w_hh_t, None)
            outputs.append(h)
        return outputs, h, c


class GRU(_RNNBase):
    """Gated recurrent unit: ``gru(x, h_0=None) -> (output, h_n)``.

    The cell equations (gate order r, z, n; PyTorch's n = tanh(W_in x + b_in +
    r * (W_hn h + b_hn))) are in :func:`gru_step`; each step is one :class:`GRUStep` node.
    """

    gates = 3

    def _run_layer(self, layer, seq, time_axis, h, c):
        _, w_hh, _, b_hh = self._weights(layer)
        w_hh_t, rows = self._recurrent_weight(w_hh, seq.shape[time_axis])
        outputs = []
        for gx in self._input_projection(layer, seq, time_axis, fold_hh_bias=False):
            if self.fused:
                h = GRUStep.apply(gx, h, w_hh_t, b_hh, rows)
            else:
                h = gru_step(gx, h, w_hh_t, b_hh)
            outputs.append(h)
        return outputs, h, None
