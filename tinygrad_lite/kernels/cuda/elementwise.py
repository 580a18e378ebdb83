"""Elementwise CUDA kernels generated from scalar functions (the minitorch recipe).

We never hand-write an ``exp`` kernel, an ``add`` kernel and a ``mul`` kernel. Instead
a factory takes a plain scalar function from :mod:`.scalar_ops`, compiles it into a
device function with ``cuda.jit(device=True)``, and wraps it in one generic kernel:

* ``map_kernel(fn)``  -> ``op(x)``:      ``out[i] = fn(x[i])``
* ``zip_kernel(fn)``  -> ``op(a, b)``:   ``out[i] = fn(a[i], b[i])`` with numpy broadcasting
* ``where(cond, a, b)``:                ``out[i] = a[i] if cond[i] else b[i]``, broadcast

Thread mapping: one thread per *output* element. Thread ``i`` (``cuda.grid(1)``) takes
the output's C-order element number ``i`` and finds each operand's element with
:func:`.common.position` using that operand's strides *expanded to the output shape*.
Broadcasting is therefore nothing but a stride of 0: every output position along a
broadcast axis reads the same input element. Because each thread writes only its own
output element there are no races. Before launching, :func:`.common.coalesce` fuses
axes that are contiguous in every operand, so the common case (all operands
contiguous, same shape) indexes one flat axis with a single multiply.

A *fast path* handles the most common call of a training step on its own: C-contiguous
1-D or 2-D device arrays of one shape (and Python scalars), no ``out=``. It skips the
views, broadcasting and coalescing and launches a kernel whose only arguments are the
arrays (and the scalar): on an H200, Numba's launch costs about 18 us with no arguments
and 32 us with three arrays, while every shape and stride tuple element adds a ctypes
conversion, and the general path's plumbing took an ``add`` to about 190 us.

Every operand may be a numpy array, a Python scalar, a C-contiguous device array or
a :class:`~.views.StridedView` (a transposed, broadcast or sliced window on device
memory). ``out=`` may also be a view, which is how a result is written into part of
a larger array (``setitem``, ``pad``, ``concatenate``). If every operand is host
data the result comes back as a numpy array; otherwise it stays on the device.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda

from . import scalar_ops
from .common import coalesce, launch_1d, position, returned
from .launch import lean_kernel
from .views import (
    StridedView,
    as_view,
    expand,
    is_contiguous,
    is_device_array,
    is_on_device,
    normalize_shape,
)

_DEVICE_FUNCTIONS: dict = {}


def device_function(scalar_fn):
    """``cuda.jit(device=True)(scalar_fn)``, compiled once per scalar function."""
    if scalar_fn not in _DEVICE_FUNCTIONS:
        _DEVICE_FUNCTIONS[scalar_fn] = cuda.jit(device=True)(scalar_fn)
    return _DEVICE_FUNCTIONS[scalar_fn]


# ---------------------------------------------------------------- result dtypes


def promote(*dtypes) -> np.dtype:
    """numpy's promotion: the result dtype of arithmetic on these inputs."""
    return np.dtype(np.result_type(*dtypes))


def to_float(*dtypes) -> np.dtype:
    """Promotion, but integer and bool inputs give float64 (``exp``, ``div``, ...)."""
    dtype = promote(*dtypes)
    return dtype if dtype.kind == "f" else np.dtype(np.float64)


def to_bool(*dtypes) -> np.dtype:
    """Comparisons produce bool arrays."""
    return np.dtype(np.bool_)


# -------------------------------------------------------------- launch plumbing


def _operands(inputs):
    """Turn every input into a StridedView; Python scalars take the arrays' dtype."""
    array_dtypes = [np.asarray(x).dtype if not is_on_device(x) else np.dtype(x.dtype)
                    for x in inputs if not isinstance(x, (bool, int, float))]
    views = []
    for x in inputs:
        if isinstance(x, (bool, int, float)):
            x = np.asarray(x, dtype=np.result_type(*array_dtypes, x))
        views.append(as_view(x))
    return views


def _output(out, shape, dtype) -> tuple[StridedView, object]:
    """The view the kernel writes and the object handed back to the caller.

    A given ``out`` keeps its own shape and dtype; the inputs must broadcast to it.
    """
    if out is None:
        array = cuda.device_array(shape, dtype=dtype)
        return as_view(array), array
    view = as_view(out)
    if np.broadcast_shapes(view.shape, shape) != view.shape:
        raise ValueError(f"cannot write a result of shape {tuple(shape)} into out of "
                         f"shape {view.shape}")
    return view, out


def _launch_elementwise(kernel, inputs, out, dtype, result_dtype, shape=(), extra_args=()):
    """Broadcast, coalesce and launch ``kernel`` with one thread per output element.

    The kernel's arguments are ``(n, shape, *extra_args, out_storage, out_strides,
    out_offset)`` followed by ``(storage, strides, offset)`` for each input. The
    output shape is the inputs' broadcast shape (and ``shape`` when there are none).
    """
    host = bool(inputs) and not any(is_on_device(x) for x in (*inputs, out))
    views = _operands(inputs)
    shape = tuple(int(s) for s in np.broadcast_shapes(shape, *(v.shape for v in views)))
    dtype = np.dtype(dtype) if dtype is not None else result_dtype(*(v.dtype for v in views))
    out_view, result = _output(out, shape, dtype)
    shape = out_view.shape
    views = [expand(v, shape) for v in views]
    flat_shape, strides = coalesce(shape, [out_view.strides] + [v.strides for v in views])
    n = math.prod(shape)
    if n:
        args = [n, flat_shape, *extra_args, out_view.storage, strides[0], out_view.offset]
        for view, view_strides in zip(views, strides[1:]):
            args += [view.storage, view_strides, view.offset]
        blocks, threads = launch_1d(n)
        kernel[blocks, threads](*args)
    return returned(result, host and out is None)


# ------------------------------------------------------------------- fast path


def _fast_operands(inputs, dtype, result_dtype):
    """(operands, out dtype, shape) when the fast path applies, else None.

    It applies when every input is a Python scalar or a C-contiguous 1-D/2-D device
    array (not a view), all arrays have one shape with at least one element, and at
    least one input is an array. Scalars become numpy scalars of the arrays' promoted
    dtype, exactly as the general path converts them.
    """
    arrays = [x for x in inputs if not isinstance(x, (bool, int, float))]
    if not arrays:
        return None
    shape = arrays[0].shape
    for x in arrays:
        if (isinstance(x, StridedView) or not is_device_array(x) or x.shape != shape
                or not x.is_c_contiguous()):
            return None
    if len(shape) not in (1, 2) or not math.prod(shape):
        return None
    array_dtypes = [np.dtype(x.dtype) for x in arrays]
    operands, dtypes = [], []
    for x in inputs:
        if isinstance(x, (bool, int, float)):
            x = np.asarray(x, dtype=np.result_type(*array_dtypes, x))[()]
        operands.append(x)
        dtypes.append(np.dtype(x.dtype))
    out_dtype = np.dtype(dtype) if dtype is not None else result_dtype(*dtypes)
    return operands, out_dtype, shape


@cuda.jit(device=True)
def _item_1d(x, i):
    return x[i]


@cuda.jit(device=True)
def _scalar_1d(x, i):
    return x


@cuda.jit(device=True)
def _item_2d(x, r, c):
    return x[r, c]


@cuda.jit(device=True)
def _scalar_2d(x, r, c):
    return x


def _fast_map_kernels(fn):
    """The unary fast-path kernels for 1-D and 2-D arrays (thread i: element i, C order)."""

    @lean_kernel
    def map_1d(out, x):
        i = cuda.grid(1)
        if i < out.shape[0]:
            out[i] = fn(x[i])

    @lean_kernel
    def map_2d(out, x):
        i = cuda.grid(1)
        cols = out.shape[1]
        if i < out.shape[0] * cols:
            r = i // cols  # one division splits i into (row, column)
            c = i - r * cols
            out[r, c] = fn(x[r, c])

    return {(1, (False,)): map_1d, (2, (False,)): map_2d}


def _fast_zip_kernel(fn, ndim: int, load_a, load_b):
    """A binary fast-path kernel; ``load_a``/``load_b`` read an array element or return
    a scalar argument as it is, so one body serves arrays and scalars on either side."""
    if ndim == 1:
        @lean_kernel
        def zip_1d(out, a, b):
            i = cuda.grid(1)
            if i < out.shape[0]:
                out[i] = fn(load_a(a, i), load_b(b, i))

        return zip_1d

    @lean_kernel
    def zip_2d(out, a, b):
        i = cuda.grid(1)
        cols = out.shape[1]
        if i < out.shape[0] * cols:
            r = i // cols
            c = i - r * cols
            out[r, c] = fn(load_a(a, r, c), load_b(b, r, c))

    return zip_2d


def _fast_kernels(fn, arity: int) -> dict:
    """``{(ndim, scalar_mask): kernel}`` for the fast path of an ``arity``-input op.

    ``scalar_mask`` says which inputs are scalars (passed by value) rather than arrays.
    Kernels are compiled on first use, so the unused variants cost nothing.
    """
    if arity == 1:
        return _fast_map_kernels(fn)
    loaders = {1: (_item_1d, _scalar_1d), 2: (_item_2d, _scalar_2d)}
    kernels = {}
    for ndim, (item, scalar) in loaders.items():
        for mask in ((False, False), (True, False), (False, True)):
            load_a, load_b = (scalar if is_scalar else item for is_scalar in mask)
            kernels[(ndim, mask)] = _fast_zip_kernel(fn, ndim, load_a, load_b)
    return kernels


def _try_fast_path(kernels: dict, inputs, dtype, result_dtype):
    """The result through a fast-path kernel, or None when the general path is needed."""
    found = _fast_operands(inputs, dtype, result_dtype)
    if found is None:
        return None
    operands, out_dtype, shape = found
    mask = tuple(isinstance(x, np.generic) for x in operands)
    out = cuda.device_array(shape, dtype=out_dtype)
    blocks, threads = launch_1d(out.size)
    kernels[(len(shape), mask)][blocks, threads](out, *operands)
    return out


# -------------------------------------------------------------------- factories


def map_kernel(scalar_fn, result_dtype=promote):
    """Make an elementwise unary op ``op(x, out=None, dtype=None)`` from ``scalar_fn``.

    ``result_dtype(x_dtype)`` picks the output dtype unless ``dtype`` is given; the
    scalar result is converted to it when stored.
    """
    fn = device_function(scalar_fn)

    @lean_kernel
    def map_(n, shape, out, out_strides, out_offset, x, x_strides, x_offset):
        i = cuda.grid(1)
        if i < n:
            value = x[position(i, shape, x_strides, x_offset)]
            out[position(i, shape, out_strides, out_offset)] = fn(value)

    fast = _fast_kernels(fn, 1)

    def op(x, out=None, dtype=None):
        if out is None:
            result = _try_fast_path(fast, [x], dtype, result_dtype)
            if result is not None:
                return result
        return _launch_elementwise(map_, [x], out, dtype, result_dtype)

    op.__name__ = op.__qualname__ = scalar_fn.__name__.rstrip("_")
    op.__doc__ = f"Elementwise ``{scalar_fn.__name__}`` on the GPU (made by ``map_kernel``)."
    return op


def zip_kernel(scalar_fn, result_dtype=promote):
    """Make a broadcasting binary op ``op(a, b, out=None, dtype=None)`` from ``scalar_fn``."""
    fn = device_function(scalar_fn)

    @lean_kernel
    def zip_(n, shape, out, out_strides, out_offset,
             a, a_strides, a_offset, b, b_strides, b_offset):
        i = cuda.grid(1)
        if i < n:
            a_value = a[position(i, shape, a_strides, a_offset)]
            b_value = b[position(i, shape, b_strides, b_offset)]
            out[position(i, shape, out_strides, out_offset)] = fn(a_value, b_value)

    fast = _fast_kernels(fn, 2)

    def op(a, b, out=None, dtype=None):
        if out is None:
            result = _try_fast_path(fast, [a, b], dtype, result_dtype)
            if result is not None:
                return result
        return _launch_elementwise(zip_, [a, b], out, dtype, result_dtype)

    op.__name__ = op.__qualname__ = scalar_fn.__name__.rstrip("_")
    op.__doc__ = f"Broadcasting ``{scalar_fn.__name__}`` on the GPU (made by ``zip_kernel``)."
    return op


@lean_kernel
def _where_kernel(n, shape, out, out_strides, out_offset, cond, c_strides, c_offset,
                  a, a_strides, a_offset, b, b_strides, b_offset):
    i = cuda.grid(1)
    if i < n:
        if cond[position(i, shape, c_strides, c_offset)]:
            value = a[position(i, shape, a_strides, a_offset)]
        else:
            value = b[position(i, shape, b_strides, b_offset)]
        out[position(i, shape, out_strides, out_offset)] = value


def where(cond, a, b, out=None, dtype=None):
    """``a`` where ``cond`` is true (non-zero), else ``b``; all three broadcast together."""
    def result_dtype(cond_dtype, a_dtype, b_dtype):
        return promote(a_dtype, b_dtype)

    return _launch_elementwise(_where_kernel, [cond, a, b], out, dtype, result_dtype)


@lean_kernel
def _fill_kernel(n, shape, value, out, out_strides, out_offset):
    i = cuda.grid(1)
    if i < n:
        out[position(i, shape, out_strides, out_offset)] = value


def full(shape, value, dtype, out=None):
    """A new device array of ``shape`` filled with ``value`` (or fill the view ``out``)."""
    dtype = np.dtype(dtype)
    shape = normalize_shape(shape)
    fill = np.asarray(value, dtype=dtype)[()]
    return _launch_elementwise(_fill_kernel, [], out, dtype, promote, shape=shape,
                               extra_args=(fill,))


def zeros(shape, dtype):
    """A new device array of zeros."""
    return full(shape, 0, dtype)


# ------------------------------------------------------------ copies and casts

_copy = map_kernel(scalar_ops.identity)


def cast(x, dtype, out=None):
    """``x`` converted to ``dtype`` (float to int truncates toward zero, as numpy)."""
    return _copy(x, out=out, dtype=dtype)


def copy_strided(x, out=None):
    """Materialise ``x`` (typically a transposed, broadcast or sliced view) contiguously.

    With ``out`` a view, copies ``x`` into that window instead (``x`` broadcasts to it).
    """
    if out is not None:
        return _copy(x, out=out)
    host = not is_on_device(x)
    view = as_view(x)
    return returned(_copy(view, dtype=view.dtype), host)


def contiguous(x):
    """A C-contiguous device array with the contents of ``x``; no copy if already so."""
    view = as_view(x)
    if is_contiguous(view):
        flat = view.storage[view.offset:view.offset + view.size]
        return flat.reshape(view.shape)
    return copy_strided(view)


# ------------------------------------------------------- the named operations

neg = map_kernel(scalar_ops.neg)
exp = map_kernel(scalar_ops.exp, to_float)
log = map_kernel(scalar_ops.log, to_float)
log1p = map_kernel(scalar_ops.log1p, to_float)
expm1 = map_kernel(scalar_ops.expm1, to_float)
sqrt = map_kernel(scalar_ops.sqrt, to_float)
abs_ = map_kernel(scalar_ops.abs_)
sign = map_kernel(scalar_ops.sign)
sin = map_kernel(scalar_ops.sin, to_float)
cos = map_kernel(scalar_ops.cos, to_float)
tanh = map_kernel(scalar_ops.tanh, to_float)
sigmoid = map_kernel(scalar_ops.sigmoid, to_float)
relu = map_kernel(scalar_ops.relu)

add = zip_kernel(scalar_ops.add)
sub = zip_kernel(scalar_ops.sub)
mul = zip_kernel(scalar_ops.mul)
div = zip_kernel(scalar_ops.div, to_float)
pow_ = zip_kernel(scalar_ops.pow_)
maximum = zip_kernel(scalar_ops.maximum)
minimum = zip_kernel(scalar_ops.minimum)

eq = zip_kernel(scalar_ops.eq, to_bool)
ne = zip_kernel(scalar_ops.ne, to_bool)
lt = zip_kernel(scalar_ops.lt, to_bool)
le = zip_kernel(scalar_ops.le, to_bool)
gt = zip_kernel(scalar_ops.gt, to_bool)
ge = zip_kernel(scalar_ops.ge, to_bool)

UNARY = {"neg": neg, "exp": exp, "log": log, "sqrt": sqrt, "abs": abs_, "sign": sign,
         "sin": sin, "cos": cos, "tanh": tanh, "sigmoid": sigmoid, "relu": relu,
         "log1p": log1p, "expm1": expm1}
BINARY = {"add": add, "sub": sub, "mul": mul, "div": div, "pow": pow_,
          "maximum": maximum, "minimum": minimum,
          "eq": eq, "ne": ne, "lt": lt, "le": le, "gt": gt, "ge": ge}
