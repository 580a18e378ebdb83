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
            out = wrap(x.backend.getitem(x.data, index), x.backend)
        except IndexError as error:
            raise IndexError(f"indexing a tensor of shape {x.shape}: {error}") from None
        # Basic indexing (ints, slices, None, ...) returns a view of x's memory.
        return out._share_version_with(x) if _is_basic(index) else out

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


def _is_basic(index) -> bool:
    """True for ints, slices, None and Ellipsis (numpy returns a view), not arrays/masks."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(part is None or part is Ellipsis or isinstance(part, (int, slice))
               for part in parts)


def getitem(x: Tensor, index) -> Tensor:
    """``x[index]`` with numpy semantics; differentiable."""
    return GetItem.apply(x, index_data(index, x.backend))
