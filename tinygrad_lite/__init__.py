"""tinygrad_lite: a small, readable deep-learning framework.

    import tinygrad_lite as tl
    from tinygrad_lite import Tensor, nn, optim
    import tinygrad_lite.nn.functional as F

Layers, from the bottom up (each imports only from the ones below it):
backend arrays and kernels -> autograd core (Tensor, Function, backward) -> ops ->
nn.functional -> nn modules -> optim, data, train, sklearn, viz, testing.

Heavy submodules (scikit-learn, matplotlib, hypothesis, numba kernels) are imported
on first use, so ``import tinygrad_lite`` stays fast and compiles nothing.
"""

from __future__ import annotations

import importlib

from . import ops as _ops  # noqa: F401 - importing it attaches the ops to Tensor
from .autograd import (
    Function,
    Tensor,
    backward,
    detect_anomaly,
    enable_grad,
    grad,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
)
from .backend import get_backend_name, set_backend
from .backend.random import manual_seed
from .ops import (
    arange,
    cat,
    eye,
    full,
    full_like,
    log_softmax,
    logsumexp,
    matmul,
    ones,
    ones_like,
    rand,
    randn,
    softmax,
    stack,
    tensor,
    where,
    zeros,
    zeros_like,
)

__version__ = "0.1.0"

float32 = "float32"
float64 = "float64"
int64 = "int64"


def _elementwise(name):
    def function(x, *args, **kwargs):
        return getattr(x if isinstance(x, Tensor) else Tensor(x), name)(*args, **kwargs)
    function.__name__ = name
    function.__doc__ = f"``tl.{name}(x, ...)`` is ``x.{name}(...)``."
    return function


exp = _elementwise("exp")
log = _elementwise("log")
sqrt = _elementwise("sqrt")
sin = _elementwise("sin")
cos = _elementwise("cos")
tanh = _elementwise("tanh")
sigmoid = _elementwise("sigmoid")
relu = _elementwise("relu")
maximum = _elementwise("maximum")
minimum = _elementwise("minimum")
clip = _elementwise("clip")
reshape = _elementwise("reshape")
transpose = _elementwise("transpose")
flatten = _elementwise("flatten")
sum = _elementwise("sum")  # noqa: A001
mean = _elementwise("mean")
abs = _elementwise("abs")  # noqa: A001

_LAZY_SUBMODULES = {"nn", "optim", "data", "datasets", "train", "sklearn", "viz", "testing",
                    "kernels", "cuda", "teach", "serialization", "summary_", "utils"}
_LAZY_FUNCTIONS = {"save": ("serialization", "save"), "load": ("serialization", "load"),
                   "summary": ("train", "summary")}


def __getattr__(name):
    if name in _LAZY_FUNCTIONS:
        module_name, attribute = _LAZY_FUNCTIONS[name]
        return getattr(importlib.import_module(f".{module_name}", __name__), attribute)
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'tinygrad_lite' has no attribute {name!r}")


__all__ = ["Tensor", "Function", "grad", "backward", "no_grad", "enable_grad",
           "set_grad_enabled", "is_grad_enabled", "detect_anomaly", "manual_seed",
           "set_backend", "get_backend_name", "zeros", "ones", "full", "arange", "eye",
           "randn", "rand", "zeros_like", "ones_like", "full_like", "tensor", "where", "cat",
           "stack", "matmul", "softmax", "log_softmax", "logsumexp"]
