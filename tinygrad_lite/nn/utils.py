"""``nn.utils``: gradient clipping.

Both functions change ``.grad`` of the given parameters in place and are meant to be
called between ``loss.backward()`` and ``optimizer.step()``.
"""

from __future__ import annotations

import math

from ..autograd.mode import no_grad
from ..autograd.tensor import Tensor


def _grads(parameters) -> list:
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p.grad for p in parameters if p.grad is not None]


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0) -> Tensor:
    """Scale all gradients together so that their joint norm is at most ``max_norm``.

    The total norm treats every gradient as one long vector:
    ``||g||_p = (sum over all elements |g|^p)^(1/p)`` (``norm_type=inf``: max |g|).
    If it exceeds ``max_norm`` every gradient is multiplied by
    ``max_norm / (total + 1e-6)``, which keeps the update's direction. Returns the
    total norm before clipping (a 0-d tensor). With all-zero gradients nothing changes
    (no division by zero).
    """
    if not max_norm >= 0:  # also catches NaN
        raise ValueError(f"clip_grad_norm_: max_norm must be >= 0, got {max_norm}")
    grads = _grads(parameters)
    norm_type = float(norm_type)
    if not grads:
        return Tensor(0.0)
    if math.isinf(norm_type):
        total = max((_abs_max(g) for g in grads if g.size), default=0.0)
    else:
        total = sum(_power_sum(g, norm_type) for g in grads) ** (1.0 / norm_type)
    coefficient = float(max_norm) / (total + 1e-6)
    if coefficient < 1.0:
        with no_grad():
            for g in grads:
                g.mul_(coefficient)
    return Tensor(total, dtype=grads[0].dtype, device=grads[0].device)


def _abs_max(g: Tensor) -> float:
    """max |g| as a Python float (backend ops: no graph, any device)."""
    b = g.backend
    return float(b.item(b.max(b.abs(g.data))))


def _power_sum(g: Tensor, p: float) -> float:
    """sum |g|^p as a Python float."""
    b = g.backend
    if p == 2.0:
        return float(b.item(b.sum(b.mul(g.data, g.data))))
    return float(b.item(b.sum(b.pow(b.abs(g.data), p))))


def clip_grad_value_(parameters, clip_value: float) -> None:
    """Clamp every gradient element into ``[-clip_value, clip_value]``."""
    clip_value = float(clip_value)
    if clip_value < 0:
        raise ValueError(f"clip_grad_value_: clip_value must be >= 0, got {clip_value}")
    with no_grad():
        for g in _grads(parameters):
            g.copy_(g.clip(-clip_value, clip_value))
