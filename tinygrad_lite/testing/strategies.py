"""Hypothesis strategies that draw shapes and tensors for property tests.

    from hypothesis import given
    from tinygrad_lite.testing import strategies as tls

    @given(tls.tensors(shape=tls.shapes(max_dims=2), avoid=[0.0]))
    def test_relu_is_non_negative(x):
        assert (x.relu().numpy() >= 0).all()

Values are kept in a small range by default, ``[-2, 2]``, where finite differences
are accurate. ``avoid=[k, ...]`` keeps every value at least ``margin`` away from the
kink points ``k`` (0 for relu and abs, the bounds for clip), where a function is not
differentiable and gradcheck would rightly fail. ``distinct=True`` keeps all values of
one tensor at least ``margin`` apart, so max/min have no ties.

Drawn tensors are not always plain contiguous arrays: ``layout="any"`` (the default)
also produces transposed, strided and broadcast (stride 0) views, because kernels that
assume contiguous memory are a classic source of wrong answers.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ..autograd.tensor import Tensor
from ..backend import get_backend

__all__ = ["shapes", "broadcastable_shapes", "mutually_broadcastable_shapes", "elements",
           "arrays", "tensors"]

DEFAULT_RANGE = (-2.0, 2.0)
LAYOUTS = ("contiguous", "transposed", "strided", "broadcast")


# ------------------------------------------------------------------- shapes


def shapes(min_dims: int = 0, max_dims: int = 3, min_side: int = 1, max_side: int = 4):
    """Shape tuples with ``min_dims..max_dims`` axes of ``min_side..max_side`` each."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                            max_side=max_side)


def broadcastable_shapes(shape, min_dims: int = 0, max_dims: int | None = None,
                         min_side: int = 1, max_side: int | None = None):
    """Shapes that broadcast with ``shape`` (numpy rules: equal, 1, or missing axes)."""
    return hnp.broadcastable_shapes(tuple(shape), min_dims=min_dims, max_dims=max_dims,
                                    min_side=min_side, max_side=max_side)


def mutually_broadcastable_shapes(num_shapes: int, min_dims: int = 0, max_dims: int = 3,
                                  min_side: int = 1, max_side: int = 3):
    """Tuples of ``num_shapes`` shapes that all broadcast together."""
    return hnp.mutually_broadcastable_shapes(
        num_shapes=num_shapes, min_dims=min_dims, max_dims=max_dims, min_side=min_side,
        max_side=max_side).map(lambda drawn: tuple(drawn.input_shapes))


# ------------------------------------------------------------------- values


def _intervals(spec) -> list:
    """``None``, ``(lo, hi)`` or a list of ``(lo, hi)`` pairs, as a list of pairs."""
    if spec is None:
        return [DEFAULT_RANGE]
    if isinstance(spec, tuple) and len(spec) == 2 and not isinstance(spec[0], tuple):
        return [(float(spec[0]), float(spec[1]))]
    return [(float(lo), float(hi)) for lo, hi in spec]


def _remove_kinks(intervals, avoid, margin) -> list:
    """Cut ``(k - margin, k + margin)`` out of every interval, for each kink ``k``."""
    for k in avoid:
        pieces = []
        for lo, hi in intervals:
            if hi <= k - margin or lo >= k + margin:
                pieces.append((lo, hi))
                continue
            if lo < k - margin:
                pieces.append((lo, k - margin))
            if hi > k + margin:
                pieces.append((k + margin, hi))
        intervals = pieces
    if not intervals:
        raise ValueError(f"avoid={list(avoid)} with margin {margin} leaves no values to draw")
    return intervals


def elements(values=None, avoid=(), margin: float = 0.1):
    """A strategy for single floats.

    ``values`` is ``None`` (``[-2, 2]``), an interval ``(lo, hi)``, a list of intervals,
    or any hypothesis strategy (used as is). ``avoid`` lists kink points that every
    value stays more than ``margin`` away from.
    """
    if isinstance(values, st.SearchStrategy):
        if avoid:
            return values.filter(lambda v: all(abs(v - k) > margin for k in avoid))
        return values
    intervals = _remove_kinks(_intervals(values), tuple(avoid), margin)
    return st.one_of(*[st.floats(lo, hi, allow_nan=False, allow_infinity=False,
                                 exclude_min=bool(avoid), exclude_max=bool(avoid))
                       for lo, hi in intervals])


@st.composite
def _distinct_array(draw, shape, dtype, values, margin):
    """Values at least ``margin`` apart: a shuffled, jittered grid over the range.

    The grid has one cell of width ``step >= 2 margin`` per value, and each value sits
    in the middle half of its own cell, so neighbours are at least ``step / 2`` apart.
    """
    if isinstance(values, st.SearchStrategy) or len(_intervals(values)) != 1:
        raise ValueError("distinct=True needs elements given as one interval (lo, hi)")
    ((lo, hi),) = _intervals(values)
    size = int(np.prod(shape, dtype=np.int64))
    step = max((hi - lo) / max(size, 1), 2 * margin)  # too many values: widen the range
    order = np.array(draw(st.permutations(range(size))), dtype=np.float64)
    jitter = draw(hnp.arrays(np.float64, size, elements=st.floats(0.25, 0.75)))
    return (lo + (order + jitter) * step).reshape(shape).astype(dtype)


# ------------------------------------------------------------------- arrays


def _shape_strategy(shape):
    if shape is None:
        return shapes()
    if isinstance(shape, st.SearchStrategy):
        return shape
    return st.just(tuple(shape))


def _lay_out(array, layout):
    """The same values as ``array``, stored transposed, strided or broadcast."""
    if layout == "transposed" and array.ndim >= 2:
        return np.ascontiguousarray(array.T).T
    if layout == "strided" and array.ndim >= 1:
        spread = np.zeros(array.shape[:-1] + (2 * array.shape[-1],), array.dtype)
        spread[..., ::2] = array
        return spread[..., ::2]
    if layout == "broadcast":
        # Values constant along an axis can be a stride-0 view of one slice.
        for axis, n in enumerate(array.shape):
            if n > 1 and (array == array.take([0], axis=axis)).all():
                return np.broadcast_to(array.take([0], axis=axis), array.shape)
    return array


@st.composite
def arrays(draw, shape=None, dtype="float64", values=None, avoid=(), margin: float = 0.1,
           distinct: bool = False, layout: str = "any"):
    """numpy arrays with the given (or a drawn) shape; see :func:`tensors`."""
    shape = draw(_shape_strategy(shape))
    dtype = np.dtype(dtype)
    if distinct:
        if avoid:
            raise ValueError("distinct=True cannot be combined with avoid=")
        array = draw(_distinct_array(shape, dtype, values, margin))
    elif dtype.kind == "f":
        array = draw(hnp.arrays(dtype, shape, elements=elements(values, avoid, margin)))
    elif dtype.kind == "b":
        array = draw(hnp.arrays(dtype, shape))
    else:
        lo, hi = _intervals(values or (-5, 5))[0]
        array = draw(hnp.arrays(dtype, shape, elements=st.integers(int(lo), int(hi))))
    if layout == "any":
        layout = draw(st.sampled_from(LAYOUTS))
    if layout == "broadcast" and array.ndim and not distinct:
        # A broadcast view needs values constant along an axis: repeat one drawn slice.
        axis = draw(st.integers(0, array.ndim - 1))
        array = np.repeat(array.take([0], axis=axis), array.shape[axis], axis=axis)
    return _lay_out(array, layout)


def tensors(shape=None, dtype="float64", elements=None, requires_grad: bool = False,
            avoid=(), margin: float = 0.1, distinct: bool = False, layout: str = "any",
            device: str = "cpu"):
    """A strategy for Tensors.

    * ``shape``: a tuple, a strategy of tuples (``shapes()``), or None (any small shape);
    * ``dtype``: float64 by default (what gradcheck needs);
    * ``elements``: the value range, ``(lo, hi)``, a list of intervals or a strategy;
    * ``avoid`` / ``margin``: keep every value more than ``margin`` from these points;
    * ``distinct``: all values at least ``margin`` apart (no ties for max / min);
    * ``layout``: ``"contiguous"``, ``"transposed"``, ``"strided"``, ``"broadcast"`` or
      ``"any"`` (drawn); the tensor wraps such a view directly, without copying.
    """
    def to_tensor(array):
        backend = get_backend(device)
        tensor = Tensor._make(backend.from_host(array), backend)
        if requires_grad:
            tensor.requires_grad = True
        return tensor

    return arrays(shape, dtype, elements, avoid, margin, distinct, layout).map(to_tensor)
