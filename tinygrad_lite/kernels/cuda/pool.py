"""Max and average pooling (NCHW, no padding) on the GPU, forward and backward.

Forward: one thread per *output* element ``y[b, c, oh, ow]``; it scans its
``KH x KW`` window ``x[b, c, oh*SH : oh*SH + KH, ow*SW : ow*SW + KW]``. Adjacent threads
take adjacent ``ow``, so their window reads are close together in memory.

Backward, race-free (*gather* form): one thread per *input* element ``dx[b, c, h, w]``.
It visits every output window that contains ``(h, w)`` (rows ``oh`` with
``oh*SH <= h < oh*SH + KH``, and likewise columns) and sums what those windows send
back, so every ``dx`` element has exactly one writer even when windows overlap
(stride < kernel size). For max pooling a window sends its gradient only to the
position recorded in ``indices``.

``max_pool2d_backward`` is also callable without the kernel size (the signature
shared with the CPU kernels). The windows are then unknown, so it falls back to the
*scatter* form: one thread per output element adds its gradient to the recorded
position with ``cuda.atomic.add``. Overlapping windows may hit the same element; the
atomic add makes that safe, at the cost of a run-to-run order of float additions.

``indices`` follow PyTorch: the position of the maximum within its ``(H, W)`` plane,
``h * W + w``, as int64. Ties go to the first position in row-major window order and
a NaN counts as the maximum.
"""

from __future__ import annotations

import numpy as np
from numba import cuda

from .common import float_dtype, launch_1d, returned
from .elementwise import contiguous, zeros
from .launch import flat, lean_kernel
from .views import as_view, is_on_device


def _pair(value) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)):
        return int(value), int(value)
    first, second = value
    return int(first), int(second)


def _pool_geometry(x_shape, kernel_size, stride):
    """(N*C, H, W, OH, OW, KH, KW, SH, SW): the tuple the pooling kernels unpack."""
    n, c, h, w = (int(s) for s in x_shape)
    kh, kw = _pair(kernel_size)
    sh, sw = _pair(kernel_size if stride is None else stride)
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    if oh <= 0 or ow <= 0 or kh <= 0 or kw <= 0:
        raise ValueError(f"pooling window {(kh, kw)} does not fit input {(h, w)}")
    return (n * c, h, w, oh, ow, kh, kw, sh, sw)


def _float_input(x):
    view = as_view(x)
    dtype = float_dtype(view.dtype)
    array = contiguous(view)
    return array.reshape((array.size,)), dtype


@cuda.jit(device=True)
def _window_range(i, kernel, stride, out_size):
    """Output indices ``[first, last)`` whose windows cover input index ``i``."""
    first = 0 if i < kernel else (i - kernel) // stride + 1
    last = min(i // stride + 1, out_size)
    return first, last


# -------------------------------------------------------------------- max


@lean_kernel
def _max_pool_kernel(x, out, indices, geom):
    planes, H, W, OH, OW, KH, KW, SH, SW = geom
    i = cuda.grid(1)
    if i >= planes * OH * OW:
        return
    plane = i // (OH * OW)
    oh = (i // OW) % OH
    ow = i % OW
    base = plane * H * W
    best_pos = (oh * SH) * W + ow * SW
    best = x[base + best_pos]
    for kh in range(KH):
        for kw in range(KW):
            pos = (oh * SH + kh) * W + ow * SW + kw
            value = x[base + pos]
            if value > best or (value != value and best == best):
                best = value
                best_pos = pos
    out[i] = best
    indices[i] = best_pos


@lean_kernel
def _max_pool_backward_gather(grad_out, indices, grad_x, geom, zero):
    planes, H, W, OH, OW, KH, KW, SH, SW = geom
    i = cuda.grid(1)
    if i >= planes * H * W:
        return
    plane = i // (H * W)
    pos = i % (H * W)
    h = pos // W
    w = pos % W
    oh0, oh1 = _window_range(h, KH, SH, OH)
    ow0, ow1 = _window_range(w, KW, SW, OW)
    total = zero
    for oh in range(oh0, oh1):
        for ow in range(ow0, ow1):
            j = (plane * OH + oh) * OW + ow
            if indices[j] == pos:
                total += grad_out[j]
    grad_x[i] = total


@lean_kernel
def _max_pool_backward_scatter(grad_out, indices, grad_x, geom):
    planes, H, W, OH, OW = geom
    j = cuda.grid(1)
    if j < planes * OH * OW:
        plane = j // (OH * OW)
        cuda.atomic.add(grad_x, plane * H * W + indices[j], grad_out[j])


def max_pool2d(x, kernel_size, stride=None):
    """Max pooling ``(N, C, H, W) -> (N, C, OH, OW)``; returns ``(out, indices)``.

    ``stride`` defaults to ``kernel_size``. ``indices`` (int64) hold each maximum's
    position ``h * W + w`` within its plane.
    """
    host = not is_on_device(x)
    geom = _pool_geometry(x.shape, kernel_size, stride)
    planes, _, _, oh, ow = geom[:5]
    x_flat, dtype = _float_input(x)
    n, c = x.shape[:2]
    out = cuda.device_array((n, c, oh, ow), dtype=dtype)
    indices = cuda.device_array((n, c, oh, ow), dtype=np.int64)
    if out.size:
        blocks, threads = launch_1d(out.size)
        _max_pool_kernel[blocks, threads](x_flat, flat(out),
                                          flat(indices), geom)
    return returned(out, host), returned(indices, host)


def max_pool2d_backward(grad_out, indices, x_shape, kernel_size=None, stride=None):
    """Gradient of ``max_pool2d``: each window's gradient goes to its maximum.

    With ``kernel_size`` (and ``stride``) given, race-free gather form; without, an
    atomic scatter (see the module docstring).
    """
    host = not (is_on_device(grad_out) or is_on_device(indices))
    g_flat, dtype = _float_input(grad_out)
    idx = contiguous(as_view(indices))
    idx = idx.reshape((idx.size,))
    n, c, h, w = (int(s) for s in x_shape)
    oh, ow = (int(s) for s in grad_out.shape[2:])
    if kernel_size is None:
        grad_x = zeros((n, c, h, w), dtype)
        if g_flat.size:
            blocks, threads = launch_1d(g_flat.size)
            _max_pool_backward_scatter[blocks, threads](
                g_flat, idx, grad_x.reshape((grad_x.size,)), (n * c, h, w, oh, ow))
        return returned(grad_x, host)
    geom = _pool_geometry(x_shape, kernel_size, stride)
    if geom[3:5] != (oh, ow):
        raise ValueError(f"grad_out spatial shape {(oh, ow)} does not match {geom[3:5]}")
    grad_x = cuda.device_array((n, c, h, w), dtype=dtype)
    if grad_x.size:
        blocks, threads = launch_1d(grad_x.size)
        _max_pool_backward_gather[blocks, threads](g_flat, idx, grad_x.reshape((grad_x.size,)),
                                                   geom, dtype.type(0))
    return returned(grad_x, host)


# -------------------------------------------------------------------- average


@lean_kernel
def _avg_pool_kernel(x, out, geom, zero):
    planes, H, W, OH, OW, KH, KW, SH, SW = geom
    i = cuda.grid(1)
    if i >= planes * OH * OW:
        return
    plane = i // (OH * OW)
    oh = (i // OW) % OH
    ow = i % OW
    base = plane * H * W + (oh * SH) * W + ow * SW
    total = zero
    for kh in range(KH):
        for kw in range(KW):
            total += x[base + kh * W + kw]
    out[i] = total / (KH * KW)


@lean_kernel
def _avg_pool_backward_kernel(grad_out, grad_x, geom, zero):
    planes, H, W, OH, OW, KH, KW, SH, SW = geom
    i = cuda.grid(1)
    if i >= planes * H * W:
        return
    plane = i // (H * W)
    h = (i // W) % H
    w = i % W
    oh0, oh1 = _window_range(h, KH, SH, OH)
    ow0, ow1 = _window_range(w, KW, SW, OW)
    total = zero
    for oh in range(oh0, oh1):
        for ow in range(ow0, ow1):
            total += grad_out[(plane * OH + oh) * OW + ow]
    grad_x[i] = total / (KH * KW)


def avg_pool2d(x, kernel_size, stride=None):
    """Average pooling ``(N, C, H, W) -> (N, C, OH, OW)``; ``stride`` defaults to the kernel."""
    host = not is_on_device(x)
    geom = _pool_geometry(x.shape, kernel_size, stride)
    planes, _, _, oh, ow = geom[:5]
    x_flat, dtype = _float_input(x)
    out = cuda.device_array((x.shape[0], x.shape[1], oh, ow), dtype=dtype)
    if out.size:
        blocks, threads = launch_1d(out.size)
        _avg_pool_kernel[blocks, threads](x_flat, flat(out), geom, dtype.type(0))
    return returned(out, host)


def avg_pool2d_backward(grad_out, x_shape, kernel_size, stride=None):
    """Gradient of ``avg_pool2d``: each window shares its gradient equally (gather form)."""
    host = not is_on_device(grad_out)
    geom = _pool_geometry(x_shape, kernel_size, stride)
    g_flat, dtype = _float_input(grad_out)
    grad_x = cuda.device_array(tuple(int(s) for s in x_shape), dtype=dtype)
    if grad_x.size:
        blocks, threads = launch_1d(grad_x.size)
        _avg_pool_backward_kernel[blocks, threads](g_flat, grad_x.reshape((grad_x.size,)),
                                                   geom, dtype.type(0))
    return returned(grad_x, host)
