"""Array-in, array-out compute kernels, importable on their own for study and benchmarking.

* ``kernels.reference``: plain numpy (im2col + BLAS); the numpy backend and the test oracle.
* ``kernels.cpu``: Numba ``@njit(parallel=True)`` kernels (tiled matmul, convolution,
  pooling) with the same signatures; see ``docs/kernels.md``.
* ``kernels.cuda``: Numba CUDA kernels.

Submodules load on first attribute access (``tl.kernels.cpu.matmul``), so importing
``tinygrad_lite`` neither imports numba nor compiles anything.
"""

from __future__ import annotations

import importlib

_SUBMODULES = ("cpu", "cuda", "reference")


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBMODULES))

