"""Indexing: ``t[index]`` and its adjoint, scatter-add.

``t[index]`` supports everything numpy does: ints, slices with steps, None,
Ellipsis, integer arrays and boolean masks. Its gradient puts ``g`` back where the
elements came from; an element picked several times (``t[[0, 0, 1]]``) collects the
*sum* of its gradients, which is why the backward is an unbuffered scatter-add and
not an assignment.
"""

from __future__ import annotations

from ..autograd.function import Function
from ..autograd.tensor import Tensor, index_data
from ._common import wrap


class GetItem(Function):
    @staticmethod
    def forward(ctx, x, index):
        ctx.input_shape, ctx.saved_index = x.shape, index
        try:
            return wrap(x.backend.getitem(x.data, index), x.backend)
        except IndexError as error:
            raise IndexError(f"indexing a tensor of shape {x.shape}: {error}") from None

    @staticmethod
    def backward(ctx, g):
        """y = x[index]:  dL/dx = zeros with g scatter-added at ``index``."""
        return IndexAdd.apply(g, ctx.saved_index, ctx.input_shape), None


class IndexAdd(Function):
    @staticmethod
    def forward(ctx, values, index, shape):
        ctx.saved_index = index
        return wrap(values.backend.index_add(shape, index, values.data, values.dtype),
                    values.backend)

    @staticmethod
    def backward(ctx, g):
        """y = scatter_add(values at index):  dL/dvalues = g[index]."""
        return GetItem.apply(g, ctx.saved_index), None, None


def getitem(x: Tensor, index) -> Tensor:
    """``x[index]`` with numpy semantics; differentiable."""
    return GetItem.apply(x, index_data(index, x.backend))
