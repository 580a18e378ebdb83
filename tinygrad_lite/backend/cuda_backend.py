"""The CUDA backend: the primitive operations of :mod:`.numpy_backend` on the GPU.

Every method here has the name, arguments and dtype rules of its counterpart in
``NumpyBackend`` (the reference), so the ops, layers and optimisers run unchanged on
a GPU. The work is done by the Numba kernels of :mod:`tinygrad_lite.kernels.cuda`;
this module only translates between the two vocabularies.

Arrays. A Tensor on "cuda" holds either a C-contiguous Numba device array or a
:class:`~tinygrad_lite.kernels.cuda.StridedView` (a window onto one). Views are what
``transpose``, ``broadcast_to`` and basic slicing return, so ``x @ W.T``, a broadcast
bias and ``x[:, t]`` cost no copy: every kernel reads its operands through their
strides. Both kinds have ``.shape`` and ``.dtype`` (a numpy dtype), which is all the
Tensor class reads; every method of this backend accepts both. Results of
computations are always fresh contiguous device arrays.

Host work. A few things are done on the host on purpose, and say so:

* random numbers are drawn from the library's one generator
  (:func:`tinygrad_lite.backend.random.get_rng`) and transferred, so ``tl.manual_seed``
  gives the same initial weights on the CPU and on the GPU;
* ``arange`` and ``eye`` are built with numpy and transferred (they are small);
* advanced indexing (integer arrays, boolean masks) lets numpy work out *which*
  elements are selected (``kernels.cuda.flat_indices``), then gathers / scatters on
  the device;
* ``matmul`` of integer arrays (the GEMM kernels are float-only) falls back to numpy.

dtypes follow numpy exactly: float32 stays float32, mixed float32 / float64 gives
float64, a Python scalar takes the array's dtype (``float32 * 2.0`` is float32),
``exp`` of an integer array is float64, comparisons give bool.
"""

from __future__ import annotations

import math

import numpy as np

from . import random as _random
from .numpy_backend import NumpyBackend

try:
    from numba import config as _numba_config
    from numba import cuda as _cuda

    from ..kernels import cuda as K
    from ..kernels.cuda.views import (
        StridedView,
        is_basic_index,
        is_contiguous,
        normalize_shape,
    )
except ImportError as _error:  # numba / numba-cuda missing: get_backend turns this into
    raise ImportError(f"numba-cuda is needed for the CUDA backend: {_error}") from _error


def _simulator_shapes_like_the_gpu() -> None:
    """Give the simulator's device arrays a plain tuple ``.shape``, as real ones have.

    The Numba CUDA simulator returns a ``FakeShape`` that refuses negative indices
    (mimicking shapes *inside* a kernel). A real ``DeviceNDArray.shape`` on the host is
    a plain tuple, and the ops layer reads ``x.data.shape[-1]`` like numpy's, so without
    this the simulator would fail where a GPU works.
    """
    from numba.cuda.simulator.cudadrv import devicearray

    devicearray.FakeCUDAArray.shape = property(lambda self: tuple(self._ary.shape))


if _numba_config.ENABLE_CUDASIM:
    try:
        _simulator_shapes_like_the_gpu()
    except (ImportError, AttributeError):  # another numba-cuda layout: leave it alone
        pass


def _isfinite_scalar(a):
    """True for finite numbers: ``inf - inf`` and ``nan - nan`` are NaN, not 0."""
    return (a - a) == 0


_isfinite_kernel = K.map_kernel(_isfinite_scalar, lambda dtype: np.dtype(np.bool_))


def _is_device(x) -> bool:
    """A device array or a view of one (what this backend's arrays are)."""
    return isinstance(x, StridedView) or (hasattr(x, "copy_to_host") and hasattr(x, "shape"))


def _device(x):
    """Make sure a result lives on the device (the kernels give numpy back for host-only
    inputs, e.g. an op between two Python scalars)."""
    if isinstance(x, (np.ndarray, np.generic)):
        return _cuda.to_device(_c_contiguous(np.asarray(x)))
    return x


def _c_contiguous(array: np.ndarray) -> np.ndarray:
    """``array`` in C order (``np.ascontiguousarray`` would turn a 0-d array into 1-d)."""
    return np.asarray(array, order="C")


def _host_index(index):
    """An index with every device array in it copied to the host (numpy does the
    bookkeeping of which elements are selected, see the module docstring)."""
    if isinstance(index, tuple):
        return tuple(_host_index(part) for part in index)
    if _is_device(index):
        return CudaBackend.to_host(index)
    if isinstance(index, list):
        return np.asarray(index)
    return index


def _flat_indices(shape, index) -> np.ndarray:
    """The C-order element numbers ``index`` selects, as a contiguous int64 host array
    (numpy may hand back a non-contiguous one, which cannot be transferred as is)."""
    return _c_contiguous(np.asarray(K.flat_indices(tuple(shape), index)))


def _view_key(index):
    """A basic key that makes numpy return a view even when every part is an int.

    ``kernels.cuda.basic_index`` reads the result's offset off a probe array, which
    only works when indexing returns an array, not a scalar; a trailing ``...`` makes
    ``x[1, 2, ...]`` a 0-d view of the same element.
    """
    parts = index if isinstance(index, tuple) else (index,)
    if any(part is Ellipsis for part in parts):
        return parts
    return parts + (Ellipsis,)


class CudaBackend:
    """Primitive operations on Numba CUDA device arrays (real GPU or simulator)."""

    name = "cuda"
    device = "cuda"

    def __init__(self):
        if not K.is_available():
            raise RuntimeError(
                "CUDA was requested but no CUDA GPU is usable through Numba (no GPU or "
                "driver found). Check `tl.cuda.is_available()` first and fall back to "
                "device='cpu', install the NVIDIA driver and `pip install numba-cuda`, or "
                "set NUMBA_ENABLE_CUDASIM=1 before starting Python to run on the (slow) "
                "CUDA simulator.")

    # ------------------------------------------------------------------ dtypes
    dtype = staticmethod(NumpyBackend.dtype)
    is_floating = staticmethod(NumpyBackend.is_floating)
    result_dtype = staticmethod(NumpyBackend.result_dtype)
    broadcast_shapes = staticmethod(NumpyBackend.broadcast_shapes)
    default_float = NumpyBackend.default_float

    # ------------------------------------------------------- creation, transfer
    def asarray(self, data, dtype=None):
        """User data as a device array, with the library's dtype rules (see NumpyBackend)."""
        if _is_device(data):
            return self.copy(data) if dtype is None else self.astype(data, dtype)
        return self.from_host(NumpyBackend().asarray(data, dtype))

    @staticmethod
    def to_host(x) -> np.ndarray:
        """A numpy copy of ``x`` on the host."""
        if isinstance(x, StridedView):
            x = K.contiguous(x)
        if hasattr(x, "copy_to_host"):
            return x.copy_to_host()
        return np.array(x, copy=True)

    @staticmethod
    def from_host(x):
        """Transfer a host (numpy) array to a new device array."""
        if _is_device(x):
            return x
        return _cuda.to_device(_c_contiguous(np.asarray(x)))

    @staticmethod
    def copy(x):
        """A fresh contiguous device array with the contents of ``x``."""
        return K.copy_strided(_device(x))

    @staticmethod
    def zeros(shape, dtype):
        return K.full(normalize_shape(shape), 0, np.dtype(dtype))

    @staticmethod
    def full(shape, value, dtype):
        return K.full(normalize_shape(shape), value, np.dtype(dtype))

    def arange(self, start, stop, step, dtype):
        return self.from_host(np.arange(start, stop, step, dtype=dtype))

    def eye(self, n, m, dtype):
        return self.from_host(np.eye(n, m, dtype=dtype))

    def randn(self, shape, dtype):
        """Drawn on the host from the library's generator (same numbers as on the CPU)."""
        return self.from_host(_random.get_rng().standard_normal(shape).astype(dtype))

    def rand(self, shape, dtype):
        return self.from_host(_random.get_rng().random(shape).astype(dtype))

    @classmethod
    def item(cls, x):
        return cls.to_host(x).item()

    @staticmethod
    def isfinite(x):
        """Elementwise "neither inf nor NaN" as a bool array."""
        if np.dtype(x.dtype).kind not in "fc":
            return K.full(tuple(x.shape), True, np.bool_)
        return _isfinite_kernel(x)

    @classmethod
    def all_finite(cls, x) -> bool:
        """True if no element is inf or NaN: ``sum(x * 0)`` is 0 exactly then, else NaN."""
        if np.dtype(x.dtype).kind != "f" or math.prod(x.shape) == 0:
            return True
        return bool(np.isfinite(cls.item(K.reduce_sum(K.mul(x, 0)))))

    # -------------------------------------------------------- unary elementwise
    neg = staticmethod(K.neg)
    exp = staticmethod(K.exp)
    log = staticmethod(K.log)
    sqrt = staticmethod(K.sqrt)
    abs = staticmethod(K.abs_)
    sign = staticmethod(K.sign)
    sin = staticmethod(K.sin)
    cos = staticmethod(K.cos)
    tanh = staticmethod(K.tanh)
    log1p = staticmethod(K.log1p)  # optional primitives: accurate near 0
    expm1 = staticmethod(K.expm1)

    @staticmethod
    def sigmoid(x):
        """Stable logistic function; keeps ``x``'s float dtype (ints give float64)."""
        return K.sigmoid(x)

    @staticmethod
    def relu(x):
        return K.relu(x)

    # ------------------------------------------------------- binary elementwise
    # Wrapped so that an op between two Python scalars still gives a device array.
    @staticmethod
    def add(a, b):
        return _device(K.add(a, b))

    @staticmethod
    def sub(a, b):
        return _device(K.sub(a, b))

    @staticmethod
    def mul(a, b):
        return _device(K.mul(a, b))

    @staticmethod
    def div(a, b):
        return _device(K.div(a, b))

    @staticmethod
    def pow(a, b):
        return _device(K.pow_(a, b))

    @staticmethod
    def maximum(a, b):
        return _device(K.maximum(a, b))

    @staticmethod
    def minimum(a, b):
        return _device(K.minimum(a, b))

    @staticmethod
    def eq(a, b):
        return _device(K.eq(a, b))

    @staticmethod
    def ne(a, b):
        return _device(K.ne(a, b))

    @staticmethod
    def lt(a, b):
        return _device(K.lt(a, b))

    @staticmethod
    def le(a, b):
        return _device(K.le(a, b))

    @staticmethod
    def gt(a, b):
        return _device(K.gt(a, b))

    @staticmethod
    def ge(a, b):
        return _device(K.ge(a, b))

    @staticmethod
    def where(cond, a, b):
        return _device(K.where(cond, a, b))

    # --------------------------------------------------------------- reductions
    @staticmethod
    def _axes(axis):
        return tuple(axis) if isinstance(axis, list) else axis

    @classmethod
    def sum(cls, x, axis=None, keepdims=False):
        return K.reduce_sum(x, axis=cls._axes(axis), keepdims=keepdims)

    @classmethod
    def max(cls, x, axis=None, keepdims=False):
        return K.reduce_max(x, axis=cls._axes(axis), keepdims=keepdims)

    @classmethod
    def min(cls, x, axis=None, keepdims=False):
        return K.reduce_min(x, axis=cls._axes(axis), keepdims=keepdims)

    @staticmethod
    def argmax(x, axis=None):
        return K.argmax(x, axis=axis)

    @staticmethod
    def argmin(x, axis=None):
        return K.argmin(x, axis=axis)

    # ----------------------------------------------------------------- movement
    @staticmethod
    def reshape(x, shape):
        """Like numpy: shares memory when ``x`` is contiguous, else copies first."""
        array = K.contiguous(x)
        return array.reshape(normalize_shape(shape, math.prod(array.shape)))

    @staticmethod
    def transpose(x, axes):
        """A strided view with the axes permuted: no data moves."""
        view = K.as_view(x)
        if axes is None:
            axes = tuple(reversed(range(view.ndim)))
        return K.permute(view, axes)

    @staticmethod
    def broadcast_to(x, shape):
        """A strided view with stride 0 along the broadcast axes: no data moves."""
        return K.expand(K.as_view(_device(x)), tuple(shape))

    @staticmethod
    def getitem(x, index):
        """``x[index]`` with numpy's rules.

        A basic index (ints, slices, None, ...) gives a strided view of the same data,
        as numpy does, so ``x[:, t]`` costs no copy; an integer-array or mask index
        gathers the selected elements into a new array.
        """
        index = _host_index(index)
        if is_basic_index(index):
            view = K.basic_index(K.as_view(x), _view_key(index))
            # a contiguous window is handed out as a plain device array (no copy)
            return K.contiguous(view) if is_contiguous(view) else view
        return K.gather(x, _flat_indices(x.shape, index))

    @staticmethod
    def index_add(shape, index, values, dtype):
        """A zeros array of ``shape`` with ``values`` added at ``index``.

        A basic index selects each element at most once: a plain strided copy into
        the zeros. Advanced indices may repeat elements, whose contributions must add
        up: ``kernels.cuda.scatter_add`` (atomic adds).
        """
        index = _host_index(index)
        shape = normalize_shape(shape)
        dtype = np.dtype(dtype)
        if is_basic_index(index):
            out = K.full(shape, 0, dtype)
            K.setitem(out, _view_key(index), _device(values))
            return out
        return K.scatter_add(shape, _flat_indices(shape, index), _device(values), dtype=dtype)

    @staticmethod
    def setitem(x, index, values) -> None:
        """``x[index] = values`` in place (values broadcast and are cast to x's dtype)."""
        index = _host_index(index)
        if not _is_device(values) and not isinstance(values, (bool, int, float)):
            values = np.asarray(values, dtype=x.dtype)
        if is_basic_index(index):
            K.setitem(x, _view_key(index), values)
        elif not isinstance(x, StridedView):
            # write through the flat element numbers of x (a contiguous array)
            size = math.prod(x.shape)
            K.setitem(x.reshape((size,)), (_flat_indices(x.shape, index),), values)
        else:
            # a view cannot be flattened: name the same elements by one integer array
            # per axis instead (numpy then hands the kernels a contiguous index array)
            flat = _flat_indices(x.shape, index)
            K.setitem(x, tuple(np.unravel_index(flat, x.shape)), values)

    @staticmethod
    def pad(x, widths, value):
        return K.pad(x, widths, value)

    @staticmethod
    def concatenate(arrays, axis):
        return K.concatenate([_device(a) for a in arrays], axis=axis)

    @staticmethod
    def astype(x, dtype):
        """A converted copy (always a copy, as numpy's ``astype``)."""
        return K.cast(x, np.dtype(dtype))

    @staticmethod
    def contiguous(x):
        """A C-contiguous device array (no copy if ``x`` already is one)."""
        return K.contiguous(x)

    # ------------------------------------------------------------ linear algebra
    @classmethod
    def matmul(cls, a, b):
        """numpy's ``matmul`` (1-D, 2-D and batched); views are read without copies."""
        if np.dtype(a.dtype).kind == "f" or np.dtype(b.dtype).kind == "f":
            return K.matmul(a, b)
        # integer products: the GEMM kernels are float-only; rare, so done on the host
        return cls.from_host(np.matmul(cls.to_host(a), cls.to_host(b)))

    # ------------------------------------------------- convolution and pooling
    @staticmethod
    def conv2d(x, w, stride=1, padding=0):
        return K.conv2d(x, w, stride, padding)

    @staticmethod
    def conv2d_backward_input(grad_out, w, x_shape, stride=1, padding=0):
        return K.conv2d_backward_input(grad_out, w, tuple(x_shape), stride, padding)

    @staticmethod
    def conv2d_backward_weight(grad_out, x, w_shape, stride=1, padding=0):
        return K.conv2d_backward_weight(grad_out, x, tuple(w_shape), stride, padding)

    @staticmethod
    def max_pool2d(x, kernel_size, stride=None):
        """``(out, indices)``; indices are ``h * W + w`` within each plane, as the CPU."""
        return K.max_pool2d(x, kernel_size, stride)

    @staticmethod
    def max_pool2d_backward(grad_out, indices, x_shape, kernel_size=None, stride=None):
        """Pass ``kernel_size`` (and ``stride``) for the deterministic gather form."""
        return K.max_pool2d_backward(grad_out, indices, tuple(x_shape), kernel_size, stride)

    @staticmethod
    def avg_pool2d(x, kernel_size, stride=None):
        return K.avg_pool2d(x, kernel_size, stride)

    @staticmethod
    def avg_pool2d_backward(grad_out, x_shape, kernel_size, stride=None):
        return K.avg_pool2d_backward(grad_out, tuple(x_shape), kernel_size, stride)
