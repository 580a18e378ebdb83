"""Convolution and pooling: the image ops of a CNN, NCHW as in PyTorch.

The arithmetic lives in the backend (``backend.conv2d`` and friends: numpy im2col in
``kernels/reference.py``, Numba loops in ``kernels/cpu.py``, CUDA kernels on the GPU);
this module only says how the gradient flows. Each op is *linear* in each of its array
inputs, so every backward is again one of these ops, applied to the incoming gradient:

====================================  =============================================
forward                               its adjoint (what the backward applies)
====================================  =============================================
``y = conv2d(x, w)``                  ``dL/dx = conv2d_backward_input(g, w)``
                                      ``dL/dw = conv2d_backward_weight(g, x)``
``max_pool2d(x)`` (keeps argmax)      scatter ``g`` to the argmax positions
scatter to the argmax positions       gather at the argmax positions
``avg_pool2d(x)``                     ``avg_pool2d_backward(g)`` (spread ``g / k^2``)
====================================  =============================================

and the backward of each adjoint is read off the same table (the adjoint of an
adjoint is the map itself). Because all of them are ``Function`` subclasses, a backward
recorded with ``create_graph=True`` is differentiable again: second derivatives of a
CNN (gradient penalties, Hessian-vector products) work, and ``gradgradcheck`` checks
them. Without ``create_graph`` the same calls run straight on the backend arrays
(``Function.apply`` under no-grad records nothing).

The three bilinear identities behind the convolution table, for any ``x``, ``w`` and
``g`` of matching shapes (``<a, b>`` is the sum of the elementwise product)::

    <g, conv2d(x, w)> = <conv2d_backward_input(g, w), x> = <conv2d_backward_weight(g, x), w>
"""

from __future__ import annotations

import numbers

import numpy as np

from ..autograd.function import Function
from ..autograd.tensor import Tensor
from ._common import common_backend, wrap

__all__ = ["conv2d", "max_pool2d", "avg_pool2d", "conv_output_size", "pair",
           "Conv2dFunction", "ConvBackwardInput", "ConvBackwardWeight", "MaxPool2dFunction",
           "MaxPoolScatter", "AvgPool2dFunction", "AvgPoolBackward"]


# ------------------------------------------------------------------------ arguments


def pair(opname: str, name: str, value, minimum: int) -> tuple[int, int]:
    """``3 -> (3, 3)``, ``(2, 1) -> (2, 1)``; a TypeError/ValueError naming ``opname``."""
    values = (value, value) if not isinstance(value, (tuple, list)) else tuple(value)
    if len(values) != 2 or any(isinstance(v, bool) or not isinstance(v, numbers.Integral)
                               for v in values):
        raise TypeError(f"{opname}: {name} must be an int or a pair of ints, got {value!r}")
    if min(values) < minimum:
        raise ValueError(f"{opname}: {name} must be >= {minimum}, got {value!r}")
    return int(values[0]), int(values[1])


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output length of a window sliding over ``size`` elements: (size + 2p - k) // s + 1."""
    return (size + 2 * padding - kernel) // stride + 1


def _check_images(opname: str, x: Tensor) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{opname}: expected a Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{opname}: expected a 4-D input (N, C, H, W), got shape {x.shape}"
                         + (" (add a batch axis with x.unsqueeze(0))" if x.ndim == 3 else ""))
    if not x.is_floating_point():
        raise TypeError(f"{opname}: expected a float input, got dtype {x.dtype}")


def _check_window(opname: str, x_shape, kernel, stride, padding) -> None:
    """The (padded) image must hold at least one whole window."""
    (kh, kw), (ph, pw) = kernel, padding
    h, w = x_shape[2] + 2 * ph, x_shape[3] + 2 * pw
    if kh > h or kw > w:
        raise ValueError(f"{opname}: a {kh}x{kw} window does not fit the input of shape "
                         f"{tuple(x_shape)} padded to {h}x{w} (padding {padding}); use a "
                         "smaller kernel, more padding or a larger image")


# ----------------------------------------------------------------------- convolution


class Conv2dFunction(Function):
    """y[n, o] = sum_c x[n, c] (cross-correlated with) w[o, c]  + b[o]."""

    @staticmethod
    def forward(ctx, x, w, b, stride, padding):
        backend = common_backend("conv2d", x, w, b)
        y = backend.conv2d(x.data, w.data, stride, padding)
        if b is not None:
            y = backend.add(y, backend.reshape(b.data, (1, -1, 1, 1)))
        ctx.save_for_backward(x, w)
        ctx.stride, ctx.padding, ctx.has_bias = stride, padding, b is not None
        return wrap(y, backend)

    @staticmethod
    def backward(ctx, g):
        """y = conv2d(x, w) + b with G = dL/dy of shape (N, O, OH, OW):

            dL/dx[n, c, i, j] = sum_{o, p, q, u, v: s p + u - pad = i, s q + v - pad = j}
                                G[n, o, p, q] w[o, c, u, v]   (transposed convolution)
            dL/dw[o, c, u, v] = sum_{n, p, q} G[n, o, p, q] x_pad[n, c, s p + u, s q + v]
            dL/db[o]          = sum_{n, p, q} G[n, o, p, q]

        Both are linear in G, and the Functions computing them have backwards of their
        own (see ConvBackwardInput / ConvBackwardWeight), so this is differentiable.
        """
        x, w = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        s, p = ctx.stride, ctx.padding
        grad_x = ConvBackwardInput.apply(g, w, x.shape, s, p) if need_x else None
        grad_w = ConvBackwardWeight.apply(g, x, w.shape, s, p) if need_w else None
        grad_b = g.sum((0, 2, 3)) if need_b and ctx.has_bias else None
        return grad_x, grad_w, grad_b, None, None


class ConvBackwardInput(Function):
    """dx = conv2d_backward_input(g, w): the transposed convolution, bilinear in (g, w)."""

    @staticmethod
    def forward(ctx, g, w, x_shape, stride, padding):
        backend = common_backend("conv2d_backward_input", g, w)
        ctx.save_for_backward(g, w)
        ctx.stride, ctx.padding = stride, padding
        return wrap(backend.conv2d_backward_input(g.data, w.data, tuple(x_shape), stride,
                                                  padding), backend)

    @staticmethod
    def backward(ctx, h):
        """z = conv2d_backward_input(g, w) with H = dL/dz (shaped like the image x).

        From <H, z> = <conv2d(H, w), g> = <conv2d_backward_weight(g, H), w>:

            dL/dg = conv2d(H, w),      dL/dw = conv2d_backward_weight(g, H)
        """
        g, w = ctx.saved_tensors
        need_g, need_w = ctx.needs_input_grad[:2]
        s, p = ctx.stride, ctx.padding
        grad_g = Conv2dFunction.apply(h, w, None, s, p) if need_g else None
        grad_w = ConvBackwardWeight.apply(g, h, w.shape, s, p) if need_w else None
        return grad_g, grad_w, None, None, None


class ConvBackwardWeight(Function):
    """dw = conv2d_backward_weight(g, x): filter-tap correlations, bilinear in (g, x)."""

    @staticmethod
    def forward(ctx, g, x, w_shape, stride, padding):
        backend = common_backend("conv2d_backward_weight", g, x)
        ctx.save_for_backward(g, x)
        ctx.stride, ctx.padding = stride, padding
        return wrap(backend.conv2d_backward_weight(g.data, x.data, tuple(w_shape), stride,
                                                   padding), backend)

    @staticmethod
    def backward(ctx, k):
        """z = conv2d_backward_weight(g, x) with K = dL/dz (shaped like the weight w).

        From <K, z> = <g, conv2d(x, K)> = <conv2d_backward_input(g, K), x>:

            dL/dg = conv2d(x, K),      dL/dx = conv2d_backward_input(g, K)
        """
        g, x = ctx.saved_tensors
        need_g, need_x = ctx.needs_input_grad[:2]
        s, p = ctx.stride, ctx.padding
        grad_g = Conv2dFunction.apply(x, k, None, s, p) if need_g else None
        grad_x = ConvBackwardInput.apply(g, k, x.shape, s, p) if need_x else None
        return grad_g, grad_x, None, None, None


def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1,
           padding=0) -> Tensor:
    """2-D convolution (cross-correlation) of NCHW images, one graph node.

    ``x`` (N, C, H, W), ``weight`` (O, C, KH, KW), ``bias`` (O,) or None; ``stride`` and
    ``padding`` (zeros) are ints or ``(h, w)`` pairs; ``padding="same"`` keeps H and W
    (odd kernels, stride 1), ``"valid"`` is 0. Returns (N, O, OH, OW) with
    OH = (H + 2 pad - KH) // stride + 1.
    """
    _check_images("conv2d", x)
    if not isinstance(weight, Tensor) or weight.ndim != 4:
        raise ValueError(f"conv2d: weight must be a 4-D tensor (O, C, KH, KW), got shape "
                         f"{getattr(weight, 'shape', None)}")
    if x.shape[1] != weight.shape[1]:
        raise ValueError(f"conv2d: input of shape {x.shape} has {x.shape[1]} channels but the "
                         f"weight of shape {weight.shape} expects {weight.shape[1]} "
                         "(weight is (out_channels, in_channels, kh, kw))")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"conv2d: bias of shape {bias.shape} does not fit a weight of shape "
                         f"{weight.shape} (expected ({weight.shape[0]},))")
    stride = pair("conv2d", "stride", stride, 1)
    padding = same_padding("conv2d", padding, weight.shape[2:], stride)
    _check_window("conv2d", x.shape, weight.shape[2:], stride, padding)
    dtype = x.backend.result_dtype(x.dtype, weight.dtype,
                                   *([bias.dtype] if bias is not None else []))
    x, weight = (t if t.dtype == dtype else t.astype(dtype) for t in (x, weight))
    if bias is not None and bias.dtype != dtype:
        bias = bias.astype(dtype)
    return Conv2dFunction.apply(x, weight, bias, stride, padding)


def same_padding(opname: str, padding, kernel_hw, stride) -> tuple[int, int]:
    """Resolve ``padding``: an int/pair, ``"valid"`` (0) or ``"same"`` (output = input)."""
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0
        if padding != "same":
            raise ValueError(f"{opname}: padding must be an int, a pair, 'same' or 'valid', "
                             f"got {padding!r}")
        if tuple(stride) != (1, 1) or any(k % 2 == 0 for k in kernel_hw):
            raise ValueError(f"{opname}: padding='same' needs stride 1 and an odd kernel, got "
                             f"stride {tuple(stride)} and kernel {tuple(kernel_hw)}; give the "
                             "padding as an int instead")
        return (kernel_hw[0] - 1) // 2, (kernel_hw[1] - 1) // 2
    return pair(opname, "padding", padding, 0)


# --------------------------------------------------------------------------- pooling


class MaxPool2dFunction(Function):
    """y = max over each window; remembers where each maximum came from."""

    @staticmethod
    def forward(ctx, x, kernel, stride):
        backend = x.backend
        y, indices = backend.max_pool2d(x.data, kernel, stride)
        ctx.indices, ctx.x_shape = indices, x.shape
        return wrap(y, backend)

    @staticmethod
    def backward(ctx, g):
        """y[n, c, p, q] = x[n, c, idx[n, c, p, q]] (idx = the window's argmax, h * W + w):

            dL/dx[n, c, i] = sum_{p, q: idx[n, c, p, q] = i} G[n, c, p, q]

        a scatter-add of G to the argmax positions (MaxPoolScatter), whose own backward
        is the gather at the same positions, so this is differentiable too.
        """
        return MaxPoolScatter.apply(g, ctx.indices, ctx.x_shape), None, None


class MaxPoolScatter(Function):
    """z = zeros shaped like x with g added at the saved argmax positions."""

    @staticmethod
    def forward(ctx, g, indices, x_shape):
        ctx.indices, ctx.g_shape = indices, g.shape
        return wrap(g.backend.max_pool2d_backward(g.data, indices, tuple(x_shape)), g.backend)

    @staticmethod
    def backward(ctx, h):
        """z[n, c, i] = sum_{p, q: idx[n, c, p, q] = i} g[n, c, p, q], linear in g, so

            dL/dg[n, c, p, q] = H[n, c, idx[n, c, p, q]]

        a gather, written as tensor indexing (whose backward is the scatter-add again).
        """
        n, c, oh, ow = ctx.g_shape
        height, width = h.shape[2:]
        indices = h.backend.to_host(ctx.indices).reshape(n * c, oh * ow)
        planes = np.arange(n * c, dtype=np.int64)[:, None]
        gathered = h.reshape(n * c, height * width)[planes, indices]
        return gathered.reshape(n, c, oh, ow), None, None


class AvgPool2dFunction(Function):
    """y = the mean over each window."""

    @staticmethod
    def forward(ctx, x, kernel, stride):
        ctx.x_shape, ctx.kernel, ctx.stride = x.shape, kernel, stride
        return wrap(x.backend.avg_pool2d(x.data, kernel, stride), x.backend)

    @staticmethod
    def backward(ctx, g):
        """y[n, c, p, q] = (1 / (KH KW)) sum_{u, v} x[n, c, s p + u, s q + v], so

            dL/dx[n, c, i, j] = (1 / (KH KW)) sum_{windows (p, q) containing (i, j)} G[n, c, p, q]

        (AvgPoolBackward, whose own backward is avg_pool2d again).
        """
        return AvgPoolBackward.apply(g, ctx.x_shape, ctx.kernel, ctx.stride), None, None


class AvgPoolBackward(Function):
    """z = avg_pool2d_backward(g): each window's value spread evenly over the window."""

    @staticmethod
    def forward(ctx, g, x_shape, kernel, stride):
        ctx.kernel, ctx.stride = kernel, stride
        return wrap(g.backend.avg_pool2d_backward(g.data, tuple(x_shape), kernel, stride),
                    g.backend)

    @staticmethod
    def backward(ctx, h):
        """z = A^T g, where A is the (linear) average pooling, so dL/dg = A H = avg_pool2d(H)."""
        return AvgPool2dFunction.apply(h, ctx.kernel, ctx.stride), None, None, None


def _pool_args(opname: str, x: Tensor, kernel_size, stride):
    _check_images(opname, x)
    kernel = pair(opname, "kernel_size", kernel_size, 1)
    stride = kernel if stride is None else pair(opname, "stride", stride, 1)
    _check_window(opname, x.shape, kernel, stride, (0, 0))
    return kernel, stride


def max_pool2d(x: Tensor, kernel_size, stride=None) -> Tensor:
    """The maximum of each ``kernel_size`` window (stride defaults to the window size)."""
    kernel, stride = _pool_args("max_pool2d", x, kernel_size, stride)
    return MaxPool2dFunction.apply(x, kernel, stride)


def avg_pool2d(x: Tensor, kernel_size, stride=None) -> Tensor:
    """The mean of each ``kernel_size`` window (stride defaults to the window size)."""
    kernel, stride = _pool_args("avg_pool2d", x, kernel_size, stride)
    return AvgPool2dFunction.apply(x, kernel, stride)
