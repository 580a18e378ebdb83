"""Fused ops: a few compound operations recorded as ONE graph node each.

``F.linear`` could be written ``x @ W.T + b`` (three nodes: transpose, matmul, add)
and ``F.cross_entropy`` as ``-(y * log_softmax(z)).sum(-1).mean()`` (about ten
nodes). Both are correct, since composite ops get their gradient for free, but every
node costs a few microseconds of Python bookkeeping, which dominates a small network
trained one sample at a time (the lecture notes' 64-50-10 MLP). The ops here do the
same maths in a single :class:`Function` with a hand-written backward:

* ``LinearFunction``: x W^T + b (``F.linear``, ``nn.Linear``);
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

from ..autograd.function import Function
from ..autograd.mode import state
from ..autograd.tensor import Tensor
from ._common import wrap

REDUCTIONS = ("mean", "sum", "none")

# log(p) is clamped to >= -100 (as PyTorch); taking the log of max(p, _TINY) first keeps
# log(0) = -inf (and numpy's divide-by-zero warning) out of the computation.
_TINY = 3e-44  # just below e^-100 = 3.7e-44, still a (subnormal) float32


def _clamped_log(backend, p):
    """max(log p, -100) for p >= 0, without ever evaluating log(0)."""
    return backend.maximum(backend.log(backend.maximum(p, _TINY)), -100.0)


def _reduce(backend, losses, reduction: str):
    """Reduce a vector of per-sample losses (a raw array)."""
    if reduction == "none":
        return losses
    total = backend.sum(losses)
    if reduction == "sum":
        return total
    return backend.mul(total, 1.0 / max(losses.size, 1))


def _grad_scale(g: Tensor, reduction: str, count: int):
    """dL/d(loss_i) for every element: g spread back over what the reduction removed.

    mean: g / count for every element; sum: g; none: g itself (already per element).
    A Tensor on the differentiable path, a raw array on the fast path.
    """
    if state.grad_enabled:
        return g * (1.0 / count) if reduction == "mean" else g
    return g.backend.mul(g.data, 1.0 / count) if reduction == "mean" else g.data


# ------------------------------------------------------------------------- linear


class LinearFunction(Function):
    """y = x W^T + b as one node, with x of shape (..., in) and W (out, in)."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        backend = x.backend
        y = backend.matmul(x.data, backend.transpose(weight.data, (1, 0)))
        if bias is not None:
            y = backend.add(y, bias.data)
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return wrap(y, backend)

    @staticmethod
    def backward(ctx, g):
        """y = x W^T + b, with G = dL/dy:

        dL/dx = G W,   dL/dW = G^T x (summed over every leading axis),   dL/db = sum_rows G.

        These are the lecture notes' backprop equations: the error delta of the layer
        (G) times the previous layer's activations gives the weight gradient, and the
        error propagated back one layer is G W.
        """
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad
        if state.grad_enabled:  # create_graph: differentiable Tensor ops
            g2 = g.reshape(-1, g.shape[-1])
            x2 = x.reshape(-1, x.shape[-1])
            grad_x = g @ weight if need_x else None
            grad_w = g2.T @ x2 if need_w else None
            grad_b = g2.sum(0) if need_b and ctx.has_bias else None
            return grad_x, grad_w, grad_b
        backend = x.backend
        gd, xd = g.data, x.data
        if len(gd.shape) != 2:
            gd = backend.reshape(gd, (-1, gd.shape[-1]))
            xd = backend.reshape(xd, (-1, xd.shape[-1]))
        grad_x = wrap(backend.matmul(g.data, weight.data), backend) if need_x else None
        grad_w = wrap(backend.matmul(backend.transpose(gd, (1, 0)), xd), backend) \
            if need_w else None
        grad_b = wrap(backend.sum(gd, axis=0), backend) \
            if need_b and ctx.has_bias else None
        return grad_x, grad_w, grad_b


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``x @ weight.T + bias`` recorded as one node (shapes are checked by the caller)."""
    return LinearFunction.apply(x, weight, bias)


# ----------------------------------------------------------- softmax cross-entropy


def _softmax_parts(backend, z):
    """Stable pieces of softmax over axis 1: e = exp(z - max), the row sums of e and
    lse = logsumexp(z) = log(sum e) + max, so p = e / sum and log p = z - lse."""
    shift = backend.max(z, axis=1, keepdims=True)
    e = backend.exp(backend.sub(z, shift))
    total = backend.sum(e, axis=1, keepdims=True)
    lse = backend.add(backend.log(total), shift)
    return e, total, lse


def one_hot_rows(backend, target, num_classes: int, dtype):
    """Class indices (N,) -> one-hot rows (N, C) in ``dtype``, using elementwise ops only.

    Row i compares t_i with 0, 1, ..., C-1; an index outside [0, C) matches nothing
    and gives a row of zeros, which :func:`check_class_range` detects.
    """
    classes = backend.arange(0, num_classes, 1, target.dtype)
    hits = backend.eq(backend.reshape(target, (-1, 1)), classes)
    return backend.astype(hits, dtype)


def check_class_range(name: str, backend, target, one_hot, logits_shape) -> None:
    """Raise ValueError unless every class index lies in [0, C).

    Every valid index puts exactly one 1 in its one-hot row, so the rows add up to N
    exactly when all N indices are valid: one reduction checks them all.
    """
    n = logits_shape[0]
    if n and backend.item(backend.sum(one_hot)) != n:
        host = backend.to_host(target)
        raise ValueError(f"{name}: class indices must lie in [0, {logits_shape[1]}) for "
                         f"input of shape {logits_shape}, got values from {host.min()} to "
                         f"{host.max()}")


class SoftmaxCrossEntropy(Function):
    """Cross-entropy of softmax(logits) against a target, in one node.

    ``target`` is either int64 class indices of shape (N,), turned into one-hot rows, or
    a float (N, C) array y of probabilities (one-hot rows included). With
    log p = z - logsumexp(z):

        loss_i = -sum_c y_ic log p_ic = (sum_c y_ic) logsumexp(z_i) - sum_c y_ic z_ic

    which for a one-hot row is just logsumexp(z_i) - z_i,t_i.
    """

    @staticmethod
    def forward(ctx, logits, target, reduction):
        backend = logits.backend
        z = logits.data
        e, total, lse = _softmax_parts(backend, z)
        if target.dtype.kind in "iu":
            y = one_hot_rows(backend, target.data, z.shape[1], z.dtype)
            check_class_range("cross_entropy", backend, target.data, y, logits.shape)
            # one-hot rows sum to 1: loss_i = lse_i - z_i,t_i. z_i,t_i is gathered, not
            # summed as y * z: 0 * (-inf) would make a masked (-inf) logit NaN.
            rows = backend.arange(0, z.shape[0], 1, target.dtype)
            losses = backend.sub(backend.reshape(lse, (-1,)),
                                 backend.getitem(z, (rows, target.data)))
        else:
            y = target.data
            log_p = backend.sub(z, lse)
            losses = backend.neg(backend.sum(backend.mul(y, log_p), axis=1))
        ctx.save_for_backward(logits, target)
        ctx.y, ctx.e, ctx.total, ctx.lse, ctx.reduction = y, e, total, lse, reduction
        return wrap(_reduce(backend, losses, reduction), backend)

    @staticmethod
    def backward(ctx, g):
        """With p = softmax(z), s_i = sum_c y_ic and g_i the gradient of loss_i (g / N
        for "mean"):

            dL/dz_ic = g_i (s_i p_ic - y_ic),      dL/dy_ic = -g_i log p_ic

        For class indices (y one-hot, s = 1) this is the famous ``softmax - onehot``,
        the output layer's error delta of the lecture notes.
        """
        logits, target = ctx.saved_tensors
        n = logits.shape[0]
        need_z, need_y = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        scale = _grad_scale(g, ctx.reduction, n)
        indices = not target.is_floating_point()
        if state.grad_enabled:  # create_graph: differentiable Tensor ops
            gi = scale.reshape(-1, 1) if ctx.reduction == "none" else scale
            log_p = logits.log_softmax(-1)
            if indices:
                grad_z = gi * (log_p.exp() - wrap(ctx.y, logits.backend)) if need_z else None
                return grad_z, None, None
            grad_z = gi * (target.sum(-1, keepdims=True) * log_p.exp() - target) \
                if need_z else None
            grad_y = -gi * log_p if need_y else None
            return grad_z, grad_y, None
        backend = logits.backend
        gi = backend.reshape(scale, (-1, 1)) if ctx.reduction == "none" else scale
        grad_z = grad_y = None
        if need_z:
            p = backend.div(ctx.e, ctx.total)                              # softmax
            if not indices:  # s_i p: rows of a soft target need not sum to 1
                p = backend.mul(p, backend.sum(ctx.y, axis=1, keepdims=True))
            grad_z = wrap(backend.mul(backend.sub(p, ctx.y), gi), backend)
        if need_y:
            log_p = backend.sub(logits.data, ctx.lse)
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

    @staticmethod
    def forward(ctx, x):
        # sigmoid(x) = (1 + tanh(x / 2)) / 2: exact, never overflows, and cheaper than
        # choosing between exp(-x) and exp(x) by the sign of x.
        backend = x.backend
        y = wrap(backend.mul(backend.add(backend.tanh(backend.mul(x.data, 0.5)), 1.0), 0.5),
                 backend)
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
        log_q = _clamped_log(backend, backend.sub(1.0, p))
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
            log_q = _clamped_log(backend, backend.sub(1.0, p))
            grad_y = wrap(backend.mul(backend.sub(log_q, log_p), scale), backend)
        return grad_p, grad_y, None


def binary_cross_entropy(probs: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    return BinaryCrossEntropy.apply(probs, target, reduction)


class BinaryCrossEntropyWithLogits(Function):
    """BCE of sigmoid(x), stably: max(x, 0) - x y + log(1 + exp(-|x|))."""

    @staticmethod
    def forward(ctx, logits, target, reduction):
        backend = logits.backend
        x, y = logits.data, target.data
        softplus = backend.log(backend.add(1.0, backend.exp(backend.neg(backend.abs(x)))))
        losses = backend.add(backend.sub(backend.maximum(x, 0.0), backend.mul(x, y)), softplus)
        ctx.save_for_backward(logits, target)
        ctx.reduction = reduction
        return wrap(_reduce(backend, backend.astype(losses, x.dtype), reduction), backend)

    @staticmethod
    def backward(ctx, g):
        """dL/dx = g (sigmoid(x) - y),   dL/dy = -g x.

        (The composite form would differentiate |x| and max(x, 0) separately and get
        the kink at x = 0 wrong; this is the exact derivative everywhere.)
        """
        logits, target = ctx.saved_tensors
        need_x, need_y = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        scale = _grad_scale(g, ctx.reduction, logits.size)
        if state.grad_enabled:
            grad_x = scale * (logits.sigmoid() - target) if need_x else None
            grad_y = -scale * logits if need_y else None
            return grad_x, grad_y, None
        backend = logits.backend
        x, y = logits.data, target.data
        grad_x = wrap(backend.mul(backend.sub(backend.sigmoid(x), y), scale), backend) \
            if need_x else None
        grad_y = wrap(backend.neg(backend.mul(x, scale)), backend) if need_y else None
        return grad_x, grad_y, None


def binary_cross_entropy_with_logits(logits: Tensor, target: Tensor,
                                     reduction: str = "mean") -> Tensor:
    return BinaryCrossEntropyWithLogits.apply(logits, target, reduction)
