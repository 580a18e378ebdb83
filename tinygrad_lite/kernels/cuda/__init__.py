"""Numba CUDA kernels for tinygrad_lite, usable on their own (array in, array out).

Importing this package needs neither a GPU nor the simulator; launching a kernel
needs one of them (``is_available()``). Run on a machine without a GPU by setting
``NUMBA_ENABLE_CUDASIM=1`` *before* numba is imported: the simulator executes every
CUDA thread as a Python thread, slowly but faithfully (shared memory, barriers,
atomics), which is how the test suite checks these kernels in CI.

Arrays: inputs may be numpy arrays (transferred for you), C-contiguous Numba device
arrays, or :class:`StridedView` windows on device memory (transposes, broadcasts and
slices without copies). If every input is a numpy array the result is returned as
numpy; otherwise it stays on the device.

Modules, in reading order:

* :mod:`.views` and :mod:`.common`: strided views and the index formula all kernels share;
* :mod:`.scalar_ops` and :mod:`.elementwise`: scalar maths turned into kernels by the
  ``map_kernel`` / ``zip_kernel`` factories, with broadcasting;
* :mod:`.reductions`: sum / max / min over any axes, argmax / argmin;
* :mod:`.indexing`: gather, scatter_add, getitem / setitem, pad, concatenate;
* :mod:`.gemm`: the tiled shared-memory matrix multiply;
* :mod:`.conv`: convolution as implicit GEMM; :mod:`.pool`: max and average pooling;
* :mod:`.memory`: the caching allocator for device memory, installed on import.
"""

from . import memory
from .common import is_available
from .conv import conv2d, conv2d_backward_input, conv2d_backward_weight
from .elementwise import (
    BINARY,
    UNARY,
    abs_,
    add,
    cast,
    contiguous,
    copy_strided,
    cos,
    div,
    eq,
    exp,
    expm1,
    full,
    ge,
    gt,
    le,
    log,
    log1p,
    lt,
    map_kernel,
    maximum,
    minimum,
    mul,
    ne,
    neg,
    pow_,
    relu,
    sigmoid,
    sign,
    sin,
    sqrt,
    sub,
    tanh,
    where,
    zeros,
    zip_kernel,
)
from .gemm import GemmTiles, batched_matmul, matmul
from .indexing import (
    concatenate,
    flat_indices,
    gather,
    getitem,
    pad,
    scatter_add,
    setitem,
)
from .memory import empty_cache, memory_stats
from .pool import avg_pool2d, avg_pool2d_backward, max_pool2d, max_pool2d_backward
from .reductions import argmax, argmin, reduce, reduce_kernel, reduce_max, reduce_min, reduce_sum
from .views import (
    StridedView,
    as_view,
    basic_index,
    expand,
    permute,
    reshape_view,
    to_device,
)

__all__ = [
    "BINARY", "GemmTiles", "StridedView", "UNARY", "abs_", "add", "argmax", "argmin", "as_view",
    "avg_pool2d", "avg_pool2d_backward", "basic_index", "batched_matmul", "cast", "concatenate",
    "contiguous", "conv2d", "conv2d_backward_input", "conv2d_backward_weight", "copy_strided",
    "cos", "div", "empty_cache", "eq", "exp", "expand", "expm1", "flat_indices", "full",
    "gather", "ge", "getitem", "gt", "is_available", "le", "log", "log1p", "lt", "map_kernel",
    "matmul", "max_pool2d",
    "max_pool2d_backward", "maximum", "memory_stats", "minimum", "mul", "ne", "neg", "pad",
    "permute", "pow_", "reduce", "reduce_kernel", "reduce_max", "reduce_min", "reduce_sum", "relu",
    "reshape_view", "scatter_add", "setitem", "sigmoid", "sign", "sin", "sqrt", "sub", "tanh",
    "to_device", "where", "zeros", "zip_kernel",
]

# Importing numba.cuda creates no CUDA context; the first kernel launch or device array
# does. So the allocator installed here is the one that context gets (see .memory).
memory.install()
