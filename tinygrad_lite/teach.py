"""``tl.teach``: a scalar autodiff engine for the first lesson, on the real engine.

:class:`Scalar` is a single number that remembers how it was computed, in the spirit
of micrograd: ``c = a * b + a`` builds a small graph, ``c.backward()`` fills in
``a.grad`` and ``b.grad``. Unlike a stand-alone toy, it has no backward loop of its
own. Every operation is a :class:`tinygrad_lite.Function` (forward and backward side by
side), and ``backward`` runs :func:`tinygrad_lite.autograd.engine.run_backward`, the
*same* reverse-order sweep and chain-rule loop that ``Tensor.backward`` uses. What you
learn on scalars is exactly what runs on tensors.

    >>> from tinygrad_lite.teach import Scalar
    >>> a, b = Scalar(2.0), Scalar(-3.0)
    >>> c = a * b + a
    >>> c.backward()
    >>> float(a.grad), float(b.grad)      # dc/da = b + 1, dc/db = a
    (-2.0, 2.0)

To take part in the engine a value needs a small protocol (see ``engine.py`` and
``function.py``): ``_requires_grad``, ``_node`` (the Function that made it),
``_out_index``, ``_hooks``, ``_retains_grad``, ``shape``/``size``/``dtype``, ``grad``,
``backend`` and the helpers ``_unit_gradient``, ``_as_gradient``, ``_private_copy``,
``detach``, ``+``; its ``data`` must answer ``.shape`` and ``.dtype`` like an array.
A Scalar provides all of them: ``data`` is a numpy ``float64`` scalar (a Python
``float`` subclass, so ``math`` functions take it), ``shape == ()``.

Gradients are Scalars too (read the number with ``.grad.data`` or ``float(x.grad)``),
so ``backward(create_graph=True)`` gives gradients of gradients for free, because
every backward below is written with Scalar operations.

User-made Scalars require grad by default (as in micrograd, where every value
tracks its gradient); Python numbers mixed into an expression become constants.
"""

from __future__ import annotations

import math
import random
from numbers import Real

import numpy as np

from .autograd import engine
from .autograd.function import Function

_FLOAT64 = np.dtype("float64")


class _ScalarBackend:
    """The little a backend must answer for Scalars (anomaly mode asks ``all_finite``)."""

    device = "cpu"

    @staticmethod
    def all_finite(value) -> bool:
        return math.isfinite(value)


_BACKEND = _ScalarBackend()


class Scalar:
    """One float64 number plus its place in the computation graph.

    Args:
        data: the value (anything ``float()`` accepts).
        requires_grad: whether gradients should flow to this value (default True).
        label: an optional name, shown by ``repr`` and by ``tl.viz.draw_graph``.
    """

    __slots__ = ("data", "_requires_grad", "grad", "_node", "_out_index", "_hooks",
                 "_retains_grad", "_version", "name", "__weakref__")

    shape = ()
    size = 1
    ndim = 0
    dtype = _FLOAT64
    backend = _BACKEND
    device = "cpu"
    __array_ufunc__ = None  # numpy must not turn ``np_float * Scalar`` into an array

    def __init__(self, data, requires_grad: bool = True, label: str | None = None):
        if isinstance(data, Scalar):
            data = data.data
        self.data = np.float64(data)
        self._requires_grad = bool(requires_grad)
        self.grad = None
        self._node = None
        self._out_index = 0
        self._hooks = None
        self._retains_grad = False
        self._version = 0
        self.name = label

    # ------------------------------------------------------ what the graph knows
    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @property
    def grad_fn(self):
        """The Function node that produced this value (None for a leaf)."""
        return self._node

    @property
    def is_leaf(self) -> bool:
        return self._node is None

    @property
    def op(self) -> str:
        """The name of the operation that produced this value ('' for a leaf)."""
        return "" if self._node is None else type(self._node).__name__

    @property
    def parents(self) -> tuple:
        """The Scalars this value was computed from (micrograd's ``_prev``)."""
        if self._node is None or self._node.inputs is None:
            return ()
        return tuple(x for x in self._node.inputs if isinstance(x, Scalar))

    def local_derivatives(self) -> tuple:
        """d(self)/d(parent) for each parent: the node's backward fed with 1.0.

        These are the numbers the chain rule multiplies together. Needs the graph
        still alive (call it before ``backward``, or backward with
        ``retain_graph=True``).
        """
        if self._node is None:
            return ()
        grads = self._node.backward(self._node, Scalar(1.0, requires_grad=False))
        grads = grads if isinstance(grads, tuple) else (grads,)
        return tuple(float(g.data) for x, g in zip(self._node.inputs, grads)
                     if isinstance(x, Scalar))

    def is_floating_point(self) -> bool:
        return True

    # ------------------------------------------------------------ conversion
    def item(self) -> float:
        return float(self.data)

    def __float__(self) -> float:
        return float(self.data)

    def detach(self) -> Scalar:
        """The same number as a constant outside the graph."""
        return Scalar(self.data, requires_grad=False)

    def _private_copy(self) -> Scalar:
        return Scalar(self.data, requires_grad=False)

    def _unit_gradient(self) -> Scalar:
        return Scalar(1.0, requires_grad=False)

    def _as_gradient(self, gradient) -> Scalar:
        return gradient if isinstance(gradient, Scalar) else Scalar(gradient,
                                                                    requires_grad=False)

    def __repr__(self) -> str:
        label = f", label={self.name!r}" if self.name else ""
        grad = "" if self.grad is None else f", grad={self.grad.data:.6g}"
        return f"Scalar({self.data:.6g}{grad}{label})"

    # -------------------------------------------------------------- autograd
    def backward(self, gradient=None, retain_graph: bool | None = None,
                 create_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into ``.grad`` of every leaf (the Tensor engine)."""
        engine.backward((self,), (gradient,), retain_graph=retain_graph,
                        create_graph=create_graph)

    def zero_grad(self) -> None:
        self.grad = None

    # ------------------------------------------------------------ arithmetic
    def __add__(self, other):
        return Add.apply(self, _scalar(other))

    def __radd__(self, other):
        return Add.apply(_scalar(other), self)

    def __sub__(self, other):
        return Sub.apply(self, _scalar(other))

    def __rsub__(self, other):
        return Sub.apply(_scalar(other), self)

    def __mul__(self, other):
        return Mul.apply(self, _scalar(other))

    def __rmul__(self, other):
        return Mul.apply(_scalar(other), self)

    def __truediv__(self, other):
        return Div.apply(self, _scalar(other))

    def __rtruediv__(self, other):
        return Div.apply(_scalar(other), self)

    def __neg__(self):
        return Neg.apply(self)

    def __pow__(self, exponent):
        if isinstance(exponent, Scalar):  # a ** b = exp(b log a), for a > 0
            return (exponent * self.log()).exp()
        if not isinstance(exponent, Real):
            return NotImplemented
        return Pow.apply(self, float(exponent))

    def __rpow__(self, base):
        return (self * math.log(float(base))).exp()

    def exp(self):
        return Exp.apply(self)

    def log(self):
        return Log.apply(self)

    def tanh(self):
        return Tanh.apply(self)

    def sigmoid(self):
        return Sigmoid.apply(self)

    def relu(self):
        return ReLU.apply(self)

    # Comparisons compare values (no graph), so Scalars sort and work in max().
    def __lt__(self, other):
        return self.data < float(other)

    def __le__(self, other):
        return self.data <= float(other)

    def __gt__(self, other):
        return self.data > float(other)

    def __ge__(self, other):
        return self.data >= float(other)

    __hash__ = object.__hash__  # identity: Scalars live in sets and dicts by identity


def _scalar(value) -> Scalar:
    """A Python number as a constant Scalar; Scalars pass through."""
    if isinstance(value, Scalar):
        return value
    if isinstance(value, Real):
        return Scalar(value, requires_grad=False)
    raise TypeError(f"cannot combine a Scalar with a {type(value).__name__}")


def _new(value: float) -> Scalar:
    """The output of an op; ``Function.apply`` links it into the graph if needed."""
    return Scalar(value, requires_grad=False)


# ----------------------------------------------------------------------------
# The operations. Each forward computes a number; each backward returns
# (local derivative) * (incoming gradient g) per input, written with Scalar ops,
# so backward passes can themselves be differentiated.
# ----------------------------------------------------------------------------
class Add(Function):
    @staticmethod
    def forward(ctx, a, b):
        return _new(a.data + b.data)

    @staticmethod
    def backward(ctx, g):
        """y = a + b:  dy/da = 1,  dy/db = 1."""
        return g, g


class Sub(Function):
    @staticmethod
    def forward(ctx, a, b):
        return _new(a.data - b.data)

    @staticmethod
    def backward(ctx, g):
        """y = a - b:  dy/da = 1,  dy/db = -1."""
        return g, -g


class Mul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return _new(a.data * b.data)

    @staticmethod
    def backward(ctx, g):
        """y = a * b:  dy/da = b,  dy/db = a."""
        a, b = ctx.saved_tensors
        return g * b, g * a


class Div(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return _new(a.data / b.data)

    @staticmethod
    def backward(ctx, g):
        """y = a / b:  dy/da = 1/b,  dy/db = -a/b^2."""
        a, b = ctx.saved_tensors
        return g / b, -g * a / (b * b)


class Neg(Function):
    @staticmethod
    def forward(ctx, a):
        return _new(-a.data)

    @staticmethod
    def backward(ctx, g):
        """y = -a:  dy/da = -1."""
        return -g


class Pow(Function):
    @staticmethod
    def forward(ctx, a, exponent):
        ctx.save_for_backward(a)
        ctx.exponent = exponent
        return _new(a.data ** exponent)

    @staticmethod
    def backward(ctx, g):
        """y = a^n (n a number):  dy/da = n a^(n-1)."""
        (a,) = ctx.saved_tensors
        n = ctx.exponent
        return g * n * a ** (n - 1), None


class Exp(Function):
    @staticmethod
    def forward(ctx, a):
        y = _new(math.exp(a.data) if a.data < 709.7 else math.inf)  # overflow -> inf
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        """y = e^a:  dy/da = e^a = y."""
        (y,) = ctx.saved_tensors
        return g * y


class Log(Function):
    @staticmethod
    def forward(ctx, a):
        if a.data <= 0:
            raise ValueError(f"Scalar.log: log of a non-positive number ({a.data})")
        ctx.save_for_backward(a)
        return _new(math.log(a.data))

    @staticmethod
    def backward(ctx, g):
        """y = ln a:  dy/da = 1/a."""
        (a,) = ctx.saved_tensors
        return g / a


class Tanh(Function):
    @staticmethod
    def forward(ctx, a):
        y = _new(math.tanh(a.data))
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        """y = tanh a:  dy/da = 1 - y^2."""
        (y,) = ctx.saved_tensors
        return g * (1 - y * y)


class Sigmoid(Function):
    @staticmethod
    def forward(ctx, a):
        x = a.data
        # two stable branches: exp never overflows
        value = 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))
        y = _new(value)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        """y = 1/(1+e^-a):  dy/da = y (1 - y)."""
        (y,) = ctx.saved_tensors
        return g * y * (1 - y)


class ReLU(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.positive = a.data > 0
        return _new(max(a.data, 0.0))

    @staticmethod
    def backward(ctx, g):
        """y = max(a, 0):  dy/da = 1 if a > 0 else 0."""
        return g * (1.0 if ctx.positive else 0.0)


# ----------------------------------------------------------------------------
# A tiny neural-network library on Scalars (the lesson's perceptron and MLP).
# ----------------------------------------------------------------------------
class Neuron:
    """``activation(w . x + b)``: the perceptron of the lecture notes.

    Args:
        n_inputs: number of inputs.
        activation: ``"tanh"``, ``"sigmoid"``, ``"relu"`` or ``"linear"``.
        rng: a ``random.Random`` for the initial weights (uniform in [-1, 1]).
    """

    def __init__(self, n_inputs: int, activation: str = "tanh", rng=None):
        rng = rng if rng is not None else random.Random(0)
        if activation not in ("tanh", "sigmoid", "relu", "linear"):
            raise ValueError(f"Neuron: unknown activation {activation!r}; use 'tanh', "
                             "'sigmoid', 'relu' or 'linear'")
        self.w = [Scalar(rng.uniform(-1, 1), label=f"w{i}") for i in range(n_inputs)]
        self.b = Scalar(0.0, label="b")
        self.activation = activation

    def __call__(self, x):
        z = self.b
        for wi, xi in zip(self.w, x):
            z = z + wi * xi
        return z if self.activation == "linear" else getattr(z, self.activation)()

    def parameters(self) -> list:
        return self.w + [self.b]


class Layer:
    """A list of neurons that all see the same inputs."""

    def __init__(self, n_inputs: int, n_outputs: int, activation: str = "tanh", rng=None):
        self.neurons = [Neuron(n_inputs, activation, rng) for _ in range(n_outputs)]

    def __call__(self, x):
        out = [neuron(x) for neuron in self.neurons]
        return out[0] if len(out) == 1 else out

    def parameters(self) -> list:
        return [p for neuron in self.neurons for p in neuron.parameters()]


class MLP:
    """A multilayer perceptron of Scalars: ``MLP(2, [4, 4, 1])``.

    Hidden layers use ``activation``; the last layer is linear.
    """

    def __init__(self, n_inputs: int, layer_sizes, activation: str = "tanh", seed: int = 0):
        rng = random.Random(seed)
        sizes = [n_inputs] + list(layer_sizes)
        self.layers = [
            Layer(sizes[i], sizes[i + 1],
                  activation if i < len(layer_sizes) - 1 else "linear", rng)
            for i in range(len(layer_sizes))]

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x)
            if isinstance(x, Scalar):
                x = [x]
        return x[0] if len(x) == 1 else x

    def parameters(self) -> list:
        return [p for layer in self.layers for p in layer.parameters()]

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None


__all__ = ["Scalar", "Neuron", "Layer", "MLP"]
