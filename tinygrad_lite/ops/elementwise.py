"""Elementwise ops: unary maths, binary arithmetic with broadcasting, where, compare.

Each op's forward and backward sit side by side. Backward formulas are written with
Tensor ops (so they are differentiable themselves: ``create_graph=True`` works) and
return gradients at the *output's* shape; the engine sums them back to each input's
broadcast shape in one place.

Notation in the docstrings: ``g`` is the incoming gradient dL/dy, ``y`` the output.
"""

from __future__ import annotations

import math

from ..autograd.function import Function
from ..autograd.tensor import Tensor
from ._common import as_operand, common_backend, raw, wrap

# --------------------------------------------------------------------- binary


def _binary(opname: str, a, b):
    """Run the backend's ``opname`` on two operands, naming the op if shapes clash."""
    backend = common_backend(opname, a, b)
    try:
        out = getattr(backend, opname)(raw(a), raw(b))
    except ValueError:
        shape_a = a.shape if isinstance(a, Tensor) else ()
        shape_b = b.shape if isinstance(b, Tensor) else ()
        raise ValueError(f"{opname}: shapes {shape_a} and {shape_b} cannot be broadcast "
                         "together (numpy broadcasting: trailing dimensions must be equal "
                         "or 1)") from None
    if _is_double(out.dtype) and not (_is_double_tensor(a) or _is_double_tensor(b)):
        # numpy promotes an integer tensor met by a Python float or a float32 tensor
        # (or divided by an int) to float64; our rule, as PyTorch's, gives float32.
        out = backend.astype(out, backend.default_float)
    return wrap(out, backend)


def _is_double(dtype) -> bool:
    return dtype.kind == "f" and dtype.itemsize == 8


def _is_double_tensor(value) -> bool:
    return isinstance(value, Tensor) and _is_double(value.data.dtype)


class Add(Function):
    @staticmethod
    def forward(ctx, a, b):
        return _binary("add", a, b)

    @staticmethod
    def backward(ctx, g):
        """y = a + b:  dL/da = g,  dL/db = g."""
        return g, g


class Sub(Function):
    @staticmethod
    def forward(ctx, a, b):
        return _binary("sub", a, b)

    @staticmethod
    def backward(ctx, g):
        """y = a - b:  dL/da = g,  dL/db = -g."""
        return g, (-g if ctx.needs_input_grad[1] else None)


class Mul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return _binary("mul", a, b)

    @staticmethod
    def backward(ctx, g):
        """y = a * b:  dL/da = g * b,  dL/db = g * a."""
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        return (g * b if need_a else None), (g * a if need_b else None)


class Div(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return _binary("div", a, b)

    @staticmethod
    def backward(ctx, g):
        """y = a / b:  dL/da = g / b,  dL/db = -g * a / b^2."""
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        return (g / b if need_a else None), (-g * a / (b * b) if need_b else None)


class Pow(Function):
    @staticmethod
    def forward(ctx, a, b):
        y = _binary("pow", a, b)
        ctx.save_for_backward(a, b, y)
        return y

    @staticmethod
    def backward(ctx, g):
        """y = a ** b:  dL/da = g * b * a^(b-1),  dL/db = g * y * log(a).

        The exponent's gradient is only formed when needed: log(a) is undefined for
        a <= 0, the usual case of a constant integer power of a signed base. A
        constant exponent 0 gives 0 (not 0 * a^-1, which is NaN at a = 0).
        """
        a, b, y = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        grad_a = grad_b = None
        if need_a:
            grad_a = g * 0.0 if _is_number(b) and b == 0 else g * b * a ** (b - 1)
        if need_b:
            grad_b = g * y * (_log_of_number(a) if _is_number(a) else a.log())
        return grad_a, grad_b


def _log_of_number(base):
    """log of the Python-number base of ``base ** t`` (``2 ** t``); defined for base > 0."""
    if base <= 0:
        raise ValueError(f"pow: the gradient of {base} ** t with respect to t needs "
                         f"log({base}), which is undefined; use a positive base")
    return math.log(base)


def _is_number(value) -> bool:
    return not isinstance(value, Tensor)


def _tie_mask(a, b, winner_op: str):
    """Where ``a`` wins against ``b`` (1), ties split evenly (0.5), elsewhere 0."""
    backend = common_backend("mask", a, b)
    dtype = a.dtype if isinstance(a, Tensor) else b.dtype
    wins = backend.astype(getattr(backend, winner_op)(raw(a), raw(b)), dtype)
    ties = backend.astype(backend.eq(raw(a), raw(b)), dtype)
    return wrap(backend.add(wins, backend.mul(ties, 0.5)), backend)


class Maximum(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return _binary("maximum", a, b)

    @staticmethod
    def backward(ctx, g):
        """y = max(a, b): the gradient goes to the larger input; a tie splits it 50/50."""
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        return (g * _tie_mask(a, b, "gt") if need_a else None,
                g * _tie_mask(b, a, "gt") if need_b else None)


class Minimum(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return _binary("minimum", a, b)

    @staticmethod
    def backward(ctx, g):
        """y = min(a, b): the gradient goes to the smaller input; a tie splits it 50/50."""
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        return (g * _tie_mask(a, b, "lt") if need_a else None,
                g * _tie_mask(b, a, "lt") if need_b else None)


class Where(Function):
    @staticmethod
    def forward(ctx, condition, a, b):
        ctx.save_for_backward(condition)
        backend = common_backend("where", condition, a, b)
        try:
            return wrap(backend.where(raw(condition), raw(a), raw(b)), backend)
        except ValueError:
            shapes = [getattr(v, "shape", ()) for v in (condition, a, b)]
            raise ValueError(f"where: condition, a and b have shapes {shapes[0]}, {shapes[1]} "
                             f"and {shapes[2]}, which cannot be broadcast together") from None

    @staticmethod
    def backward(ctx, g):
        """y = where(c, a, b):  dL/da = where(c, g, 0),  dL/db = where(c, 0, g)."""
        (condition,) = ctx.saved_tensors
        _, need_a, need_b = ctx.needs_input_grad
        return (None,
                where(condition, g, 0.0) if need_a else None,
                where(condition, 0.0, g) if need_b else None)


def where(condition, a, b) -> Tensor:
    """Elementwise ``a if condition else b`` with broadcasting; differentiable in a and b."""
    like = next((v for v in (condition, a, b) if isinstance(v, Tensor)), None)
    if like is None:
        condition = Tensor(condition)
        like = condition
    if not isinstance(condition, Tensor):
        condition = Tensor(condition, device=like.device)
    if condition.dtype.kind != "b":
        condition = condition != 0
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        a = Tensor(a, device=like.device)  # Python floats -> float32, as Tensor(1.5)
    return Where.apply(condition, as_operand(a, like), as_operand(b, like))


def compare(opname: str, a, b) -> Tensor:
    """``a <op> b`` elementwise: a boolean tensor outside the graph (no gradient)."""
    return _binary(opname, a, as_operand(b, a))


# ---------------------------------------------------------------------- unary


def _unary(opname: str, x):
    return wrap(getattr(x.backend, opname)(x.data), x.backend)


class Neg(Function):
    @staticmethod
    def forward(ctx, x):
        return _unary("neg", x)

    @staticmethod
    def backward(ctx, g):
        """y = -x:  dL/dx = -g."""
        return -g


class Exp(Function):
    @staticmethod
    def forward(ctx, x):
        y = _unary("exp", x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        """y = exp(x):  dL/dx = g * y."""
        (y,) = ctx.saved_tensors
        return g * y


class Log(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return _unary("log", x)

    @staticmethod
    def backward(ctx, g):
        """y = log(x):  dL/dx = g / x."""
        (x,) = ctx.saved_tensors
        return g / x


class Sqrt(Function):
    @staticmethod
    def forward(ctx, x):
        y = _unary("sqrt", x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        """y = sqrt(x):  dL/dx = g / (2 y)."""
        (y,) = ctx.saved_tensors
        return g / (2.0 * y)


def _constant(x, data) -> Tensor:
    """A tensor outside the graph (a mask or a sign): a constant factor in a backward."""
    return wrap(data, x.backend)


class Abs(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return _unary("abs", x)

    @staticmethod
    def backward(ctx, g):
        """y = |x|:  dL/dx = g * sign(x)  (0 at x = 0, as PyTorch)."""
        (x,) = ctx.saved_tensors
        return g * _constant(x, x.backend.sign(x.data))


class Sin(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return _unary("sin", x)

    @staticmethod
    def backward(ctx, g):
        """y = sin(x):  dL/dx = g * cos(x)."""
        (x,) = ctx.saved_tensors
        return g * x.cos()


class Cos(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return _unary("cos", x)

    @staticmethod
    def backward(ctx, g):
        """y = cos(x):  dL/dx = -g * sin(x)."""
        (x,) = ctx.saved_tensors
        return -g * x.sin()


class Tanh(Function):
    @staticmethod
    def forward(ctx, x):
        y = _unary("tanh", x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        """y = tanh(x):  dL/dx = g * (1 - y^2)."""
        (y,) = ctx.saved_tensors
        return g * (1.0 - y * y)


class Sigmoid(Function):
    @staticmethod
    def forward(ctx, x):
        y = _unary("sigmoid", x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        """y = 1 / (1 + e^-x):  dL/dx = g * y * (1 - y)."""
        (y,) = ctx.saved_tensors
        return g * (y * (1.0 - y))


class ReLU(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return _unary("relu", x)

    @staticmethod
    def backward(ctx, g):
        """y = max(x, 0):  dL/dx = g * [x > 0]."""
        (x,) = ctx.saved_tensors
        backend = x.backend
        return g * _constant(x, backend.astype(backend.gt(x.data, 0), x.dtype))


class LeakyReLU(Function):
    @staticmethod
    def forward(ctx, x, slope):
        ctx.save_for_backward(x)
        ctx.slope = slope
        backend = x.backend
        return wrap(backend.where(backend.gt(x.data, 0), x.data,
                                  backend.mul(x.data, slope)), backend)

    @staticmethod
    def backward(ctx, g):
        """y = x if x > 0 else slope * x:  dL/dx = g * (1 if x > 0 else slope)."""
        (x,) = ctx.saved_tensors
        backend = x.backend
        factor = backend.astype(backend.where(backend.gt(x.data, 0), 1.0, ctx.slope), x.dtype)
        return g * _constant(x, factor), None


def _expm1(backend, x):
    """e^x - 1, through the backend's optional ``expm1`` primitive when it has one: the
    subtraction would cancel for x near 0 (giving 0 for |x| < eps / 2)."""
    expm1 = getattr(backend, "expm1", None)
    return expm1(x) if expm1 is not None else backend.sub(backend.exp(x), 1)


class ELU(Function):
    @staticmethod
    def forward(ctx, x, alpha):
        backend = x.backend
        negative_part = backend.mul(_expm1(backend, backend.minimum(x.data, 0)), alpha)
        y = wrap(backend.astype(backend.where(backend.gt(x.data, 0), x.data, negative_part),
                                x.dtype), backend)
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return y

    @staticmethod
    def backward(ctx, g):
        """y = x if x > 0 else alpha (e^x - 1):  dL/dx = g if x > 0 else g * alpha e^x.

        (Not g * (y + alpha): y rounds to -alpha for x below about -17 in float32 or -37
        in float64, and y + alpha then cancels to 0 where alpha e^x is still normal.)
        """
        (x,) = ctx.saved_tensors
        positive = _constant(x, x.backend.gt(x.data, 0))
        return where(positive, g, g * (x.clip(None, 0.0).exp() * ctx.alpha)), None


class Clip(Function):
    @staticmethod
    def forward(ctx, x, low, high):
        ctx.save_for_backward(x)
        ctx.low, ctx.high = low, high
        backend = x.backend
        data = x.data
        if low is not None:
            data = backend.maximum(data, low)
        if high is not None:
            data = backend.minimum(data, high)
        return wrap(backend.astype(data, x.dtype), backend)

    @staticmethod
    def backward(ctx, g):
        """y = min(max(x, lo), hi):  dL/dx = g where lo <= x <= hi, else 0."""
        (x,) = ctx.saved_tensors
        backend = x.backend
        inside = backend.full(x.shape, 1, x.dtype)
        if ctx.low is not None:
            inside = backend.mul(inside, backend.astype(backend.ge(x.data, ctx.low), x.dtype))
        if ctx.high is not None:
            inside = backend.mul(inside, backend.astype(backend.le(x.data, ctx.high), x.dtype))
        return g * _constant(x, inside), None, None


class Cast(Function):
    @staticmethod
    def forward(ctx, x, dtype):
        ctx.input_dtype = x.dtype
        return wrap(x.backend.astype(x.data, dtype), x.backend)

    @staticmethod
    def backward(ctx, g):
        """A change of dtype: the gradient is cast back to the input's dtype."""
        return g.astype(ctx.input_dtype), None


class Clone(Function):
    @staticmethod
    def forward(ctx, x):
        return wrap(x.backend.copy(x.data), x.backend)

    @staticmethod
    def backward(ctx, g):
        """y = x (a copy):  dL/dx = g."""
        return g


class ToDevice(Function):
    @staticmethod
    def forward(ctx, x, device):
        from ..backend import get_backend

        ctx.source_device = x.device
        target = get_backend(device)
        return wrap(target.from_host(x.backend.to_host(x.data)), target)

    @staticmethod
    def backward(ctx, g):
        """A move between devices: the gradient moves back."""
        return g.to(ctx.source_device), None
