"""Attach the ops to ``Tensor`` as methods and operators.

The autograd core defines only the container; this module gives it ``+``, ``@``,
``.exp()``, ``.sum()``, ``.reshape()``... Keeping the wiring in one place means the
core never imports the ops (the layers stay one-way), and every method is a
one-line call into the op that implements it.
"""

from __future__ import annotations

from ..autograd.tensor import Tensor
from . import elementwise as ew
from . import indexing, linalg, movement, reduce, softmax
from ._common import as_operand


def _binary_method(function_class):
    def method(self, other):
        return function_class.apply(self, as_operand(other, self))

    def reflected(self, other):
        return function_class.apply(as_operand(other, self), self)

    return method, reflected


def _install_operators() -> None:
    for name, function_class in (("add", ew.Add), ("sub", ew.Sub), ("mul", ew.Mul),
                                 ("truediv", ew.Div), ("pow", ew.Pow)):
        method, reflected = _binary_method(function_class)
        method.__name__, reflected.__name__ = f"__{name}__", f"__r{name}__"
        setattr(Tensor, f"__{name}__", method)
        setattr(Tensor, f"__r{name}__", reflected)
    for name in ("eq", "ne", "lt", "le", "gt", "ge"):
        def comparison(self, other, _op=name):
            return ew.compare(_op, self, other)
        comparison.__name__ = f"__{name}__"
        setattr(Tensor, f"__{name}__", comparison)
    Tensor.__hash__ = object.__hash__  # defining __eq__ must not break identity hashing
    Tensor.__neg__ = lambda self: ew.Neg.apply(self)
    Tensor.__abs__ = lambda self: ew.Abs.apply(self)
    Tensor.__matmul__ = lambda self, other: linalg.matmul(self, other)
    Tensor.__rmatmul__ = lambda self, other: linalg.matmul(as_operand(other, self), self)
    Tensor.__getitem__ = indexing.getitem


def _install_math() -> None:
    unary = {"exp": ew.Exp, "log": ew.Log, "sqrt": ew.Sqrt, "abs": ew.Abs, "sin": ew.Sin,
             "cos": ew.Cos, "tanh": ew.Tanh, "sigmoid": ew.Sigmoid, "relu": ew.ReLU,
             "neg": ew.Neg, "clone": ew.Clone}
    for name, function_class in unary.items():
        def method(self, _fn=function_class):
            return _fn.apply(self)
        method.__name__ = name
        method.__doc__ = function_class.backward.__doc__
        setattr(Tensor, name, method)

    def leaky_relu(self, slope: float = 0.01):
        return ew.LeakyReLU.apply(self, slope)

    def elu(self, alpha: float = 1.0):
        return ew.ELU.apply(self, alpha)

    def clip(self, lo=None, hi=None):
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"clip: lo={lo} is larger than hi={hi}")
        return ew.Clip.apply(self, lo, hi)

    def maximum(self, other):
        return ew.Maximum.apply(self, as_operand(other, self))

    def minimum(self, other):
        return ew.Minimum.apply(self, as_operand(other, self))

    def square(self):
        return self * self

    def sign(self):
        return Tensor._make(self.backend.sign(self.data), self.backend)

    for function in (leaky_relu, elu, clip, maximum, minimum, square, sign):
        setattr(Tensor, function.__name__, function)
    Tensor.clamp = clip


def _install_reductions() -> None:
    for name in ("sum", "mean", "max", "min", "logsumexp"):
        setattr(Tensor, name, getattr(reduce, name))

    def var(self, axis=None, keepdims=False, ddof=0):
        return reduce.var(self, axis, keepdims, ddof)

    def std(self, axis=None, keepdims=False, ddof=0):
        return reduce.std(self, axis, keepdims, ddof)

    def argmax(self, axis=None, keepdims=False):
        return reduce.argmax(self, axis, keepdims)

    def argmin(self, axis=None, keepdims=False):
        return reduce.argmin(self, axis, keepdims)

    def any(self, axis=None, keepdims=False):
        return (self != 0).astype("int64").sum(axis, keepdims) > 0

    def all(self, axis=None, keepdims=False):
        return (self == 0).astype("int64").sum(axis, keepdims) == 0

    for function in (var, std, argmax, argmin, any, all):
        setattr(Tensor, function.__name__, function)


def _install_movement() -> None:
    for name in ("reshape", "transpose", "swapaxes", "broadcast_to", "expand", "sum_to",
                 "flatten", "squeeze", "unsqueeze", "pad"):
        setattr(Tensor, name, getattr(movement, name))
    Tensor.view = movement.reshape
    Tensor.permute = movement.transpose
    Tensor.T = property(lambda self: movement.transpose(self), doc="Axes reversed.")
    Tensor.softmax = lambda self, axis=-1: softmax.softmax(self, axis)
    Tensor.log_softmax = lambda self, axis=-1: softmax.log_softmax(self, axis)
    Tensor.matmul = linalg.matmul
    Tensor.dot = linalg.matmul


def _install_conversions() -> None:
    def astype(self, dtype):
        """A copy in ``dtype``; differentiable (the gradient is cast back)."""
        dtype = self.backend.dtype(dtype)
        if dtype == self.dtype:
            return self
        return ew.Cast.apply(self, dtype)

    def to(self, device):
        """This tensor on ``device`` ("cpu" or "cuda"); differentiable."""
        from ..backend import get_backend

        if get_backend(device).device == self.device:
            return self
        return ew.ToDevice.apply(self, device)

    Tensor.astype = astype
    Tensor.to = to
    Tensor.float = lambda self: astype(self, "float32")
    Tensor.double = lambda self: astype(self, "float64")
    Tensor.long = lambda self: astype(self, "int64")
    Tensor.cpu = lambda self: to(self, "cpu")
    Tensor.cuda = lambda self: to(self, "cuda")
    Tensor.contiguous = lambda self: self


def install() -> None:
    _install_operators()
    _install_math()
    _install_reductions()
    _install_movement()
    _install_conversions()
