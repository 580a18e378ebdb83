"""Plain numpy convolution, pooling and matmul: the reference every other kernel must match.

These functions are the numpy backend's implementation of the image operations and the
oracle the Numba tests compare against, so they favour "obviously right" over clever,
while staying vectorised enough to train the lecture notes' CNNs.

Conventions shared by every backend (``kernels.cpu`` and ``kernels.cuda`` follow them):

* Images are NCHW: ``x`` is ``(N, C, H, W)``, a convolution weight ``(O, C, KH, KW)``.
* ``stride`` and ``padding`` (and a pooling ``kernel_size``) are an int or an
  ``(h, w)`` pair. Convolutions pad with zeros; pooling has no padding.
* Output size along one axis: ``(size + 2 * padding - kernel) // stride + 1``.
* ``max_pool2d`` returns ``(out, indices)``; an index is the position of the maximum in
  its ``(H, W)`` input plane, ``h * W + w``, as int64 (PyTorch's ``return_indices``).
  Ties go to the first position in row-major window order; a NaN counts as the maximum.

The convolution is *im2col*: ``sliding_window_view`` presents every ``KH x KW`` patch of
the padded input as a view (no copy), which is copied once into one patch matrix per
image, ``P[n] (C*KH*KW, OH*OW)``. Then everything is batched ``np.matmul`` (BLAS), with
``W`` the weight as an ``(O, C*KH*KW)`` matrix and ``G[n]`` the output gradient as
``(O, OH*OW)``: forward ``Y[n] = W @ P[n]``; weight gradient ``sum_n G[n] @ P[n].T``;
input gradient ``W.T @ G[n]``, added back onto the image patch by patch (*col2im*).
These are the same three products the Numba kernels compute. (Batched products of
these shapes ran 2-10x faster here than one ``tensordot``, whose single skinny BLAS call
OpenBLAS splits badly over threads.)
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

# --------------------------------------------------------------------------- arguments


def as_pair(value, name: str = "value") -> tuple[int, int]:
    """``3 -> (3, 3)``, ``(2, 1) -> (2, 1)``; anything else raises ValueError."""
    if isinstance(value, (int, np.integer)):
        pair = (int(value), int(value))
    else:
        try:
            first, second = value
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be an int or an (h, w) pair, got {value!r}") from None
        pair = (int(first), int(second))
    return pair


def conv_output_hw(hw, kernel_hw, stride=1, padding=0) -> tuple[int, int]:
    """Output ``(OH, OW)`` of a convolution or pooling window over an ``(H, W)`` image."""
    (h, w), (kh, kw) = hw, kernel_hw
    (sh, sw), (ph, pw) = as_pair(stride, "stride"), as_pair(padding, "padding")
    if sh < 1 or sw < 1:
        raise ValueError(f"stride must be positive, got {(sh, sw)}")
    if ph < 0 or pw < 0:
        raise ValueError(f"padding must be non-negative, got {(ph, pw)}")
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    if kh < 1 or kw < 1 or oh < 1 or ow < 1:
        raise ValueError(f"a {kh}x{kw} window with padding {(ph, pw)} does not fit "
                         f"a {h}x{w} image")
    return oh, ow


def check_images(x, name: str = "x") -> np.ndarray:
    """``x`` as a floating numpy array of rank 4 (NCHW), or a ValueError saying why not."""
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"{name} must be 4-D (N, C, H, W), got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"{name} must be a float array, got dtype {x.dtype}")
    return x


def check_conv_shapes(x_shape, w_shape) -> None:
    """Raise ValueError unless an ``(O, C, KH, KW)`` weight fits an ``(N, C, H, W)`` input."""
    if len(w_shape) != 4:
        raise ValueError(f"conv2d weight must be 4-D (O, C, KH, KW), got shape {tuple(w_shape)}")
    if x_shape[1] != w_shape[1]:
        raise ValueError(f"conv2d: input {tuple(x_shape)} has {x_shape[1]} channels but the "
                         f"weight {tuple(w_shape)} expects {w_shape[1]}")


def _pad(x: np.ndarray, ph: int, pw: int) -> np.ndarray:
    """Zero-pad H and W. (A zeros array and one slice assignment: ``np.pad``'s general
    argument handling cost ~25 us per call, more than the copy for the digits CNN.)"""
    if ph == 0 and pw == 0:
        return x
    n, c, h, w = x.shape
    out = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=x.dtype)
    out[:, :, ph : ph + h, pw : pw + w] = x
    return out


def _patches(xp: np.ndarray, kh: int, kw: int, sh: int, sw: int, oh: int, ow: int):
    """View ``(N, C, OH, OW, KH, KW)`` of every window of the padded input (no copy).

    For a C-contiguous input the view is built directly from strides (``np.ndarray``
    over the same buffer, ~1 us); ``sliding_window_view``'s checks cost ~30 us a call.
    """
    if xp.flags.c_contiguous:
        n, c, h, w = xp.shape
        item = xp.itemsize
        strides = (c * h * w * item, h * w * item, sh * w * item, sw * item, w * item, item)
        view = np.ndarray((n, c, oh, ow, kh, kw), dtype=xp.dtype, buffer=xp,
                          strides=strides)
        view.flags.writeable = False  # overlapping windows, like sliding_window_view's
        return view
    windows = sliding_window_view(xp, (kh, kw), axis=(2, 3))
    return windows[:, :, : (oh - 1) * sh + 1 : sh, : (ow - 1) * sw + 1 : sw]


# ------------------------------------------------------------------------------ matmul


def matmul(a, b):
    """``(n, k) @ (k, m)`` with numpy (BLAS)."""
    return np.matmul(a, b)


def batched_matmul(a, b):
    """``(B, n, k) @ (B, k, m)`` with numpy (BLAS, one product per batch entry)."""
    return np.matmul(a, b)


# ---------------------------------------------------------------------------- conv2d


def _patch_matrices(x, kh, kw, stride, padding, out_hw):
    """im2col: ``(N, C*KH*KW, OH*OW)``, row ``(c, i, j)`` = tap ``(i, j)`` of channel c."""
    (sh, sw), (ph, pw), (oh, ow) = stride, padding, out_hw
    patches = _patches(_pad(x, ph, pw), kh, kw, sh, sw, oh, ow)  # (N, C, OH, OW, KH, KW)
    n, c = x.shape[:2]
    return patches.transpose(0, 1, 4, 5, 2, 3).reshape(n, c * kh * kw, oh * ow)  # copies


def _conv_setup(x_shape, w_shape, stride, padding):
    check_conv_shapes(x_shape, w_shape)
    stride, padding = as_pair(stride, "stride"), as_pair(padding, "padding")
    return stride, padding, conv_output_hw(x_shape[2:], w_shape[2:], stride, padding)


def conv2d(x, w, stride=1, padding=0):
    """NCHW convolution (cross-correlation, as in every DL framework) -> ``(N, O, OH, OW)``.

    ``Y[n] = W @ P[n]`` for every image: ``W`` is the weight as an ``(O, C*KH*KW)`` matrix,
    ``P[n]`` the image's patch matrix; one batched ``np.matmul`` does them all.
    """
    x, w = check_images(x), check_images(w, "weight")
    stride, padding, (oh, ow) = _conv_setup(x.shape, w.shape, stride, padding)
    patches = _patch_matrices(x, w.shape[2], w.shape[3], stride, padding, (oh, ow))
    out = np.matmul(w.reshape(w.shape[0], -1), patches)  # (N, O, OH*OW)
    return out.reshape(x.shape[0], w.shape[0], oh, ow)


def conv2d_backward_weight(grad_out, x, w_shape, stride=1, padding=0):
    """``dL/dw (O, C, KH, KW) = sum over n of G[n] @ P[n].T``, ``G[n] = grad_out[n]`` as
    an ``(O, OH*OW)`` matrix: each filter tap summed over the batch and output pixels."""
    x, grad_out = check_images(x), check_images(grad_out, "grad_out")
    w_shape = tuple(int(s) for s in w_shape)
    stride, padding, (oh, ow) = _conv_setup(x.shape, w_shape, stride, padding)
    patches = _patch_matrices(x, w_shape[2], w_shape[3], stride, padding, (oh, ow))
    grads = grad_out.reshape(grad_out.shape[0], w_shape[0], -1)
    grad_w = np.matmul(grads, patches.transpose(0, 2, 1)).sum(axis=0)
    return grad_w.reshape(w_shape)


def conv2d_backward_input(grad_out, w, x_shape, stride=1, padding=0):
    """``dL/dx (N, C, H, W)``: the transposed convolution of ``grad_out`` with ``w``.

    ``dP[n] = W.T @ G[n]`` is the gradient of every entry of image n's patch matrix;
    *col2im* then adds each patch back onto the padded image. The Python loop runs over
    the ``KH * KW`` taps only: for a fixed tap the patches land on distinct pixels, so
    each ``+=`` is one vectorised add.
    """
    grad_out, w = check_images(grad_out, "grad_out"), check_images(w, "weight")
    x_shape = tuple(int(s) for s in x_shape)
    (sh, sw), (ph, pw), (oh, ow) = _conv_setup(x_shape, w.shape, stride, padding)
    n, c, h, width = x_shape
    filters, kh, kw = w.shape[0], w.shape[2], w.shape[3]
    grads = grad_out.reshape(n, filters, oh * ow)
    grad_patches = np.matmul(w.reshape(filters, -1).T, grads).reshape(n, c, kh, kw, oh, ow)
    grad_xp = np.zeros((n, c, h + 2 * ph, width + 2 * pw), dtype=grad_patches.dtype)
    for i in range(kh):
        for j in range(kw):
            grad_xp[:, :, i : i + sh * oh : sh, j : j + sw * ow : sw] += grad_patches[:, :, i, j]
    return np.ascontiguousarray(grad_xp[:, :, ph : ph + h, pw : pw + width])


# ---------------------------------------------------------------------------- pooling


def _pool_setup(x, kernel_size, stride):
    x = check_images(x)
    kh, kw = as_pair(kernel_size, "kernel_size")
    sh, sw = as_pair(kernel_size if stride is None else stride, "stride")
    oh, ow = conv_output_hw(x.shape[2:], (kh, kw), (sh, sw), 0)
    return x, kh, kw, sh, sw, oh, ow


def max_pool2d(x, kernel_size, stride=None):
    """Max over each window -> ``(out, indices)``; ``stride`` defaults to the window size.

    Windows that tile the image exactly (stride = window, sizes divisible: the usual
    ``MaxPool2d(2)``) take :func:`_max_pool_tiled`; everything else the general
    :func:`_max_pool_taps`. Both give the same results.
    """
    x, kh, kw, sh, sw, oh, ow = _pool_setup(x, kernel_size, stride)
    if _tiles_exactly(x.shape, kh, kw, sh, sw):
        return _max_pool_tiled(x, kh, kw)
    return _max_pool_taps(x, kh, kw, sh, sw, oh, ow)


def _tiles_exactly(shape, kh, kw, sh, sw) -> bool:
    """True when non-overlapping ``kh x kw`` windows cover the ``(H, W)`` plane exactly."""
    return kh == sh and kw == sw and shape[2] % kh == 0 and shape[3] % kw == 0


def _max_pool_taps(x, kh, kw, sh, sw, oh, ow):
    """Any window and stride: a Python loop over the ``KH * KW`` taps, each step one
    vectorised comparison of the running maximum with that tap's strided slice (taps in
    row-major order, so ties keep the first position; a NaN replaces a number, but not
    an earlier NaN)."""
    width = x.shape[3]
    out = x[:, :, : sh * oh : sh, : sw * ow : sw]
    best_tap = np.zeros(out.shape, dtype=np.int64)  # i * kw + j of the maximum so far
    # NaN needs two extra tests per tap; one scan of x tells whether any is present.
    has_nan = x.dtype.kind == "f" and bool(np.isnan(x).any())
    for i in range(kh):
        for j in range(kw):
            tap = x[:, :, i : i + sh * oh : sh, j : j + sw * ow : sw]
            better = tap > out
            if has_nan:
                better |= np.isnan(tap) & ~np.isnan(out)
            out = np.where(better, tap, out)
            best_tap[better] = i * kw + j
    rows = (np.arange(oh) * sh)[:, None] + best_tap // kw
    cols = np.arange(ow) * sw + best_tap % kw
    return np.ascontiguousarray(out), rows * width + cols


def _max_pool_tiled(x, kh, kw):
    """Non-overlapping windows that tile the image: the taps as contiguous rows.

    One copy regroups the image as ``(KH*KW, L)``, ``L = N*C*OH*OW``, row ``i*KW + j``
    holding tap ``(i, j)`` of every window, so every later step is one numpy call on
    long contiguous rows. (On strided tap views, as in :func:`_max_pool_taps`, numpy's
    inner loops run over ``OW`` values only, 4 for the digits CNN, and each call costs
    5-10x more; ``np.where``/``copyto(where=...)`` chains cost 3-5x more than the
    integer arithmetic below.) The maximum is one ``np.maximum.reduce`` (it propagates
    NaN). Its position is the *first* tap equal to it (or the first NaN, where it is
    NaN): with ``found_k`` = "tap 0..k matched", that is ``(K - 1) - sum_k found_k`` over
    ``k < K - 1``. The value is then gathered from that tap, so the sign of a zero
    follows the chosen position.
    """
    n, c, h, width = x.shape
    oh, ow = h // kh, width // kw
    taps = np.ascontiguousarray(x.reshape(n * c * oh, kh, ow, kw).transpose(1, 3, 0, 2))
    taps = taps.reshape(kh * kw, -1)
    count = taps.shape[1]
    best = np.maximum.reduce(taps, axis=0)
    has_nan = x.dtype.kind == "f" and bool(np.isnan(best).any())
    last = kh * kw - 1
    found = np.zeros(count, dtype=bool)
    matched = np.zeros(count, dtype=np.intp)  # how many of the first taps come after a match
    for tap in range(last):
        found |= taps[tap] == best
        if has_nan:
            found |= np.isnan(taps[tap])
        matched += found
    best_tap = last - matched
    out = taps.reshape(-1)[best_tap * count + np.arange(count)]
    offsets = ((np.arange(kh) * width)[:, None] + np.arange(kw)).ravel()  # h*W + w in a window
    corners = (np.arange(oh) * (kh * width))[:, None] + np.arange(ow) * kw
    indices = corners + offsets[best_tap].reshape(n, c, oh, ow)
    return out.reshape(n, c, oh, ow), indices


def max_pool2d_backward(grad_out, indices, x_shape):
    """Send each window's gradient to the input position its maximum came from.

    Overlapping windows (stride < kernel) may pick the same position, so the gradients
    are *summed* with ``np.bincount`` over flat positions rather than assigned.
    """
    grad_out = check_images(grad_out, "grad_out")
    n, c, h, w = (int(s) for s in x_shape)
    planes = np.arange(n * c, dtype=np.int64).reshape(n, c, 1, 1) * (h * w)
    flat = (planes + indices).ravel()
    grad_x = np.bincount(flat, weights=grad_out.ravel(), minlength=n * c * h * w)
    return grad_x.astype(grad_out.dtype, copy=False).reshape(n, c, h, w)


def avg_pool2d(x, kernel_size, stride=None):
    """Mean over each window; ``stride`` defaults to the window size."""
    x, kh, kw, sh, sw, oh, ow = _pool_setup(x, kernel_size, stride)
    windows = _patches(x, kh, kw, sh, sw, oh, ow)
    return windows.mean(axis=(4, 5), dtype=x.dtype)


def avg_pool2d_backward(grad_out, x_shape, kernel_size, stride=None):
    """Every input pixel gets ``grad / (KH * KW)`` from each window that contains it."""
    grad_out = check_images(grad_out, "grad_out")
    n, c, h, w = (int(s) for s in x_shape)
    kh, kw = as_pair(kernel_size, "kernel_size")
    sh, sw = as_pair(kernel_size if stride is None else stride, "stride")
    oh, ow = grad_out.shape[2:]
    share = grad_out / grad_out.dtype.type(kh * kw)
    grad_x = np.zeros((n, c, h, w), dtype=grad_out.dtype)
    for i in range(kh):
        for j in range(kw):
            grad_x[:, :, i : i + sh * oh : sh, j : j + sw * ow : sw] += share
    return grad_x
