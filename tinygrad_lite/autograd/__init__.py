"""The autograd core: Tensor, Function, the graph and the backward pass.

This layer knows nothing of numpy or numba: every computation on data goes through
the tensor's backend object.
"""

from .engine import backward, grad
from .function import Function
from .mode import detect_anomaly, enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .tensor import Tensor

__all__ = ["Tensor", "Function", "backward", "grad", "no_grad", "enable_grad",
           "set_grad_enabled", "is_grad_enabled", "detect_anomaly"]
