"""Reductions over axes: sum, max, min (primitives) and mean, var, std, logsumexp.

A reduction maps a tensor to a smaller one; its backward spreads the gradient back
over the reduced axes: first re-inserting the removed axes as size 1, then
broadcasting to the input's shape.
"""

from __future__ import annotations

from ..autograd.function import Function
from ..autograd.mode import state
from ..autograd.tensor import Tensor
from ._common import normalize_axes, wrap


def _keepdims_shape(shape, axes) -> tuple:
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def _spread(g, input_shape, axes) -> Tensor:
    """Undo a reduction's shape change: ``g`` back to ``input_shape`` by broadcasting."""
    return g.reshape(_keepdims_shape(input_shape, axes)).broadcast_to(input_shape)


class Sum(Function):
    @staticmethod
    def forward(ctx, x, axes, keepdims):
        ctx.input_shape, ctx.axes = x.shape, axes
        return wrap(x.backend.sum(x.data, axis=axes, keepdims=keepdims), x.backend)

    @staticmethod
    def backward(ctx, g):
        """y = sum_i x_i over ``axes``:  dL/dx_i = g (broadcast over the summed axes)."""
        return _spread(g, ctx.input_shape, ctx.axes), None, None


class _Extremum(Function):
    """max / min: the gradient flows to the elements that attain the extremum."""

    op = "max"

    @classmethod
    def forward(cls, ctx, x, axes, keepdims):
        backend = x.backend
        if any(x.shape[a] == 0 for a in axes):
            raise ValueError(f"{cls.op}: cannot reduce over an empty axis (tensor shape "
                             f"{x.shape}, axes {axes}): the result has no identity value")
        y_keep = getattr(backend, cls.op)(x.data, axis=axes, keepdims=True)
        ctx.save_for_backward(x)
        ctx.y_keep, ctx.axes = y_keep, axes
        y = y_keep if keepdims else backend.reshape(
            y_keep, tuple(n for i, n in enumerate(x.shape) if i not in axes))
        return wrap(y, backend)

    @staticmethod
    def backward(ctx, g):
        """dL/dx_i = g * [x_i is the extremum] / (number of elements that tie for it)."""
        (x,) = ctx.saved_tensors
        backend = x.backend
        hit = backend.astype(backend.eq(x.data, ctx.y_keep), x.dtype)
        share = backend.div(hit, backend.sum(hit, axis=ctx.axes, keepdims=True))
        return _spread(g, x.shape, ctx.axes) * wrap(share, backend), None, None


class Max(_Extremum):
    op = "max"


class Min(_Extremum):
    op = "min"


# ------------------------------------------------------------- public functions


def sum(x: Tensor, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Sum over ``axis`` (None: all; an int; a tuple)."""
    return Sum.apply(x, normalize_axes("sum", axis, x.ndim), keepdims)


def max(x: Tensor, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Largest value over ``axis`` (values only; use ``argmax`` for positions)."""
    return Max.apply(x, normalize_axes("max", axis, x.ndim), keepdims)


def min(x: Tensor, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Smallest value over ``axis``."""
    return Min.apply(x, normalize_axes("min", axis, x.ndim), keepdims)


def _count(x: Tensor, axes) -> int:
    count = 1
    for a in axes:
        count *= x.shape[a]
    return count


def mean(x: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    """Average over ``axis``: sum / count (its gradient g / count comes from sum's)."""
    axes = normalize_axes("mean", axis, x.ndim)
    count = _count(x, axes)
    if count == 0:
        raise ValueError(f"mean: cannot average over zero elements (shape {x.shape}, "
                         f"axis {axis})")
    total = Sum.apply(x, axes, keepdims)
    return total * (1.0 / count) if x.is_floating_point() else total.astype("float32") / count


def var(x: Tensor, axis=None, keepdims: bool = False, ddof: int = 0) -> Tensor:
    """Variance: sum((x - mean)^2) / (n - ddof), composed from differentiable ops."""
    axes = normalize_axes("var", axis, x.ndim)
    count = _count(x, axes)
    if count - ddof <= 0:
        raise ValueError(f"var: need more than ddof={ddof} elements, got {count}")
    # Shift by one (detached) sample first: the variance is shift-invariant, and for a
    # constant the shifted values are exactly 0, where a rounded mean of a huge constant
    # would leave an ulp whose square overflows (and in general it loses fewer digits).
    first = tuple(slice(0, 1) if i in axes else slice(None) for i in range(x.ndim))
    x = x - wrap(x.backend.getitem(x.data, first), x.backend)
    centred = x - mean(x, axes, keepdims=True)
    return Sum.apply(centred * centred, axes, keepdims) * (1.0 / (count - ddof))


class _StdSqrt(Function):
    """sqrt(var) whose derivative 1 / (2 sqrt(var)) is taken as 0 at var = 0.

    std is not differentiable at a constant input (like |x| at 0); the plain chain
    rule gives inf * 0 = NaN there. 0 is the subgradient this library uses for abs.
    """

    @staticmethod
    def forward(ctx, v):
        y = wrap(v.backend.sqrt(v.data), v.backend)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        """y = sqrt(v):  dL/dv = g / (2 y) where y > 0, else 0."""
        from .elementwise import where

        (y,) = ctx.saved_tensors
        backend = y.backend
        positive = backend.gt(y.data, 0)
        if not state.grad_enabled:  # the usual case: raw arrays, no graph
            safe = backend.where(positive, y.data, 1.0)
            return wrap(backend.where(positive, backend.div(g.data, backend.mul(safe, 2.0)),
                                      0.0), backend)
        positive = wrap(positive, backend)
        return where(positive, g / (2.0 * where(positive, y, 1.0)), 0.0)


def std(x: Tensor, axis=None, keepdims: bool = False, ddof: int = 0) -> Tensor:
    """Standard deviation: sqrt(var) (with gradient 0 at a constant input)."""
    normalize_axes("std", axis, x.ndim)  # a bad axis is reported as std's, not var's
    return _StdSqrt.apply(var(x, axis, keepdims, ddof))


def logsumexp(x: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    """log(sum(exp(x))) computed stably as m + log(sum(exp(x - m))), m = max(x).

    Subtracting the (constant, detached) maximum keeps every exp() argument <= 0, so
    nothing overflows; the gradient is softmax(x), which the composition yields.
    """
    axes = normalize_axes("logsumexp", axis, x.ndim)
    shift = max(x, axes, keepdims=True).detach()
    backend = shift.backend
    # An all -inf slice would give (-inf) - (-inf) = nan; shifting by 0 there is exact.
    shift = wrap(backend.where(backend.isfinite(shift.data), shift.data, 0.0), backend)
    total = sum((x - shift).exp(), axes, keepdims=True).log() + shift
    if keepdims:
        return total
    return total.reshape(tuple(n for i, n in enumerate(x.shape) if i not in axes))


def argmax(x: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    """Index of the largest value (int64, no gradient); a flat index when axis is None."""
    return _arg("argmax", x, axis, keepdims)


def argmin(x: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    """Index of the smallest value (int64, no gradient)."""
    return _arg("argmin", x, axis, keepdims)


def _arg(opname, x, axis, keepdims):
    if axis is not None:
        axes = normalize_axes(opname, axis, x.ndim)
        axis = axes[0] if axes else None  # a 0-d tensor: axis 0 / -1 means the element
    if x.size == 0:
        raise ValueError(f"{opname}: empty tensor of shape {x.shape}")
    out = wrap(getattr(x.backend, opname)(x.data, axis=axis), x.backend)
    if keepdims and axis is not None:
        out = out.unsqueeze(axis)
    return out
