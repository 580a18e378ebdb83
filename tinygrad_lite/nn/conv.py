"""Image layers: ``Conv2d``, ``MaxPool2d``, ``AvgPool2d`` and ``BatchNorm2d`` (NCHW).

Parameter names, layouts and default initialisation are PyTorch's, so a state_dict
moves between the two frameworks unchanged: ``Conv2d.weight`` is
``(out_channels, in_channels, kh, kw)`` and ``Conv2d.bias`` ``(out_channels,)``.

The lecture notes' Keras digits CNN, ``Conv2D(10, (3, 3), padding="same") -> ReLU ->
MaxPooling2D(2) -> Flatten -> Dense(50) -> Dense(10)``, reads::

    nn.Sequential(nn.Conv2d(1, 10, 3, padding="same"), nn.ReLU(), nn.MaxPool2d(2),
                  nn.Flatten(), nn.Linear(10 * 4 * 4, 50), nn.ReLU(), nn.Linear(50, 10))
"""

from __future__ import annotations

import math
import numbers

from ..autograd.tensor import Tensor
from ..ops import conv as _conv
from ..ops import creation
from . import functional as F
from . import init
from .batchnorm import _BatchNorm
from .module import Module
from .parameter import Parameter


def _positive_int(layer: str, name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{layer}: {name} must be an int, got {value!r}")
    if value <= 0:
        raise ValueError(f"{layer}: {name} must be positive, got {value}")
    return int(value)


class Conv2d(Module):
    """2-D convolution over NCHW images: ``(N, in_channels, H, W) -> (N, out_channels,
    OH, OW)`` with ``OH = (H + 2 padding - kh) // stride + 1``.

    ``kernel_size``, ``stride`` and ``padding`` are ints or ``(h, w)`` pairs;
    ``padding="same"`` (odd kernels, stride 1) keeps H and W, like Keras'
    ``padding="same"``, and ``"valid"`` means 0. Default initialisation is PyTorch's:
    ``kaiming_uniform_(weight, a=sqrt(5))``, i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with
    ``fan_in = in_channels * kh * kw``, and the bias uniform in the same interval.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1,
                 padding=0, bias: bool = True, dtype=None, device: str = "cpu"):
        super().__init__()
        self.in_channels = _positive_int("Conv2d", "in_channels", in_channels)
        self.out_channels = _positive_int("Conv2d", "out_channels", out_channels)
        self.kernel_size = _conv.pair("Conv2d", "kernel_size", kernel_size, 1)
        self.stride = _conv.pair("Conv2d", "stride", stride, 1)
        self.padding = _conv.same_padding("Conv2d", padding, self.kernel_size, self.stride)
        self.padding_mode = padding if isinstance(padding, str) else None
        self.weight = Parameter(creation.zeros(out_channels, in_channels, *self.kernel_size,
                                               dtype=dtype, device=device))
        if bias:
            self.bias = Parameter(creation.zeros(out_channels, dtype=dtype, device=device))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init.calculate_fan_in_and_fan_out(self.weight)
            bound = 1.0 / math.sqrt(fan_in)
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"{self!r}: expected input of shape (N, {self.in_channels}, H, W), "
                             f"got shape {x.shape}")
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding)

    def extra_repr(self) -> str:
        padding = repr(self.padding_mode) if self.padding_mode else self.padding
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={padding}, bias={self.bias is not None}")


class _Pool2d(Module):
    def __init__(self, kernel_size, stride=None):
        super().__init__()
        name = type(self).__name__
        self.kernel_size = _conv.pair(name, "kernel_size", kernel_size, 1)
        self.stride = self.kernel_size if stride is None else _conv.pair(name, "stride",
                                                                        stride, 1)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


class MaxPool2d(_Pool2d):
    """The maximum of each ``kernel_size`` window; ``stride`` defaults to the window size
    (non-overlapping windows, as Keras' ``MaxPooling2D(pool_size)``)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool2d(x, self.kernel_size, self.stride)


class AvgPool2d(_Pool2d):
    """The mean of each ``kernel_size`` window; ``stride`` defaults to the window size."""

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(x, self.kernel_size, self.stride)


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) images, per channel C (statistics over N, H, W)."""

    expected_ndims = (4,)
