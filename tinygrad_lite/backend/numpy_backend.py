"""The reference backend: every primitive operation written with numpy.

A *backend* owns the arrays that Tensors wrap and implements a small, explicit set
of primitive operations on them (see ``docs/architecture.md``). The autograd core and
the ops layer never call numpy or numba themselves; they call these methods. A new
backend (Numba CPU kernels, Numba CUDA) implements the same methods for its own
arrays, so every op, layer and optimiser runs on it unchanged.

The primitive set, by family:

* creation / transfer: ``asarray, to_host, from_host, zeros, full, arange, eye,
  randn, rand, copy``
* elementwise unary: ``neg, exp, log, sqrt, abs, sign, sin, cos, tanh, sigmoid, relu``
  and, optional (see ``OPTIONAL_PRIMITIVES``), ``log1p, expm1``
* elementwise binary (numpy broadcasting): ``add, sub, mul, div, pow, maximum,
  minimum`` and the comparisons ``eq, ne, lt, le, gt, ge``; ``where``
* reductions over axes: ``sum, max, min, argmax, argmin``
* movement: ``reshape, transpose, broadcast_to, getitem, index_add, pad,
  concatenate, astype``
* linear algebra: ``matmul``; convolution and pooling: ``conv2d*``, ``max_pool2d*``,
  ``avg_pool2d*``
* inspection: ``all_finite, item``
"""

from __future__ import annotations

import numpy as np

from . import random as _random

FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


class NumpyBackend:
    """Primitive operations on host ``numpy.ndarray`` arrays."""

    name = "numpy"
    device = "cpu"

    #: Primitives another backend may leave out: their callers fall back to plainer
    #: ops (``getattr(backend, "add_", None)``): the in-place ``add_``/``sub_`` to the
    #: out-of-place ``add``/``sub``, ``log1p(x)``/``expm1(x)`` to ``log(1 + x)``/
    #: ``exp(x) - 1``, which lose the relative accuracy of small results.
    OPTIONAL_PRIMITIVES = frozenset({"OPTIONAL_PRIMITIVES", "add_", "sub_", "log1p", "expm1"})

    # ------------------------------------------------------------------ dtypes
    @staticmethod
    def dtype(dtype) -> np.dtype:
        """Normalise anything numpy understands (``"float32"``, ``np.float64``) to a dtype."""
        return np.dtype(dtype)

    @staticmethod
    def is_floating(dtype) -> bool:
        return np.issubdtype(dtype, np.floating)

    @staticmethod
    def result_dtype(*dtypes) -> np.dtype:
        return np.result_type(*dtypes)

    default_float = np.dtype(np.float32)

    # ------------------------------------------------------- creation, transfer
    def asarray(self, data, dtype=None) -> np.ndarray:
        """Turn user data into an array following the library's dtype rules.

        A numpy array keeps its dtype; Python floats (and lists of them) become
        float32, Python ints int64, Python bools bool. ``dtype`` overrides.
        """
        if isinstance(data, np.ndarray):
            array = data
        elif isinstance(data, np.generic):
            array = np.asarray(data)
        else:
            try:
                array = np.asarray(data)
            except ValueError:  # numpy refuses ragged nested lists
                raise TypeError(f"cannot make a Tensor from {type(data).__name__}: ragged "
                                "lists (rows of different lengths)") from None
            if array.dtype == np.float64 and dtype is None:  # Python floats -> float32
                array = array.astype(np.float32)
            elif array.dtype.kind in "iu":
                array = array.astype(np.int64)
            elif array.dtype == object:
                raise TypeError(f"cannot make a Tensor from {type(data).__name__}: "
                                "ragged lists or non-numeric objects")
        if array.dtype.kind not in "biufc":
            raise TypeError(f"cannot make a Tensor from {type(data).__name__} of dtype "
                            f"{array.dtype}: tensors hold numbers (bool, int, float)")
        if dtype is not None:
            array = array.astype(np.dtype(dtype), copy=False)
        return np.array(array, copy=True) if array is data else array

    @staticmethod
    def to_host(x) -> np.ndarray:
        return np.array(x, copy=True)

    @staticmethod
    def from_host(x: np.ndarray) -> np.ndarray:
        return x

    @staticmethod
    def copy(x):
        return x.copy()

    @staticmethod
    def zeros(shape, dtype):
        return np.zeros(shape, dtype=dtype)

    @staticmethod
    def full(shape, value, dtype):
        out = np.empty(shape, dtype=dtype)  # what np.full does, without its argument
        out.fill(value)                     # handling (a microsecond per seed gradient)
        return out

    @staticmethod
    def arange(start, stop, step, dtype):
        return np.arange(start, stop, step, dtype=dtype)

    @staticmethod
    def eye(n, m, dtype):
        return np.eye(n, m, dtype=dtype)

    def randn(self, shape, dtype):
        return self.from_host(_random.get_rng().standard_normal(shape).astype(dtype))

    def rand(self, shape, dtype):
        return self.from_host(_random.get_rng().random(shape).astype(dtype))

    @staticmethod
    def item(x):
        return x.item()

    isfinite = staticmethod(np.isfinite)

    @staticmethod
    def all_finite(x) -> bool:
        return bool(np.isfinite(x).all()) if x.dtype.kind == "f" else True

    # -------------------------------------------------------- unary elementwise
    neg = staticmethod(np.negative)
    exp = staticmethod(np.exp)
    log = staticmethod(np.log)
    sqrt = staticmethod(np.sqrt)
    abs = staticmethod(np.abs)
    sign = staticmethod(np.sign)
    sin = staticmethod(np.sin)
    cos = staticmethod(np.cos)
    tanh = staticmethod(np.tanh)
    # log(1 + x) and e^x - 1 to an ulp also where the result is tiny: log(1 + x) would
    # round 1 + x first (giving 0 for |x| < eps / 2), and exp(x) - 1 cancel for x near 0.
    log1p = staticmethod(np.log1p)
    expm1 = staticmethod(np.expm1)

    @staticmethod
    @np.errstate(over="ignore")  # (as a decorator: cheaper than a with-block per call)
    def sigmoid(x):
        """1 / (1 + exp(-x)), in place on one new array (four ufunc calls).

        Accurate to a few ulp for every x: for x < 0, exp(-x) is large and exact to an
        ulp, and so is its reciprocal. (The shortcut (1 + tanh(x/2)) / 2 is not: 1 + tanh
        cancels, and tanh rounds to -1 below x = -19 in float32 or -38 in float64, giving
        0 where the true value is ~5e-9 or ~3e-17.) Below about -88.7 (float32) or -709
        (float64) exp(-x) overflows to inf and the result is 0, where the true value is
        under the smallest normal number anyway: that overflow is expected, not warned.
        Integer inputs give float64.
        """
        y = np.negative(x, dtype=None if x.dtype.kind == "f" else np.float64)
        if not isinstance(y, np.ndarray):  # a 0-d input gives a numpy scalar
            y = np.array(y)
        np.exp(y, out=y)  # may overflow to inf (ignored, see the decorator): 1/(1+inf) = 0
        y += 1.0
        np.reciprocal(y, out=y)
        return y

    @staticmethod
    def relu(x):
        return np.maximum(x, 0).astype(x.dtype, copy=False)

    # ------------------------------------------------------- binary elementwise
    add = staticmethod(np.add)
    sub = staticmethod(np.subtract)
    mul = staticmethod(np.multiply)
    div = staticmethod(np.true_divide)
    pow = staticmethod(np.power)
    maximum = staticmethod(np.maximum)
    minimum = staticmethod(np.minimum)
    eq = staticmethod(np.equal)
    ne = staticmethod(np.not_equal)
    lt = staticmethod(np.less)
    le = staticmethod(np.less_equal)
    gt = staticmethod(np.greater)
    ge = staticmethod(np.greater_equal)

    @staticmethod
    def where(cond, a, b):
        out = np.where(cond, a, b)
        return out

    @staticmethod
    def broadcast_shapes(*shapes):
        return np.broadcast_shapes(*shapes)

    # --------------------------------------------------------------- reductions
    # ufunc.reduce directly: np.sum & co. add microseconds of argument dispatch, which
    # is most of the cost for the small arrays of a batch-1 training step.
    @staticmethod
    def sum(x, axis=None, keepdims=False):
        dtype = np.int64 if x.dtype.kind in "bui" else None  # numpy's sum promotes ints
        return np.asarray(np.add.reduce(x, axis=axis, keepdims=keepdims, dtype=dtype))

    @staticmethod
    def max(x, axis=None, keepdims=False):
        if axis is not None and _short_rows(x, axis):
            return _reduce_short_rows(np.maximum, x, keepdims)
        return np.asarray(np.maximum.reduce(x, axis=axis, keepdims=keepdims))

    @staticmethod
    def min(x, axis=None, keepdims=False):
        if axis is not None and _short_rows(x, axis):
            return _reduce_short_rows(np.minimum, x, keepdims)
        return np.asarray(np.minimum.reduce(x, axis=axis, keepdims=keepdims))

    @staticmethod
    def argmax(x, axis=None):
        return np.asarray(np.argmax(x, axis=axis))

    @staticmethod
    def argmin(x, axis=None):
        return np.asarray(np.argmin(x, axis=axis))

    # ----------------------------------------------------------------- movement
    @staticmethod
    def reshape(x, shape):
        return x.reshape(shape)  # the method: np.reshape's dispatch costs a microsecond

    @staticmethod
    def transpose(x, axes):
        return x.transpose(axes)

    @staticmethod
    def broadcast_to(x, shape):
        return np.broadcast_to(x, shape)

    @staticmethod
    def getitem(x, index):
        out = x[index]
        return np.asarray(out)

    @staticmethod
    def index_add(shape, index, values, dtype):
        """A zeros array of ``shape`` with ``values`` added at ``index``.

        ``np.add.at`` is unbuffered, so an element selected several times (a repeated
        integer index) receives the sum of all its contributions: the gradient of
        indexing.
        """
        out = np.zeros(shape, dtype=dtype)
        np.add.at(out, index, values)
        return out

    @staticmethod
    def setitem(x, index, values) -> None:
        x[index] = values

    # In place, optional: ``x += y`` / ``x -= y`` written into ``x`` (``y`` broadcasts to
    # ``x``'s shape and is cast to its dtype, as with ``setitem``). A backend without
    # them gets the out-of-place op (the callers fall back): they only save the
    # allocation of a temporary, which at the digits networks' sizes costs as much as
    # the arithmetic.
    @staticmethod
    def add_(x, y) -> None:
        np.add(x, y, out=x, casting="unsafe")

    @staticmethod
    def sub_(x, y) -> None:
        np.subtract(x, y, out=x, casting="unsafe")

    @staticmethod
    def pad(x, widths, value):
        return np.pad(x, widths, mode="constant", constant_values=value)

    @staticmethod
    def concatenate(arrays, axis):
        return np.concatenate(arrays, axis=axis)

    @staticmethod
    def astype(x, dtype):
        return x.astype(dtype)

    @staticmethod
    def contiguous(x):
        return np.ascontiguousarray(x)

    # ------------------------------------------------------------ linear algebra
    matmul = staticmethod(np.matmul)  # a ufunc: called directly, no wrapper

    # ------------------------------------------------- convolution and pooling
    # Filled in from tinygrad_lite.kernels.reference (plain numpy im2col) so the
    # reference backend stays dependency-free; see _install_reference_kernels().


# Reducing the rows of a matrix with short rows (the logits of a batch, N x 10, in a
# softmax) is slow in numpy: its inner loop then runs over only a few elements, once
# per row, and maximum/minimum are not vectorised along it. Reducing the transposed
# (C x N) copy over axis 0 runs C - 1 long, vectorised elementwise steps instead: about
# 2.5x faster for 100 x 10. Only for max and min: their result does not depend on the
# order of the elements (NaN propagates either way).
_SHORT_ROW = 32


def _short_rows(x, axis) -> bool:
    """True for a 2-D array reduced over its (short) last axis."""
    return (len(x.shape) == 2 and axis in (1, -1, (1,)) and x.shape[1] <= _SHORT_ROW
            and x.shape[0] > x.shape[1])


def _reduce_short_rows(ufunc, x, keepdims):
    result = ufunc.reduce(np.ascontiguousarray(x.T), axis=0)
    return result.reshape(-1, 1) if keepdims else result


def _install_reference_kernels(cls) -> None:
    """Attach the numpy convolution/pooling implementations if they are available."""
    try:
        from ..kernels import reference
    except ImportError:  # pragma: no cover - kernels package not present
        return
    for name in ("conv2d", "conv2d_backward_input", "conv2d_backward_weight",
                 "max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward"):
        if hasattr(reference, name):
            setattr(cls, name, staticmethod(getattr(reference, name)))
