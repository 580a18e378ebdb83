"""Matrix multiplication, the workhorse of every layer.

For ``Y = A @ B`` with ``A`` (n, k) and ``B`` (k, m) the backward is the pair of
products of the lecture notes' backprop equations in matrix form:
``dL/dA = G @ B^T`` and ``dL/dB = A^T @ G`` (G = dL/dY). Batched operands work the
same on the last two axes; broadcast batch axes are summed back by the engine.
"""

from __future__ import annotations

from ..autograd.function import Function
from ..autograd.tensor import Tensor
from ._common import as_operand, common_backend, wrap


class MatMul(Function):
    @staticmethod
    def forward(ctx, a, b):
        backend = common_backend("matmul", a, b)
        ctx.save_for_backward(a, b)
        return wrap(backend.matmul(a.data, b.data), backend)

    @staticmethod
    def backward(ctx, g):
        """Y = A @ B:  dL/dA = G @ B^T,  dL/dB = A^T @ G."""
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        grad_a = MatMul.apply(g, b.swapaxes(-1, -2)) if need_a else None
        grad_b = MatMul.apply(a.swapaxes(-1, -2), g) if need_b else None
        return grad_a, grad_b


def matmul(a: Tensor, b) -> Tensor:
    """``a @ b`` with numpy's rules: 1-D operands are promoted, batch axes broadcast."""
    b = as_operand(b, a)
    if not isinstance(a, Tensor):
        a = as_operand(a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: operands must be at least 1-D, got shapes {a.shape} and "
                         f"{b.shape} (use * for scalars)")
    if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} are not aligned: "
                         f"{a.shape[-1]} (last axis of the first) != "
                         f"{b.shape[-2 if b.ndim > 1 else 0]} (first matrix axis of the second)")
    a2 = a.unsqueeze(0) if a.ndim == 1 else a
    b2 = b.unsqueeze(1) if b.ndim == 1 else b
    try:
        out = MatMul.apply(a2, b2)
    except ValueError:
        raise ValueError(f"matmul: batch dimensions of {a.shape} and {b.shape} cannot be "
                         "broadcast together") from None
    if b.ndim == 1:
        out = out.squeeze(-1)
    if a.ndim == 1:
        out = out.squeeze(-2 if b.ndim > 1 else -1)
    return out
