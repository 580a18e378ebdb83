"""Fully connected layers and shape helpers: ``Linear``, ``Identity``, ``Flatten``."""

from __future__ import annotations

import math
import numbers

from ..autograd.tensor import Tensor
from ..ops import creation
from . import functional as F
from . import init
from .module import Module
from .parameter import Parameter


class Linear(Module):
    """y = x W^T + b, with W of shape ``(out_features, in_features)`` (PyTorch's layout).

    Default initialisation is PyTorch's: W and b uniform in
    ``(-1/sqrt(in_features), 1/sqrt(in_features))`` (kaiming_uniform_ with a = sqrt(5)).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 dtype=None, device: str = "cpu"):
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise TypeError(f"Linear: {name} must be an int, got {value!r}")
        if in_features <= 0 or out_features <= 0:
            raise ValueError(f"Linear: sizes must be positive, got in_features={in_features}, "
                             f"out_features={out_features}")
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(creation.zeros(out_features, in_features, dtype=dtype,
                                               device=device))
        if bias:
            self.bias = Parameter(creation.zeros(out_features, dtype=dtype, device=device))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self.in_features)
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        shape = x.data.shape  # (the array's tuple: no property call per step)
        if not shape or shape[-1] != self.in_features:
            raise ValueError(f"{self!r}: expected input with last dimension {self.in_features}, "
                             f"got shape {x.shape}")
        return F.linear(x, self.weight, self.bias)

    def forward_activated(self, x: Tensor, activation: str) -> Tensor:
        """``activation(self(x))`` as one graph node (see ``F.linear_activation``)."""
        shape = x.data.shape  # (the array's tuple: no property call per step)
        if not shape or shape[-1] != self.in_features:
            raise ValueError(f"{self!r}: expected input with last dimension {self.in_features}, "
                             f"got shape {x.shape}")
        return F.linear_activation(x, self.weight, self.bias, activation)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Identity(Module):
    """Returns its input unchanged (a placeholder layer)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return x


class Flatten(Module):
    """Flatten every axis from ``start_axis`` on: ``(N, C, H, W) -> (N, C*H*W)``."""

    def __init__(self, start_axis: int = 1, end_axis: int = -1):
        super().__init__()
        self.start_axis, self.end_axis = start_axis, end_axis

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(self.start_axis, self.end_axis)

    def extra_repr(self) -> str:
        return f"start_axis={self.start_axis}, end_axis={self.end_axis}"
