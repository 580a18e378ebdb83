"""Indexing on the GPU: gather, scatter-add and the movement ops built from views.

numpy's indexing rules are intricate (basic slices, integer arrays, boolean masks,
``None``, ``...``, and their mixtures). We do not re-implement them. Instead:

* a **basic** key (ints, slices, ``None``, ``...``) only changes shape, strides and
  offset, so :func:`.views.basic_index` computes the result as a
  :class:`~.views.StridedView` without touching data;
* any other key is handed to numpy on the host *once*, applied to an array of element
  numbers: ``np.arange(x.size).reshape(x.shape)[key]`` (:func:`flat_indices`). The
  answer says, for every output element, which input element (by C-order number) it
  comes from. The GPU then only needs one generic kernel, :func:`gather`. This costs
  host work and a transfer proportional to ``x.size``, a price we accept for clarity.

The gradient of ``y = x[key]`` sends each ``dy`` element back to the input element it
came from; when an integer index repeats, several contributions land on one element
and must add up. :func:`scatter_add` does this with ``cuda.atomic.add`` (threads that
hit the same element are serialised by the hardware, so nothing is lost; the order of
the additions, and so the last bits of a float sum, may vary from run to run).
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda

from .common import coalesce, launch_1d, position, returned
from .elementwise import contiguous, copy_strided, full, zeros
from .launch import lean_kernel
from .views import (
    as_view,
    basic_index,
    expand,
    is_basic_index,
    is_on_device,
    normalize_shape,
    to_device,
)


def flat_indices(shape, key) -> np.ndarray:
    """C-order element numbers selected by ``numpy_array_of_shape[key]`` (int64, host)."""
    size = math.prod(shape)
    return np.arange(size, dtype=np.int64).reshape(shape)[key]


def _index_array(indices, size):
    """Indices as a contiguous int64 device array; host indices are bounds-checked first.

    numpy's mixed indexing can return a Fortran-ordered answer (``a[1:, [0, 2]]`` does);
    a device array keeps that layout and reshaping it to 1-D would reorder the
    elements, so the host array is made C-contiguous before the transfer.
    """
    if is_on_device(indices):
        return to_device(indices)
    indices = np.asarray(indices, dtype=np.int64, order="C")  # (ascontiguousarray makes 0-d 1-d)
    if indices.size and (indices.min() < 0 or indices.max() >= size):
        raise IndexError(f"flat index out of range for an array of {size} elements")
    return cuda.to_device(indices)


@lean_kernel
def _gather_kernel(n, out, x, x_shape, x_strides, x_offset, indices):
    i = cuda.grid(1)
    if i < n:
        out[i] = x[position(indices[i], x_shape, x_strides, x_offset)]


def gather(x, indices):
    """``out[i] = x.flat[indices[i]]`` for every element of ``indices`` (any shape).

    ``x`` may be any view: ``indices`` count elements in C order of ``x``'s shape, and
    each thread finds its element through ``x``'s strides. ``out`` has
    ``indices.shape`` and ``x``'s dtype.
    """
    host = not (is_on_device(x) or is_on_device(indices))
    view = as_view(x)
    index_array = _index_array(indices, view.size)
    out = cuda.device_array(index_array.shape, dtype=view.dtype)
    if out.size:
        x_shape, (x_strides,) = coalesce(view.shape, [view.strides])
        blocks, threads = launch_1d(out.size)
        _gather_kernel[blocks, threads](out.size, out.reshape((out.size,)), view.storage,
                                        x_shape, x_strides, view.offset,
                                        index_array.reshape((out.size,)))
    return returned(out, host)


@lean_kernel
def _scatter_add_kernel(n, out, indices, shape, v_strides, values, v_offset):
    i = cuda.grid(1)
    if i < n:
        cuda.atomic.add(out, indices[i], values[position(i, shape, v_strides, v_offset)])


@lean_kernel
def _scatter_kernel(n, out, out_shape, out_strides, out_offset, indices, shape,
                    v_strides, values, v_offset):
    i = cuda.grid(1)
    if i < n:
        target = position(indices[i], out_shape, out_strides, out_offset)
        out[target] = values[position(i, shape, v_strides, v_offset)]


def scatter_add(shape, indices, values, dtype=None):
    """A new zeros array of ``shape`` with ``values[i]`` added at flat index ``indices[i]``.

    Repeated indices accumulate (the gradient of ``x[key]``), using atomic adds.
    ``values`` broadcasts to ``indices.shape``; the dtype defaults to ``values``'s.
    """
    host = not (is_on_device(indices) or is_on_device(values))
    shape = normalize_shape(shape)
    size = math.prod(shape)
    index_array = _index_array(indices, size)
    values = as_view(values)
    out = zeros(shape, values.dtype if dtype is None else dtype)
    n = index_array.size
    if n:
        values = expand(values, index_array.shape)
        v_shape, (v_strides,) = coalesce(values.shape, [values.strides])
        blocks, threads = launch_1d(n)
        _scatter_add_kernel[blocks, threads](n, out.reshape((size,)),
                                             index_array.reshape((n,)), v_shape, v_strides,
                                             values.storage, values.offset)
    return returned(out, host)


def getitem(x, key):
    """``x[key]`` with numpy semantics, as a new contiguous array.

    Basic keys become a strided copy; anything else goes through :func:`gather`.
    """
    host = not is_on_device(x)
    view = as_view(x)
    if is_basic_index(key):
        result = contiguous(basic_index(view, key))
    else:
        result = gather(view, flat_indices(view.shape, key))
    return returned(result, host)


def setitem(x, key, values) -> None:
    """``x[key] = values`` in place; ``x`` is a device array or view, values broadcast.

    With repeated integer indices one of the competing values wins (numpy picks the
    last; here the winner is whichever thread writes last).
    """
    view = as_view(x)
    if is_basic_index(key):
        copy_strided(values, out=basic_index(view, key))
        return
    index_array = _index_array(flat_indices(view.shape, key), view.size)
    n = index_array.size
    if n == 0:
        return
    source = expand(as_view(values), index_array.shape)
    out_shape, (out_strides,) = coalesce(view.shape, [view.strides])
    v_shape, (v_strides,) = coalesce(source.shape, [source.strides])
    blocks, threads = launch_1d(n)
    _scatter_kernel[blocks, threads](n, view.storage, out_shape, out_strides, view.offset,
                                     index_array.reshape((n,)), v_shape, v_strides,
                                     source.storage, source.offset)


def pad(x, widths, value=0):
    """``numpy.pad(x, widths, constant_values=value)``: fill, then copy ``x`` into the middle."""
    view = as_view(x)
    widths = [(int(before), int(after)) for before, after in widths]
    shape = tuple(s + before + after for s, (before, after) in zip(view.shape, widths))
    out = full(shape, value, view.dtype)
    middle = tuple(slice(before, before + s) for s, (before, _) in zip(view.shape, widths))
    copy_strided(view, out=basic_index(as_view(out), middle))
    return returned(out, not is_on_device(x))


def concatenate(arrays, axis=0):
    """``numpy.concatenate``: each input is copied into its slab of a new array."""
    views = [as_view(a) for a in arrays]
    ndim = views[0].ndim
    axis = int(axis) % ndim
    shape = list(views[0].shape)
    shape[axis] = sum(v.shape[axis] for v in views)
    dtype = np.result_type(*(v.dtype for v in views))
    out = cuda.device_array(tuple(shape), dtype=dtype)
    start = 0
    for view in views:
        slab = (slice(None),) * axis + (slice(start, start + view.shape[axis]),)
        copy_strided(view, out=basic_index(as_view(out), slab))
        start += view.shape[axis]
    return returned(out, not any(is_on_device(a) for a in arrays))
