"""softmax and log_softmax, composed from primitives so their gradients come free.

Both are stable for any finite input: softmax subtracts the (detached) maximum before
exponentiating, log_softmax goes through logsumexp instead of log(softmax(x)), which
would underflow to log(0) = -inf for very negative logits.
"""

from __future__ import annotations

from ..autograd.tensor import Tensor
from ._common import normalize_axes
from .reduce import max as reduce_max


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """exp(x_i) / sum_j exp(x_j) along ``axis``."""
    normalize_axes("softmax", axis, x.ndim)  # an out-of-range axis is named as softmax's
    if x.size == 0:  # nothing to normalise (an empty axis included): an empty result
        return x * 1.0
    shifted = x - reduce_max(x, axis, keepdims=True).detach()
    e = shifted.exp()
    return e / e.sum(axis, keepdims=True)


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """x_i - logsumexp(x) along ``axis``, computed as (x_i - m) - log(sum_j exp(x_j - m)).

    m is the (detached) maximum. Subtracting it first, and never adding it back, keeps
    the result exact to rounding even for huge logits: x - (m + log(sum)) would round
    m + log(sum) at the scale of m and lose every digit of log(sum) below it.
    """
    (axis,) = normalize_axes("log_softmax", axis, x.ndim) or (None,)
    if x.size == 0:
        return x * 1.0
    shift = reduce_max(x, axis, keepdims=True).detach()
    backend = shift.backend
    # An all -inf slice would give (-inf) - (-inf) = nan; shifting by 0 there is exact.
    shift = Tensor._make(backend.where(backend.isfinite(shift.data), shift.data, 0.0), backend)
    shifted = x - shift
    return shifted - shifted.exp().sum(axis, keepdims=True).log()
