"""softmax and log_softmax, composed from primitives so their gradients come free.

Both are stable for any finite input: softmax subtracts the (detached) maximum before
exponentiating, log_softmax goes through logsumexp instead of log(softmax(x)), which
would underflow to log(0) = -inf for very negative logits.
"""

from __future__ import annotations

from ..autograd.tensor import Tensor
from .reduce import logsumexp
from .reduce import max as reduce_max


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """exp(x_i) / sum_j exp(x_j) along ``axis``."""
    shifted = x - reduce_max(x, axis, keepdims=True).detach()
    e = shifted.exp()
    return e / e.sum(axis, keepdims=True)


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """x_i - logsumexp(x) along ``axis``."""
    return x - logsumexp(x, axis, keepdims=True)
