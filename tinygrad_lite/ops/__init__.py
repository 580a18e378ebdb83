"""The ops layer: each differentiable operation's forward and backward, by family.

* ``elementwise``: unary maths, broadcasting arithmetic, where, comparisons
* ``reduce``: sum, max, min and the composites mean, var, std, logsumexp
* ``movement``: reshape, transpose, broadcast, pad, cat, stack
* ``indexing``: ``t[index]`` and its scatter-add adjoint
* ``linalg``: matmul
* ``softmax``: softmax, log_softmax
* ``creation``: factories

Importing this package attaches the ops to ``Tensor`` as methods and operators.
"""

from . import tensor_methods
from .creation import (
                       arange,
                       eye,
                       full,
                       full_like,
                       ones,
                       ones_like,
                       rand,
                       randn,
                       tensor,
                       zeros,
                       zeros_like,
)
from .elementwise import where
from .linalg import matmul
from .movement import cat, stack
from .reduce import logsumexp
from .softmax import log_softmax, softmax

tensor_methods.install()

__all__ = ["arange", "eye", "full", "full_like", "ones", "ones_like", "rand", "randn",
           "tensor", "zeros", "zeros_like", "where", "matmul", "cat", "stack", "logsumexp",
           "log_softmax", "softmax"]
