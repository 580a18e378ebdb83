"""Fused ops: a few compound operations recorded as ONE graph node each.

``F.linear`` could be written ``x @ W.T + b`` (three nodes: transpose, matmul, add)
and ``F.cross_entropy`` as ``-(y * log_softmax(z)).sum(-1).mean()`` (about ten
nodes). Both are correct, since composite ops get their gradient for free, but every
node costs a few microseconds of Python bookkeeping, which dominates a small network
trained one sample at a time (the lecture notes' 64-50-10 MLP). The ops here do the
same maths in a single :class:`Function` with a hand-written backward:

* ``LinearFunction``: x W^T + b (``F.linear``, ``nn.Linear``);
* ``LinearActivation``: f(x W^T + b) for f = sigmoid, tanh or relu, a layer and its
  activation as one node (``F.linear_activation``; ``nn.Sequential`` uses it for a
  ``Linear`` followed by ``Sigmoid``, ``Tanh`` or ``ReLU``);
* ``SoftmaxCrossEntropy``: log_softmax + negative log-likelihood (``F.cross_entropy``);
* ``BinaryCrossEntropy``, ``BinaryCrossEntropyWithLogits`` (``F.binary_cross_entropy*``);
* ``SigmoidFunction``: the ops layer's sigmoid with a backward that skips the graph
  (``F.sigmoid``, ``nn.Sigmoid``).

Each backward has two paths that compute the same formula:

* the *fast path* (the usual case, ``backward()`` without ``create_graph``) works on
  the backend's raw arrays: no graph, no per-op overhead;
* the *differentiable path* (``create_graph=True``, so grad mode is on inside
  backward) writes the formula with Tensor ops, so gradients of gradients work.

Every op here has its own float64 gradcheck in ``tests/nn/test_fused.py``; the two
losses whose naive compositions misbehave at the edges (BCE at p = 0 or 1, BCE with
logits at x = 0 where |x| has a kink) also get PyTorch's exact backward formula.
"""

from __future__ import annotations

import math

from ..autograd.function import Function
from ..autograd.mode import state
from ..autograd.tensor import Tensor
from ._common import wrap
from .elementwise import _expm1, where

REDUCTIONS = ("mean", "sum", "none")

# log(p) is clamped to >= -100 (as PyTorch); taking the log of max(p, _TINY) first keeps
# log(0) = -inf (and numpy's divide-by-zero warning) out of the computation.
_TINY = 3e-44  # just below e^-100 = 3.7e-44, still a (subnormal) float32


def _clamped_log(backend, p):
    """max(log p, -100) for p >= 0, without ever evaluating log(0)."""
    return backend.maximum(backend.log(backend.maximum(p, _TINY)), -100.0)


def _clamped_log1m(backend, p):
    """max(log(1 - p), -100) for 0 <= p <= 1, to a few ulp also for tiny p.

    q = 1 - p rounds (to 1 for p < eps / 2, whose log(1 - p) ~ -p would come out 0), but
    its rounding error d = (q - 1) + p is computed exactly, and log(1 - p) = log(q - d)
    = log q - d / q to first order. From p = 1/2 on q is exact and d = 0; at p = 1 the
    clamp q >= _TINY keeps log(0) out, as in ``_clamped_log``.
    """
    q = backend.sub(1.0, p)
    d = backend.add(backend.sub(q, 1.0), p)
    q = backend.maximum(q, _TINY)
    return backend.maximum(backend.sub(backend.log(q), backend.div(d, q)), -100.0)


def _log1p(backend, x):
    """log(1 + x), through the backend's optional ``log1p`` primitive when it has one:
    log(1 + x) rounds 1 + x first, so it is 0 for |x| < eps / 2 and loses relative
    accuracy well before."""
    log1p = getattr(backend, "log1p", None)
    return log1p(x) if log1p is not None else backend.log(backend.add(1.0, x))


# Constant arrays the fused ops multiply by or index with, made once per (backend,
# shape, dtype): the same few shapes (the batch size, the number of classes) come back
# every training step. Nothing ever writes into them. Bounded: cleared when full.
_CONSTANTS: dict = {}


def _constant(backend, kind: str, length: int, dtype, column: bool = False, step: int = 1):
    """A cached ``ones`` vector (or column), ``mean`` vector (1/length each) or ``arange``
    of ``length`` elements (0, step, 2 step, ...)."""
    key = (kind, length, column, dtype, backend, step)
    array = _CONSTANTS.get(key)
    if array is None:
        if len(_CONSTANTS) >= 64:
            _CONSTANTS.clear()
        if kind == "ones":
            array = backend.full((length, 1) if column else (length,), 1, dtype)
        elif kind == "mean":  # the weights of a mean, 1/N each
            array = backend.full((length,), 1.0 / max(length, 1), dtype)
        else:
            array = backend.arange(0, length * step, step, dtype)
        _CONSTANTS[key] = array
    return array


def _ones(backend, length: int, dtype):
    """``_constant(backend, "ones", length, dtype)``, with a shorter key to look up: the
    bias gradient of every linear layer asks for it, every step."""
    array = _CONSTANTS.get((length, dtype, backend))
    if array is None:
        array = _CONSTANTS[(length, dtype, backend)] = _constant(backend, "ones", length, dtype)
    return array


def _reduce(backend, losses, reduction: str):
    """Reduce a vector of per-sample losses (a raw array).

    The sum, or the mean, is one dot product with a cached vector of ones, or of 1/N
    (rounded to the losses' dtype, as the old multiply of the total by 1/N rounded it):
    a single BLAS call, where a reduction followed by a multiply of the 0-d total cost
    about 2 us more at the digits network's sizes (numpy's arithmetic on 0-d arrays is
    slow).
    """
    if reduction == "none":
        return losses
    if len(losses.shape) != 1:  # (elementwise losses of any shape: BCE)
        losses = backend.reshape(losses, (-1,))
    weights = _constant(backend, "ones" if reduction == "sum" else "mean", losses.shape[0],
                        losses.dtype)
    return backend.matmul(weights, losses)


def _grad_scale(g: Tensor, reduction: str, count: int):
    """dL/d(loss_i) for every element: g spread back over what the reduction removed.

    mean: g / count for every element; sum: g; none: g itself (already per element).
    A Tensor on the differentiable path; on the fast path a raw array, or a Python
    number for the gradient of a reduced loss on the host (numpy's arithmetic with 0-d
    arrays costs about a microsecond more per call than with a number; on a GPU,
    reading the number would be a synchronisation).
    """
    if state.grad_enabled:
        return g * (1.0 / count) if reduction == "mean" else g
    backend, data = g.backend, g.data
    if not data.shape and backend.device == "cpu":
        data = backend.item(data)
        return data * (1.0 / count) if reduction == "mean" else data
    return backend.mul(data, 1.0 / count) if reduction == "mean" else data


# ------------------------------------------------------------------------- linear


class LinearFunction(Function):
    """y = x W^T + b as one node, with x of shape (..., in) and W (out, in)."""

    fresh_gradients = True  # the fast path's matmul / sum results are new arrays

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return wrap(_affine(x, weight, bias), x.backend)

    @staticmethod
    def backward(ctx, g):
        """y = x W^T + b, with G = dL/dy:

        dL/dx = G W,   dL/dW = G^T x (summed over every leading axis),   dL/db = sum_rows G.

        These are the lecture notes' backprop equations: the error delta of the layer
        (G) times the previous layer's activations gives the weight gradient, and the
        error propagated back one layer is G W.
        """
        x, weight = ctx.saved_tensors
        if state.grad_enabled:  # create_graph: differentiable Tensor ops
            return _linear_backward(ctx, g, x, weight)
        return _linear_backward_arrays(ctx, g.data, x, weight)


def _affine(x, weight, bias):
    """The raw array x W^T + b."""
    backend = x.backend
    y = backend.matmul(x.data, backend.transpose(weight.data, (1, 0)))
    if bias is not None:
        add_ = getattr(backend, "add_", None)  # optional in-place primitive
        if add_ is not None and y.dtype == bias.data.dtype:
            add_(y, bias.data)  # y is new: add into it, no second (N, out) array
        else:
            y = backend.add(y, bias.data)
    return y


def _linear_backward(ctx, g, x, weight):
    """(dL/dx, dL/dW, dL/db) of y = x W^T + b from G = dL/dy (see ``LinearFunction``),
    with Tensor ops (grad mode on, ``create_graph``: differentiable again).

    Without ``create_graph`` the callers use ``_linear_backward_arrays``, the same
    formulas on the raw arrays.
    """
    need_x, need_w, need_b = ctx.needs_input_grad[:3]
    g2 = g.reshape(-1, g.shape[-1])
    x2 = x.reshape(-1, x.shape[-1])
    grad_x = g @ weight if need_x else None
    grad_w = g2.T @ x2 if need_w else None
    grad_b = g2.sum(0) if need_b and ctx.has_bias else None
    return grad_x, grad_w, grad_b


def _linear_backward_arrays(ctx, gd, x, weight):
    """``_linear_backward`` on raw arrays (the fast path: no graph is recorded), from the
    array ``gd`` of G; returns Tensors."""
    need_x, need_w, need_b = ctx.needs_input_grad[:3]
    backend = x.backend
    grad_x = grad_w = grad_b = None
    if need_x:
        grad_x = wrap(backend.matmul(gd, weight.data), backend)
    xd = x.data
    if len(gd.shape) != 2:  # every leading axis of (..., out) is a batch axis
        gd = backend.reshape(gd, (-1, gd.shape[-1]))
        xd = backend.reshape(xd, (-1, xd.shape[-1]))
    if need_w:
        grad_w = wrap(backend.matmul(backend.transpose(gd, (1, 0)), xd), backend)
    if need_b and ctx.has_bias:
        # The sum over rows is a product with a row of ones, 1^T G: one BLAS call,
        # several times faster than numpy's row-by-row reduction at these sizes.
        grad_b = wrap(backend.matmul(_ones(backend, gd.shape[0], gd.dtype), gd), backend)
    return grad_x, grad_w, grad_b


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``x @ weight.T + bias`` recorded as one node (shapes are checked by the caller)."""
    return LinearFunction.apply(x, weight, bias)


# ---------------------------------------------------------- linear + activation
# Each activation: its forward on raw arrays, and its slope f'(z) written in terms of
# the output a = f(z), once on raw arrays (fast path) and once with Tensor ops (so that
# create_graph differentiates through a). The formulas are the ones of the separate
# Sigmoid, Tanh and ReLU nodes, so fused and unfused networks compute the same numbers.


def _sigmoid_slope(backend, a):
    return backend.mul(a, backend.sub(1.0, a))          # sigma'(z) = a (1 - a)


def _tanh_slope(backend, a):
    return backend.sub(1.0, backend.mul(a, a))          # tanh'(z) = 1 - a^2


def _relu_slope(backend, a):
    return backend.astype(backend.gt(a, 0), a.dtype)    # relu'(z) = [z > 0] = [a > 0]


ACTIVATIONS = {
    # name: (f on raw arrays, f' from a on raw arrays, f' from a with Tensor ops)
    "sigmoid": (lambda backend, z: backend.sigmoid(z), _sigmoid_slope,
                lambda a: a * (1.0 - a)),
    "tanh": (lambda backend, z: backend.tanh(z), _tanh_slope, lambda a: 1.0 - a * a),
    "relu": (lambda backend, z: backend.relu(z), _relu_slope,
             lambda a: (a > 0).astype(a.dtype)),
}


class LinearActivation(Function):
    """a = f(x W^T + b): a Linear layer and its activation as one graph node.

    Saves a node (and its Python bookkeeping, ~5 us) per hidden layer of an MLP; the
    arithmetic is exactly that of ``LinearFunction`` followed by the activation's own
    node. ``activation`` is a key of :data:`ACTIVATIONS`.
    """

    fresh_gradients = True

    @staticmethod
    def forward(ctx, x, weight, bias, activation):
        backend = x.backend
        out = wrap(ACTIVATIONS[activation][0](backend, _affine(x, weight, bias)), backend)
        ctx.save_for_backward(x, weight, out)
        ctx.has_bias = bias is not None
        ctx.activation = activation
        return out

    @staticmethod
    def backward(ctx, g):
        """a = f(z), z = x W^T + b, with G = dL/da:

        dL/dz = G * f'(z),  then Linear's equations with dL/dz in place of G:
        dL/dx = dL/dz W,  dL/dW = (dL/dz)^T x,  dL/db = sum_rows dL/dz.

        This is the lecture notes' recursion for the hidden layers' error,
        delta^l = (delta^(l+1) W^(l+1)) * sigma'(z^l): ``g`` arrives as
        delta^(l+1) W^(l+1) and is multiplied by the activation's slope, which sigmoid,
        tanh and relu can all express through their output a (so z need not be kept).
        """
        x, weight, a = ctx.saved_tensors
        _, slope, tensor_slope = ACTIVATIONS[ctx.activation]
        if state.grad_enabled:  # create_graph: through a, so second derivatives work
            return (*_linear_backward(ctx, g * tensor_slope(a), x, weight), None)
        backend = a.backend
        grad_z = backend.mul(g.data, slope(backend, a.data))
        return (*_linear_backward_arrays(ctx, grad_z, x, weight), None)


def linear_activation(x: Tensor, weight: Tensor, bias: Tensor | None,
                      activation: str) -> Tensor:
    """``f(x @ weight.T + bias)`` as one node (shapes are checked by the caller)."""
    return LinearActivation.apply(x, weight, bias, activation)


# ----------------------------------------------------------- softmax cross-entropy


def _class_positions(backend, classes: int, k):
    """Flat positions ``i*C + k_i`` of one class per row of an (N, C) array.

    Rows and classes could index as a pair ``(arange(N), k)``, but numpy gathers and
    scatters through one flat index about three times faster (~0.5 against ~1.5 us for
    100 rows), and the loss does it three times a step.
    """
    return backend.add(_constant(backend, "arange", k.shape[0], k.dtype, step=classes), k)


def _flat_get(backend, x, positions):
    return backend.getitem(backend.reshape(x, (-1,)), positions)


def _flat_set(backend, x, positions, values):
    """``x`` with ``x.flat[positions] = values``; written through a flat view and
    reshaped back, so it also holds on a backend whose reshape copies."""
    flat = backend.reshape(x, (-1,))
    backend.setitem(flat, positions, values)
    return backend.reshape(flat, x.shape)


def _softmax_parts(backend, z, apart):
    """Stable pieces of softmax over axis 1, accurate also when one class dominates.

    s = z - max (so exp never overflows) and e = exp(s); then p = e / sum and
    log p = s - log(sum), since logsumexp(z) = log(sum) + max. ``apart`` (flat
    positions ``i*C + k_i``, see ``_class_positions``) names one class per row (the
    target, or the argmax) left out of the sum: S is the
    sum of e over the other classes, and the callers use

        log(sum) = log1p(S + (e_k - 1)),   e_k - 1 = expm1(s_k)   (0 for the argmax).

    Summing all of e and taking its log would round 1 + S to 1 once the largest logit
    leads the others by more than ~17 (float32) or ~37 (float64): the loss of a
    confident right answer, -log p = log1p(S) ~ S, would be 0, and its gradient
    p - 1 = -S / sum too. With k the argmax this is log1p(S), to a few ulp; with k
    another class the loss -log p_k >= log 2 is large enough to need no more.

    Returns s, e with e_k set to 0 (a caller that needs e_k puts it back) and S, a
    vector of N sums.
    """
    return _shifted_parts(backend, backend.sub(z, backend.max(z, axis=1, keepdims=True)), apart)


# ln of the largest finite value per float width (float16, float32, float64): exp(s)
# overflows above it.
_LOG_MAX_FLOAT = {2: 11.08, 4: 88.72, 8: 709.78}


def _relative_to_target(backend, z, apart):
    """``_softmax_parts`` shifted by the target's logit instead of the row's maximum,
    or None where that could overflow.

    With s = z - z_t (so s_t = 0 and e_t = 1, set apart) the loss is simply

        -log p_t = log(1 + S),   S = sum_(c != t) exp(z_c - z_t),

    one ``log1p`` of terms each exact to an ulp; neither a maximum per row (a slow
    reduction over short rows) nor ``expm1(s_t)`` is needed (the loss node's forward at
    batch 100 went from 17.6 to 14.3 us in a development measurement). It needs every
    s small enough that exp(s) and the sum of C of them stay finite: one maximum over
    the whole array says so (a NaN or inf logit fails it too). Otherwise, and on a GPU,
    where reading that maximum would be a synchronisation, the caller shifts by the row
    maximum instead.
    """
    if backend.device != "cpu" or 0 in z.shape:
        return None
    shifted = backend.sub(z, backend.reshape(_flat_get(backend, z, apart), (-1, 1)))
    limit = _LOG_MAX_FLOAT.get(z.dtype.itemsize, 0.0) - math.log(z.shape[1]) - 1.0
    if not backend.item(backend.max(shifted)) <= limit:  # (NaN compares False)
        return None
    return _shifted_parts(backend, shifted, apart)


def _relative_to_maximum(backend, z, apart):
    """The loss parts shifted by each row's maximum, which never overflows:

        loss_i = log(sum_c e_ic) - s_i,t_i = log1p(S + (e_t - 1)) - s_t,

    with e_t - 1 = expm1(s_t), exactly 0 where the target is the argmax. s_t is
    gathered, not summed as y * s with one-hot rows y: 0 * (-inf) would make a masked
    (-inf) logit NaN. Returns s, e (0 at the target), S, sum - 1 and the losses.
    """
    shifted, e, rest = _softmax_parts(backend, z, apart)
    picked = _flat_get(backend, shifted, apart)
    beyond_one = backend.add(rest, _expm1(backend, picked))
    return shifted, e, rest, beyond_one, backend.sub(_log1p(backend, beyond_one), picked)


def _shifted_parts(backend, shifted, apart):
    """s, e = exp(s) with e set to 0 at ``apart``, and S = the row sums of e."""
    e = _flat_set(backend, backend.exp(shifted), apart, 0)
    # Row sums as a product with a vector of ones, e 1: one BLAS call, faster than
    # numpy's reduction over short rows (C = 10 classes).
    rest = backend.matmul(e, _constant(backend, "ones", shifted.shape[1], shifted.dtype))
    return shifted, e, rest


def one_hot_rows(backend, target, num_classes: int, dtype):
    """Class indices (N,) -> one-hot rows (N, C) in ``dtype``, using elementwise ops only.

    Row i compares t_i with 0, 1, ..., C-1; an index outside [0, C) matches nothing
    and gives a row of zeros.
    """
    classes = backend.arange(0, num_classes, 1, target.dtype)
    hits = backend.eq(backend.reshape(target, (-1, 1)), classes)
    return backend.astype(hits, dtype)


def check_class_range(name: str, backend, target, logits_shape) -> None:
    """Raise ValueError unless every class index lies in [0, C).

    One reduction checks both ends: read as unsigned integers (two's complement), the
    negative indices become huge numbers, so all indices lie in [0, C) exactly when
    the largest unsigned value is below C. The error message then reads the real range.
    """
    if not logits_shape[0]:
        return
    unsigned = backend.astype(target, backend.dtype("uint64"))
    if backend.item(backend.max(unsigned)) >= logits_shape[1]:
        host = backend.to_host(target)
        raise ValueError(f"{name}: class indices must lie in [0, {logits_shape[1]}) for "
                         f"input of shape {logits_shape}, got values from {host.min()} to "
                         f"{host.max()}")


class SoftmaxCrossEntropy(Function):
    """Cross-entropy of softmax(logits) against a target, in one node.

    ``target`` is either int64 class indices of shape (N,), or a float (N, C) array y of
    probabilities (one-hot rows included). With log p = z - logsumexp(z):

        loss_i = -sum_c y_ic log p_ic = (sum_c y_ic) logsumexp(z_i) - sum_c y_ic z_ic

    which for class indices (one-hot rows) is just logsumexp(z_i) - z_i,t_i.
    """

    fresh_gradients = True  # the fast path's gradients are new arrays

    @staticmethod
    def forward(ctx, logits, target, reduction):
        backend = logits.backend
        z = logits.data
        if target.data.dtype.kind in "iu":
            check_class_range("cross_entropy", backend, target.data, z.shape)
            ctx.apart = _class_positions(backend, z.shape[1], target.data)
            parts = _relative_to_target(backend, z, ctx.apart)
            if parts is not None:  # e_t = 1 set apart: sum - 1 = S exactly
                shifted, e, rest = parts
                beyond_one = rest
                losses = _log1p(backend, rest)
            else:
                shifted, e, rest, beyond_one, losses = _relative_to_maximum(backend, z, ctx.apart)
        else:  # the argmax left out of the sum (e = 1 there): log(sum) = log1p(S)
            apart = _class_positions(backend, z.shape[1], backend.argmax(z, axis=1))
            shifted, e, rest = _softmax_parts(backend, z, apart)
            e = _flat_set(backend, e, apart, 1)      # back in: the gradient's formula needs it
            beyond_one = rest
            ctx.log_total = _log1p(backend, backend.reshape(rest, (-1, 1)))
            log_p = backend.sub(shifted, ctx.log_total)
            losses = backend.neg(backend.sum(backend.mul(target.data, log_p), axis=1))
        ctx.save_for_backward(logits, target)
        ctx.shifted, ctx.e, ctx.rest, ctx.beyond_one = shifted, e, rest, beyond_one
        ctx.reduction = reduction
        return wrap(_reduce(backend, losses, reduction), backend)

    @staticmethod
    def backward(ctx, g):
        """With p = softmax(z), s_i = sum_c y_ic and g_i the gradient of loss_i (g / N
        for "mean"):

            dL/dz_ic = g_i (s_i p_ic - y_ic),      dL/dy_ic = -g_i log p_ic

        For class indices (y one-hot, s = 1) this is the famous ``softmax - onehot``,
        the output layer's error delta of the lecture notes. The class left out of the
        forward's sum (see ``_softmax_parts``) keeps a confident right answer's small
        gradient, which p - 1 would cancel to 0 once p rounds to 1: with S the sum of e
        over the other classes, at a target t

            p_t - 1 = -S / sum,

        and for a probability target, with the argmax left out (e = 1 there, sum = 1 + S),

            s p_c - y_c = ((s e_c - y_c) - y_c S) / sum   for every class c.
        """
        logits, target = ctx.saved_tensors
        n = logits.data.shape[0]
        need_z, need_y = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        scale = _grad_scale(g, ctx.reduction, n)
        indices = target.data.dtype.kind != "f"
        if state.grad_enabled:  # create_graph: differentiable Tensor ops
            gi = scale.reshape(-1, 1) if ctx.reduction == "none" else scale
            log_p = logits.log_softmax(-1)
            if indices:
                y = one_hot_rows(logits.backend, target.data, logits.shape[1], logits.dtype)
                grad_z = gi * (log_p.exp() - wrap(y, logits.backend)) if need_z else None
                return grad_z, None, None
            grad_z = gi * (target.sum(-1, keepdims=True) * log_p.exp() - target) \
                if need_z else None
            grad_y = -gi * log_p if need_y else None
            return grad_z, grad_y, None
        backend = logits.backend
        grad_z = grad_y = None
        if need_z:
            total = backend.add(ctx.beyond_one, 1.0)          # sum_c e_ic, a vector
            scaled = backend.div(scale, total)                # g_i / sum_i
            column = backend.reshape(scaled, (-1, 1))
            if indices:
                # g_i (p_ic - y_ic) = e_ic (g_i / sum_i) off the target, -S_i (g_i / sum_i)
                # at it (its e was set to 0, so the product leaves a 0 there first).
                grad = backend.mul(ctx.e, column)
                at_target = backend.neg(backend.mul(ctx.rest, scaled))
                grad = _flat_set(backend, grad, ctx.apart, at_target)
            else:  # s_i p - y: rows of a soft target need not sum to 1
                y = target.data
                s = backend.sum(y, axis=1, keepdims=True)
                rest = backend.reshape(ctx.rest, (-1, 1))
                grad = backend.mul(backend.sub(backend.sub(backend.mul(ctx.e, s), y),
                                               backend.mul(y, rest)), column)
            grad_z = wrap(grad, backend)
        if need_y:
            gi = backend.reshape(scale, (-1, 1)) if ctx.reduction == "none" else scale
            log_p = backend.sub(ctx.shifted, ctx.log_total)
            grad_y = wrap(backend.neg(backend.mul(log_p, gi)), backend)
        return grad_z, grad_y, None


def softmax_cross_entropy(logits: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Fused log_softmax + negative log-likelihood (shapes validated by the caller)."""
    return SoftmaxCrossEntropy.apply(logits, target, reduction)


# ---------------------------------------------------------------------- sigmoid


class SigmoidFunction(Function):
    """y = 1 / (1 + exp(-x)) with a backward that skips the graph when it can.

    The same maths as the ops layer's Sigmoid; this version's fast path works on raw
    arrays, which matters for the notes' sigmoid networks trained one sample at a time.
    """

    fresh_gradients = True

    @staticmethod
    def forward(ctx, x):
        # The backend's primitive: overflow-free, and accurate to a few ulp in both tails.
        y = wrap(x.backend.sigmoid(x.data), x.backend)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        """y = sigmoid(x):  dL/dx = g * y * (1 - y)."""
        (y,) = ctx.saved_tensors
        if state.grad_enabled:
            return g * (y * (1.0 - y))
        backend = y.backend
        return wrap(backend.mul(g.data, backend.mul(y.data, backend.sub(1.0, y.data))), backend)


def sigmoid(x: Tensor) -> Tensor:
    return SigmoidFunction.apply(x)


# -------------------------------------------------------------- binary cross-entropy


class BinaryCrossEntropy(Function):
    """-(y log p + (1 - y) log(1 - p)) with each log clamped to >= -100 (as PyTorch)."""

    @staticmethod
    def forward(ctx, probs, target, reduction):
        backend = probs.backend
        p, y = probs.data, target.data
        log_p = _clamped_log(backend, p)
        log_q = _clamped_log1m(backend, p)
        losses = backend.neg(backend.add(backend.mul(y, log_p),
                                         backend.mul(backend.sub(1.0, y), log_q)))
        ctx.save_for_backward(probs, target)
        ctx.reduction = reduction
        return wrap(_reduce(backend, backend.astype(losses, p.dtype), reduction), backend)

    @staticmethod
    def backward(ctx, g):
        """dL/dp = g (p - y) / max(p (1 - p), 1e-12)   (PyTorch's formula; finite at 0, 1)

        dL/dy = g (log(1 - p) - log p)   (with both logs clamped to >= -100)
        """
        probs, target = ctx.saved_tensors
        need_p, need_y = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        scale = _grad_scale(g, ctx.reduction, probs.size)
        if state.grad_enabled:
            grad_p = scale * (probs - target) / (probs * (1.0 - probs)).clip(1e-12) \
                if need_p else None
            grad_y = scale * ((1.0 - probs).clip(_TINY).log().clip(-100.0)
                              - probs.clip(_TINY).log().clip(-100.0)) if need_y else None
            return grad_p, grad_y, None
        backend = probs.backend
        p, y = probs.data, target.data
        grad_p = grad_y = None
        if need_p:
            denominator = backend.maximum(backend.mul(p, backend.sub(1.0, p)), 1e-12)
            grad_p = wrap(backend.mul(backend.div(backend.sub(p, y), denominator), scale),
                          backend)
        if need_y:
            log_p = _clamped_log(backend, p)
            log_q = _clamped_log1m(backend, p)
            grad_y = wrap(backend.mul(backend.sub(log_q, log_p), scale), backend)
        return grad_p, grad_y, None


def binary_cross_entropy(probs: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    return BinaryCrossEntropy.apply(probs, target, reduction)


class BinaryCrossEntropyWithLogits(Function):
    """BCE of sigmoid(x), stably: x (h - y) + log1p(exp(-|x|)) with h = [x >= 0].

    x (h - y) is max(x, 0) - x y written as ONE product of exact factors, x (1 - y) or
    -x y: the difference max(x, 0) - x y would cancel for a soft target near 1 (y = 0.99
    at x = 50 loses 5 bits); log1p keeps the tail loss ~exp(-|x|) of a confident right
    answer, which log(1 + exp(-|x|)) rounds to 0 from |x| ~ 17 (float32) or ~37 on.
    """

    @staticmethod
    def forward(ctx, logits, target, reduction):
        backend = logits.backend
        x, y = logits.data, target.data
        e = backend.exp(backend.neg(backend.abs(x)))                # exp(-|x|) <= 1
        upper = backend.ge(x, 0)
        h_minus_y = backend.sub(backend.astype(upper, x.dtype), y)
        losses = backend.add(backend.mul(x, h_minus_y), _log1p(backend, e))
        ctx.save_for_backward(logits, target)
        ctx.e, ctx.upper, ctx.h_minus_y = e, upper, h_minus_y
        ctx.reduction = reduction
        return wrap(_reduce(backend, backend.astype(losses, x.dtype), reduction), backend)

    @staticmethod
    def backward(ctx, g):
        """dL/dx = g (sigmoid(x) - y),   dL/dy = -g x.

        sigmoid(x) - y = (h - y) -/+ s with s = sigmoid(-|x|) = e / (1 + e), e = exp(-|x|),
        minus for x >= 0: for x = 50, y = 1 that is -s ~ -2e-22, where sigmoid(x) - y
        rounds to 0. (The composite form would differentiate |x| and max(x, 0)
        separately and get the kink at x = 0 wrong; this is the exact derivative
        everywhere.)
        """
        logits, target = ctx.saved_tensors
        need_x, need_y = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        scale = _grad_scale(g, ctx.reduction, logits.size)
        if state.grad_enabled:
            grad_x = scale * where(logits >= 0, (1.0 - target) - (-logits).sigmoid(),
                                   logits.sigmoid() - target) if need_x else None
            grad_y = -scale * logits if need_y else None
            return grad_x, grad_y, None
        backend = logits.backend
        grad_x = grad_y = None
        if need_x:
            s = backend.div(ctx.e, backend.add(ctx.e, 1.0))          # sigmoid(-|x|) <= 1/2
            signed = backend.where(ctx.upper, backend.neg(s), s)
            grad_x = wrap(backend.mul(backend.add(ctx.h_minus_y, signed), scale), backend)
        if need_y:
            grad_y = wrap(backend.neg(backend.mul(logits.data, scale)), backend)
        return grad_x, grad_y, None


def binary_cross_entropy_with_logits(logits: Tensor, target: Tensor,
                                     reduction: str = "mean") -> Tensor:
    return BinaryCrossEntropyWithLogits.apply(logits, target, reduction)
