"""Loss modules: ``loss_fn = nn.CrossEntropyLoss(); loss = loss_fn(logits, target)``.

Each one stores its ``reduction`` and calls the function of the same name in
``nn.functional``, where the maths is documented.
"""

from __future__ import annotations

from . import functional as F
from .module import Module


class _Loss(Module):
    def __init__(self, reduction: str = "mean"):
        super().__init__()
        F._check_reduction(type(self).__name__, reduction)
        self.reduction = reduction

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class MSELoss(_Loss):
    """Mean squared error."""

    def forward(self, input, target):  # noqa: A002
        return F.mse_loss(input, target, self.reduction)


class CrossEntropyLoss(_Loss):
    """Softmax cross-entropy; target as class indices (N,) or probabilities (N, C)."""

    def forward(self, input, target):  # noqa: A002
        return F.cross_entropy(input, target, self.reduction)


class NLLLoss(_Loss):
    """Negative log-likelihood of log-probabilities (pair it with LogSoftmax)."""

    def forward(self, input, target):  # noqa: A002
        return F.nll_loss(input, target, self.reduction)


class BCELoss(_Loss):
    """Binary cross-entropy of probabilities (pair it with Sigmoid)."""

    def forward(self, input, target):  # noqa: A002
        return F.binary_cross_entropy(input, target, self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy of raw scores (sigmoid included, numerically stable)."""

    def forward(self, input, target):  # noqa: A002
        return F.binary_cross_entropy_with_logits(input, target, self.reduction)
