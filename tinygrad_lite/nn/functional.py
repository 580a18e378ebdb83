"""``nn.functional``: stateless layer functions and losses (to be completed)."""

from __future__ import annotations

from ..autograd.tensor import Tensor


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y = x W^T + b."""
    out = x @ weight.T
    return out if bias is None else out + bias
