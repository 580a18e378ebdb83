"""Pieces every CUDA kernel module shares: the index formula, launch sizes, results.

``position`` is the device-side half of :class:`~.views.StridedView`: it turns the
flat C-order number of an element (what a thread is given to work on) into that
element's place in a strided buffer. ``coalesce`` is the host-side trick that keeps
this cheap: it merges axes that are laid out back to back in *every* operand, so a
contiguous array is indexed as one long axis whatever its nominal shape.
"""

from __future__ import annotations

import numpy as np
from numba import cuda

THREADS_PER_BLOCK = 256
"""Threads per block for the one-thread-per-element kernels."""


def is_available() -> bool:
    """True when kernels can run: a CUDA GPU is present, or the simulator is enabled."""
    try:
        return bool(cuda.is_available())
    except Exception:  # a broken driver install should read as "no GPU", not crash
        return False


@cuda.jit(device=True)
def position(ordinal, shape, strides, offset):
    """Storage position of the element with C-order number ``ordinal`` in a strided view.

    Peel indices off the last (fastest) axis first: ``ordinal % shape[-1]`` is the
    index along it, ``ordinal // shape[-1]`` numbers the remaining rows, and so on;
    whatever is left at the end is the index along the first axis. (So a view that
    :func:`coalesce` turned into one axis costs a single multiply, no division.)
    ``shape`` must have at least one axis.
    """
    pos = offset
    for axis in range(len(shape) - 1, 0, -1):
        size = shape[axis]
        pos += (ordinal % size) * strides[axis]
        ordinal //= size
    return pos + ordinal * strides[0]


def coalesce(shape, strides_list):
    """Merge axes that are contiguous with their neighbour in every operand.

    Returns ``(shape, [strides, ...])`` with size-1 axes dropped and each run of
    mergeable axes fused into one (always at least one axis). Axis ``outer`` and the
    next axis ``inner`` merge when ``stride[outer] == stride[inner] * size[inner]`` for
    every operand: stepping the outer index is then the same as running off the end of
    the inner one.
    """
    new_shape: list[int] = []
    new_strides: list[list[int]] = [[] for _ in strides_list]
    for axis, size in enumerate(shape):
        if size == 1:
            continue
        mergeable = bool(new_shape) and all(
            merged[-1] == strides[axis] * size
            for merged, strides in zip(new_strides, strides_list))
        if mergeable:
            new_shape[-1] *= size
            for merged, strides in zip(new_strides, strides_list):
                merged[-1] = strides[axis]
        else:
            new_shape.append(int(size))
            for merged, strides in zip(new_strides, strides_list):
                merged.append(int(strides[axis]))
    if not new_shape:
        return (1,), [(0,) for _ in strides_list]
    return tuple(new_shape), [tuple(s) for s in new_strides]


def launch_1d(n: int) -> tuple[int, int]:
    """(blocks, threads) for one thread per element of an ``n``-element problem."""
    threads = max(1, min(THREADS_PER_BLOCK, n))
    return (n + threads - 1) // threads, threads


def next_power_of_two(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def returned(result, host: bool):
    """Hand a device result back, copied to the host if the caller passed only host data."""
    return result.copy_to_host() if host else result


def float_dtype(*dtypes) -> np.dtype:
    """The common dtype of GEMM-style kernel inputs: float32 or float64, else an error."""
    dtype = np.result_type(*dtypes)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"this CUDA kernel supports float32 and float64, not {dtype}")
    return np.dtype(dtype)


def multiprocessor_count(default: int = 80) -> int:
    """Number of SMs on the current GPU (``default`` in the simulator); asked once."""
    if _SM_COUNT:
        return _SM_COUNT[0]
    try:
        count = cuda.get_current_device().MULTIPROCESSOR_COUNT
    except Exception:
        return default
    if not (isinstance(count, (int, np.integer)) and count > 0):
        return default
    _SM_COUNT.append(int(count))
    return _SM_COUNT[0]


_SM_COUNT: list = []
