"""``tl.cuda``: is a GPU usable through Numba CUDA?"""

from __future__ import annotations

import os


def is_available() -> bool:
    """True when Numba CUDA can run kernels (a real GPU, or the simulator if enabled)."""
    try:
        from numba import cuda
    except ImportError:
        return False
    try:
        return bool(cuda.is_available()) or os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
    except Exception:  # a broken driver install must read as "no GPU", not crash
        return False
