"""Small helpers every op module shares: operand conversion and device checks."""

from __future__ import annotations

import numbers

from ..autograd.tensor import Tensor


def as_operand(value, like: Tensor):
    """Prepare the other operand of a binary op with tensor ``like``.

    Python numbers stay plain numbers (the backend broadcasts them and they keep the
    tensor's dtype: ``float32_tensor * 2.0`` stays float32). numpy scalars become
    Python numbers for the same reason; arrays and lists become constant Tensors on
    ``like``'s device.
    """
    if isinstance(value, Tensor):
        return value
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Number):
        if type(value) in (int, float):
            return value
        return float(value) if isinstance(value, numbers.Real) and not isinstance(
            value, numbers.Integral) else (int(value) if isinstance(value, numbers.Integral)
                                           else value)
    return Tensor(value, device=like.device)


def raw(value):
    """The backend array of a Tensor, or the value itself (a Python number)."""
    return value.data if isinstance(value, Tensor) else value


def common_backend(opname: str, *values):
    """The backend of the Tensor operands; all Tensors must live on the same device."""
    backend = None
    for value in values:
        if isinstance(value, Tensor):
            if backend is None:
                backend = value.backend
            elif value.backend.device != backend.device:
                raise RuntimeError(
                    f"{opname}: expected all tensors on the same device, got {backend.device} "
                    f"and {value.backend.device}; move one with .to('{backend.device}')")
    return backend


# wrap(data, backend): a Tensor around an array an op just computed. An alias, not a
# function calling Tensor._make: every op output passes through it.
wrap = Tensor._make


def normalize_axes(opname: str, axis, ndim: int):
    """``axis`` (None, int or tuple, negatives allowed) as a sorted tuple of axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    result = []
    for a in axes:
        if not isinstance(a, numbers.Integral):
            raise TypeError(f"{opname}: axis must be an int or a tuple of ints, got {a!r}")
        if not -max(ndim, 1) <= a < max(ndim, 1):
            raise ValueError(f"{opname}: axis {a} is out of range for a tensor with {ndim} "
                             f"dimension{'s' if ndim != 1 else ''}")
        if ndim:  # a 0-d tensor accepts axis 0 / -1 and reduces over nothing
            result.append(int(a) % ndim)
    if len(set(result)) != len(result):
        raise ValueError(f"{opname}: repeated axis in {axis}")
    return tuple(sorted(result))
