"""Strided views: how the CUDA kernels see arrays.

Every elementwise, reduction and indexing kernel in this package reads its inputs
through a :class:`StridedView`: a flat, contiguous 1-D device buffer (``storage``) plus
the ``shape``, ``strides`` and ``offset`` that say where element ``(i0, i1, ...)`` lives::

    position(i0, i1, ...) = offset + i0 * strides[0] + i1 * strides[1] + ...

Strides are counted in *elements*, not bytes. With this one formula the movement
operations cost nothing: a transpose permutes ``shape`` and ``strides``, a broadcast
sets a stride to 0, a basic slice such as ``x[1:, ::2]`` changes ``offset`` and
multiplies strides. No data moves until a kernel reads the view (``copy_strided``
materialises one into a fresh contiguous array).

This module is pure host-side bookkeeping; it launches no kernel.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
from numba import cuda


class StridedView(NamedTuple):
    """A strided window onto a flat contiguous device buffer (strides in elements)."""

    storage: Any
    shape: tuple[int, ...]
    strides: tuple[int, ...]
    offset: int = 0

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.storage.dtype)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)


def is_device_array(x) -> bool:
    """True for a Numba device array (real or simulated)."""
    return hasattr(x, "copy_to_host") and hasattr(x, "shape")


def is_on_device(x) -> bool:
    """True for a device array or a view of one: the result should stay on the device."""
    return isinstance(x, StridedView) or is_device_array(x)


def contiguous_strides(shape) -> tuple[int, ...]:
    """C-order strides, in elements, of a contiguous array of ``shape``."""
    strides = []
    step = 1
    for size in reversed(shape):
        strides.append(step)
        step *= size
    return tuple(reversed(strides))


def is_contiguous(view: StridedView) -> bool:
    """Whether the view's elements sit in C order, one after another, in its storage."""
    expected = contiguous_strides(view.shape)
    return all(size == 1 or stride == want
               for size, stride, want in zip(view.shape, view.strides, expected))


def to_device(x):
    """A C-contiguous device array holding ``x`` (numpy data is transferred).

    Device arrays are returned as they are; they must be C-contiguous, because the
    kernels address their memory as one flat buffer. Describe a transpose, broadcast
    or slice of device data with a :class:`StridedView` instead.
    """
    if isinstance(x, StridedView):
        raise TypeError("to_device() got a StridedView; use copy_strided() to materialise it")
    if is_device_array(x):
        if x.size > 1 and not x.is_c_contiguous():
            raise ValueError("device arrays passed to the CUDA kernels must be C-contiguous; "
                             "describe strided data with a StridedView")
        return x
    return cuda.to_device(np.asarray(x, order="C"))


def as_view(x) -> StridedView:
    """Describe ``x`` (StridedView, device array, numpy array or scalar) as a StridedView."""
    if isinstance(x, StridedView):
        return x
    array = to_device(x)
    shape = tuple(int(s) for s in array.shape)
    storage = array if array.ndim == 1 else array.reshape((math.prod(shape),))
    return StridedView(storage, shape, contiguous_strides(shape), 0)


def permute(view: StridedView, axes) -> StridedView:
    """The view with its axes reordered (``numpy.transpose``); no data moves."""
    axes = tuple(int(a) for a in axes)
    if any(not -view.ndim <= a < view.ndim for a in axes):
        raise ValueError(f"axes {axes} out of range for {view.ndim} dimensions")
    axes = tuple(a % view.ndim for a in axes)
    if sorted(axes) != list(range(view.ndim)):
        raise ValueError(f"axes {axes} are not a permutation of {view.ndim} dimensions")
    return view._replace(shape=tuple(view.shape[a] for a in axes),
                         strides=tuple(view.strides[a] for a in axes))


def expand(view: StridedView, shape) -> StridedView:
    """Broadcast the view to ``shape`` (``numpy.broadcast_to``) by giving new axes stride 0."""
    shape = tuple(int(s) for s in shape)
    lead = len(shape) - view.ndim
    if lead < 0:
        raise ValueError(f"cannot broadcast shape {view.shape} to {shape}")
    strides = []
    for axis, size in enumerate(shape):
        if axis < lead:
            strides.append(0)
            continue
        own_size, own_stride = view.shape[axis - lead], view.strides[axis - lead]
        if own_size == size:
            strides.append(own_stride)
        elif own_size == 1:
            strides.append(0)
        else:
            raise ValueError(f"cannot broadcast shape {view.shape} to {shape}")
    return view._replace(shape=shape, strides=tuple(strides))


def normalize_shape(shape, size: int | None = None) -> tuple[int, ...]:
    """``shape`` (an int or a sequence) as a tuple of ints, a -1 inferred from ``size``."""
    shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)
    if -1 in shape:
        known = math.prod(s for s in shape if s != -1)
        if size is None or shape.count(-1) > 1 or known == 0 or size % known:
            raise ValueError(f"cannot infer -1 in shape {shape} for {size} elements")
        shape = tuple(size // known if s == -1 else s for s in shape)
    if size is not None and math.prod(shape) != size:
        raise ValueError(f"cannot reshape {size} elements into shape {shape}")
    return shape


def reshape_view(view: StridedView, shape) -> StridedView | None:
    """The view with a new shape if that needs no copy (the view is contiguous), else None."""
    shape = normalize_shape(shape, view.size)
    if not is_contiguous(view):
        return None
    return view._replace(shape=shape, strides=contiguous_strides(shape))


def is_basic_index(key) -> bool:
    """True for keys made only of ints, slices, ``None`` and ``...`` (numpy basic indexing)."""
    parts = key if isinstance(key, tuple) else (key,)
    for part in parts:
        if isinstance(part, (bool, np.bool_)):
            return False  # a boolean scalar is a (0-d) mask: advanced indexing
        if not (part is None or part is Ellipsis or isinstance(part, (slice, int, np.integer))):
            return False
    return True


def basic_index(view: StridedView, key) -> StridedView:
    """The view ``view[key]`` for a basic-indexing key, computed without touching data.

    We let numpy do the bookkeeping: it indexes a *probe* array that has the same
    shape and element strides but one byte per element and no real memory behind it,
    and we read the resulting shape, strides and offset off the probe's answer.
    """
    probe_base = np.zeros(1, dtype=np.uint8)
    probe = np.lib.stride_tricks.as_strided(probe_base, shape=view.shape, strides=view.strides)
    result = probe[key]
    start = probe.__array_interface__["data"][0]
    moved = result.__array_interface__["data"][0] - start
    return view._replace(shape=tuple(result.shape), strides=tuple(result.strides),
                         offset=view.offset + moved)
