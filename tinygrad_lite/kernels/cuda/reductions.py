"""Reductions (sum, max, min, argmax, argmin) over any set of axes, on the GPU.

The input view is split into two groups of axes: the *kept* axes, which number the
output elements, and the *reduced* axes, which are folded into each output element.
Both groups are described by (shape, strides) and located with
:func:`.common.position`, so a reduction over a transposed or broadcast view costs no
copy. Two thread mappings are used, chosen per call:

* **block per output** (the default): block ``b`` owns output element ``b``. Its
  threads stride over the reduced elements (thread ``t`` takes ``t, t + T, t + 2T``...),
  each folding its share into a private accumulator; the ``T`` partial results then
  meet in shared memory and are combined pairwise in a tree (``T/2`` threads combine
  ``partial[t]`` and ``partial[t + T/2]``, then ``T/4``...), ``log2 T`` steps. Good when
  the reduced elements are adjacent in memory (a row sum) or outputs are few.
* **thread per output**: thread ``i`` owns output ``i`` and loops over its reduced
  elements alone. Chosen when there are many outputs and the reduced axis is *not*
  the fastest-varying one, e.g. a bias gradient ``grad.sum(axis=0)``: neighbouring
  threads then read neighbouring addresses at every step (coalesced).

Either way each output element has exactly one writer, so there are no races and no
atomics, and the summation order is fixed (results are deterministic).
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import cuda

from . import scalar_ops
from .common import THREADS_PER_BLOCK, coalesce, launch_1d, next_power_of_two, position, returned
from .elementwise import device_function
from .launch import lean_kernel
from .views import as_view, is_on_device

MAX_THREADS = THREADS_PER_BLOCK
"""Most threads a block-per-output reduction uses (its shared-memory array size)."""

SHORT_REDUCTION = 32
"""Reductions of at most this many elements per output use thread-per-output: a block
for them would leave most of its threads (and warp) idle."""

THREAD_PER_OUTPUT_MIN = 4 * THREADS_PER_BLOCK
"""Longer reductions also use thread-per-output from this many outputs on, when the
reduced axis is not the contiguous one (so neighbouring threads read neighbours)."""


def use_thread_per_output(n_outputs: int, red_size: int, red_inner_stride: int) -> bool:
    """Pick the thread mapping (see the module docstring)."""
    if red_size <= SHORT_REDUCTION:
        return True
    return n_outputs >= THREAD_PER_OUTPUT_MIN and red_inner_stride != 1


def normalize_axes(axis, ndim: int) -> tuple[int, ...]:
    """``axis`` (None, an int or a tuple of ints, negative allowed) as sorted axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    normalized = []
    for a in axes:
        if not -max(ndim, 1) <= a < max(ndim, 1):
            raise ValueError(f"axis {a} is out of bounds for an array of {ndim} dimensions")
        normalized.append(int(a) % max(ndim, 1))
    if len(set(normalized)) != len(normalized):
        raise ValueError(f"repeated axis in {axis}")
    return tuple(sorted(normalized))


def _split_axes(view, axes):
    """(kept shape, kept strides, reduced shape, reduced strides), each group coalesced."""
    kept = [a for a in range(view.ndim) if a not in axes]
    kept_shape, (kept_strides,) = coalesce([view.shape[a] for a in kept],
                                           [[view.strides[a] for a in kept]])
    red_shape, (red_strides,) = coalesce([view.shape[a] for a in axes],
                                         [[view.strides[a] for a in axes]])
    return kept_shape, kept_strides, red_shape, red_strides


def _output_shape(shape, axes, keepdims):
    if keepdims:
        return tuple(1 if a in axes else s for a, s in enumerate(shape))
    return tuple(s for a, s in enumerate(shape) if a not in axes)


def _block_size(red_size: int) -> int:
    """Threads for a block-per-output reduction: a power of two, at most MAX_THREADS."""
    return min(MAX_THREADS, next_power_of_two(max(1, red_size)))


# ------------------------------------------------------------ the two kernels


def _make_block_reduce(combine, dtype):
    """Block-per-output tree reduction of ``combine`` with a ``dtype`` accumulator."""
    shared_dtype = numba.from_dtype(dtype)

    @lean_kernel
    def block_reduce(out, x, kept_shape, kept_strides, red_shape, red_strides, offset,
                     red_size, identity):
        partial = cuda.shared.array(MAX_THREADS, shared_dtype)
        t = cuda.threadIdx.x
        base = position(cuda.blockIdx.x, kept_shape, kept_strides, offset)
        acc = identity
        for j in range(t, red_size, cuda.blockDim.x):
            acc = combine(acc, x[position(j, red_shape, red_strides, base)])
        partial[t] = acc
        cuda.syncthreads()
        step = cuda.blockDim.x // 2
        while step > 0:
            if t < step:
                partial[t] = combine(partial[t], partial[t + step])
            cuda.syncthreads()
            step //= 2
        if t == 0:
            out[cuda.blockIdx.x] = partial[0]

    return block_reduce


def _make_thread_reduce(combine):
    """Thread-per-output serial reduction of ``combine``."""

    @lean_kernel
    def thread_reduce(out, x, kept_shape, kept_strides, red_shape, red_strides, offset,
                      red_size, identity):
        i = cuda.grid(1)
        if i < out.size:
            base = position(i, kept_shape, kept_strides, offset)
            acc = identity
            for j in range(red_size):
                acc = combine(acc, x[position(j, red_shape, red_strides, base)])
            out[i] = acc

    return thread_reduce


# ------------------------------------------------------------------- factory


def reduce_kernel(combine_fn, identity_for, result_dtype=None, allow_empty=True):
    """Make ``op(x, axis=None, keepdims=False)`` reducing with the scalar ``combine_fn``.

    ``identity_for(dtype)`` gives the value every accumulator starts from (0 for a sum,
    the lowest value of the dtype for a max). ``allow_empty=False`` makes reducing zero
    elements an error, as numpy's max does. ``result_dtype(dtype)`` picks the
    accumulator/output dtype (default: the input's).
    """
    combine = device_function(combine_fn)
    block_kernels: dict = {}
    thread_kernel = _make_thread_reduce(combine)

    def op(x, axis=None, keepdims=False):
        host = not is_on_device(x)
        view = as_view(x)
        axes = normalize_axes(axis, view.ndim)
        out_dtype = np.dtype(result_dtype(view.dtype) if result_dtype else view.dtype)
        out = cuda.device_array(_output_shape(view.shape, axes, keepdims), dtype=out_dtype)
        red_size = math.prod(view.shape[a] for a in axes)
        if red_size == 0 and not allow_empty:
            raise ValueError(f"zero-size {combine_fn.__name__} reduction has no identity")
        if out.size == 0:
            return returned(out, host)
        kept_shape, kept_strides, red_shape, red_strides = _split_axes(view, axes)
        args = (out.reshape((out.size,)), view.storage, kept_shape, kept_strides,
                red_shape, red_strides, view.offset, red_size,
                np.asarray(identity_for(out_dtype), dtype=out_dtype)[()])
        if use_thread_per_output(out.size, red_size, red_strides[-1]):
            blocks, threads = launch_1d(out.size)
            thread_kernel[blocks, threads](*args)
        else:
            if out_dtype not in block_kernels:
                block_kernels[out_dtype] = _make_block_reduce(combine, out_dtype)
            block_kernels[out_dtype][out.size, _block_size(red_size)](*args)
        return returned(out, host)

    op.__name__ = op.__qualname__ = f"reduce_{combine_fn.__name__.rstrip('_')}"
    return op


def _sum_dtype(dtype):
    """numpy's accumulator for ``sum``: small ints and bools widen to the platform int."""
    return np.zeros(0, dtype=dtype).sum().dtype


def _lowest(dtype):
    if dtype.kind == "f":
        return -np.inf
    return False if dtype.kind == "b" else np.iinfo(dtype).min


def _highest(dtype):
    if dtype.kind == "f":
        return np.inf
    return True if dtype.kind == "b" else np.iinfo(dtype).max


reduce_sum = reduce_kernel(scalar_ops.add, lambda dtype: 0, _sum_dtype)
reduce_sum.__doc__ = "Sum over ``axis`` (None, int or tuple), like ``numpy.sum``."
reduce_max = reduce_kernel(scalar_ops.maximum, _lowest, allow_empty=False)
reduce_max.__doc__ = "Maximum over ``axis`` (NaN propagates), like ``numpy.max``."
reduce_min = reduce_kernel(scalar_ops.minimum, _highest, allow_empty=False)
reduce_min.__doc__ = "Minimum over ``axis`` (NaN propagates), like ``numpy.min``."

REDUCTIONS = {"sum": reduce_sum, "max": reduce_max, "min": reduce_min}


def reduce(x, op: str, axis=None, keepdims=False):
    """Reduce ``x`` with ``op`` in ("sum", "max", "min") over ``axis``."""
    return REDUCTIONS[op](x, axis=axis, keepdims=keepdims)


# ------------------------------------------------------------ argmax / argmin


def _argmax_wins(v, i, w, j):
    """Does (value v at index i) beat (w at j) for argmax? NaN first, then larger, then earlier."""
    if w != w:
        return v != v and i < j
    if v != v:
        return True
    return v > w or (v == w and i < j)


def _argmin_wins(v, i, w, j):
    """Does (value v at index i) beat (w at j) for argmin? NaN first, then smaller, then earlier."""
    if w != w:
        return v != v and i < j
    if v != v:
        return True
    return v < w or (v == w and i < j)


def _make_arg_reduce(wins, dtype):
    """Block-per-output tree over (value, index) pairs; ``wins`` decides each match."""
    value_dtype = numba.from_dtype(dtype)

    @lean_kernel
    def arg_reduce(out, x, kept_shape, kept_strides, red_shape, red_strides, offset,
                   red_size, sentinel):
        values = cuda.shared.array(MAX_THREADS, value_dtype)
        indices = cuda.shared.array(MAX_THREADS, numba.int64)
        t = cuda.threadIdx.x
        base = position(cuda.blockIdx.x, kept_shape, kept_strides, offset)
        best_value = sentinel
        best_index = red_size  # "no element yet": loses every tie on index
        for j in range(t, red_size, cuda.blockDim.x):
            value = x[position(j, red_shape, red_strides, base)]
            if wins(value, j, best_value, best_index):
                best_value = value
                best_index = j
        values[t] = best_value
        indices[t] = best_index
        cuda.syncthreads()
        step = cuda.blockDim.x // 2
        while step > 0:
            if t < step and wins(values[t + step], indices[t + step], values[t], indices[t]):
                values[t] = values[t + step]
                indices[t] = indices[t + step]
            cuda.syncthreads()
            step //= 2
        if t == 0:
            out[cuda.blockIdx.x] = indices[0]

    return arg_reduce


def _arg_reduce_op(wins_fn, sentinel_for):
    wins = device_function(wins_fn)
    kernels: dict = {}

    def op(x, axis=None, keepdims=False):
        host = not is_on_device(x)
        view = as_view(x)
        if axis is None:
            axes = tuple(range(view.ndim))
            out_shape = (1,) * view.ndim if keepdims else ()
        else:
            axes = normalize_axes(int(axis), view.ndim)
            out_shape = _output_shape(view.shape, axes, keepdims)
        red_size = math.prod(view.shape[a] for a in axes)
        if red_size == 0:
            raise ValueError("attempt to get argmax/argmin of an empty sequence")
        out = cuda.device_array(out_shape, dtype=np.int64)
        if out.size == 0:
            return returned(out, host)
        if view.dtype not in kernels:
            kernels[view.dtype] = _make_arg_reduce(wins, view.dtype)
        kept_shape, kept_strides, red_shape, red_strides = _split_axes(view, axes)
        sentinel = np.asarray(sentinel_for(view.dtype), dtype=view.dtype)[()]
        kernels[view.dtype][out.size, _block_size(red_size)](
            out.reshape((out.size,)), view.storage, kept_shape, kept_strides,
            red_shape, red_strides, view.offset, red_size, sentinel)
        return returned(out, host)

    return op


argmax = _arg_reduce_op(_argmax_wins, _lowest)
argmax.__doc__ = """Index of the largest element along ``axis`` (flat index if None), as numpy.

Ties go to the first occurrence and NaN counts as the largest value, like numpy."""
argmin = _arg_reduce_op(_argmin_wins, _highest)
argmin.__doc__ = """Index of the smallest element along ``axis`` (flat index if None), as numpy."""
