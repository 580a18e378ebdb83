"""Batch normalisation layers.

:class:`_BatchNorm` holds everything that does not depend on the input's rank: the
learnable per-channel scale and shift (``weight``, ``bias``), the running statistics
(buffers ``running_mean``, ``running_var``, ``num_batches_tracked``, as in PyTorch, so
checkpoints are interchangeable) and the call into :func:`nn.functional.batch_norm`,
which normalises over every axis except the channel axis (axis 1). A concrete layer
only says which input ranks it accepts:

    class BatchNorm2d(_BatchNorm):      # (N, C, H, W): statistics over N, H, W
        expected_ndims = (4,)
"""

from __future__ import annotations

from ..autograd.tensor import Tensor
from ..ops import creation
from . import functional as F
from .module import Module
from .parameter import Parameter


class _BatchNorm(Module):
    """Shared implementation of ``BatchNorm1d``/``BatchNorm2d``; subclasses set
    ``expected_ndims``, the input ranks they accept (channels always on axis 1)."""

    expected_ndims: tuple = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, dtype=None,
                 device: str = "cpu"):
        super().__init__()
        if num_features <= 0:
            raise ValueError(f"{type(self).__name__}: num_features must be positive, got "
                             f"{num_features}")
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = Parameter(creation.ones(num_features, dtype=dtype, device=device))
            self.bias = Parameter(creation.zeros(num_features, dtype=dtype, device=device))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean",
                                 creation.zeros(num_features, dtype=dtype, device=device))
            self.register_buffer("running_var",
                                 creation.ones(num_features, dtype=dtype, device=device))
            self.register_buffer("num_batches_tracked",
                                 Tensor(0, dtype="int64", device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1.0)
            self.num_batches_tracked.zero_()

    def _check_input(self, x: Tensor) -> None:
        name = type(self).__name__
        if x.ndim not in self.expected_ndims:
            ranks = " or ".join(f"{n}-D" for n in self.expected_ndims)
            raise ValueError(f"{name}: expected a {ranks} input (channels on axis 1), got "
                             f"shape {x.shape}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"{name}({self.num_features}): expected {self.num_features} "
                             f"channels on axis 1, got input shape {x.shape}")

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        # Batch statistics while training, or always when no running stats are kept.
        use_batch_stats = self.training or not self.track_running_stats
        update = self.training and self.track_running_stats
        return F.batch_norm(
            x, self.running_mean if update or not use_batch_stats else None,
            self.running_var if update or not use_batch_stats else None,
            self.weight, self.bias, training=use_batch_stats, momentum=self.momentum,
            eps=self.eps, channel_axis=1,
            num_batches_tracked=self.num_batches_tracked if update else None)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) features or (N, C, L) sequences, per channel C."""

    expected_ndims = (2, 3)
