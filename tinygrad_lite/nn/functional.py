"""``nn.functional``: stateless layer functions, activations and losses.

Everything here is a plain function of Tensors. Most are compositions of the ops
layer's primitives, so their gradients come for free. Four are fused into a single
graph node (``tinygrad_lite.ops.fused``) because they run on every training step and
the per-node overhead matters: ``linear``, ``cross_entropy``,
``binary_cross_entropy`` and ``binary_cross_entropy_with_logits``.

Losses take ``reduction="mean" | "sum" | "none"``: the average over all elements, their
sum, or the unreduced per-element losses (per sample for ``cross_entropy`` and
``nll_loss``).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ..autograd.mode import no_grad
from ..autograd.tensor import Tensor
from ..backend.random import get_rng
from ..ops import conv as _conv
from ..ops import fused
from ..ops.softmax import log_softmax as _log_softmax
from ..ops.softmax import softmax as _softmax

__all__ = ["linear", "conv2d", "max_pool2d", "avg_pool2d", "relu", "sigmoid", "tanh",
           "leaky_relu", "elu", "softmax", "log_softmax", "dropout", "batch_norm", "one_hot",
           "mse_loss", "cross_entropy", "nll_loss", "binary_cross_entropy",
           "binary_cross_entropy_with_logits"]


# ------------------------------------------------------------------------ layers


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y = x W^T + b, W of shape (out, in) (PyTorch's layout); x of shape (..., in).

    One graph node (``ops.fused.LinearFunction``) instead of transpose, matmul, add.
    """
    # The arrays' own shapes and dtypes (tuples and numpy dtypes on every backend): the
    # Tensor properties would cost a call each, on every layer of every step.
    x_shape, w_shape = x.data.shape, weight.data.shape
    if not x_shape or len(w_shape) != 2 or x_shape[-1] != w_shape[1]:
        raise ValueError(f"linear: input of shape {x.shape} does not fit a weight of shape "
                         f"{weight.shape} (the input's last axis must equal weight.shape[1])")
    if bias is not None and bias.data.shape != (w_shape[0],):
        raise ValueError(f"linear: bias of shape {bias.shape} does not fit a weight of shape "
                         f"{weight.shape} (expected ({w_shape[0]},))")
    if x.data.dtype != weight.data.dtype:  # mixed precision: promote like x @ W.T would
        return x @ weight.T + bias if bias is not None else x @ weight.T
    return fused.linear(x, weight, bias)


_ACTIVATION_FUNCTIONS = {"sigmoid": lambda t: fused.sigmoid(t), "tanh": lambda t: t.tanh(),
                         "relu": lambda t: t.relu()}


def linear_activation(x: Tensor, weight: Tensor, bias: Tensor | None = None,
                      activation: str = "sigmoid") -> Tensor:
    """``activation(linear(x, weight, bias))`` for ``activation`` in "sigmoid", "tanh",
    "relu", as ONE graph node (``ops.fused.LinearActivation``).

    The same numbers as the two calls; one node less to record and to run backward,
    which is what ``nn.Sequential`` uses for a ``Linear`` followed by its activation.
    """
    if activation not in _ACTIVATION_FUNCTIONS:
        raise ValueError(f"linear_activation: activation must be one of "
                         f"{sorted(_ACTIVATION_FUNCTIONS)}, got {activation!r}")
    x_shape, w_shape = x.data.shape, weight.data.shape  # (see linear)
    if (not x_shape or len(w_shape) != 2 or x_shape[-1] != w_shape[1]
            or x.data.dtype != weight.data.dtype
            or (bias is not None and bias.data.shape != (w_shape[0],))):
        # the unusual cases (and their error messages) are F.linear's
        return _ACTIVATION_FUNCTIONS[activation](linear(x, weight, bias))
    return fused.linear_activation(x, weight, bias, activation)


def conv2d(x: Tensor, weight: Tensor, b: Tensor | None = None, stride=1,
           padding=0) -> Tensor:
    """2-D convolution of NCHW images: x (N, C, H, W), weight (O, C, KH, KW), b (O,).

    ``stride`` and ``padding`` are ints or ``(h, w)`` pairs (``padding="same"`` for odd
    kernels at stride 1); the output is (N, O, (H + 2 pad - KH) // stride + 1, ...).
    One graph node (``ops.conv.Conv2dFunction``) running the backend's conv kernel.
    """
    return _conv.conv2d(x, weight, b, stride, padding)


def max_pool2d(x: Tensor, kernel_size, stride=None) -> Tensor:
    """The maximum of each ``kernel_size`` window of NCHW images (stride: the window)."""
    return _conv.max_pool2d(x, kernel_size, stride)


def avg_pool2d(x: Tensor, kernel_size, stride=None) -> Tensor:
    """The mean of each ``kernel_size`` window of NCHW images (stride: the window)."""
    return _conv.avg_pool2d(x, kernel_size, stride)


# ------------------------------------------------------------------- activations


def relu(x: Tensor) -> Tensor:
    """max(x, 0)."""
    return x.relu()


def sigmoid(x: Tensor) -> Tensor:
    """1 / (1 + exp(-x)), the lecture notes' activation (``ops.fused.SigmoidFunction``:
    the same maths as ``x.sigmoid()`` with a cheaper backward)."""
    return fused.sigmoid(x)


def tanh(x: Tensor) -> Tensor:
    return x.tanh()


def _check_number(opname: str, name: str, value) -> float:
    """A real-number hyper-parameter (a slope, an alpha), or a TypeError naming it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{opname}: {name} must be a real number, got {value!r}")
    return value


def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    """x if x > 0 else negative_slope * x."""
    return x.leaky_relu(_check_number("leaky_relu", "negative_slope", negative_slope))


def elu(x: Tensor, alpha: float = 1.0) -> Tensor:
    """x if x > 0 else alpha (exp(x) - 1)."""
    return x.elu(_check_number("elu", "alpha", alpha))


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """exp(x_i) / sum_j exp(x_j) along ``axis`` (stable for any finite input)."""
    return _softmax(x, axis)


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """x_i - logsumexp(x) along ``axis``."""
    return _log_softmax(x, axis)


# ------------------------------------------------------------------ regularisers


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by 1 / (1 - p).

    The scaling ("inverted dropout") keeps every activation's expected value, so
    nothing changes at evaluation time, when dropout is the identity. The mask comes
    from the library's seeded generator, so ``tl.manual_seed`` reproduces it.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be between 0 and 1, got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    keep = get_rng().random(x.shape) >= p
    mask = Tensor((keep / (1.0 - p)).astype(x.dtype), device=x.device)
    return x * mask


def _channel_shape(x: Tensor, channel_axis: int) -> tuple:
    """(1, C, 1, ...): how a per-channel vector broadcasts against ``x``."""
    return tuple(n if i == channel_axis else 1 for i, n in enumerate(x.shape))


def batch_norm(x: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
               weight: Tensor | None = None, bias: Tensor | None = None,
               training: bool = False, momentum: float | None = 0.1, eps: float = 1e-5,
               channel_axis: int = 1, num_batches_tracked: Tensor | None = None) -> Tensor:
    """Normalise each channel to zero mean and unit variance, then scale and shift.

        y = (x - mean) / sqrt(var + eps) * weight + bias

    Statistics are per channel (``channel_axis``, axis 1 as in PyTorch: (N, C),
    (N, C, L), (N, C, H, W)), taken over every other axis. In training the batch's
    own mean and (biased) variance are used, and the running estimates are updated in
    place as ``running = (1 - momentum) * running + momentum * batch`` with the
    *unbiased* batch variance (as PyTorch); ``momentum=None`` gives the cumulative
    average ``1 / num_batches_tracked``. In evaluation the running estimates are used.
    The gradient (through the batch statistics too) comes from the composition.
    """
    if x.ndim < 2:
        raise ValueError(f"batch_norm: expected an input with a batch and a channel axis, "
                         f"got shape {x.shape}")
    axis = channel_axis % x.ndim
    channels = x.shape[axis]
    for name, value in (("running_mean", running_mean), ("running_var", running_var),
                        ("weight", weight), ("bias", bias)):
        if value is not None and value.shape != (channels,):
            raise ValueError(f"batch_norm: {name} has shape {value.shape}, expected "
                             f"({channels},) for an input of shape {x.shape} "
                             f"(channel axis {axis})")
    reduce_axes = tuple(i for i in range(x.ndim) if i != axis)
    shape = _channel_shape(x, axis)
    if training:
        count = x.size // channels
        if count <= 1:
            raise ValueError(f"batch_norm: training needs more than one value per channel, "
                             f"got input shape {x.shape}")
        mean = x.mean(reduce_axes, keepdims=True)
        centred = x - mean
        var = (centred * centred).mean(reduce_axes, keepdims=True)
        if running_mean is not None and running_var is not None:
            with no_grad():
                if num_batches_tracked is not None:
                    num_batches_tracked.add_(1)
                if momentum is None:  # cumulative moving average
                    factor = 1.0 / float(num_batches_tracked.item()) \
                        if num_batches_tracked is not None else 0.0
                else:
                    factor = momentum
                batch_mean = mean.detach().reshape(channels).astype(running_mean.dtype)
                batch_var = var.detach().reshape(channels).astype(running_var.dtype)
                running_mean.mul_(1.0 - factor).add_(batch_mean * factor)
                running_var.mul_(1.0 - factor).add_(batch_var * (factor * count / (count - 1)))
        out = centred / (var + eps).sqrt()
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: evaluation mode needs running_mean and running_var "
                             "(or pass training=True to use the batch statistics)")
        out = (x - running_mean.reshape(shape)) / (running_var.reshape(shape) + eps).sqrt()
    if weight is not None:
        out = out * weight.reshape(shape)
    if bias is not None:
        out = out + bias.reshape(shape)
    return out


# ------------------------------------------------------------------------- misc


def one_hot(labels, num_classes: int = -1) -> Tensor:
    """int64 labels of any shape -> int64 tensor of shape (*labels.shape, num_classes).

    ``num_classes=-1`` uses ``max(labels) + 1``. Use ``.float()`` for a float target.
    """
    if not isinstance(labels, Tensor):
        labels = Tensor(np.asarray(labels))
    if labels.dtype.kind not in "iu":
        raise ValueError(f"one_hot: labels must be integers, got dtype {labels.dtype}")
    host = labels.numpy()
    if num_classes == -1:
        num_classes = int(host.max()) + 1 if host.size else 0
    if host.size and (host.min() < 0 or host.max() >= num_classes):
        raise ValueError(f"one_hot: labels must lie in [0, {num_classes}), got values from "
                         f"{host.min()} to {host.max()}")
    backend = labels.backend
    classes = backend.arange(0, num_classes, 1, labels.dtype)
    hits = backend.eq(backend.reshape(labels.data, labels.shape + (1,)), classes)
    return Tensor._make(backend.astype(hits, labels.dtype), backend)


# ------------------------------------------------------------------------ losses


def _check_reduction(name: str, reduction: str) -> None:
    if reduction not in fused.REDUCTIONS:
        raise ValueError(f"{name}: reduction must be 'mean', 'sum' or 'none', got "
                         f"{reduction!r}")


def _check_batch(name: str, input: Tensor, reduction: str) -> None:  # noqa: A002
    """The mean of zero losses is undefined: an empty batch with reduction="mean" raises."""
    if reduction == "mean" and 0 in input.data.shape:  # (no elements; no size loop)
        raise ValueError(f"{name}: the input of shape {input.shape} is an empty batch, and the "
                         "mean of zero losses is undefined; skip empty batches (or use "
                         "reduction='sum')")


def _checked(name: str, loss: Tensor, input: Tensor, target: Tensor) -> Tensor:  # noqa: A002
    """``loss``, unless it is NaN/inf because an input or the target was: then ValueError.

    One finiteness check of the (usually 0-d) result; the inputs are only inspected when
    it fails, so a valid loss costs next to nothing. A loss that overflows from finite
    inputs is returned as it is.
    """
    backend, data = loss.backend, loss.data
    if math.isfinite(backend.item(data)) if not data.shape else backend.all_finite(data):
        return loss
    for what, tensor in (("input", input), ("target", target)):
        if tensor.is_floating_point() and not backend.all_finite(tensor.data):
            raise ValueError(
                f"{name}: the {what} of shape {tensor.shape} contains NaN or inf values, so "
                "the loss would be NaN; check the data (np.isnan(x).any()), or if they "
                "appeared during training, lower the learning rate or clip the gradients "
                "(nn.utils.clip_grad_norm_)")
    return loss


def _reduce(losses: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    return losses


def _as_target(name: str, target, like: Tensor) -> Tensor:
    """The target as a Tensor on the input's device; also checks the input's dtype."""
    if like.data.dtype.kind != "f":
        raise ValueError(f"{name}: the input must be floating point (scores or "
                         f"probabilities), got dtype {like.dtype} with shape {like.shape}")
    if not isinstance(target, Tensor):
        target = Tensor(np.asarray(target), device=like.device)
    return target


def _check_same_shape(name: str, input: Tensor, target: Tensor) -> None:  # noqa: A002
    if input.shape != target.shape:
        raise ValueError(f"{name}: input shape {input.shape} and target shape {target.shape} "
                         "must be equal")


def _check_float_target(name: str, input: Tensor, target: Tensor) -> Tensor:  # noqa: A002
    if not target.is_floating_point():
        raise ValueError(f"{name}: target must be floating point (0/1 labels as floats), got "
                         f"dtype {target.dtype}; use target.float()")
    return target if target.dtype == input.dtype else target.astype(input.dtype)


def _check_class_indices(name: str, logits: Tensor, target: Tensor,
                         check_range: bool = True) -> None:
    n = logits.data.shape[0]
    if target.data.shape != (n,):
        raise ValueError(f"{name}: class-index target must have shape ({n},) for input of "
                         f"shape {logits.shape}, got {target.shape}")
    if check_range:
        fused.check_class_range(name, target.backend, target.data, logits.shape)


def mse_loss(input: Tensor, target, reduction: str = "mean") -> Tensor:  # noqa: A002
    """Mean squared error: (input - target)^2, reduced."""
    _check_reduction("mse_loss", reduction)
    target = _as_target("mse_loss", target, input)
    _check_same_shape("mse_loss", input, target)
    _check_batch("mse_loss", input, reduction)
    if not target.is_floating_point():
        target = target.astype(input.dtype)
    diff = input - target
    return _checked("mse_loss", _reduce(diff * diff, reduction), input, target)


def cross_entropy(logits: Tensor, target, reduction: str = "mean") -> Tensor:
    """Softmax cross-entropy of ``logits`` (N, C) against ``target``.

    ``target`` is either integer class indices of shape (N,) or float class
    probabilities / one-hot rows of shape (N, C). loss_i = -sum_c y_ic log_softmax(z)_ic,
    computed stably through logsumexp in one fused node whose gradient is
    ``softmax(z) - y``. ``reduction="none"`` returns the N per-sample losses.
    """
    _check_reduction("cross_entropy", reduction)
    target = _as_target("cross_entropy", target, logits)
    if len(logits.data.shape) != 2:
        raise ValueError(f"cross_entropy: expected logits of shape (N, C), got {logits.shape}")
    _check_batch("cross_entropy", logits, reduction)
    if target.data.dtype.kind in "iu":
        # (the class range is checked inside the fused op, where it costs less)
        _check_class_indices("cross_entropy", logits, target, check_range=False)
    elif target.is_floating_point():
        if target.shape != logits.shape:
            raise ValueError(f"cross_entropy: a probability target must have the logits' shape "
                             f"{logits.shape}, got {target.shape} (or pass class indices of "
                             f"shape ({logits.shape[0]},))")
        if target.dtype != logits.dtype:
            target = target.astype(logits.dtype)
    else:
        raise ValueError(f"cross_entropy: target must be int64 class indices or float "
                         f"probabilities, got dtype {target.dtype}")
    return _checked("cross_entropy", fused.softmax_cross_entropy(logits, target, reduction),
                    logits, target)


def nll_loss(log_probs: Tensor, target, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood: -log_probs[i, target_i], for log_probs (N, C).

    ``cross_entropy(z, t) == nll_loss(log_softmax(z), t)``.
    """
    _check_reduction("nll_loss", reduction)
    target = _as_target("nll_loss", target, log_probs)
    if log_probs.ndim != 2:
        raise ValueError(f"nll_loss: expected log-probabilities of shape (N, C), got "
                         f"{log_probs.shape}")
    if target.dtype.kind not in "iu":
        raise ValueError(f"nll_loss: target must be int64 class indices, got dtype "
                         f"{target.dtype}")
    _check_class_indices("nll_loss", log_probs, target)
    _check_batch("nll_loss", log_probs, reduction)
    rows = Tensor._make(target.backend.arange(0, log_probs.shape[0], 1, target.dtype),
                        target.backend)
    return _checked("nll_loss", _reduce(-log_probs[rows, target], reduction), log_probs, target)


def binary_cross_entropy(probs: Tensor, target, reduction: str = "mean") -> Tensor:
    """-(y log p + (1 - y) log(1 - p)), each log clamped to >= -100 as in PyTorch.

    ``probs`` must already be probabilities in [0, 1] (e.g. a sigmoid's output); for
    raw scores use :func:`binary_cross_entropy_with_logits`, which is more stable.
    """
    _check_reduction("binary_cross_entropy", reduction)
    target = _as_target("binary_cross_entropy", target, probs)
    _check_same_shape("binary_cross_entropy", probs, target)
    target = _check_float_target("binary_cross_entropy", probs, target)
    _check_batch("binary_cross_entropy", probs, reduction)
    if probs.size:
        backend = probs.backend
        low = float(backend.item(backend.min(probs.data)))
        high = float(backend.item(backend.max(probs.data)))
        if low != low or high != high:  # NaN
            raise ValueError(f"binary_cross_entropy: the input of shape {probs.shape} contains "
                             "NaN values; check the data or the layer that produced it")
        if not (0.0 <= low and high <= 1.0):
            raise ValueError(f"binary_cross_entropy: input values must lie in [0, 1] (they "
                             f"are probabilities), got values from {low} to {high}; use "
                             "binary_cross_entropy_with_logits for raw scores")
    return _checked("binary_cross_entropy", fused.binary_cross_entropy(probs, target, reduction),
                    probs, target)


def binary_cross_entropy_with_logits(logits: Tensor, target,
                                     reduction: str = "mean") -> Tensor:
    """BCE of sigmoid(logits), computed stably as max(x, 0) - x y + log(1 + exp(-|x|))."""
    _check_reduction("binary_cross_entropy_with_logits", reduction)
    target = _as_target("binary_cross_entropy_with_logits", target, logits)
    _check_same_shape("binary_cross_entropy_with_logits", logits, target)
    target = _check_float_target("binary_cross_entropy_with_logits", logits, target)
    _check_batch("binary_cross_entropy_with_logits", logits, reduction)
    return _checked("binary_cross_entropy_with_logits",
                    fused.binary_cross_entropy_with_logits(logits, target, reduction),
                    logits, target)
