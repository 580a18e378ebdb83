"""Movement ops: they rearrange elements without changing them.

Their backwards are the inverse rearrangements: reshape back, transpose by the
inverse permutation, sum a broadcast back (``sum_to``), slice a padding off, split a
concatenation.
"""

from __future__ import annotations

import numbers

from ..autograd.function import Function
from ..autograd.tensor import Tensor
from ._common import common_backend, normalize_axes, wrap


def _shape_arg(shape) -> tuple:
    """Accept ``f(2, 3)`` and ``f((2, 3))`` alike."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    for n in shape:
        if not isinstance(n, numbers.Integral):
            raise TypeError(f"a shape must contain ints, got {shape!r}")
    return tuple(int(n) for n in shape)


class Reshape(Function):
    @staticmethod
    def forward(ctx, x, shape):
        ctx.input_shape = x.shape
        try:
            return wrap(x.backend.reshape(x.data, shape), x.backend)._share_version_with(x)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} "
                             f"({x.size} elements) into shape {shape}") from None

    @staticmethod
    def backward(ctx, g):
        """A reshape keeps every element: the gradient is reshaped back."""
        return g.reshape(ctx.input_shape), None


class Transpose(Function):
    @staticmethod
    def forward(ctx, x, axes):
        ctx.axes = axes
        # A view of x's memory: in-place changes to either must be seen by both.
        return wrap(x.backend.transpose(x.data, axes), x.backend)._share_version_with(x)

    @staticmethod
    def backward(ctx, g):
        """Element (i0, i1, ...) moved to its permuted position: permute back."""
        inverse = [0] * len(ctx.axes)
        for position, axis in enumerate(ctx.axes):
            inverse[axis] = position
        return g.transpose(tuple(inverse)), None


class BroadcastTo(Function):
    @staticmethod
    def forward(ctx, x, shape):
        ctx.input_shape = x.shape
        try:
            return wrap(x.backend.broadcast_to(x.data, shape), x.backend)._share_version_with(x)
        except ValueError:
            raise ValueError(f"expand: cannot broadcast shape {x.shape} to {shape}") from None

    @staticmethod
    def backward(ctx, g):
        """Each input element was copied to many outputs: their gradients add up."""
        return g.sum_to(ctx.input_shape), None


class SumTo(Function):
    @staticmethod
    def forward(ctx, x, shape):
        ctx.input_shape = x.shape
        lead = x.ndim - len(shape)
        if lead < 0:
            raise ValueError(f"sum_to: cannot sum shape {x.shape} to the larger shape {shape}")
        axes = tuple(range(lead)) + tuple(
            lead + i for i, n in enumerate(shape) if n == 1 and x.shape[lead + i] != 1)
        for i, n in enumerate(shape):
            if n != 1 and x.shape[lead + i] != n:
                raise ValueError(f"sum_to: shape {x.shape} is not a broadcast of {shape}")
        total = x.backend.sum(x.data, axis=axes, keepdims=True) if axes else x.data
        return wrap(x.backend.reshape(total, shape), x.backend)

    @staticmethod
    def backward(ctx, g):
        """The adjoint of broadcasting: broadcast the gradient back out."""
        return g.broadcast_to(ctx.input_shape), None


class Pad(Function):
    @staticmethod
    def forward(ctx, x, widths, value):
        ctx.slices = tuple(slice(before, before + n) for (before, _), n in zip(widths, x.shape))
        return wrap(x.backend.pad(x.data, widths, value), x.backend)

    @staticmethod
    def backward(ctx, g):
        """The padding is constant: only the original region receives gradient."""
        return g[ctx.slices], None, None


class Cat(Function):
    @staticmethod
    def forward(ctx, axis, *tensors):
        backend = common_backend("cat", *tensors)
        ctx.axis = axis
        ctx.sizes = [t.shape[axis] for t in tensors]
        return wrap(backend.concatenate([t.data for t in tensors], axis), backend)

    @staticmethod
    def backward(ctx, g):
        """Each input owns a contiguous block along ``axis``: slice its gradient out."""
        grads, start = [None], 0
        for size, needs in zip(ctx.sizes, ctx.needs_input_grad[1:]):
            index = (slice(None),) * ctx.axis + (slice(start, start + size),)
            grads.append(g[index] if needs else None)
            start += size
        return tuple(grads)


# ------------------------------------------------------------- public functions


def reshape(x: Tensor, *shape) -> Tensor:
    shape = _shape_arg(shape)
    if shape == x.shape:
        return x
    if shape.count(-1) > 1:
        raise ValueError(f"reshape: only one dimension can be -1, got {shape}")
    if -1 in shape:
        known = 1
        for n in shape:
            if n != -1:
                known *= n
        if known == 0 or x.size % known:
            raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} "
                             f"({x.size} elements) into shape {shape}")
        shape = tuple(x.size // known if n == -1 else n for n in shape)
    return Reshape.apply(x, shape)


def transpose(x: Tensor, *axes) -> Tensor:
    """Permute the axes (numpy semantics): no argument reverses them."""
    axes = _shape_arg(axes) if axes else tuple(reversed(range(x.ndim)))
    if any(not -max(x.ndim, 1) <= a < max(x.ndim, 1) for a in axes):
        raise ValueError(f"transpose: axes {axes} are out of range for a tensor of shape "
                         f"{x.shape} ({x.ndim} dimensions)")
    if sorted(a % x.ndim if x.ndim else a for a in axes) != list(range(x.ndim)):
        raise ValueError(f"transpose: {axes} is not a permutation of the {x.ndim} axes of a "
                         f"tensor of shape {x.shape}")
    axes = tuple(a % x.ndim for a in axes)
    if axes == tuple(range(x.ndim)):
        return x
    return Transpose.apply(x, axes)


def swapaxes(x: Tensor, axis1: int, axis2: int) -> Tensor:
    if x.ndim == 0:
        raise ValueError("swapaxes: a 0-d tensor has no axes to swap")
    a, b = normalize_axes("swapaxes", axis1, x.ndim)[0], normalize_axes(
        "swapaxes", axis2, x.ndim)[0]
    axes = list(range(x.ndim))
    axes[a], axes[b] = axes[b], axes[a]
    return transpose(x, *axes)


def broadcast_to(x: Tensor, *shape) -> Tensor:
    shape = _shape_arg(shape)
    if shape == x.shape:
        return x
    return BroadcastTo.apply(x, shape)


def expand(x: Tensor, *shape) -> Tensor:
    """Broadcast to ``shape``; -1 keeps that dimension (PyTorch's expand)."""
    shape = _shape_arg(shape)
    lead = len(shape) - x.ndim
    if lead < 0:
        raise ValueError(f"expand: the new shape {shape} has fewer dimensions than {x.shape}")
    shape = tuple(x.shape[i - lead] if n == -1 else n for i, n in enumerate(shape))
    return broadcast_to(x, shape)


def sum_to(x: Tensor, *shape) -> Tensor:
    """Sum a broadcast tensor back down to ``shape`` (the adjoint of broadcast_to)."""
    shape = _shape_arg(shape)
    if shape == x.shape:
        return x
    return SumTo.apply(x, shape)


def flatten(x: Tensor, start_axis: int = 0, end_axis: int = -1) -> Tensor:
    if x.ndim == 0:
        return x.reshape(1)
    start = normalize_axes("flatten", start_axis, x.ndim)[0]
    end = normalize_axes("flatten", end_axis, x.ndim)[0]
    merged = 1
    for n in x.shape[start:end + 1]:
        merged *= n
    return x.reshape(x.shape[:start] + (merged,) + x.shape[end + 1:])


def squeeze(x: Tensor, axis=None) -> Tensor:
    """Remove size-1 axes (all of them, or the given one(s), which must have size 1)."""
    if axis is None:
        return x.reshape(tuple(n for n in x.shape if n != 1))
    axes = normalize_axes("squeeze", axis, x.ndim)
    for a in axes:
        if x.shape[a] != 1:
            raise ValueError(f"squeeze: axis {a} of shape {x.shape} has size {x.shape[a]}, not 1")
    return x.reshape(tuple(n for i, n in enumerate(x.shape) if i not in axes))


def unsqueeze(x: Tensor, axis: int) -> Tensor:
    """Insert a size-1 axis at position ``axis`` (negative counts from the new end)."""
    ndim = x.ndim + 1
    if not -ndim <= axis < ndim:
        raise ValueError(f"unsqueeze: axis {axis} is out of range for a result with {ndim} "
                         "dimensions")
    axis %= ndim
    return x.reshape(x.shape[:axis] + (1,) + x.shape[axis:])


def pad(x: Tensor, widths, value=0.0) -> Tensor:
    """Constant padding, numpy style: one ``(before, after)`` pair per axis."""
    widths = tuple((int(b), int(a)) for b, a in widths)
    if len(widths) != x.ndim:
        raise ValueError(f"pad: got {len(widths)} (before, after) pairs for a tensor of "
                         f"shape {x.shape}; give one per axis")
    if any(b < 0 or a < 0 for b, a in widths):
        raise ValueError(f"pad: widths must be non-negative, got {widths}")
    if not widths:  # a 0-d tensor has no axis to pad
        return x
    return Pad.apply(x, widths, value)


def cat(tensors, axis: int = 0) -> Tensor:
    """Join tensors along an existing axis; all other dimensions must match."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: needs at least one tensor")
    first = tensors[0]
    if first.ndim == 0:
        raise ValueError("cat: 0-d tensors cannot be concatenated (they have no axis); use "
                         "tl.stack to join them along a new axis")
    (axis,) = normalize_axes("cat", axis, first.ndim)
    for t in tensors[1:]:
        if t.ndim != first.ndim or any(
                a != b for i, (a, b) in enumerate(zip(t.shape, first.shape)) if i != axis):
            raise ValueError(f"cat: shapes {first.shape} and {t.shape} differ outside the "
                             f"concatenation axis {axis}")
    if len(tensors) == 1:
        return first
    return Cat.apply(axis, *tensors)


def stack(tensors, axis: int = 0) -> Tensor:
    """Join equally shaped tensors along a new axis."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: needs at least one tensor")
    for t in tensors[1:]:
        if t.shape != tensors[0].shape:
            raise ValueError(f"stack: all tensors need the same shape, got {tensors[0].shape} "
                             f"and {t.shape}")
    ndim = tensors[0].ndim + 1
    if not -ndim <= axis < ndim:
        raise ValueError(f"stack: axis {axis} is out of range for a result with {ndim} dims")
    return Cat.apply(axis % ndim, *[t.unsqueeze(axis % ndim) for t in tensors]) \
        if len(tensors) > 1 else tensors[0].unsqueeze(axis % ndim)
