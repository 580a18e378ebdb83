"""``check_function``: property-test a differentiable function in one call.

    def test_my_square():
        tl.testing.check_function(Square, input_shapes=[(3, 2)])

draws shapes and values with hypothesis and, on every draw, compares the analytic
gradients with finite differences (``gradcheck``) and, for ``order=2``, the second
derivatives too (``gradgradcheck``). A failure is shrunk to a small example and
re-raised as the :class:`GradcheckError` that names the input, the element and both
values.
"""

from __future__ import annotations

import inspect

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from . import strategies as tls
from .gradcheck import gradcheck, gradgradcheck


def _callable(fn):
    """A Function subclass is called through ``apply``; anything else directly."""
    apply = getattr(fn, "apply", None)
    return apply if isinstance(fn, type) and apply is not None else fn


def _arity(fn) -> int:
    """The number of tensor arguments ``fn`` takes (``forward`` minus ``ctx``)."""
    target = fn.forward if isinstance(fn, type) and hasattr(fn, "forward") else fn
    params = [p for p in inspect.signature(target).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
              and p.default is p.empty]
    return len(params) - (1 if target is not fn else 0)


def _is_interval(value) -> bool:
    return isinstance(value, tuple) and len(value) == 2 and all(
        isinstance(v, (int, float)) for v in value)


def _per_input(value, count: int, name: str) -> list:
    """One option per input: a list of ``count`` options, or one option for all.

    A list of ``(lo, hi)`` pairs is one option (a union of intervals), not a list
    of per-input options; to give each input its own interval, wrap it in a list.
    """
    if isinstance(value, list) and not all(_is_interval(v) for v in value):
        if len(value) != count:
            raise ValueError(f"check_function: {name} has {len(value)} entries for "
                             f"{count} inputs")
        return value
    return [value] * count


def _per_input_kinks(avoid, count: int) -> list:
    """``avoid=[0.0]`` applies to every input, ``avoid=[[0.0], []]`` one list per input."""
    if not (avoid and all(isinstance(k, (list, tuple)) for k in avoid)):
        return [tuple(avoid)] * count
    if len(avoid) != count:
        raise ValueError(f"check_function: avoid has {len(avoid)} entries for {count} inputs")
    return [tuple(k) for k in avoid]


def _shapes_strategy(input_shapes, num_inputs):
    """A strategy for the tuple of input shapes."""
    if input_shapes is None:
        input_shapes = [tls.shapes(max_dims=2, max_side=3)] * num_inputs
    if input_shapes == "broadcast":
        return tls.mutually_broadcastable_shapes(num_inputs, max_dims=3, max_side=3)
    parts = [s if isinstance(s, st.SearchStrategy) else st.just(tuple(s))
             for s in input_shapes]
    return st.tuples(*parts)


def check_function(fn, input_shapes=None, order: int = 2, *, num_inputs: int | None = None,
                   max_examples: int | None = None, elements=None, avoid=(),
                   margin: float = 0.1, distinct=False, layout: str = "any",
                   eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3) -> None:
    """Run gradcheck (and gradgradcheck when ``order=2``) on many random inputs.

    ``fn`` is a callable taking tensors or a ``tl.Function`` subclass. ``input_shapes``
    is a list with one shape (a tuple or a strategy of tuples) per input, the string
    ``"broadcast"`` for mutually broadcastable shapes, or None for small random shapes.
    ``elements``, ``avoid``, ``margin`` and ``distinct`` are passed to
    :func:`~tinygrad_lite.testing.strategies.tensors`: one value for every input or a
    list with one per input (``avoid=[0.0]`` for all, ``avoid=[[0.0], []]`` per input;
    ``elements=[(0.5, 2.0), (-2.0, -0.5)]`` is a union of intervals for all inputs,
    ``elements=[[(0.5, 2.0)], None]`` gives the first input its own range).
    Returns None; raises the first (shrunk) failure.
    """
    if order not in (1, 2):
        raise ValueError(f"check_function: order must be 1 or 2, got {order}")
    if num_inputs is None:
        num_inputs = (len(input_shapes) if isinstance(input_shapes, list) else _arity(fn))
    call = _callable(fn)
    value_options = list(zip(_per_input(elements, num_inputs, "elements"),
                             _per_input_kinks(avoid, num_inputs),
                             _per_input(distinct, num_inputs, "distinct")))
    shape_strategy = _shapes_strategy(input_shapes, num_inputs)

    # database=None: this one inner function serves every caller, so examples saved
    # for one caller's function must not be replayed against another's.
    @settings(parent=settings(), max_examples=max_examples or settings().max_examples,
              deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.filter_too_much])
    @given(st.data())
    def property_test(data):
        shapes = data.draw(shape_strategy, label="shapes")
        inputs = [data.draw(tls.tensors(shape, elements=values, avoid=kinks, margin=margin,
                                        distinct=unique, layout=layout, requires_grad=True),
                            label=f"input {i}")
                  for i, (shape, (values, kinks, unique)) in enumerate(
                      zip(shapes, value_options))]
        gradcheck(call, inputs, eps=eps, atol=atol, rtol=rtol)
        if order == 2:
            gradgradcheck(call, inputs, eps=eps, atol=atol, rtol=rtol)

    property_test()
