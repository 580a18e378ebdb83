"""The Numba CPU backend: the numpy backend with matmul, convolution and pooling swapped
for the ``@njit(parallel=True)`` kernels of ``tinygrad_lite.kernels.cpu``.

Select it with ``tl.set_backend("numba")`` (and go back with ``tl.set_backend("numpy")``).
Arrays are the same numpy arrays as on the numpy backend, so tensors made under either
backend work together, and every other primitive (elementwise maths, reductions, indexing)
is inherited unchanged: numpy's ufuncs are already compiled loops, and a Numba version
of them would only add a call overhead.

Which kernel runs, per op:

* ``conv2d``, ``conv2d_backward_input``, ``conv2d_backward_weight``, ``max_pool2d``,
  ``max_pool2d_backward``, ``avg_pool2d``, ``avg_pool2d_backward``: ``kernels.cpu``
  for float32/float64 arrays (im2col/col2im + GEMM, whole-batch CHWN for small output
  planes and image by image for large ones, the products of large convolutions by
  single-threaded BLAS calls inside Numba's parallel loop; a straight-line
  2x2/stride-2 max-pooling kernel and per-plane loops for other windows), else the
  numpy reference (float16).
* ``matmul``: ``kernels.cpu.matmul`` for 2-D float32/float64 operands of one dtype and
  ``kernels.cpu.batched_matmul`` for stacks with equal batch axes, when the product has
  at least ``SMALL_MATMUL_FLOPS`` operations; everything else (small products, 1-D
  operands, broadcast batch axes, integers, mixed dtypes, empty arrays) goes to
  ``numpy.matmul``. ``NumbaBackend(numba_matmul=False)`` keeps BLAS for every matmul and
  uses Numba for convolution and pooling only.

Importing this module does not import numba; creating a ``NumbaBackend`` does (and the
kernels compile on their first call, or load from Numba's on-disk cache).
"""

from __future__ import annotations

import numpy as np

from .numpy_backend import NumpyBackend

_KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
SMALL_MATMUL_FLOPS = 2 * 128**3
"""Matmuls with fewer floating-point operations than this run on numpy's BLAS."""


def _load_cpu_kernels():
    try:
        from ..kernels import cpu
    except ImportError as error:  # numba missing or broken
        raise RuntimeError(
            f"the 'numba' backend needs Numba ({error}); install it with `pip install numba`, "
            "or stay on the default backend with tl.set_backend('numpy')") from error
    return cpu


class NumbaBackend(NumpyBackend):
    """numpy arrays; matmul, convolution and pooling run as Numba kernels."""

    name = "numba"
    device = "cpu"

    def __init__(self, numba_matmul: bool = True):
        self.kernels = _load_cpu_kernels()
        self.numba_matmul = numba_matmul
        self._blas_limit = None

    # -------------------------------------------------------------- thread pools
    def activate(self) -> None:
        """Selected with ``tl.set_backend("numba")``: numpy's BLAS goes to one thread.

        OpenBLAS's idle workers keep polling the cores for a while after each numpy call,
        and Numba's parallel kernels then run at half speed (measured in
        ``benchmarks/bench_kernels.py``: an alternating numpy-matmul / Numba-kernel loop
        runs at 0.58-0.66 of each part's solo speed, 0.86-0.90 with this limit). Under
        this backend numpy's BLAS only serves leftovers, so the limit costs little.
        """
        if self._blas_limit is None:
            # Load the BLAS that Numba's np.dot calls (scipy's) first, so that the limit
            # covers it too: the large convolutions call it from inside Numba's threads.
            self.kernels._blas_libraries()
            self._blas_limit = self.kernels.limit_blas_threads(1)

    def deactivate(self) -> None:
        """Replaced by another backend: numpy's BLAS gets its threads back."""
        if self._blas_limit is not None:
            self._blas_limit.restore_original_limits()
            self._blas_limit = None

    # ------------------------------------------------------------ linear algebra
    def matmul(self, a, b):
        """``a @ b``: the Numba tiled GEMM for 2-D (or equally batched) float operands.

        Products under ``SMALL_MATMUL_FLOPS`` (the digits networks' layers) go to numpy's
        BLAS: there a parallel launch and the argument checks cost more than the
        arithmetic (35 us for a 100x160 @ 160x50 product against ~8 us with BLAS).
        """
        if (self.numba_matmul and a.dtype == b.dtype and a.dtype in _KERNEL_DTYPES
                and a.ndim == b.ndim >= 2 and a.size and b.size and a.shape[-1]
                and 2 * a.size * b.shape[-1] >= SMALL_MATMUL_FLOPS):
            if a.ndim == 2:
                return self.kernels.matmul(a, b)
            if a.shape[:-2] == b.shape[:-2]:
                batch = a.shape[:-2]
                out = self.kernels.batched_matmul(a.reshape((-1,) + a.shape[-2:]),
                                                  b.reshape((-1,) + b.shape[-2:]))
                return out.reshape(batch + out.shape[-2:])
        return np.matmul(a, b)

    # ------------------------------------------------- convolution and pooling
    def _use_kernels(self, *arrays) -> bool:
        return all(a.dtype in _KERNEL_DTYPES for a in arrays)

    def conv2d(self, x, w, stride=1, padding=0):
        if self._use_kernels(x, w):
            return self.kernels.conv2d(x, w, stride, padding)
        return NumpyBackend.conv2d(x, w, stride, padding)

    def conv2d_backward_input(self, grad_out, w, x_shape, stride=1, padding=0):
        if self._use_kernels(grad_out, w):
            return self.kernels.conv2d_backward_input(grad_out, w, x_shape, stride, padding)
        return NumpyBackend.conv2d_backward_input(grad_out, w, x_shape, stride, padding)

    def conv2d_backward_weight(self, grad_out, x, w_shape, stride=1, padding=0):
        if self._use_kernels(grad_out, x):
            return self.kernels.conv2d_backward_weight(grad_out, x, w_shape, stride, padding)
        return NumpyBackend.conv2d_backward_weight(grad_out, x, w_shape, stride, padding)

    def max_pool2d(self, x, kernel_size, stride=None):
        if self._use_kernels(x):
            return self.kernels.max_pool2d(x, kernel_size, stride)
        return NumpyBackend.max_pool2d(x, kernel_size, stride)

    def max_pool2d_backward(self, grad_out, indices, x_shape):
        if self._use_kernels(grad_out):
            return self.kernels.max_pool2d_backward(grad_out, indices, x_shape)
        return NumpyBackend.max_pool2d_backward(grad_out, indices, x_shape)

    def avg_pool2d(self, x, kernel_size, stride=None):
        if self._use_kernels(x):
            return self.kernels.avg_pool2d(x, kernel_size, stride)
        return NumpyBackend.avg_pool2d(x, kernel_size, stride)

    def avg_pool2d_backward(self, grad_out, x_shape, kernel_size, stride=None):
        if self._use_kernels(grad_out):
            return self.kernels.avg_pool2d_backward(grad_out, x_shape, kernel_size, stride)
        return NumpyBackend.avg_pool2d_backward(grad_out, x_shape, kernel_size, stride)
