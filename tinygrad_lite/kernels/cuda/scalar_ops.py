"""The scalar maths behind every elementwise CUDA kernel, written once as plain Python.

Each function here takes and returns plain numbers and uses only operators and the
``math`` module, so it runs three ways without change:

* as ordinary Python (handy for reading and for quick checks in a REPL);
* inside a GPU kernel, after ``cuda.jit(device=True)`` compiles it to a device function
  (see :mod:`.elementwise`, whose ``map_kernel`` / ``zip_kernel`` factories do this);
* in the Numba CUDA simulator, which runs the kernels as Python threads.

A device function may only call other compiled functions, so these never call each
other: each is self-contained. On the GPU nothing raises: ``log(-1)`` gives NaN and
``1 / 0`` gives inf, as in numpy. Python's ``math`` raises instead (``math.log(0)`` is a
ValueError), which would make the simulator disagree with the GPU, so the functions
that can hit such inputs handle them first and return what the GPU returns.
"""

import math

EXP_OVERFLOW = 709.782712893384
"""Above this, ``exp`` of a float64 is inf (Python's ``math.exp`` would raise)."""

# ------------------------------------------------------------------------ unary


def neg(a):
    return -a


def exp(a):
    if a > EXP_OVERFLOW:
        return math.inf
    return math.exp(a)


def log(a):
    """Natural log; ``log(0) = -inf`` and NaN for negative or NaN inputs, as numpy."""
    if a > 0:
        return math.log(a)
    if a == 0:
        return -math.inf
    return math.nan


def log1p(a):
    """log(1 + a), to an ulp also for tiny a; ``-inf`` at -1 and NaN below, as numpy."""
    if a > -1:
        return math.log1p(a)
    if a == -1:
        return -math.inf
    return math.nan


def expm1(a):
    """e^a - 1, to an ulp also for tiny a (e^a - 1 as written cancels near 0)."""
    if a > EXP_OVERFLOW:
        return math.inf
    return math.expm1(a)


def sqrt(a):
    """Square root; NaN for negative or NaN inputs, as numpy."""
    if a >= 0:
        return math.sqrt(a)
    return math.nan


def abs_(a):
    return abs(a)


def sign(a):
    """-1, 0 or +1; NaN stays NaN (``a * 0`` keeps it), as ``numpy.sign``."""
    if a > 0:
        return 1
    if a < 0:
        return -1
    return a * 0


def sin(a):
    """Sine; NaN for inf or NaN."""
    if math.isinf(a) or math.isnan(a):
        return math.nan
    return math.sin(a)


def cos(a):
    """Cosine; NaN for inf or NaN."""
    if math.isinf(a) or math.isnan(a):
        return math.nan
    return math.cos(a)


def tanh(a):
    return math.tanh(a)


def sigmoid(a):
    """1 / (1 + e^-a) without overflow: ``exp`` only ever sees a non-positive number."""
    if a >= 0:
        return 1.0 / (1.0 + math.exp(-a))
    z = math.exp(a)
    return z / (1.0 + z)


def relu(a):
    """max(a, 0); written ``a < 0`` so that NaN passes through unchanged."""
    return 0 if a < 0 else a


def identity(a):
    """Used by ``cast`` and ``copy_strided``: the conversion happens on the store."""
    return a


# ----------------------------------------------------------------------- binary


def add(a, b):
    return a + b


def sub(a, b):
    return a - b


def mul(a, b):
    return a * b


def div(a, b):
    return a / b


def pow_(a, b):
    return a**b


def maximum(a, b):
    """The larger of a and b; a NaN in either wins, as ``numpy.maximum``."""
    if a != a:
        return a
    return a if a >= b else b


def minimum(a, b):
    """The smaller of a and b; a NaN in either wins, as ``numpy.minimum``."""
    if a != a:
        return a
    return a if a <= b else b


def eq(a, b):
    return a == b


def ne(a, b):
    return a != b


def lt(a, b):
    return a < b


def le(a, b):
    return a <= b


def gt(a, b):
    return a > b


def ge(a, b):
    return a >= b


UNARY = {"neg": neg, "exp": exp, "log": log, "sqrt": sqrt, "abs": abs_, "sign": sign,
         "sin": sin, "cos": cos, "tanh": tanh, "sigmoid": sigmoid, "relu": relu,
         "log1p": log1p, "expm1": expm1}
"""Unary ops by the name the backends use."""

BINARY = {"add": add, "sub": sub, "mul": mul, "div": div, "pow": pow_,
          "maximum": maximum, "minimum": minimum}
"""Arithmetic binary ops by name."""

COMPARISONS = {"eq": eq, "ne": ne, "lt": lt, "le": le, "gt": gt, "ge": ge}
"""Comparison ops by name (their kernels write bool arrays)."""
